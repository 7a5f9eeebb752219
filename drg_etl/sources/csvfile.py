"""Read a delimited text file under its format's contract, record by record.

The contract is checked before any record is read: encoding, delimiter, the header's
columns (a pandera schema, strict and ordered), an empty or truncated file. A breach
rejects the file whole (:class:`FileRejected`). Records are then yielded one at a time,
so memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from drg_etl.sources.base import FileRejected

OTHER_DELIMITERS = (",", ";", "\t", "|")


def header_contract(columns: list[str]) -> pa.DataFrameSchema:
    """The source contract of a file's columns: exactly these, in this order."""
    return pa.DataFrameSchema({c: pa.Column(str, nullable=True) for c in columns}, strict=True, ordered=True,
                              name="header")


def check_columns(file: str, found: list[str], expected: list[str]) -> None:
    """Reject the file when its header breaks the contract, naming missing and extra columns."""
    try:
        header_contract(expected).validate(pd.DataFrame(columns=found, dtype=str), lazy=True)
    except SchemaErrors as exc:
        missing = [c for c in expected if c not in found]
        extra = [c for c in found if c not in expected]
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        if not parts:
            parts.append(f"columns out of order: {found}, expected {expected}")
        raise FileRejected(file, "file.columns", "; ".join(parts)) from exc


def decode(path: Path, file: str, encoding: str) -> str:
    """The file's text in its format's encoding; reject a file in another encoding."""
    raw = path.read_bytes()
    if not raw.strip():
        raise FileRejected(file, "file.empty", "the file is empty")
    if encoding == "cp1252":
        if raw.startswith(b"\xef\xbb\xbf"):
            raise FileRejected(file, "file.encoding", "the file starts with a UTF-8 byte order mark; "
                                                      "this source delivers Windows-1252")
        if not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                raise FileRejected(file, "file.encoding", "the file is UTF-8 encoded; this source delivers "
                                                          "Windows-1252")
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise FileRejected(file, "file.encoding", f"not Windows-1252: {exc}") from exc
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileRejected(file, "file.encoding", f"not {encoding.upper()} (byte {exc.start}); "
                                                  "was it saved as Windows-1252?") from exc


def read_records(path: Path, file: str, *, encoding: str, delimiter: str, columns: list[str],
                 line_end: str | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(row, record)`` with the header as row 1; reject the file when it breaks its contract."""
    text = decode(path, file, encoding)
    if line_end is not None and not text.endswith(line_end):
        raise FileRejected(file, "file.empty", "the file is truncated: its last line is not terminated")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise FileRejected(file, "file.empty", "the file has no header") from exc
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    if len(header) == 1 and len(columns) > 1:
        for other in OTHER_DELIMITERS:
            if other != delimiter and other in header[0] and header[0].split(other) == columns:
                raise FileRejected(file, "file.delimiter", f"fields are separated by {other!r}, "
                                                           f"not {delimiter!r}")
    check_columns(file, header, columns)
    records = list_rows(reader, file)
    for number, (row, values) in enumerate(records):
        if len(values) != len(columns) and number == len(records) - 1:
            raise FileRejected(file, "file.empty", f"the file is truncated: its last record (row {row}) has "
                                                   f"{len(values)} of {len(columns)} fields")
        yield row, dict(zip(columns, values, strict=False)) | {"__fields__": str(len(values))}


def list_rows(reader: Iterator[list[str]], file: str) -> list[tuple[int, list[str]]]:
    """All records with their row numbers (header = row 1); a broken quote rejects the file."""
    try:
        return [(i, values) for i, values in enumerate(reader, start=2) if values]
    except csv.Error as exc:
        raise FileRejected(file, "file.empty", f"the file is truncated or malformed: {exc}") from exc
