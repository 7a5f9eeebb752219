"""The staging schema: a delivery read and checked, waiting in the warehouse to be written.

A reader streams its result into ``staging.pending_*`` in bounded columnar batches (never
as a Python object on disk: nothing executable crosses stages); the within-delivery rules
and the canonical schemas then run over the staged rows; last, the delivery is marked staged
in ``staging.pending_deliveries``. Rows of a delivery that is not marked (a rejected file, a
crash) are discarded before anything is staged again, and the write never sees them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd

from drg_etl.core.delivery import Delivery, DeliveryRejected
from drg_etl.core.formats import FORMATS
from drg_etl.core.model import TABLES
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.rules import RULES
from drg_etl.core.sql import read_sql
from drg_etl.core.tables import PENDING, PENDING_DELIVERIES, PENDING_ISSUES, insert_row
from drg_etl.quality.checks import check_delivery
from drg_etl.quality.schemas import validate_pending
from drg_etl.sources.base import StagedDelivery
from drg_etl.sources.deliveries import read_delivery


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if len(frame):
        con.register("incoming", frame)
        con.execute(f"insert into staging.{table} by name select * from incoming")
        con.unregister("incoming")


def _facts(staged: StagedDelivery, table: str) -> pd.DataFrame:
    columns = ["center", "source_file", "source_row", *TABLES[table].fact_columns, "fact_seq"]
    frame = pd.DataFrame.from_records(staged.facts[table], columns=columns)
    frame.insert(0, "delivery_id", staged.delivery_id)
    frame.insert(2, "cutoff", staged.delivery.cutoff)
    return frame


def write_batch(con: duckdb.DuckDBPyConnection, staged: StagedDelivery) -> None:
    """The sink of a reader: one batch of facts, issues and source records into the staging tables."""
    delivery, delivery_id = staged.delivery, staged.delivery_id
    for table in TABLES:
        _insert(con, f"pending_{table}", _facts(staged, table))
    _insert(con, PENDING_ISSUES.name, pd.DataFrame.from_records(
        [{"delivery_id": delivery_id, "center": i.center, "cutoff": delivery.cutoff, "file": i.file, "row": i.row,
          "resource_id": i.resource_id, "column_name": i.column, "rule_id": i.rule_id, "severity": i.severity,
          "kahn_category": RULES[i.rule_id].kahn_category, "message": i.message, "patient_key": i.patient_key}
         for i in staged.issues], columns=PENDING_ISSUES.column_names))
    _insert(con, "pending_contributed", pd.DataFrame.from_records(
        [(delivery_id, file, row) for file, row in staged.contributed], columns=["delivery_id", "file", "row"]))
    _insert(con, "pending_source_records", pd.DataFrame.from_records(
        [(delivery_id, file, row, record) for file, row, record in staged.source_rows],
        columns=["delivery_id", "file", "row", "record"]))


def discard(con: duckdb.DuckDBPyConnection, delivery_id: str) -> None:
    """Remove what staging holds of a delivery."""
    for table in PENDING:
        con.execute(f"delete from staging.{table} where delivery_id = ?", [delivery_id])


def discard_unfinished(con: duckdb.DuckDBPyConnection) -> None:
    """Remove rows of deliveries whose staging never finished (a crash, a rejection)."""
    for table in (t for t in PENDING if t != PENDING_DELIVERIES.name):
        con.execute(f"delete from staging.{table} where delivery_id not in "
                    "(select delivery_id from staging.pending_deliveries)")


def read_into(con: duckdb.DuckDBPyConnection, delivery: Delivery, pseudonymize: Pseudonymizer) -> None:
    """Read one delivery into ``con``'s staging tables (batches, then the per-file counts).

    Raises DeliveryRejected (after discarding what was staged) when a file cannot be read as its format.
    """
    delivery_id = delivery.content_id()
    discard(con, delivery_id)
    try:
        staged = read_delivery(delivery, pseudonymize, lambda batch: write_batch(con, batch))
    except DeliveryRejected:
        discard(con, delivery_id)
        raise
    _insert(con, "pending_files", pd.DataFrame.from_records(
        [(delivery_id, c.file, staged.file_hashes.get(c.file.split("#")[0]), c.rows_read, c.rows_ignored)
         for c in staged.counts.values()],
        columns=["delivery_id", "file", "sha256", "rows_read", "rows_ignored"]))


def check_staged(con: duckdb.DuckDBPyConnection, delivery: Delivery, load_id: str) -> None:
    """Run the within-delivery rules and the canonical schemas over a read delivery; mark it staged."""
    delivery_id = delivery.content_id()
    if (post_read := FORMATS[delivery.center].post_read) is not None:  # a whole-delivery step of the reader
        con.execute(read_sql(post_read), {"id": delivery_id})
    check_delivery(con, delivery, delivery_id)
    validate_pending(con, delivery, delivery_id)
    insert_row(con, PENDING_DELIVERIES, {"delivery_id": delivery_id, "center": delivery.center,
                                         "cutoff": delivery.cutoff, "load_id": load_id,
                                         "staged_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)})


Reader = Callable[[duckdb.DuckDBPyConnection, Delivery, Pseudonymizer], None]


def stage_delivery(con: duckdb.DuckDBPyConnection, delivery: Delivery, pseudonymize: Pseudonymizer,
                   load_id: str, read: Reader = read_into) -> None:
    """Read one delivery into the staging schema (``read``: here, or from a worker's files) and check it."""
    read(con, delivery, pseudonymize)
    check_staged(con, delivery, load_id)


def pending(con: duckdb.DuckDBPyConnection, centers: list[str] | None = None) -> list[dict[str, Any]]:
    """Staged deliveries waiting to be written (of some centers), oldest cutoff first."""
    rows = con.execute("select delivery_id, center, cutoff, load_id from staging.pending_deliveries "
                       "order by cutoff, center").fetchall()
    return [{"delivery_id": d, "center": c, "cutoff": cutoff, "load_id": load}
            for d, c, cutoff, load in rows if centers is None or c in centers]
