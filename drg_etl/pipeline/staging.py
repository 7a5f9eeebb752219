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

from drg_etl.core.delivery import Delivery, DeliveryRejected, FileRejected
from drg_etl.core.formats import FORMATS
from drg_etl.core.model import TABLES
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.rules import RULES
from drg_etl.core.sql import read_sql
from drg_etl.core.tables import PENDING, PENDING_DELIVERIES, PENDING_ISSUES, insert_row
from drg_etl.core.transaction import transaction
from drg_etl.pipeline.reconcile import ReconciliationError, reconcile
from drg_etl.quality.delivery_rules import apply_delivery_rules
from drg_etl.quality.identity import flag_repeated_facts
from drg_etl.quality.schemas import validate_pending
from drg_etl.quality.thresholds import superseding_limit
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
    """The sink of a reader: one batch of facts, issues and source records into the staging tables, in one
    transaction: one commit a batch, not one a table (on a warehouse file each commit waits for the disk)."""
    with transaction(con):
        _write_batch(con, staged)


def _write_batch(con: duckdb.DuckDBPyConnection, staged: StagedDelivery) -> None:
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
    for kind, frame in staged.frames:  # what was read as a set: Arrow tables, inserted as they are
        table = f"pending_{kind}"
        con.register("incoming", frame)
        dated = ", $cutoff as cutoff" if kind in TABLES else ""
        con.execute(f"insert into staging.{table} by name select $id as delivery_id{dated}, * from incoming",
                    {"id": delivery_id, "cutoff": delivery.cutoff} if dated else {"id": delivery_id})
        con.unregister("incoming")


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


def finish_staging(con: duckdb.DuckDBPyConnection, delivery: Delivery, load_id: str, *,
                 accept_quarantine: bool = False) -> None:
    """Run the within-delivery rules and the canonical schemas over a read delivery; mark it staged.

    Raises DeliveryRejected (after discarding what was staged) when the delivery does not reconcile, or
    when it would supersede the center's delivery in force while losing more than the set share of its
    records to quarantine (``accept_quarantine``: a person read the report and takes it anyway).
    """
    delivery_id = delivery.content_id()
    if (post_read := FORMATS[delivery.center].post_read) is not None:  # a whole-delivery step of the reader
        con.execute(read_sql(post_read), {"id": delivery_id})
    apply_delivery_rules(con, delivery, delivery_id)
    flag_repeated_facts(con, delivery, delivery_id)
    validate_pending(con, delivery, delivery_id)
    con.execute(read_sql("rules/no_fact.sql"), {"id": delivery_id, "center": delivery.center,
                                                "cutoff": delivery.cutoff})
    try:
        quarantined, read = reconcile(con, delivery_id, delivery.label)
        if not accept_quarantine:
            _refuse_replacing_with_nothing(con, delivery, quarantined, read)
    except DeliveryRejected:
        discard(con, delivery_id)
        raise
    except ReconciliationError as exc:
        discard(con, delivery_id)
        raise DeliveryRejected(delivery, [FileRejected(exc.file, "file.unreconciled", str(exc))],
                               delivery.file_hashes()) from exc
    insert_row(con, PENDING_DELIVERIES, {"delivery_id": delivery_id, "center": delivery.center,
                                         "cutoff": delivery.cutoff, "load_id": load_id,
                                         "staged_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)})


def _refuse_replacing_with_nothing(con: duckdb.DuckDBPyConnection, delivery: Delivery, quarantined: int,
                                   read: int) -> None:
    """Reject a delivery that would supersede its center's data while quarantining (nearly) all of it.

    A malformed export (a REDCap dictionary whose choices no row matches, a shifted column) quarantines
    every record; written, it would replace the center's figures with nothing. The share allowed is
    ``mappings/load_limits.yaml``'s ``superseding_max_quarantined_share``.
    """
    in_force = con.execute("""
        select max(cutoff) from (select cutoff from quality.deliveries_in_force where center = $center
                                 union all select cutoff from staging.pending_deliveries where center = $center)""",
                           {"center": delivery.center}).fetchone()[0]  # in force, or staged before it in this load
    if in_force is None or delivery.cutoff < in_force:
        return  # a first delivery or a late one supersedes nothing
    limit = superseding_limit()
    if read and quarantined / read > limit:
        raise DeliveryRejected(delivery, [FileRejected(
            "(delivery)", "delivery.mostly_quarantined",
            f"{quarantined} of {read} records ({quarantined / read:.0%}) would go to quarantine, more than the "
            f"{limit:.0%} allowed for a delivery that supersedes the center's delivery in force ({in_force}); "
            "the previous delivery stays in force. Read the findings with `drg-etl quality`, then load again "
            "with --accept-quarantine to take it anyway")], delivery.file_hashes())


StageReader = Callable[[duckdb.DuckDBPyConnection, Delivery, Pseudonymizer], None]


def stage_delivery(con: duckdb.DuckDBPyConnection, delivery: Delivery, pseudonymize: Pseudonymizer,
                   load_id: str, read: StageReader = read_into, *, accept_quarantine: bool = False) -> None:
    """Read one delivery into the staging schema (``read``: here, or from a worker's files) and check it."""
    read(con, delivery, pseudonymize)
    finish_staging(con, delivery, load_id, accept_quarantine=accept_quarantine)


def pending(con: duckdb.DuckDBPyConnection, centers: list[str] | None = None) -> list[dict[str, Any]]:
    """Staged deliveries waiting to be written (of some centers), oldest cutoff first."""
    rows = con.execute("select delivery_id, center, cutoff, load_id from staging.pending_deliveries "
                       "order by cutoff, center").fetchall()
    return [{"delivery_id": d, "center": c, "cutoff": cutoff, "load_id": load}
            for d, c, cutoff, load in rows if centers is None or c in centers]
