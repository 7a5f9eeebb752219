"""A reading worker's process: tied to its load before anything heavy is imported, then it reads one delivery.

``python -m drg_etl.pipeline.reader FOLDER CENTER CUTOFF OUT`` (started by :mod:`drg_etl.pipeline.parallel`;
the key comes in the environment). A worker never outlives its load: the kernel kills it when the load
dies (Linux's ``PR_SET_PDEATHSIG``), and a watchdog thread ends it wherever that is not available.
"""

from __future__ import annotations

import os
import signal
import sys

from drg_etl.core.process import LOAD_PID_VARIABLE, die_with_parent

__all__ = ["KEY_HANDOVER", "LOAD_PID_VARIABLE", "WORK_FILE", "die_with_parent", "read_one"]

KEY_HANDOVER = "DRG_ETL_WORKER_KEY"  # the key reaches a worker in its environment, never on its command line
WORK_FILE = "read.duckdb"  # the DuckDB file a worker reads its delivery into, in the folder the load gave it
HASHES_FILE = "hashes.json"  # the hashes the load knows of the delivery's files, by fingerprint: not read again


def read_one(folder: str, center: str, cutoff: str, key: bytes, out: str) -> None:
    """Read one delivery into the staging tables of a DuckDB file of its own (imports here: after the tie)."""
    import datetime as dt
    import json
    from pathlib import Path

    import duckdb

    from drg_etl.core import file_hashes
    from drg_etl.core.delivery import Delivery, DeliveryRejected
    from drg_etl.core.pseudonym import Pseudonymizer
    from drg_etl.core.tables import warehouse_ddl
    from drg_etl.pipeline.staging import read_into

    con = duckdb.connect(str(Path(out) / WORK_FILE), config={"memory_limit": "256MB"})
    con.execute(warehouse_ddl())
    delivery = Delivery(center, dt.date.fromisoformat(cutoff), Path(folder))
    target = Path(out)
    if (target / HASHES_FILE).exists():
        file_hashes.remember(json.loads((target / HASHES_FILE).read_text(encoding="utf-8")))
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
    # Ctrl-C reaches the terminal's whole process group: the load stops its workers itself, and a worker that took it
    # (DuckDB turns it into an error of its own) would report its delivery rejected
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    read_one(*sys.argv[1:4], bytes.fromhex(os.environ.pop(KEY_HANDOVER)), sys.argv[4])
    # What the worker wrote is closed: it ends without the interpreter's teardown (freeing a reader's heap takes
    # 0.3 s, and the load waits for the worker's end before it stages the delivery or starts the next worker).
    os._exit(0)
