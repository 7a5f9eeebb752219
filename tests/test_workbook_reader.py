"""The workbook reader (calamine) gives every cell the value openpyxl's read-only, data-only mode gives.

The ouh reader's rules were written against openpyxl's values; :mod:`drg_etl.sources.workbook`
reads with calamine for speed. These tests hold the two to the same rows, on the generated
workbook and on the cell types Excel writes (dates, date-times, times, durations, whole and
fractional numbers, booleans, formulas, error cells, empty rows and columns, hidden sheets).
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import Generated

from drg_etl.sources.workbook import UNREADABLE, Workbook, holds_error_cells


def _trimmed(row: tuple[Any, ...]) -> tuple[Any, ...]:
    cells = list(row)
    while cells and cells[-1] is None:
        cells.pop()
    return tuple(cells)


def openpyxl_rows(path: Path, sheet: str) -> list[tuple[Any, ...]]:
    """The oracle: openpyxl's rows, trailing empty cells trimmed (their count is the sheet's widest row)."""
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return [_trimmed(r) for r in book[sheet].iter_rows(values_only=True)]
    finally:
        book.close()


def rows(path: Path, sheet: str) -> list[tuple[Any, ...]]:
    """The reader's rows, trimmed alike."""
    book = Workbook(path)
    try:
        return [_trimmed(r) for r in book.rows(sheet)]
    finally:
        book.close()


def test_generated_workbook_reads_as_openpyxl_reads_it(demo: Generated) -> None:
    """Every sheet of the generated ouh workbook, noise rows included, row for row as openpyxl gives it."""
    (path,) = demo.inbox.rglob("*.xlsx")
    book = Workbook(path)
    assert book.sheetnames == openpyxl.load_workbook(path, read_only=True).sheetnames
    assert not holds_error_cells(path)
    for sheet in book.sheetnames:
        expected = openpyxl_rows(path, sheet)
        assert len(expected) > 10
        assert rows(path, sheet) == expected, sheet
    book.close()


def _cell_types_workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Cells"
    sheet.append(["CPR-nr", "date", "datetime", "time", "duration", "whole", "fraction", "flag", "formula", "text"])
    sheet.append([101801234, dt.datetime(2019, 5, 1), dt.datetime(2019, 5, 3, 13, 30), dt.time(13, 0),
                  dt.timedelta(hours=30), 7, 7.25, True, "=1+1", "  L5 sin "])
    sheet.append([None, "01.05.2019", 43586, None, None, 7.0, -0.5, False, None, "Note: not a record"])
    sheet["C6"] = "after two empty rows"
    sheet["L3"] = "beyond the header"
    offset = book.create_sheet("Offset")  # the used range starts at B3: rows and columns still count from A1
    offset["B3"], offset["D5"] = "first", 12
    hidden = book.create_sheet("Hidden")
    hidden.sheet_state = "hidden"
    hidden["A1"] = "x"
    very = book.create_sheet("VeryHidden")
    very.sheet_state = "veryHidden"
    very["A1"] = "y"
    book.save(path)


def test_excel_cell_types_read_as_openpyxl_reads_them(tmp_path: Path) -> None:
    """Dates, times, durations, numbers, booleans, formulas without a cached value, offsets and sheet states."""
    path = tmp_path / "cells.xlsx"
    _cell_types_workbook(path)
    book = Workbook(path)
    assert book.states == {"Cells": "visible", "Offset": "visible", "Hidden": "hidden", "VeryHidden": "veryHidden"}
    for sheet in book.sheetnames:
        assert rows(path, sheet) == openpyxl_rows(path, sheet), sheet
    cells = rows(path, "Cells")
    assert cells[1][:3] == (101801234, dt.datetime(2019, 5, 1), dt.datetime(2019, 5, 3, 13, 30))
    assert type(cells[1][5]) is int and cells[2][5] == 7 and type(cells[2][5]) is int  # a whole number is an int
    assert rows(path, "Offset")[2] == (None, "first")
    book.close()


def _with_error_cell(source: Path, target: Path) -> None:
    """``source`` with cell B2 of its first sheet rewritten as Excel writes an error: ``t="e"``, ``#N/A``."""
    with zipfile.ZipFile(source) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    xml, found = re.subn(r'<c r="B2"[^>]*?(/>|>.*?</c>)', '<c r="B2" t="e"><v>#N/A</v></c>', xml, count=1)
    assert found == 1
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def test_an_error_cell_keeps_its_text(tmp_path: Path) -> None:
    """calamine reads an error cell as empty; the reader keeps ``#N/A`` as openpyxl does, so a finding names it."""
    plain, broken = tmp_path / "plain.xlsx", tmp_path / "error.xlsx"
    _cell_types_workbook(plain)
    _with_error_cell(plain, broken)
    assert holds_error_cells(broken) and not holds_error_cells(plain)
    assert rows(broken, "Cells")[1][1] == "#N/A"
    for sheet in ("Cells", "Offset"):
        assert rows(broken, sheet) == openpyxl_rows(broken, sheet)


@pytest.mark.parametrize("content", [b"CPR;Dato\n0101801234;01-05-2019\n", b"PK\x03\x04 truncated", b""])
def test_a_file_that_is_not_a_workbook_is_unreadable(tmp_path: Path, content: bytes) -> None:
    """CSV text, a cut zip or an empty file under the .xlsx name raise one of UNREADABLE."""
    path = tmp_path / "DRG_registrering.xlsx"
    path.write_bytes(content)
    with pytest.raises(UNREADABLE):
        Workbook(path)
