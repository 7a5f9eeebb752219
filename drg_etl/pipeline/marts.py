"""Marts over the FHIR layer's flat tables: per-patient analysis flags and the data-quality summary by rule."""

from __future__ import annotations

import duckdb

from drg_etl.core.sql import read_sql
from drg_etl.core.tables import MART_PATIENT_FLAGS, MART_QUALITY_BY_RULE

QUALITY_BY_RULE = """
    select q.center, q.rule_id, q.severity, q.kahn_category, count(*) as records
    from quality.quarantine q semi join quality.deliveries_in_force using (delivery_id)
    group by all"""


def refresh_marts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild ``marts.patient_flags`` and ``marts.quality_by_rule``; return their row counts."""
    end = con.execute("select max(cutoff) from quality.deliveries_in_force").fetchone()[0]
    # The mart names are declarations (drg_etl/core/tables.py), never data; the values go in as parameters.
    con.execute(f"create or replace table {MART_PATIENT_FLAGS} as {read_sql('analysis/patient_flags.sql')}",
                {"observation_end": end})
    con.execute(f"create or replace table {MART_QUALITY_BY_RULE} as {QUALITY_BY_RULE}")
    return {t.split(".")[1]: con.execute(f"select count(*) from {t}").fetchone()[0]
            for t in (MART_PATIENT_FLAGS, MART_QUALITY_BY_RULE)}
