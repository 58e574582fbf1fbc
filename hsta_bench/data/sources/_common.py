"""Pieces shared by the adapters: subject ids, folder search, and reading a coded sheet of clips."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn, overload

from pydantic import Field

from hsta_bench.config import Int
from hsta_bench.data.clips import settle_clip
from hsta_bench.data.manifest import ERROR, ManifestBuilder, Sample, where
from hsta_bench.data.protocols import fold_emotion
from hsta_bench.data.sheets import parse_frame, read_sheet
from hsta_bench.errors import UserError


@dataclass
class CodedSheetSettings:
    """Settings every sheet-coded video dataset has (CASME II, SAMM, CAS(ME)^3)."""

    fps: Annotated[Int, Field(gt=0)]
    sheets: tuple[str, ...]  # file name patterns, first match wins
    sheet_name: str
    columns: dict[str, str]  # field (subject, clip, onset, apex, offset, emotion) -> header as written
    emotions: tuple[str, ...]  # emotions as the dataset writes them; others are reported unknown


def holds_dirs_like(pattern: str) -> Callable[[Path], bool]:
    """A test for `find_dir`: the folder has a subfolder whose name matches `pattern`."""
    regex = re.compile(pattern, re.IGNORECASE)
    return lambda folder: any(p.is_dir() and regex.match(p.name) for p in folder.iterdir())


def numbered_id(text: str | None, prefix: str, width: int, accept: str = "") -> str:
    """`prefix` + zero-padded number from '01', '1', '1.0' or an id that already has a prefix."""
    if text is None:
        raise ValueError("empty")
    raw = text.strip()
    match = re.fullmatch(rf"(?i)(?:{accept or re.escape(prefix)})?\s*0*(\d+)(?:\.0+)?", raw)
    if not match:
        raise ValueError(f"not a subject id like {prefix}{'1'.zfill(width)}")
    return f"{prefix}{int(match.group(1)):0{width}d}"


def find_dir(root: Path, names: Iterable[str], test: Callable[[Path], bool] = Path.is_dir) -> Path | None:
    """The first of `names` (relative folders, '.' for root) found in root or one folder below it."""
    below = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for name in names:
        for base in [root, *below]:
            candidate = (base / name) if name != "." else base
            if candidate.is_dir() and test(candidate):
                return candidate
    return None


def read_coded_clips(
    builder: ManifestBuilder,
    sheet: Path,
    settings,
    *,
    subject_id: Callable[[str | None], str],
    clip_id: Callable[[dict, int | None], str],
    frame_dir: Callable[[str, dict], Path],
    cropped: bool,
) -> None:
    """Samples from an annotation sheet with onset/apex/offset columns, each checked against its frames."""
    known = {fold_emotion(e) for e in settings.emotions}
    for row in read_sheet(sheet, settings.sheet_name, settings.columns):
        at = where(sheet, row.number)
        cells = row.cells
        try:
            subject = subject_id(cells["subject"])
        except ValueError as exc:
            builder.problem(ERROR, "bad-subject", at, f"subject {cells['subject']!r}: {exc}")
            continue
        if not cells.get("clip"):
            builder.problem(ERROR, "bad-clip", at, f"empty '{settings.columns['clip']}' cell")
            continue
        parsed = {name: parse_frame(cells.get(name)) for name in ("onset", "apex", "offset")}
        sample = Sample(
            source=builder.name,
            subject=subject,
            clip=clip_id(cells, parsed["onset"][0]),
            emotion=cells.get("emotion"),
            source_file=str(sheet),
            source_row=row.number,
            frame_dir=str(frame_dir(subject, cells)),
            onset=parsed["onset"][0],
            apex=parsed["apex"][0],
            offset=parsed["offset"][0],
            fps=settings.fps,
            face_crop=cropped,
        )
        builder.add(sample)
        for name, (_, understood) in parsed.items():
            if not understood:
                builder.problem(
                    ERROR, f"bad-{name}", at, f"{settings.columns[name]} {cells[name]!r} is not a frame number", sample
                )
        if fold_emotion(sample.emotion) not in known:
            builder.problem(
                ERROR,
                "unknown-emotion",
                at,
                f"unknown emotion {sample.emotion!r} (known: {', '.join(settings.emotions)})",
                sample,
            )
        if all(understood for _, understood in parsed.values()):
            settle_clip(builder, sample, apex_text=cells.get("apex"))


@overload
def require(found: None, root: Path, what: str, setting: str) -> NoReturn: ...
@overload
def require(found: Path | None, root: Path, what: str, setting: str) -> Path: ...
def require(found: Path | None, root: Path, what: str, setting: str) -> Path:
    if found is None:
        raise UserError(f"{root}: no {what} found here or one folder below (is this the dataset's root? see {setting})")
    return found
