"""An xlsx workbook's sheets as rows of cell values, read by calamine (Rust) with openpyxl's values.

python-calamine reads a sheet about eight times faster than openpyxl; this module gives its
rows the values openpyxl's read-only, data-only mode gives (the reader's contract and its
tests were written against those): an empty cell is None, a whole number is an int, a date
cell a ``datetime``; rows start at the sheet's row 1 and column A whatever the used range.

calamine reads an Excel error cell (``#N/A``, ``#REF!``) as empty, where openpyxl keeps its
text; a workbook that holds an error cell is therefore read by openpyxl, so that a finding
still names the error the center sees in the cell. The check streams each sheet's XML once.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import python_calamine

UNREADABLE = (python_calamine.CalamineError, zipfile.BadZipFile, OSError, KeyError, ValueError)
_STATES = {int(python_calamine.SheetVisibleEnum.Visible): "visible",  # as openpyxl names them
           int(python_calamine.SheetVisibleEnum.Hidden): "hidden",
           int(python_calamine.SheetVisibleEnum.VeryHidden): "veryHidden"}
_ERROR_CELL = re.compile(rb'<c [^>]*\bt="e"')
_CHUNK = 1 << 20
_EXACT_INTEGERS = 2**53


def _cell(value: Any) -> Any:
    """openpyxl's value for a calamine cell."""
    if value == "":
        return None
    if type(value) is float:
        return int(value) if value.is_integer() and abs(value) < _EXACT_INTEGERS else value
    if type(value) is dt.date:
        return dt.datetime(value.year, value.month, value.day)
    return value


def holds_error_cells(path: Path) -> bool:
    """Whether any worksheet of the workbook holds an error cell (``t="e"``), streamed in bounded chunks."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not (member.startswith("xl/worksheets/") and member.endswith(".xml")):
                continue
            with archive.open(member) as part:
                tail = b""
                while chunk := part.read(_CHUNK):
                    if _ERROR_CELL.search(tail + chunk):
                        return True
                    tail = chunk[-64:]
    return False


class Workbook:
    """A workbook opened for reading: its sheet names, each sheet's state, and each sheet's rows.

    Raises one of :data:`UNREADABLE` when the file is not a workbook that can be opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._openpyxl = None
        if holds_error_cells(path):
            import openpyxl  # only for a workbook calamine would read an error cell of as empty

            self._openpyxl = openpyxl.load_workbook(path, read_only=True, data_only=True)
            self.sheetnames = list(self._openpyxl.sheetnames)
            self.states = {n: getattr(self._openpyxl[n], "sheet_state", "visible") for n in self.sheetnames}
            return
        self._book = python_calamine.CalamineWorkbook.from_path(str(path))
        metadata = self._book.sheets_metadata
        self.sheetnames = [m.name for m in metadata]
        self.states = {m.name: _STATES[int(m.visible)] for m in metadata}

    def rows(self, sheet: str) -> Iterator[tuple[Any, ...]]:
        """The sheet's rows from row 1, each from column A, as openpyxl's ``iter_rows(values_only=True)``."""
        if self._openpyxl is not None:
            yield from self._openpyxl[sheet].iter_rows(values_only=True)
            return
        values = self._book.get_sheet_by_name(sheet)
        padding = (None,) * (values.start[1] if values.start else 0)  # calamine starts at the used range's column
        for row in values.iter_rows():  # ... but at the sheet's first row
            yield padding + tuple(map(_cell, row))

    def close(self) -> None:
        """Release the file."""
        if self._openpyxl is not None:
            self._openpyxl.close()
        else:
            self._book.close()
