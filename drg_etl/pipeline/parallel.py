"""Read large deliveries on every core: one worker process per delivery, handing over a DuckDB file.

The readers are Python, one record at a time, so a national load spends most of its time in
them. A worker reads one delivery exactly as the serial path does (same reader, same batches,
into the staging tables of a DuckDB file in a private temporary folder); the loader attaches
that file read-only, copies its tables into the warehouse's staging schema with SQL and runs
the delivery's rules there. Workers are plain ``python -m drg_etl.pipeline.reader`` processes: nothing
crosses but the delivery's folder, the key (in the environment, not the command line) and
the worker's DuckDB file. Small inboxes are read in process (starting workers costs more).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from drg_etl.core.delivery import Delivery, DeliveryRejected, FileRejected
from drg_etl.core.errors import DrgEtlError
from drg_etl.core.process import FOLDER_PREFIX
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.tables import PENDING, PENDING_DELIVERIES
from drg_etl.pipeline.reader import KEY_HANDOVER, LOAD_PID_VARIABLE, WORK_FILE
from drg_etl.pipeline.staging import StageReader, discard, read_into

WORKERS_VARIABLE = "DRG_ETL_READ_WORKERS"  # how many deliveries are read at once (default: the cores; 1: in process)
# Below this much new data, reading in process is faster than starting workers (DRG_ETL_PARALLEL_BYTES sets it).
PARALLEL_BYTES = int(os.environ.get("DRG_ETL_PARALLEL_BYTES", 8 << 20))
WORKER_TABLES = [t for t in PENDING if t != PENDING_DELIVERIES.name]  # what a worker reads a delivery into


class WorkerFailed(DrgEtlError):
    """A reading worker died (not a rejected file: a defect or the machine)."""


def _size(delivery: Delivery) -> int:
    return sum(p.stat().st_size for p in delivery.folder.iterdir() if p.is_file())


def _run(jobs: list[tuple[Delivery, Path]], key: bytes, workers: int) -> None:
    """Run the reading workers, ``workers`` at a time, as ``python -m drg_etl.pipeline.reader`` processes."""
    queue = list(jobs)
    running: list[tuple[subprocess.Popen, Delivery]] = []
    env = {**os.environ, KEY_HANDOVER: key.hex(), LOAD_PID_VARIABLE: str(os.getpid())}
    try:
        _drive(queue, running, env, workers)
    finally:
        for process, _ in running:  # a worker failed: stop the others before their folder goes
            process.kill()
            process.wait()


def _drive(queue: list[tuple[Delivery, Path]], running: list[tuple[subprocess.Popen, Delivery]],
           env: dict[str, str], workers: int) -> None:
    while queue or running:
        while queue and len(running) < workers:
            delivery, out = queue.pop(0)
            command = [sys.executable, "-m", "drg_etl.pipeline.reader", str(delivery.folder), delivery.center,
                       delivery.cutoff.isoformat(), str(out)]
            running.append((subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, text=True), delivery))
        process, delivery = running.pop(0)
        _, stderr = process.communicate()
        if process.returncode != 0:
            last = (stderr or "").strip().splitlines()[-1:] or ["no message"]
            raise WorkerFailed(f"reading {delivery.label} failed in its worker (exit {process.returncode}): "
                               f"{last[0]}")


@contextmanager
def prefetched(deliveries: list[Delivery], key: bytes) -> Iterator[StageReader | None]:
    """Read the deliveries in worker processes when they are large; yield a reader that ingests the results.

    Yields None when reading in process is the better choice (little data, one delivery, one core).
    """
    _sweep_orphaned_folders()  # every load, parallel or not, removes what a killed load left behind
    workers = min(len(deliveries), int(os.environ.get(WORKERS_VARIABLE, os.cpu_count() or 1)))
    if workers < 2 or sum(_size(d) for d in deliveries) < PARALLEL_BYTES:
        yield None
        return
    prefix = f"{FOLDER_PREFIX}{os.getpid()}-"  # the pid tells a later load whether this one still lives
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:  # private to this load, removed after
        folders = {}
        for number, delivery in enumerate(sorted(deliveries, key=_size, reverse=True)):
            folders[delivery.content_id()] = Path(tmp) / str(number)
            folders[delivery.content_id()].mkdir()
        _run([(d, folders[d.content_id()]) for d in sorted(deliveries, key=_size, reverse=True)], key, workers)

        def ingest(con: duckdb.DuckDBPyConnection, delivery: Delivery, pseudonymize: Pseudonymizer) -> None:
            discard(con, delivery.content_id())  # what an earlier, unfinished load staged of it
            folder = folders.get(delivery.content_id())
            if folder is None:  # not among the prefetched: read here
                read_into(con, delivery, pseudonymize)
                return
            if (folder / "rejected.json").exists():
                found = json.loads((folder / "rejected.json").read_text(encoding="utf-8"))
                raise DeliveryRejected(delivery, [FileRejected(r["file"], r["rule_id"], r["reason"]) for r in found],
                                       delivery.file_hashes())
            if not (folder / "done").exists():
                raise WorkerFailed(f"the worker that read {delivery.label} left no result")
            con.execute("attach $path as worker (read_only)", {"path": str(folder / WORK_FILE)})  # never in the text
            try:
                for table in WORKER_TABLES:
                    con.execute(f"insert into staging.{table} by name select * from worker.staging.{table}")
            finally:
                con.execute("detach worker")

        yield ingest


def _sweep_orphaned_folders() -> None:
    """Remove the reading folders of loads that died (killed: no ``finally`` ran); a living load's stay."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        pid = folder.name[len(FOLDER_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
