"""Marts over the FHIR views: per-patient analysis flags and the data-quality summary by rule."""

from __future__ import annotations

import duckdb

from drg_etl.core.paths import ANALYSIS_SQL_DIR


def refresh_marts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild ``marts.patient_flags`` and ``marts.quality_by_rule``; return their row counts."""
    flags_sql = (ANALYSIS_SQL_DIR / "patient_flags.sql").read_text(encoding="utf-8")
    con.execute("create schema if not exists marts")
    end = con.execute("select max(cutoff) from quality.deliveries where status = 'in_force'").fetchone()[0]
    con.execute("create or replace table marts.patient_flags as " + flags_sql, {"observation_end": end})
    con.execute("""create or replace table marts.quality_by_rule as
        select q.center, q.rule_id, q.severity, q.kahn_category, count(*) as records
        from quality.quarantine q join quality.deliveries d using (delivery_id)
        where d.status = 'in_force' group by all""")
    return {t: con.execute(f"select count(*) from marts.{t}").fetchone()[0] for t in ("patient_flags",
                                                                                     "quality_by_rule")}
