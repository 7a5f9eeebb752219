"""Reconciliation: every record read is loaded or quarantined, per file of a delivery.

Checked when a delivery is staged (a delivery that does not reconcile is rejected whole and every other
delivery loads) and again in the write's transaction (the national rules move records from loaded to
quarantined, never out of both).
"""

from __future__ import annotations

import duckdb

from drg_etl.core.errors import DrgEtlError


class ReconciliationError(DrgEtlError):
    """Records that neither loaded nor went to quarantine: a defect of the pipeline, never silent."""

    def __init__(self, message: str, file: str) -> None:
        super().__init__(message)
        self.file = file


RECONCILE = """
    with errors as (
        select distinct file, "row" from staging.pending_issues where delivery_id = $id and severity = 'error'),
    loaded as (
        select distinct c.file, c."row" from staging.pending_contributed c anti join errors e using (file, "row")
        where c.delivery_id = $id)
    select f.file, f.sha256, f.rows_read,
           (select count(*) from loaded l where l.file = f.file) as rows_loaded,
           (select count(*) from errors e where e.file = f.file) as rows_quarantined,
           f.rows_ignored
    from staging.pending_files f where f.delivery_id = $id order by f.file"""

LOST_ROWS = """
    select "row" from staging.pending_source_records s where delivery_id = $id and file = $file
      and "row" not in (select "row" from staging.pending_contributed where delivery_id = $id and file = $file)
      and "row" not in (select "row" from staging.pending_issues where delivery_id = $id and file = $file
                        and severity = 'error')
    order by "row" limit 10"""


def reconcile(con: duckdb.DuckDBPyConnection, delivery_id: str, label: str) -> tuple[int, int]:
    """Per file: rows read = loaded + quarantined, or ReconciliationError naming the lost rows. Returns the
    delivery's ``(records quarantined, records read)``."""
    rows = con.execute(RECONCILE, {"id": delivery_id}).fetchall()
    for file, _sha, read, loaded, quarantined, _ignored in rows:
        if read != loaded + quarantined:
            lost = [r for (r,) in con.execute(LOST_ROWS, {"id": delivery_id, "file": file}).fetchall()]
            raise ReconciliationError(f"{label} {file}: {read} rows read but {loaded} loaded and {quarantined} "
                                      f"quarantined; rows neither loaded nor quarantined: {lost}", file)
    return sum(r[4] for r in rows), sum(r[2] for r in rows)


