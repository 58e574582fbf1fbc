"""CAS(ME)^3 part A (30 fps, RGB + depth, 94 subjects): one long clip per task, several micro-expressions each.

Layout: `.../spNO.1/b/color/175.jpg` (depth in `depth/175.png`, not read). The folders above the subject
folders differ between releases, so subject folders are searched for (`spNO.1`, also spelled `spNo.1`).
Sheet `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`, sheet `label`; `Filename` is the clip letter, so a
sample is (subject, letter, onset): clip id `b_175`. Emotions are case-folded (`Others` = `others`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sheets import find_file
from hsta_bench.data.sources._common import CodedSheetSettings, numbered_id, read_coded_clips
from hsta_bench.errors import UserError

_SUBJECT_DIR = re.compile(r"^sp\s*no\.?\s*(\d+)$", re.IGNORECASE)


@dataclass
class Casme3Settings(CodedSheetSettings):
    color_dir: str  # frames folder inside a clip folder
    search_depth: int  # how deep below the root subject folders are searched for
    cropped: bool  # the frames are face crops already


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
            raise UserError(f"{root}: no CAS(ME)^3 subject folders (spNO.1/ ...) within {s.search_depth} levels "
                            "(see datasets.casme3.search_depth)")
        read_coded_clips(
            builder, sheet, s,
            subject_id=subject_id,
            clip_id=lambda cells, onset: f"{cells['clip']}_{onset if onset is not None else 'unknown'}",
            frame_dir=lambda subject, cells: subjects.get(subject, root / subject) / cells["clip"] / s.color_dir,
            cropped=s.cropped,
        )

    def write_synthetic(self, root: Path, s: Casme3Settings, tree) -> None:
        rows = [["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]]
        for video in tree.videos:
            letter = _letters(video.index)
            # releases spell the subject folder spNO or spNo; the stand-in has both
            number = int(video.subject.split(".")[1])
            folder = video.subject.replace("spNO", "spNo") if number % 2 == 0 else video.subject
            base = root / "part_A" / "data" / folder
            tree.write_frames(video, base / letter / s.color_dir, "{n}.jpg")
            for event in video.events:
                apex = event.offset + 3 if event.apex_cell == "outside" else event.apex
                rows.append([video.subject, letter, event.onset, apex, event.offset, "AU4", 1, event.emotion])
        tree.write_sheet(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", "label", rows)


def _letters(index: int) -> str:
    """A clip folder's name as the release spells them (a, b, ...), going on aa, ab, ... where a full-size
    stand-in gives one subject more than 26 videos (a single letter ran out there)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return alphabet[index] if index < 26 else _letters(index // 26 - 1) + alphabet[index % 26]

