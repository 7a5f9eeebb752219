"""Write staged deliveries into the warehouse: national rules, reconciliation, supersession, in one transaction.

Everything here is SQL over the staging schema: the facts move into ``canonical.*``, the
findings into ``quality.quarantine``, the counts into ``quality.delivery_files``, the
thresholded checks of every rule into ``quality.check_results``; the
patients the write touches (of the new delivery and of the one it supersedes) are marked
for the incremental rebuild of the FHIR layer. A failure rolls back every delivery of the
call, so the warehouse stays as it was.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from drg_etl.core.model import TABLES
from drg_etl.core.tables import DELIVERIES, IN_FORCE, SUPERSEDED, insert_row
from drg_etl.core.transaction import transaction
from drg_etl.pipeline.reconcile import RECONCILE, reconcile
from drg_etl.pipeline.staging import discard, pending
from drg_etl.pipeline.warehouse import CODE_VERSION
from drg_etl.quality.national import apply_national_rules
from drg_etl.quality.release import release_held
from drg_etl.quality.thresholds import load_thresholds, record_checks


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _mark_dirty(con: duckdb.DuckDBPyConnection, delivery_ids: list[str]) -> None:
    """Mark every patient of these deliveries for the FHIR layer's rebuild."""
    keys = " union ".join(f"select patient_key from canonical.{t} where list_contains($ids, delivery_id)"
                          for t in TABLES)
    con.execute(f"insert or ignore into staging.fhir_dirty select distinct patient_key from ({keys})",
                {"ids": delivery_ids})


def _write_one(con: duckdb.DuckDBPyConnection, delivery_id: str, center: str, cutoff: dt.date,
               load_id: str) -> None:
    """Move one staged delivery into canonical and quality; supersede the center's older delivery."""
    newest, older = con.execute(
        "select max(cutoff), list(delivery_id) from quality.deliveries_in_force where center = ?", [center]).fetchone()
    status = IN_FORCE if newest is None or cutoff >= newest else SUPERSEDED
    if status == IN_FORCE and older:
        _mark_dirty(con, older)
        con.execute("update quality.deliveries set status = $superseded, superseded_by = $by "
                    "where center = $center and delivery_id in (select delivery_id from quality.deliveries_in_force)",
                    {"superseded": SUPERSEDED, "by": delivery_id, "center": center})
    insert_row(con, DELIVERIES, {"delivery_id": delivery_id, "center": center, "cutoff": cutoff, "status": status,
                                 "load_id": load_id, "loaded_at": _now(), "code_version": CODE_VERSION})
    for table in TABLES:
        con.execute(f"insert into canonical.{table} by name select * exclude (fact_seq) "
                    f"from staging.pending_{table} where delivery_id = ?", [delivery_id])
        con.execute(f"insert into quality.held_{table} by name select * from staging.pending_held_{table} "
                    "where delivery_id = ?", [delivery_id])
    con.execute(f"insert into quality.delivery_files by name select $id as delivery_id, * from ({RECONCILE})",
                {"id": delivery_id})
    con.execute("""
        insert into quality.quarantine by name
        select i.*, s.record from staging.pending_issues i
        left join staging.pending_source_records s using (delivery_id, file, "row") where i.delivery_id = ?""",
                [delivery_id])
    con.execute('insert into staging.source_records by name select delivery_id, file, "row", record '
                "from staging.pending_source_records where delivery_id = ?", [delivery_id])
    if status == IN_FORCE:
        _mark_dirty(con, [delivery_id])
    discard(con, delivery_id)


def write_pending(con: duckdb.DuckDBPyConnection, load_id: str, centers: list[str] | None = None) -> list[str]:
    """Check the staged deliveries (of ``centers``) nationally, reconcile and write them; return their labels.

    One transaction for all of them: a failure (a reconciliation error, a crash) leaves the
    warehouse and the staging schema as they were.
    """
    deliveries = pending(con, centers)
    if not deliveries:
        return []
    limits = load_thresholds()  # read before the transaction: a bad override file fails before anything starts
    with transaction(con):
        apply_national_rules(con, [d["delivery_id"] for d in deliveries])
        written = []
        for d in deliveries:
            label = f"{d['center']}/{d['cutoff'].isoformat()}"
            reconcile(con, d["delivery_id"], label)
            _write_one(con, d["delivery_id"], d["center"], d["cutoff"], load_id)
            record_checks(con, d["delivery_id"], load_id, thresholds=limits)
            written.append(label)
        release_held(con, load_id, ", ".join(written))
    return written
