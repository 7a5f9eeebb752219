"""A reading worker's process: tied to its load before anything heavy is imported, then it reads one delivery.

``python -m drg_etl.pipeline.reader FOLDER CENTER CUTOFF OUT`` (started by :mod:`drg_etl.pipeline.parallel`;
the key comes in the environment). A worker never outlives its load: the kernel kills it when the load
dies (Linux's ``PR_SET_PDEATHSIG``), and a watchdog thread ends it wherever that is not available.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
LOAD_PID_VARIABLE = "DRG_ETL_LOAD_PID"
KEY_HANDOVER = "DRG_ETL_WORKER_KEY"  # the key reaches a worker in its environment, never on its command line
WORK_FILE = "read.duckdb"  # the DuckDB file a worker reads its delivery into, in the folder the load gave it


def die_with_parent() -> None:
    """Tie this process's life to its parent's (set first: the parent may die while we still import)."""
    # The load's pid, as the load passed it: a load killed before this line runs has already left us with
    # another parent, which os.getppid() alone would take for ours.
    parent = int(os.environ.get(LOAD_PID_VARIABLE) or os.getppid())
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the tie was made
        os._exit(3)


def read_one(folder: str, center: str, cutoff: str, key: bytes, out: str) -> None:
    """Read one delivery into the staging tables of a DuckDB file of its own (imports here: after the tie)."""
    import datetime as dt
    import json
    from pathlib import Path

    import duckdb

    from drg_etl.core.delivery import Delivery, DeliveryRejected
    from drg_etl.core.pseudonym import Pseudonymizer
    from drg_etl.core.tables import warehouse_ddl
    from drg_etl.pipeline.staging import read_into

    con = duckdb.connect(str(Path(out) / WORK_FILE), config={"memory_limit": "256MB"})
    con.execute(warehouse_ddl())
    delivery = Delivery(center, dt.date.fromisoformat(cutoff), Path(folder))
    target = Path(out)
    try:
        read_into(con, delivery, Pseudonymizer(key))
    except DeliveryRejected as exc:
        rejections = [{"file": r.file, "rule_id": r.rule_id, "reason": r.reason} for r in exc.rejections]
        (target / "rejected.json").write_text(json.dumps(rejections), encoding="utf-8")
        return
    con.close()
    (target / "done").write_text("read", encoding="utf-8")


if __name__ == "__main__":
    die_with_parent()
    read_one(*sys.argv[1:4], bytes.fromhex(os.environ.pop(KEY_HANDOVER)), sys.argv[4])
