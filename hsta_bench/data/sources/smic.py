"""SMIC-HS (100 fps, 16 subjects with micro-expressions): labelled by folders, no sheet, no apex.

Layout: `HS/s1/micro/negative/s1_ne_01/reg_image012345.bmp` (`non_micro/` is not used). Onset and
offset are the clip's first and last frames. The apex is the middle frame (common practice), or, with
`apex_table`, the frame a third-party apex table gives (a CSV `subject,clip,apex`, the apex an absolute
frame number as in the file names; the precomputed MEGC2019 composite's SMIC flows were made with such a
table's apex). Subjects and clips are normalised to the MEGC2019 spelling: `s1` -> `s01`, `s1_ne_01` ->
`s01_ne_01`, in the folders and in the table alike.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from hsta_bench.config import Bool, ExpandedPath, Int
from hsta_bench.data.clips import settle_clip
from hsta_bench.data.frames import list_frames
from hsta_bench.data.manifest import ERROR, REPAIRED, WARNING, ManifestBuilder, Sample, where
from hsta_bench.data.protocols import fold_emotion
from hsta_bench.data.registry import DatasetSource, register
from hsta_bench.data.sheets import parse_frame
from hsta_bench.data.sources._common import find_dir, holds_dirs_like, numbered_id, require
from hsta_bench.errors import UserError

_SUBJECT_DIR = re.compile(r"^s\d+$", re.IGNORECASE)
_CLIP = re.compile(r"^s0*(\d+)_(.+)$", re.IGNORECASE)
ABBREVIATIONS = {"negative": "ne", "positive": "po", "surprise": "sur"}
TABLE_COLUMNS = ("subject", "clip", "apex")


@dataclass
class SmicSettings:
    fps: Annotated[Int, Field(gt=0)]
    hs_dirs: tuple[str, ...]  # folders that may hold the subject folders s1/ ... ('.' = the root)
    micro_dir: str
    emotions: tuple[str, ...]  # the label folders under micro/
    cropped: Bool  # the frames are face crops already
    apex_table: ExpandedPath | None  # CSV subject,clip,apex (relative: to the data root); None: middle frames


@dataclass
class TableRow:
    """One apex table row, found by (subject, clip)."""

    at: str  # table file and row
    text: str | None  # the apex cell as written
    apex: int | None  # None: empty or unknown ('/'), or not a frame number
    understood: bool  # false: the cell is not a frame number (an error on the clip)
    conflict: str | None = None  # another row of the same clip with another apex: where it is
    used: bool = False  # a clip folder has this row


def subject_id(text: str | None) -> str:
    return numbered_id(text, "s", 2)


def clip_id(folder_name: str) -> str:
    match = _CLIP.match(folder_name)
    return f"s{int(match.group(1)):02d}_{match.group(2)}" if match else folder_name


def _shown(cell: str | None) -> str:
    return repr(cell) if cell else "none"


def read_apex_table(path: Path, builder: ManifestBuilder) -> dict[tuple[str, str], TableRow]:
    """(subject, clip), normalised -> the table's row for that clip. A row naming no clip is an error problem;
    the rows' apexes are judged against the clips in `Smic.read`."""
    if not path.is_file():
        raise UserError(f"{path}: SMIC apex table not found (datasets.smic.apex_table)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark
            reader = csv.reader(fh)
            lines = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    header_line, header = lines[0] if lines else (1, [])
    columns = {c.strip().casefold(): i for i, c in reversed(list(enumerate(header)))}
    missing = [c for c in TABLE_COLUMNS if c not in columns]
    if missing:
        raise UserError(
            f"{path}:row {header_line}: missing column(s) {', '.join(missing)} (found {', '.join(header) or 'none'}; "
            f"an apex table's header row is {','.join(TABLE_COLUMNS)})"
        )
    rows = [(n, row) for n, row in lines[1:] if any(cell.strip() for cell in row)]
    if not rows:
        raise UserError(f"{path}: no rows below the header")
    out: dict[tuple[str, str], TableRow] = {}
    for number, row in rows:
        at = where(path, number)
        subject_text, clip_text, apex_text = (
            (row[columns[c]].strip() or None) if columns[c] < len(row) else None for c in TABLE_COLUMNS
        )
        try:
            subject = subject_id(subject_text)
        except ValueError as exc:
            builder.problem(ERROR, "bad-subject", at, f"subject {subject_text!r}: {exc}")
            continue
        if clip_text is None:
            builder.problem(ERROR, "bad-clip", at, "empty clip cell")
            continue
        apex, understood = parse_frame(apex_text)
        entry = TableRow(at, apex_text, apex, understood)
        first = out.setdefault((subject, clip_id(clip_text)), entry)
        if first is not entry and (first.apex, first.understood) != (entry.apex, entry.understood):
            first.conflict = first.conflict or f"{at} gives {_shown(apex_text)}"
    return out


@register
class Smic(DatasetSource):
    name = "smic"
    title = "SMIC-HS"
    inputs = "frames"
    protocols = ("megc2019-composite",)
    Settings = SmicSettings

    def read(self, root: Path, s: SmicSettings, builder) -> None:
        hs = require(
            find_dir(root, s.hs_dirs, holds_dirs_like(_SUBJECT_DIR.pattern)),
            root,
            "SMIC-HS subject folders (HS/s1/ ...)",
            "datasets.smic.hs_dirs",
        )
        table_path = root / s.apex_table if s.apex_table is not None else None  # an absolute path stays itself
        table = read_apex_table(table_path, builder) if table_path is not None else None
        known = {fold_emotion(e) for e in s.emotions}
        subjects = sorted(
            (p for p in hs.iterdir() if p.is_dir() and _SUBJECT_DIR.match(p.name)), key=lambda p: int(p.name[1:])
        )
        found_micro = False
        for subject_dir in subjects:
            micro = subject_dir / s.micro_dir
            if not micro.is_dir():
                continue  # subjects without micro-expressions have no micro/ folder
            found_micro = True
            for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
                for clip_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                    sample = Sample(
                        source=builder.name,
                        subject=subject_id(subject_dir.name),
                        clip=clip_id(clip_dir.name),
                        emotion=label_dir.name,
                        source_file=str(clip_dir),
                        frame_dir=str(clip_dir),
                        fps=s.fps,
                        apex_source="middle",
                        face_crop=s.cropped,
                    )
                    builder.add(sample)
                    if fold_emotion(label_dir.name) not in known:
                        builder.problem(
                            ERROR,
                            "unknown-emotion",
                            str(label_dir),
                            f"unknown label folder {label_dir.name!r} (known: {', '.join(s.emotions)})",
                            sample,
                        )
                    row = table.get((sample.subject, sample.clip)) if table is not None else None
                    if row is not None:
                        row.used = True
                    frames = list_frames(clip_dir)
                    if frames:
                        sample.onset, sample.offset = min(frames), max(frames)
                        sample.apex = (sample.onset + sample.offset) // 2
                        if table_path is not None:
                            self._table_apex(builder, sample, row, table_path)
                    settle_clip(builder, sample)
        require(
            hs if found_micro else None,
            root,
            f"SMIC-HS '{s.micro_dir}' folders under the subject folders",
            "datasets.smic.micro_dir",
        )
        for (subject, clip), entry in (table or {}).items():
            if not entry.used:
                builder.problem(
                    WARNING, "unknown-clip", entry.at, f"no SMIC-HS clip {clip} of subject {subject} under {hs}"
                )

    @staticmethod
    def _table_apex(builder: ManifestBuilder, sample: Sample, row: TableRow | None, path: Path) -> None:
        """The apex table's `row` for `sample` (None: not in the table at `path`) applied to it; its onset,
        offset and middle-frame apex are set from its frames."""
        assert sample.onset is not None and sample.offset is not None
        if row is not None and row.conflict:
            builder.problem(
                ERROR,
                "apex-conflict",
                row.at,
                f"apex {_shown(row.text)} here, but {row.conflict}: which is it?",
                sample,
            )
        elif row is not None and not row.understood:
            builder.problem(ERROR, "bad-apex", row.at, f"apex {row.text!r} is not a frame number", sample)
        elif row is None or row.apex is None:
            said = "not in" if row is None else f"apex {row.text or 'empty'} in"
            builder.problem(
                WARNING,
                "apex-not-in-table",
                row.at if row is not None else sample.source_file,
                f"{said} the apex table {path}: middle frame {sample.apex}",
                sample,
            )
        elif not sample.onset <= row.apex <= sample.offset:
            builder.problem(
                REPAIRED,
                "apex-outside",
                row.at,
                f"apex {row.apex} outside the clip's frames {sample.onset}..{sample.offset}: "
                f"middle frame {sample.apex}",
                sample,
            )
        else:
            sample.apex, sample.apex_source = row.apex, "table"

    def write_synthetic(self, root: Path, s: SmicSettings, tree) -> None:
        def name(event, k):
            return f"s{int(event.subject[1:])}_{ABBREVIATIONS.get(event.emotion, event.emotion[:2])}_{k:02d}"

        tree.name_clips(name)
        for video in tree.videos:
            event = video.events[0]
            folder = root / "HS" / f"s{int(event.subject[1:])}" / s.micro_dir / event.emotion / event.clip
            tree.write_frames(video, folder, "reg_image{n:06d}.bmp")
        # a subject folder with only non-micro clips, as in the distribution: not read
        tree.write_frames(tree.videos[0], root / "HS" / "s7" / "non_micro" / "s7_no_01", "reg_image{n:06d}.bmp")
