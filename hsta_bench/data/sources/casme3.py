"""CAS(ME)^3 part A (30 fps, RGB + depth, 94 subjects): one long clip per task, several micro-expressions each.

Layout: `.../spNO.1/b/color/175.jpg` (depth in `depth/175.png`, not read). The folders above the subject
folders differ between releases, so subject folders are searched for (`spNO.1`, also spelled `spNo.1`).
Sheet `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`, sheet `label`; `Filename` is the clip letter, so a
sample is (subject, letter, onset): clip id `b_175`. Emotions are case-folded (`Others` = `others`).

An offset of 0, or one before the onset, is no frame of the sample (the v2 sheet has three such rows:
spNO.40 onsets 1812 and 2327 with offset 0, spNO.216 onset 3647 with offset 2694): it is taken as unknown
and repaired by `repaired_offset`, reported as a `repaired` problem naming the sheet row. Every other row is
checked as in the other datasets (`hsta_bench/data/clips.py`).
"""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

from pydantic import Field

from hsta_bench.config import Bool, Int
from hsta_bench.data.frames import list_frames
from hsta_bench.data.manifest import REPAIRED, ManifestBuilder, Sample, where
from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sheets import find_file, parse_frame, read_sheet
from hsta_bench.data.sources._common import CodedSheetSettings, numbered_id, read_coded_clips
from hsta_bench.errors import UserError

_SUBJECT_DIR = re.compile(r"^sp\s*no\.?\s*(\d+)$", re.IGNORECASE)


@dataclass
class Casme3Settings(CodedSheetSettings):
    color_dir: str  # frames folder inside a clip folder
    search_depth: Annotated[Int, Field(ge=0)]  # how deep below the root subject folders are searched for
    cropped: Bool  # the frames are face crops already


def subject_id(text: str | None) -> str:
    return numbered_id(text, "spNO.", 0, accept=r"sp\s*no\.?")


def find_subject_dirs(root: Path, depth: int) -> dict[str, Path]:
    """Normalised subject id -> folder, for every `spNO.<n>` folder at most `depth` levels below root."""
    found: dict[str, Path] = {}
    base_depth = len(root.parts)
    for current, dirs, _ in os.walk(root):
        here = Path(current)
        keep = []
        for name in sorted(dirs):
            if _SUBJECT_DIR.match(name):
                subject = subject_id(name)
                if subject in found:
                    raise UserError(f"{root}: subject {subject} appears twice: {found[subject]} and {here / name}")
                found[subject] = here / name
            elif len(here.parts) - base_depth < depth - 1:
                keep.append(name)
        dirs[:] = keep
    return found


def offset_is_no_frame(onset: int | None, offset: int | None) -> bool:
    """An offset cell that names no frame of the sample: 0 (frames count from 1) or one before the onset."""
    return offset is not None and (offset == 0 or (onset is not None and offset < onset))


def median_length(sheet: Path, s: Casme3Settings) -> int:
    """The median onset->offset length, in frames, of the sheet's rows whose onset and offset are frames
    (median_low: a length some row really has). Half a second where no row has one (a micro-expression
    lasts at most about that long)."""
    lengths = []
    for row in read_sheet(sheet, s.sheet_name, s.columns):
        onset, _ = parse_frame(row.cells.get("onset"))
        offset, _ = parse_frame(row.cells.get("offset"))
        if onset is not None and offset is not None and not offset_is_no_frame(onset, offset):
            lengths.append(offset - onset)
    return statistics.median_low(lengths) if lengths else s.fps // 2


def repaired_offset(onset: int, apex: int | None, length: int, last_frame: int | None) -> tuple[int, str]:
    """The offset given to a row whose offset is no frame, and how it was reached.

    The rule: onset + the sheet's median onset->offset length, raised to the coded apex if that lies later
    (the apex must lie in onset..offset) and lowered to the clip folder's last frame if the folder ends
    earlier. Why this and not the rules used elsewhere:
    - the clip folder's last frame (the rule for a blank offset) is the end of the whole task video, which
      in CAS(ME)^3 holds several micro-expressions: the span would run into the next ones;
    - apex + (apex - onset) assumes a symmetric time course, but the release phase is the longer one (on
      the 687 rows of the v2 sheet that HTNet's release keeps, cas(me)3_part_A_edited.csv, the median
      apex - onset is 6 frames and offset - apex 14; the median length is 20, two thirds of a second),
      and rows with the apex coded at the onset (common on this sheet) would get a one-frame span;
    - the median length comes from the same sheet at the same frame rate, so the repaired sample has the
      span a typical CAS(ME)^3 micro-expression has (the offset only bounds the frames input: onset..
      min(offset, onset + max_span); the flow and apex inputs read onset and apex).
    """
    offset, how = onset + length, f"onset {onset} + the sheet's median length {length}"
    if apex is not None and apex > offset:
        offset, how = apex, f"the apex {apex} (later than onset + the sheet's median length {length})"
    if last_frame is not None and onset <= last_frame < offset:
        offset, how = last_frame, f"the clip folder's last frame {last_frame} (before {how})"
    return offset, how


class _RepairingOffsets:
    """The manifest builder as `read_coded_clips` sees it: each sample it adds gets its offset repaired
    (when it is no frame) before it is checked against its frames, which happens right after `add`."""

    def __init__(self, builder: ManifestBuilder, length: int):
        self._builder, self._length = builder, length

    def __getattr__(self, name: str):
        return getattr(self._builder, name)

    def add(self, sample: Sample) -> None:
        self._builder.add(sample)
        if sample.onset is None or not offset_is_no_frame(sample.onset, sample.offset):
            return  # an unknown onset is an error of its own; every other offset is checked as usual
        folder = Path(sample.frame_dir) if sample.frame_dir else None
        frames = list_frames(folder) if folder is not None and folder.is_dir() else {}
        written = sample.offset
        sample.offset, how = repaired_offset(sample.onset, sample.apex, self._length, max(frames) if frames else None)
        what = "is not a frame" if written == 0 else f"is before onset {sample.onset}"
        self._builder.problem(
            REPAIRED,
            "offset-not-a-frame",
            where(sample.source_file, sample.source_row),
            f"offset {written} {what}: repaired to {sample.offset}, {how}",
            sample,
        )


@register
class Casme3(DatasetSource):
    name = "casme3"
    title = "CAS(ME)^3 part A"
    inputs = "frames"
    protocols = ("casme3-7", "casme3-4", "casme3-3")
    Settings = Casme3Settings

    def read(self, root: Path, s: Casme3Settings, builder) -> None:
        sheet = find_file(root, s.sheets, "CAS(ME)^3 label sheet", "datasets.casme3.sheets")
        subjects = find_subject_dirs(root, s.search_depth)
        if not subjects:
            raise UserError(
                f"{root}: no CAS(ME)^3 subject folders (spNO.1/ ...) within {s.search_depth} levels "
                "(see datasets.casme3.search_depth)"
            )
        repairing = cast(ManifestBuilder, _RepairingOffsets(builder, median_length(sheet, s)))  # proxies the builder
        read_coded_clips(
            repairing,
            sheet,
            s,
            subject_id=subject_id,
            clip_id=lambda cells, onset: f"{cells['clip']}_{onset if onset is not None else 'unknown'}",
            frame_dir=lambda subject, cells: subjects.get(subject, root / subject) / cells["clip"] / s.color_dir,
            cropped=s.cropped,
        )

    def write_synthetic(self, root: Path, s: Casme3Settings, tree) -> None:
        rows: list[list[str | int]] = [
            ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
        ]
        for video in tree.videos:
            letter = _letters(video.index)
            # releases spell the subject folder spNO or spNo; the stand-in has both
            number = int(video.subject.split(".")[1])
            folder = video.subject.replace("spNO", "spNo") if number % 2 == 0 else video.subject
            base = root / "part_A" / "data" / folder
            tree.write_frames(video, base / letter / s.color_dir, "{n}.jpg")
            for event in video.events:
                apex = event.offset + 3 if event.apex_cell == "outside" else event.apex
                # the v2 sheet's offsets that are no frame: 0, and one before the onset
                offset = {"zero": 0, "before": event.onset - 1}.get(event.offset_cell, event.offset)
                rows.append([video.subject, letter, event.onset, apex, offset, "AU4", 1, event.emotion])
        tree.write_sheet(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", "label", rows)


def _letters(index: int) -> str:
    """A clip folder's name as the release spells them (a, b, ...), going on aa, ab, ... where a full-size
    stand-in gives one subject more than 26 videos (a single letter ran out there)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return alphabet[index] if index < 26 else _letters(index // 26 - 1) + alphabet[index % 26]
