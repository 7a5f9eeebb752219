"""A delivery file is read for its hash once: a later load knows it by its fingerprint, and a changed file is read.

The fingerprint (path, size, modification and change times, inode, device) changes with any write, even one that
keeps the size and sets the modification time back; a file written just before it was hashed is not remembered.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from helpers import TEST_KEY, Generated

from drg_etl.core import file_hashes
from drg_etl.pipeline.load import load_inbox


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    file_hashes.forget()
    yield
    file_hashes.forget()


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    real = file_hashes.sha256_file

    def counted(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(file_hashes, "sha256_file", counted)
    return reads


def test_a_settled_file_is_read_once_and_a_rewritten_one_again(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_hashes, "SETTLED_NS", 0)
    reads = _counting_reads(monkeypatch)
    path = tmp_path / "prom.csv"
    path.write_text("CPR;NRS\n0101801234;5\n", encoding="utf-8")
    first = file_hashes.file_sha256(path)
    assert file_hashes.file_sha256(path) == first and reads == [path]
    status = path.stat()
    path.write_text("CPR;NRS\n0101801234;6\n", encoding="utf-8")  # same size, and the old modification time back
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_size == status.st_size and path.stat().st_mtime_ns == status.st_mtime_ns
    assert file_hashes.file_sha256(path) != first and len(reads) == 2  # the change time told


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like git's racily clean entries: a write in the same clock tick would keep every time; read it again."""
    reads = _counting_reads(monkeypatch)
    path = tmp_path / "prom.csv"
    path.write_text("x", encoding="utf-8")
    file_hashes.file_sha256(path)
    file_hashes.file_sha256(path)
    assert len(reads) == 2 and file_hashes.remembered() == []


def test_a_load_keeps_the_hashes_and_the_next_load_reads_no_unchanged_file(
        demo_clean: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_hashes, "SETTLED_NS", 0)
    inbox, warehouse = tmp_path / "inbox", tmp_path / "w.duckdb"
    shutil.copytree(demo_clean.inbox, inbox)
    load_inbox(inbox, warehouse, TEST_KEY)
    files = sorted(p for p in inbox.rglob("*") if p.is_file())
    with duckdb.connect(str(warehouse), read_only=True) as con:
        kept = dict(con.execute("select path, sha256 from quality.file_hashes").fetchall())
    assert kept == {str(p.resolve()): file_hashes.sha256_file(p) for p in files}

    file_hashes.forget()  # a new process: only the warehouse remembers
    reads = _counting_reads(monkeypatch)
    report = load_inbox(inbox, warehouse, TEST_KEY)
    assert reads == [] and report.loaded == [] and len(report.skipped) == 4

    (changed,) = (inbox / "auh" / "2019-12-31").glob("prom.csv")
    with changed.open("a", encoding="cp1252", newline="") as handle:
        handle.write("\r\n")  # an empty line: the same records, another file
    file_hashes.forget()
    report = load_inbox(inbox, warehouse, TEST_KEY)
    assert reads == [changed] and report.loaded == ["auh/2019-12-31"]


def test_a_file_named_with_a_cpr_number_is_not_kept(demo_clean: Generated, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A file's path is persisted with its hash: a center's file named with a CPR number is never kept (it is read
    for its hash at every load instead)."""
    monkeypatch.setattr(file_hashes, "SETTLED_NS", 0)
    inbox, warehouse = tmp_path / "inbox", tmp_path / "w.duckdb"
    shutil.copytree(demo_clean.inbox, inbox)
    (inbox / "auh" / "2019-12-31" / "notes 010180-1234.txt").write_text("a note", encoding="utf-8")
    load_inbox(inbox, warehouse, TEST_KEY)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        paths = [p for (p,) in con.execute("select path from quality.file_hashes").fetchall()]
    assert len(paths) == len([p for p in inbox.rglob("*") if p.is_file()]) - 1
    assert not any("1234" in p for p in paths)


def test_a_reading_worker_takes_the_hashes_the_load_knows(demo_clean: Generated, tmp_path: Path) -> None:
    """The load hands a worker the hashes it knows of the delivery's files (hashes.json): the worker reads none of
    those files for its hash (here a stand-in hash for one file proves whose hash it used)."""
    from drg_etl.pipeline.reader import HASHES_FILE, WORK_FILE, read_one

    (folder,) = (demo_clean.inbox / "auh").iterdir()
    prom = folder / "prom.csv"
    stand_in = "0" * 64
    (tmp_path / HASHES_FILE).write_text(
        json.dumps([[*file_hashes.fingerprint(prom, prom.stat()), stand_in]]), encoding="utf-8")
    read_one(str(folder), "auh", folder.name, TEST_KEY, str(tmp_path))
    with duckdb.connect(str(tmp_path / WORK_FILE), read_only=True) as con:
        hashes = dict(con.execute("select file, sha256 from staging.pending_files").fetchall())
    assert hashes["prom.csv"] == stand_in
    assert hashes["patienter.csv"] == file_hashes.sha256_file(folder / "patienter.csv")
