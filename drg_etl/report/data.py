"""What the report shows, read from the warehouse: the analysis, the pairs behind it, lineage, data quality."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb

from drg_etl.analysis.competing_risks import day_counts
from drg_etl.analysis.national import default_observation_end, national_analysis, publishable
from drg_etl.analysis.survival import patient_times, survival_curves
from drg_etl.core.sql import read_sql
from drg_etl.pipeline.marts import with_flags
from drg_etl.quality.report import quality_report
from drg_etl.quality.thresholds import latest_checks


@dataclass
class ReportData:
    """Everything one page needs; nothing on the page is computed anywhere else."""

    figures: dict[str, Any]
    pairs: dict[str, list[tuple[float, float]]]
    deliveries: list[dict[str, Any]]
    load: dict[str, Any]
    quality: dict[str, Any]
    survival_curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    published: bool = False
    # issue 16, item 6 (the readable report): the data-quality grid and the Kaplan-Meier plots' marks
    checks_in_force: list[dict[str, Any]] = field(default_factory=list)
    survival_times: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)
    # issue 17, item 4 (device surveillance): per day (day, lead defects, explants without one, times ending),
    # competing_risks.day_counts' rows, for the cumulative-incidence curves; none under --publish
    competing_risk_days: list[tuple[int, int, int, int]] = field(default_factory=list)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params) if params is not None else con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def outcome_pairs(con: duckdb.DuckDBPyConnection, end: dt.date) -> dict[str, list[tuple[float, float]]]:
    """Per measure, the (baseline, 12-month) pairs of the analysis set (warehouse/analysis/outcome_pairs.sql)."""
    pairs_sql = read_sql("analysis/outcome_pairs.sql")
    statement, parameters = with_flags(con, f"select measure, baseline, month12 from ({pairs_sql}) order by all", end)
    out: dict[str, list[tuple[float, float]]] = {}
    for measure, baseline, month12 in con.execute(statement, parameters).fetchall():
        out.setdefault(measure, []).append((baseline, month12))
    return out


def read_report_data(con: duckdb.DuckDBPyConnection, *, publish: bool = False) -> ReportData:
    """The report's data from a loaded warehouse with a current FHIR layer."""
    end = default_observation_end(con)
    figures = national_analysis(con, end)
    deliveries = _rows(con, """
        select center, strftime(cutoff, '%Y-%m-%d') as cutoff, substr(delivery_id, 1, 12) as delivery,
               strftime(loaded_at, '%Y-%m-%d %H:%M') as loaded_at, load_id
        from quality.deliveries_in_force order by center""")
    load = _rows(con, """
        select l.load_id, strftime(l.started_at, '%Y-%m-%d %H:%M:%S') as started_at, l.code_version,
               l.loaded, l.rejected, b.mode as fhir_build, b.resources as fhir_resources
        from quality.loads l, (select * from quality.fhir_builds order by built_at desc limit 1) b
        where l.finished_at is not null order by l.started_at desc limit 1""")
    return ReportData(figures=publishable(figures) if publish else figures,
                      pairs={} if publish else outcome_pairs(con, end),
                      deliveries=deliveries, load=load[0] if load else {}, quality=quality_report(con),
                      survival_curves={} if publish else survival_curves(con, end), published=publish,
                      checks_in_force=latest_checks(con),
                      survival_times={} if publish else survival_times(con, end),
                      competing_risk_days=[] if publish else day_counts(con, end))


# -- issue 16, item 6: what the readable report adds ----------------------------------------------------------


def survival_times(con: duckdb.DuckDBPyConnection, end: dt.date) -> dict[str, list[tuple[int, bool]]]:
    """Per Kaplan-Meier curve, each patient's (days, event) from warehouse/analysis/survival.sql: the plots'
    censoring marks and numbers at risk."""
    rows = patient_times(con, end)
    return {"lead_defect_free": [(int(r[0]), bool(r[1])) for r in rows],
            "system_explant_free": [(int(r[2]), bool(r[3])) for r in rows]}
