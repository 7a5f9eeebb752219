"""Read large deliveries on every core: one worker process per delivery, handing over a DuckDB file.

The readers are Python, one record at a time, so a national load spends most of its time in
them. A worker reads one delivery exactly as the serial path does (same reader, same batches,
into the staging tables of a DuckDB file in a private temporary folder); the loader attaches
that file read-only, copies its tables into the warehouse's staging schema with SQL and runs
the delivery's rules there. Workers are plain ``python -m drg_etl.pipeline.reader`` processes: nothing
crosses but the delivery's folder, the key (in the environment, not the command line) and
the worker's DuckDB file. Small inboxes are read in process (starting workers costs more).
The loader stages each center as soon as its deliveries' workers are done, while the others still read (a
thread starts and reaps the workers); a staged delivery does not depend on another center's, so only the time
changes (a test holds the warehouse to the serial load's).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from drg_etl.core import file_hashes
from drg_etl.core.delivery import Delivery, DeliveryRejected, FileRejected
from drg_etl.core.errors import DrgEtlError
from drg_etl.core.process import FOLDER_PREFIX
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.tables import PENDING, PENDING_DELIVERIES
from drg_etl.pipeline.reader import HASHES_FILE, KEY_HANDOVER, LOAD_PID_VARIABLE, WORK_FILE
from drg_etl.pipeline.staging import discard, read_into

WORKERS_VARIABLE = "DRG_ETL_READ_WORKERS"  # how many deliveries are read at once (default: the cores; 1: in process)
# Below this much new data, reading in process is faster than starting workers (DRG_ETL_PARALLEL_BYTES sets it).
PARALLEL_BYTES = int(os.environ.get("DRG_ETL_PARALLEL_BYTES", 8 << 20))
WORKER_TABLES = [t for t in PENDING if t != PENDING_DELIVERIES.name]  # what a worker reads a delivery into
STDERR = "stderr.txt"  # a worker's standard error, in its folder: its last line says why it failed
POLL_SECONDS = 0.05


class WorkerFailed(DrgEtlError):
    """A reading worker died (not a rejected file: a defect or the machine)."""


def _size(delivery: Delivery) -> int:
    return sum(p.stat().st_size for p in delivery.folder.iterdir() if p.is_file())


class _Workers:
    """The reading workers, ``workers`` at a time, largest delivery first, started and reaped by a thread of their own:
    the loader stages each delivery as soon as its worker is done, while the others still read."""

    def __init__(self, jobs: list[tuple[Delivery, Path]], key: bytes, workers: int) -> None:
        self._queue = list(jobs)
        self._workers = workers
        known = file_hashes.remembered()  # here, before the thread: the loader's thread adds to them
        for delivery, out in jobs:  # a worker reads no file for its hash that the load already knows
            folder = delivery.folder.resolve()
            mine = [entry for entry in known if Path(entry[0]).parent == folder]
            (out / HASHES_FILE).write_text(json.dumps(mine), encoding="utf-8")
        self._env = {**os.environ, KEY_HANDOVER: key.hex(), LOAD_PID_VARIABLE: str(os.getpid())}
        self._lock = threading.Lock()
        self._running: list[tuple[subprocess.Popen, Delivery, Path]] = []
        self._stopped = False
        # (the delivery read, None) or (the delivery or None, why it failed)
        self.finished: queue.Queue[tuple[Delivery | None, str | None]] = queue.Queue()
        self._thread = threading.Thread(target=self._drive, name="drg-etl-readers", daemon=True)
        self._thread.start()

    def _start_next(self) -> None:
        delivery, out = self._queue.pop(0)
        command = [sys.executable, "-m", "drg_etl.pipeline.reader", str(delivery.folder), delivery.center,
                   delivery.cutoff.isoformat(), str(out)]
        with (out / STDERR).open("w", encoding="utf-8") as stderr:  # a file, not a pipe: it never fills up
            process = subprocess.Popen(command, env=self._env, stdout=subprocess.DEVNULL, stderr=stderr)
        self._running.append((process, delivery, out))

    def _drive(self) -> None:
        try:
            self._drive_until_done()
        except Exception as exc:  # starting a worker failed: the loader, waiting for results, is told
            self.finished.put((None, f"starting a reading worker failed: {type(exc).__name__}: {exc}"))

    def _drive_until_done(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                while self._queue and len(self._running) < self._workers:
                    self._start_next()
                if not self._running:
                    return
                ended = [job for job in self._running if job[0].poll() is not None]
                for job in ended:
                    self._running.remove(job)
            for process, delivery, out in ended:
                failure = None
                if process.returncode != 0:
                    lines = (out / STDERR).read_text(encoding="utf-8", errors="replace").strip().splitlines()
                    failure = (f"reading {delivery.label} failed in its worker (exit {process.returncode}): "
                               f"{(lines[-1:] or ['no message'])[0]}")
                self.finished.put((delivery, failure))
            if not ended:
                time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        """Kill the workers still reading and start no more (a failed or finished load)."""
        with self._lock:
            self._stopped = True
            for process, _, _ in self._running:
                process.kill()
                process.wait()
            self._running.clear()
        self._thread.join()


class Prefetched:
    """Deliveries read by workers: ingests a worker's result into the load's staging schema (a StageReader), and
    says which centers are ready to stage, in the order their workers finished."""

    def __init__(self, workers: _Workers, folders: dict[str, Path], centers: dict[str, str]) -> None:
        self._workers = workers
        self._folders = folders  # by the delivery's content id: the worker's folder
        self._centers = centers  # by the delivery's content id: its center
        self._done: set[str] = set()

    def ready_centers(self, centers: Iterable[str]) -> Iterator[str]:
        """``centers``, each as soon as every delivery of it that a worker reads is read (a center with none at once).

        Staging follows the workers: the loader stages one center while the others are still read. A staged delivery
        does not depend on another center's, so the order changes nothing but the time (a test holds the warehouse
        to the serial load's)."""
        waiting = {c: {i for i, center in self._centers.items() if center == c} for c in centers}
        yield from [c for c, ids in waiting.items() if not ids]
        waiting = {c: ids for c, ids in waiting.items() if ids}
        while waiting:
            delivery, failure = self._workers.finished.get()
            if failure is not None or delivery is None:
                raise WorkerFailed(failure or "a reading worker failed")
            self._done.add(delivery.content_id())
            for center in [c for c, ids in waiting.items() if ids <= self._done]:
                del waiting[center]
                yield center

    def __call__(self, con: duckdb.DuckDBPyConnection, delivery: Delivery, pseudonymize: Pseudonymizer) -> None:
        """Ingest the delivery's worker result (or read it here when no worker read it)."""
        discard(con, delivery.content_id())  # what an earlier, unfinished load staged of it
        folder = self._folders.get(delivery.content_id())
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


@contextmanager
def prefetched(deliveries: list[Delivery], key: bytes) -> Iterator[Prefetched | None]:
    """Read the deliveries in worker processes when they are large; yield what ingests the results as they come.

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
        largest_first = sorted(deliveries, key=_size, reverse=True)
        for number, delivery in enumerate(largest_first):
            folders[delivery.content_id()] = Path(tmp) / str(number)
            folders[delivery.content_id()].mkdir()
        running = _Workers([(d, folders[d.content_id()]) for d in largest_first], key, workers)
        try:
            yield Prefetched(running, folders, {d.content_id(): d.center for d in deliveries})
        finally:
            running.stop()  # a failed load stops the workers before their folder goes


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
