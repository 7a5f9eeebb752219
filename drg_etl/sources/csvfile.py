"""Read a delimited text file under its format's contract, record by record.

The contract is checked before any record is read: encoding, delimiter, the header's
columns (a pandera schema, strict and ordered), an empty or truncated file. A breach
rejects the file whole (:class:`FileRejected`). The file is read in bounded chunks and
records are yielded one at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from drg_etl.core.delivery import FileRejected

OTHER_DELIMITERS = (",", ";", "\t", "|")


def header_contract(columns: list[str]) -> pa.DataFrameSchema:
    """The source contract of a file's columns: exactly these, in this order."""
    return pa.DataFrameSchema({c: pa.Column(str, nullable=True) for c in columns}, strict=True, ordered=True,
                              name="header")


def check_columns(file: str, found: list[str], expected: list[str]) -> None:
    """Reject the file when its header breaks the contract, naming missing and extra columns.

    A header that is the contract exactly passes at once (the schema passes it too; it costs a tenth of a
    second a file).
    """
    if list(found) == list(expected):
        return
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


CHUNK = 1 << 20


def check_encoding(path: Path, file: str, encoding: str) -> None:
    """Reject a file that is empty or not in its format's encoding, reading it in bounded chunks."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8, ascii_only, blank, offset = True, True, True, 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            if offset == 0 and encoding == "cp1252" and chunk.startswith(b"\xef\xbb\xbf"):
                raise FileRejected(file, "file.encoding", "the file starts with a UTF-8 byte order mark; "
                                                          "this source delivers Windows-1252")
            blank = blank and not chunk.strip()
            ascii_only = ascii_only and chunk.isascii()
            if is_utf8:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError as exc:
                    is_utf8 = False
                    if encoding != "cp1252":
                        raise FileRejected(file, "file.encoding", f"not {encoding.upper()} (byte {offset + exc.start})"
                                                                  "; was it saved as Windows-1252?") from exc
            if encoding == "cp1252":
                try:
                    chunk.decode("cp1252")
                except UnicodeDecodeError as exc:
                    raise FileRejected(file, "file.encoding", f"not Windows-1252: {exc}") from exc
            offset += len(chunk)
    if is_utf8:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            is_utf8 = False
            if encoding != "cp1252":
                raise FileRejected(file, "file.encoding", f"not {encoding.upper()}: the file ends inside a character"
                                   ) from exc
    if blank:
        raise FileRejected(file, "file.empty", "the file is empty")
    if encoding == "cp1252" and is_utf8 and not ascii_only:
        raise FileRejected(file, "file.encoding", "the file is UTF-8 encoded; this source delivers Windows-1252")


def ends_with(path: Path, ending: str) -> bool:
    """Whether the file's last bytes are ``ending``."""
    tail = ending.encode("ascii")
    with path.open("rb") as handle:
        handle.seek(0, io.SEEK_END)
        if handle.tell() < len(tail):
            return False
        handle.seek(-len(tail), io.SEEK_END)
        return handle.read() == tail


def open_text(path: Path, file: str, encoding: str) -> io.TextIOWrapper:
    """The file as text in its format's encoding, checked first (see :func:`check_encoding`)."""
    check_encoding(path, file, "utf-8" if encoding == "utf-8-sig" else encoding)
    return path.open(encoding=encoding, newline="")


def read_records(path: Path, file: str, *, encoding: str, delimiter: str, columns: list[str],
                 line_end: str | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(row, record)`` with the header as row 1; reject the file when it breaks its contract.

    The file is streamed: one record is held back to tell whether the last one is truncated.
    """
    for row, values in read_fields(path, file, encoding=encoding, delimiter=delimiter, columns=columns,
                                   line_end=line_end):
        yield row, _record(columns, values, delimiter)


def read_fields(path: Path, file: str, *, encoding: str, delimiter: str, columns: list[str],
                line_end: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """:func:`read_records`' rows as the fields read (for :func:`leading_columns`), the file's contract checked
    alike."""
    with open_text(path, file, encoding) as handle:
        if line_end is not None and not ends_with(path, line_end):
            raise FileRejected(file, "file.empty", "the file is truncated: its last line is not terminated")
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration as exc:
            raise FileRejected(file, "file.empty", "the file has no header") from exc
        except csv.Error as exc:
            raise FileRejected(file, "file.empty", f"the file is truncated or malformed: {exc}") from exc
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        if len(header) == 1 and len(columns) > 1:
            for other in OTHER_DELIMITERS:
                if other != delimiter and other in header[0] and header[0].split(other) == columns:
                    raise FileRejected(file, "file.delimiter", f"fields are separated by {other!r}, "
                                                               f"not {delimiter!r}")
        check_columns(file, header, columns)
        held: tuple[int, list[str]] | None = None
        for row, values in _rows(reader, file):
            if held is not None:
                yield held
            held = (row, values)
        if held is not None:
            row, values = held
            if len(values) != len(columns) and _swallowed(values, delimiter, len(columns)) is None:
                raise FileRejected(file, "file.empty", f"the file is truncated: its last record (row {row}) has "
                                                       f"{len(values)} of {len(columns)} fields")
            yield held


def leading_columns(columns: list[str], values: list[str], delimiter: str, count: int) -> dict[str, str]:
    """:func:`read_records`' record of these fields, its first ``count`` columns only (not building the rest): the
    same values where none of these columns is named again after them; a column the row lacks is missing, as
    there."""
    if _swallowed(values, delimiter, len(columns)) is not None:
        record = _record(columns, values, delimiter)
        return {c: record[c] for c in columns[:count]}
    return dict(zip(columns[:count], values, strict=False))


QUOTING = ("a quoted field runs over a line break into what reads as further records (an unclosed quote?): the "
           "record is quarantined and the text after the line break is not kept; check the quotes in the export")
ABSORBED = "__absorbed__"  # the column whose quoted text ran over a line break into other records ("" if none)


def _record(columns: list[str], values: Sequence[str], delimiter: str) -> dict[str, str]:
    """A record by column, with its field count; a field that swallowed other records is cut at its first line
    break and every field after it emptied, so no text of an absorbed record is kept."""
    at = _swallowed(values, delimiter, len(columns))
    fields = str(len(values))
    if at is not None:
        values = [*values[:at], re.split(r"[\r\n]", values[at], maxsplit=1)[0]]
    record = dict(zip(columns, values, strict=False))
    if at is not None:
        record |= {c: "" for c in columns[len(values):]}
    record["__fields__"] = fields
    record[ABSORBED] = "" if at is None else columns[min(at, len(columns) - 1)]
    return record


def _swallowed(values: Sequence[str], delimiter: str, width: int) -> int | None:
    """The first field holding a line break followed by what reads as a record of this file (an unclosed quote
    folds the next records into one field), or None.

    A line reads as a record when it has the file's number of delimiters and starts with what a record starts
    with: a key (a CPR number, a record id) holding a digit and no space. A note of two lines whose second
    happens to hold semicolons ("Panodil; Ibuprofen; ...") is a note.
    """
    joined = "".join(values)
    if "\n" not in joined and "\r" not in joined:  # most records: no field holds a line break
        return None
    for at, value in enumerate(values):
        if "\n" in value or "\r" in value:
            if any(_reads_as_record(line, delimiter, width) for line in value.splitlines()[1:]):
                return at
    return None


def _reads_as_record(line: str, delimiter: str, width: int) -> bool:
    if line.count(delimiter) < width - 1:
        return False
    key = line.split(delimiter, 1)[0]
    return bool(key) and not any(c.isspace() for c in key) and any(c.isdigit() for c in key)


def _rows(reader: Iterator[list[str]], file: str) -> Iterator[tuple[int, list[str]]]:
    """Non-empty records with their row numbers (header = row 1); a broken quote rejects the file."""
    try:
        for row, values in enumerate(reader, start=2):
            if values:
                yield row, values
    except csv.Error as exc:
        raise FileRejected(file, "file.empty", f"the file is truncated or malformed: {exc}") from exc


def read_text(path: Path, file: str, encoding: str) -> str:
    """A small file's whole text in its format's encoding (a data dictionary), checked first."""
    with open_text(path, file, encoding) as handle:
        return handle.read()


def first_line(path: Path, file: str, encoding: str) -> str:
    """The first line of a file (its header), checked first."""
    with open_text(path, file, encoding) as handle:
        return handle.readline()
