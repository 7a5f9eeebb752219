"""A center's complete records as of a pull, merged in a scratch DuckDB file, and written into the inbox whole.

A pull that asked only for what changed merges it into the last delivery it wrote: every record of a
changed key replaces the old ones, deleted keys go, and the whole is written in one canonical order, so
an incremental pull gives the bytes of a full one. The folder is written under ``INBOX/.pull/`` and
renamed into ``INBOX/<center>/<cutoff>/`` only when every file is complete: nobody sees half a delivery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from drg_etl.core.delivery import PULL_RECORD
from drg_etl.core.file_hashes import sha256_file

BATCH = 10_000


def _batches(rows: Iterable[tuple[str, str, str, str]]) -> Iterator[list[tuple[str, str, str, str]]]:
    batch: list[tuple[str, str, str, str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Snapshot:
    """Records keyed by (part, key) with a sort key and their output line, in a scratch DuckDB file.

    ``part`` is a file of the delivery (a FHIR resource type, REDCap's one export), ``key`` what an
    upstream change replaces or deletes as a whole (a resource id, a REDCap record), ``order`` the
    canonical order of the lines in their file.
    """

    def __init__(self, scratch: Path) -> None:
        self.db = duckdb.connect(str(scratch))
        self.db.execute("create table records (part varchar, key varchar, ord varchar, line varchar)")
        self.db.execute("create table incoming (part varchar, key varchar, ord varchar, line varchar)")

    def close(self) -> None:
        """Close the scratch database (its file is the caller's)."""
        self.db.close()

    def _insert(self, table: str, rows: Iterable[tuple[str, str, str, str]]) -> int:
        """Insert in batches through a pandas frame (DuckDB's executemany is a statement per row)."""
        count = 0
        for batch in _batches(rows):
            frame = pd.DataFrame(batch, columns=["part", "key", "ord", "line"], dtype="string")
            self.db.register("batch_rows", frame)
            self.db.execute(f"insert into {table} select * from batch_rows")
            self.db.unregister("batch_rows")
            count += len(batch)
        return count

    def add(self, rows: Iterable[tuple[str, str, str, str]]) -> int:
        """The base: records of the last delivery (or of a full pull)."""
        return self._insert("records", rows)

    def stage(self, rows: Iterable[tuple[str, str, str, str]]) -> int:
        """What the pull received: applied by :meth:`apply` (a changed key's records all replace the old)."""
        return self._insert("incoming", rows)

    def apply(self, deleted: Iterable[tuple[str, str]] = ()) -> dict[str, int]:
        """Remove deleted keys, replace every staged key's records, and say how many keys each step touched."""
        gone = sorted(set(deleted))
        removed = 0
        if gone:
            self.db.execute("create temporary table gone (part varchar, key varchar)")
            self.db.executemany("insert into gone values (?, ?)", gone)
            removed = self.db.execute(
                "select count(distinct (part, key)) from records where (part, key) in (select part, key from gone)"
            ).fetchone()[0]
            self.db.execute("delete from records where (part, key) in (select part, key from gone)")
        changed = self.db.execute("select count(distinct (part, key)) from incoming").fetchone()[0]
        self.db.execute("delete from records where (part, key) in (select distinct part, key from incoming)")
        self.db.execute("insert into records select * from incoming")
        self.db.execute("delete from incoming")
        return {"keys_changed": changed, "keys_deleted": removed}

    def duplicates(self) -> list[tuple[str, str]]:
        """(part, ord) pairs that occur twice: a server that sent one record twice."""
        return self.db.execute("select part, ord from records group by part, ord having count(*) > 1 "
                               "order by part, ord limit 5").fetchall()

    def lines(self, part: str) -> Iterator[str]:
        """The part's lines in canonical order, in bounded batches."""
        cursor = self.db.cursor()
        cursor.execute("select line from records where part = ? order by ord", [part])
        while batch := cursor.fetchmany(BATCH):
            for (line,) in batch:
                yield line

    def count(self, part: str) -> int:
        """How many records the part holds."""
        return self.db.execute("select count(*) from records where part = ?", [part]).fetchone()[0]


@dataclass
class WrittenFile:
    """One file of a pulled delivery: its name, its records and its SHA-256."""

    name: str
    records: int
    sha256: str


def write_text_file(path: Path, lines: Iterable[str], *, head: str = "", tail_newline: bool = True) -> None:
    """Write ``head`` and the lines, each ending in ``\\n``, UTF-8, flushed to disk."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(head)
        for line in lines:
            out.write(line)
            if tail_newline:
                out.write("\n")
        out.flush()
        os.fsync(out.fileno())


def describe(folder: Path, names: Iterable[str], counts: dict[str, int]) -> list[WrittenFile]:
    """Each written file with its record count and hash."""
    return [WrittenFile(name, counts.get(name, 0), sha256_file(folder / name)) for name in names]


@dataclass
class Landed:
    """What became of a pulled delivery: written (and where), or nothing changed since the same day's."""

    folder: Path
    written: bool
    replaced: bool = False


def land(staged: Path, inbox: Path, center: str, cutoff: dt.date, record: dict[str, Any],
         data_files: list[str]) -> Landed:
    """Put the staged folder into the inbox as ``<center>/<cutoff>/``, whole, with its ``pull.json``.

    Same cutoff, same data files: nothing is written (the delivery is already there). Same cutoff, other
    data: the day's delivery is replaced (moved aside, the new one renamed in). A later cutoff: a new folder.
    """
    target = inbox / center / cutoff.isoformat()
    if target.is_dir() and all(_same(staged / name, target / name) for name in data_files) and \
            sorted(p.name for p in target.iterdir() if p.name != PULL_RECORD) == sorted(data_files):
        return Landed(target, written=False)
    (staged / PULL_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    replaced = target.exists()
    if replaced:
        aside = staged.parent / f"replaced-{center}-{cutoff.isoformat()}"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
        os.replace(staged, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staged, target)
    _fsync_dir(target.parent)
    return Landed(target, written=True, replaced=replaced)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def sha256_text(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
