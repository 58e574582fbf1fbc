"""Test helpers: read an .xlsx sheet as rows of text and write rows back (to plant quirks and damage)."""

from __future__ import annotations

from pathlib import Path


def read_rows(path: Path, sheet: str) -> list[list[str | None]]:
    import fastexcel

    table = fastexcel.read_excel(str(path)).load_sheet_by_name(sheet, header_row=None, dtypes="string", skip_rows=0)
    return [list(r) for r in table.to_polars().rows()]


def write_rows(path: Path, sheet: str, rows: list[list]) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet(sheet)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None:
                ws.write(r, c, value)
    book.close()


def header_index(rows: list[list]) -> int:
    return next(i for i, r in enumerate(rows) if r and r[0] is not None and r[0].strip() == "Subject")
