"""Annotation sheets (.xlsx) read exactly as distributed.

The header is the first row whose first filled cell is `Subject` (SAMM ships a block of notes above
it; other copies have it in row 1). Header cells are compared with their whitespace and line breaks
removed and case folded, so `Onset\\nFrame`, `Onset Frame` and `OnsetFrame` are the same column; blank
columns (CASME II's 2019 sheet) are ignored. Every cell is read as text; rows keep the number a
spreadsheet shows, so problems can name them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import fastexcel

from hsta_bench.errors import UserError

UNKNOWN_CELLS = {"", "/", "-", "?", "n/a", "na", "nan", "none"}


def header_key(text: str | None) -> str:
    return "".join((text or "").split()).casefold()


@dataclass
class SheetRow:
    number: int  # 1-based, as a spreadsheet shows it
    cells: dict[str, str | None]  # field -> cell text (None when blank)


def find_file(root: Path, patterns: Iterable[str], what: str, setting: str) -> Path:
    """The first file matching one of `patterns` (in order) in `root` or one folder below it."""
    patterns = list(patterns)
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for pattern in patterns:
        for folder in folders:
            hits = sorted(p for p in folder.iterdir() if p.is_file() and fnmatch.fnmatch(p.name, pattern))
            if hits:
                return hits[-1]  # the newest of dated names (e.g. ..._v2 over ..._v1)
    raise UserError(
        f"{root}: no {what} found (looked for {' or '.join(patterns)} here and one folder below; "
        f"set {setting} if your copy names it differently)"
    )


def read_sheet(path: Path, sheet_name: str, columns: Mapping[str, str], optional: Iterable[str] = ()) -> list[SheetRow]:
    """Rows of `sheet_name` in `path` as {field: text}, `columns` mapping field -> header as written."""
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{path}: empty file, not an .xlsx sheet")
        reader = fastexcel.read_excel(str(path))
    except UserError:
        raise
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    except Exception as exc:  # calamine reports corrupt workbooks with its own exception types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable .xlsx workbook ({reason})") from None
    names = reader.sheet_names
    if sheet_name in names:
        chosen = sheet_name
    elif len(names) == 1:
        chosen = names[0]
    else:
        raise UserError(f"{path}: no sheet named '{sheet_name}' (sheets: {', '.join(names)})")
    table = reader.load_sheet_by_name(chosen, header_row=None, dtypes="string", skip_rows=0).to_polars()
    rows = table.rows()
    label = f"{path} [{chosen}]"

    header_index = None
    for i, row in enumerate(rows):
        first = next((c for c in row if c is not None and c.strip()), None)
        if first is not None and header_key(first) == "subject":
            header_index = i
            break
    if header_index is None:
        raise UserError(f"{label}: no header row (a row starting with 'Subject'); is this the right sheet?")
    header = [header_key(c) for c in rows[header_index]]
    positions: dict[str, int] = {}
    missing = []
    for field, title in columns.items():
        key = header_key(title)
        if key in header:
            positions[field] = header.index(key)
        elif field not in optional:
            missing.append(title)
    if missing:
        found = ", ".join(repr(" ".join(c.split())) for c in rows[header_index] if c and c.strip())
        raise UserError(
            f"{label}:row {header_index + 1}: missing column(s) {', '.join(map(repr, missing))} (found {found})"
        )

    out = []
    for i in range(header_index + 1, len(rows)):
        row = rows[i]
        if all(c is None or not c.strip() for c in row):
            continue
        cells = {}
        for field, pos in positions.items():
            text = row[pos]
            cells[field] = text.strip() if text is not None and text.strip() else None
        out.append(SheetRow(i + 1, cells))
    if not out:
        raise UserError(f"{label}: no samples below the header in row {header_index + 1}")
    return out


_INT = re.compile(r"^[+-]?\d+(\.0*)?$")


def parse_frame(text: str | None) -> tuple[int | None, bool]:
    """(frame number or None when unknown, whether the text was understood)."""
    if text is None or text.strip().casefold() in UNKNOWN_CELLS:
        return None, True
    text = text.strip()
    if _INT.match(text):
        return int(float(text)), True
    return None, False
