"""The staging schema: a delivery read and checked, waiting in the warehouse to be written.

A reader's result (:class:`~drg_etl.sources.base.StagedDelivery`, one delivery) goes here as
columnar batches (``staging.pending_*``), never as a Python object on disk: nothing executable
crosses stages, and the write that follows runs as SQL. Staging a delivery again replaces
what an earlier, unfinished stage left of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pandas as pd

from drg_etl.model import TABLES
from drg_etl.quality.rules import RULES
from drg_etl.sources.base import StagedDelivery

PENDING = ("pending_deliveries", "pending_issues", "pending_files", "pending_contributed", "pending_source_records",
           *(f"pending_{t}" for t in TABLES))
ISSUE_COLUMNS = ["delivery_id", "center", "cutoff", "file", "row", "resource_id", "column_name", "rule_id", "severity",
                 "kahn_category", "message", "patient_key"]


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if len(frame):
        con.register("incoming", frame)
        con.execute(f"insert into staging.{table} by name select * from incoming")
        con.unregister("incoming")


def _facts(staged: StagedDelivery, table: str) -> pd.DataFrame:
    columns = TABLES[table].fact_columns
    frame = pd.DataFrame.from_records(staged.facts[table], columns=["center", "source_file", "source_row", *columns])
    frame.insert(0, "delivery_id", staged.delivery_id)
    frame.insert(2, "cutoff", staged.delivery.cutoff)
    frame["fact_seq"] = range(len(frame))
    return frame


def discard(con: duckdb.DuckDBPyConnection, delivery_id: str) -> None:
    """Remove what staging holds of a delivery."""
    for table in PENDING:
        con.execute(f"delete from staging.{table} where delivery_id = ?", [delivery_id])


def stage_delivery(con: duckdb.DuckDBPyConnection, staged: StagedDelivery, load_id: str) -> None:
    """Put one read delivery into the staging schema, in one transaction."""
    delivery = staged.delivery
    con.execute("begin transaction")
    try:
        discard(con, staged.delivery_id)
        con.execute("insert into staging.pending_deliveries values (?, ?, ?, ?, ?)",
                    [staged.delivery_id, delivery.center, delivery.cutoff, load_id,
                     dt.datetime.now(dt.UTC).replace(tzinfo=None)])
        for table in TABLES:
            _insert(con, f"pending_{table}", _facts(staged, table))
        _insert(con, "pending_issues", pd.DataFrame.from_records(
            [(staged.delivery_id, i.center, delivery.cutoff, i.file, i.row, i.resource_id, i.column, i.rule_id,
              i.severity, RULES[i.rule_id].kahn_category, i.message, i.patient_key) for i in staged.issues],
            columns=ISSUE_COLUMNS))
        _insert(con, "pending_files", pd.DataFrame.from_records(
            [(staged.delivery_id, c.file, staged.file_hashes.get(c.file.split("#")[0]), c.rows_read, c.rows_ignored)
             for c in staged.counts.values()],
            columns=["delivery_id", "file", "sha256", "rows_read", "rows_ignored"]))
        _insert(con, "pending_contributed", pd.DataFrame.from_records(
            [(staged.delivery_id, file, row) for file, row in staged.contributed],
            columns=["delivery_id", "file", "row"]))
        _insert(con, "pending_source_records", pd.DataFrame.from_records(
            [(staged.delivery_id, file, row, record) for file, row, record in staged.source_rows],
            columns=["delivery_id", "file", "row", "record"]))
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def pending(con: duckdb.DuckDBPyConnection, centers: list[str] | None = None) -> list[dict[str, Any]]:
    """Staged deliveries waiting to be written (of some centers), oldest cutoff first."""
    rows = con.execute("select delivery_id, center, cutoff, load_id from staging.pending_deliveries "
                       "order by cutoff, center").fetchall()
    return [{"delivery_id": d, "center": c, "cutoff": cutoff, "load_id": load}
            for d, c, cutoff, load in rows if centers is None or c in centers]
