"""Frame folders as distributed: numbered image files, listed by their trailing frame number.

Every dataset names frames differently (`img46.jpg`, `reg_img46.jpg`, `006_05562.jpg`,
`reg_image012345.bmp`, `175.jpg`), but all end in the frame number, so one lister serves all of them.
Integrity is checked from the file's own structure (header and end markers) without decoding, so a
check of a whole dataset stays fast and needs no OpenCV.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)$")


def frame_number(name: str) -> int | None:
    """The trailing number of a file's stem, or None when it has none."""
    match = _NUMBERED.match(Path(name).stem)
    return int(match["digits"]) if match else None


def list_frames(folder: Path) -> dict[int, str]:
    """Frame number -> file name for the numbered images in `folder` (empty when it has none)."""
    frames: dict[int, str] = {}
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return frames
    for name in entries:
        if Path(name).suffix.lower() in IMAGE_SUFFIXES:
            number = frame_number(name)
            if number is not None:
                frames.setdefault(number, name)
    return frames


def _numbered(stem: str) -> re.Match[str]:
    match = _NUMBERED.match(stem)
    assert match is not None  # a frame listing (list_frames) holds only names whose stem ends in a number
    return match


def name_for(frames: dict[int, str], number: int) -> str:
    """The file name frame `number` would have in a folder named like `frames` (to report a missing one)."""
    if number in frames:
        return frames[number]
    sample = next(iter(frames.values()))
    stem, suffix = os.path.splitext(sample)
    match = _numbered(stem)
    widths = {len(_numbered(os.path.splitext(n)[0])["digits"]) for n in frames.values()}
    padded = len(widths) == 1 and any(
        _numbered(os.path.splitext(n)[0])["digits"].startswith("0") for n in frames.values()
    )
    digits = str(number).zfill(widths.pop()) if padded else str(number)
    return f"{match['prefix']}{digits}{suffix}"


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_problem(path: Path) -> str | None:
    """Why the image at `path` is unreadable, or None when its structure is intact."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(max(0, size - 64))
            tail = fh.read()
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    if size == 0:
        return "empty file"
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        if head[:2] != b"\xff\xd8":
            return "not a JPEG (bad header)"
        if b"\xff\xd9" not in tail:  # entropy-coded data never holds FFD9: missing means cut short
            return "truncated JPEG (no end-of-image marker)"
    elif suffix == ".png":
        if head[:8] != _PNG_MAGIC:
            return "not a PNG (bad header)"
        if b"IEND" not in tail:
            return "truncated PNG (no IEND chunk)"
    elif suffix == ".bmp":
        if head[:2] != b"BM":
            return "not a BMP (bad header)"
        declared = int.from_bytes(head[2:6], "little")
        if size < declared:
            return f"truncated BMP ({size} of {declared} bytes)"
    return None
