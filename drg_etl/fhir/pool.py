"""Build the FHIR layer on every core: a few worker processes (:mod:`drg_etl.fhir.worker`), fed batches of patients.

The load writes the canonical facts of the target patients, key-sorted, to a scratch DuckDB file, starts one worker
per core, hands each a batch (a range of patient keys) at a time, and takes the results back in batch order: each
batch's resources are a file the load inserts from. At most a few batches are under way, so
memory is bounded by the batch size. Workers die with the load (:mod:`drg_etl.core.process`); their folder is
removed after, or by the next load when this one was killed.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from drg_etl.core.errors import DrgEtlError
from drg_etl.core.process import LOAD_PID_VARIABLE
from drg_etl.fhir.validate import InvalidResource

WORKERS_VARIABLE = "DRG_ETL_FHIR_WORKERS"  # how many FHIR workers (default: the cores; 1: build in process)


class FhirWorkerFailed(DrgEtlError):
    """A FHIR worker died or failed (a defect or the machine, not the data)."""


def worker_count() -> int:
    """How many workers a large build uses."""
    return max(1, int(os.environ.get(WORKERS_VARIABLE, os.cpu_count() or 1)))


class _Worker:
    def __init__(self, number: int, sources: Path, out: Path, strict: bool) -> None:
        self.errors = out / f"worker-{number}.stderr"
        command = [sys.executable, "-m", "drg_etl.fhir.worker", str(sources), str(out), *(["--strict"] * strict)]
        with self.errors.open("wb") as errors:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                            text=True, env={**os.environ, LOAD_PID_VARIABLE: str(os.getpid())})
        self.task: int | None = None

    @property
    def stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def send(self, number: int, first: str, last: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"n": number, "first": first, "last": last}) + "\n")
        self.process.stdin.flush()
        self.task = number

    def last_words(self) -> str:
        lines = self.errors.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"


def built_batches(sources: Path, out: Path, batches: list[tuple[str, str]], workers: int,
                  strict: bool) -> Iterator[tuple[Path, int]]:
    """Build the batches on ``workers`` processes; yield each batch's result file and its count of resources, in
    batch order. The caller removes each result file when it has taken it in."""
    pool = [_Worker(number, sources, out, strict) for number in range(min(workers, len(batches)))]
    selector = selectors.DefaultSelector()
    finished = False
    try:
        for worker in pool:
            selector.register(worker.stdout, selectors.EVENT_READ, worker)
        waiting = list(enumerate(batches))
        done: dict[int, tuple[Path, int]] = {}
        ahead = 2 * len(pool)  # batches started beyond the next one to yield: bounds what waits on disk
        next_out = 0
        while next_out < len(batches):
            for worker in pool:
                if worker.task is None and waiting and waiting[0][0] < next_out + ahead:
                    number, (first, last) = waiting.pop(0)
                    worker.send(number, first, last)
            if next_out in done:
                yield done.pop(next_out)
                next_out += 1
                continue
            for key, _ in selector.select():
                worker = key.data
                line = worker.stdout.readline()
                if not line:
                    raise FhirWorkerFailed(f"a FHIR worker died (exit {worker.process.wait()}): {worker.last_words()}")
                reply = json.loads(line)
                if "invalid" in reply:
                    raise InvalidResource(*reply["invalid"])
                if "error" in reply:
                    raise FhirWorkerFailed(f"a FHIR worker failed: {reply['error']}")
                done[reply["n"]] = (out / f"{reply['n']}.parquet", reply["resources"])
                worker.task = None
        finished = True
    finally:
        selector.close()
        for worker in pool:
            if not finished:  # stopped (an error, an interrupt): the batches under way are not wanted
                worker.process.kill()
            if worker.process.stdin is not None:
                try:
                    worker.process.stdin.close()  # the end of the tasks: a worker ends
                except OSError:
                    pass
        for worker in pool:
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
