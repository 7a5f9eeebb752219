"""Device performance (analysis.md, "Beyond the paper: competing risks and device performance"): the
lead-defect rate per 100 patient-years by the model of the first pulse generator and by the center of the
first implant, with its exact Poisson interval, the ratio to all other implanted patients and the joint
registries' first-stage outlier screen. The per-patient years and events, and their sums per group, are SQL
(warehouse/analysis/device_performance.sql); the Poisson quantities on those sums are
drg_etl/analysis/poisson.py's, which agree with SciPy's chi2.ppf and poisson.sf far below the published digits
without SciPy's import (a fifth of a second of analyze's start)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb

from drg_etl.analysis.flags import Flags, flags_statement
from drg_etl.analysis.poisson import chi2_ppf, poisson_sf
from drg_etl.analysis.survival import MASK
from drg_etl.core.sql import read_sql
from drg_etl.core.vocabulary import CENTERS

#: The pulse generators' models (analysis.md), always listed; ``unknown`` (a source that names none) and any other
#: model a source names are listed where some patient has them.
IPG_MODELS = ("Axium", "Proclaim DRG")
DAYS_PER_YEAR = 365.25
#: The first-stage screen (AOANJRR): flagged when the ratio exceeds this, p is below ALPHA and there are
#: at least MIN_PATIENTS patients.
RATIO_LIMIT, ALPHA, MIN_PATIENTS = 2, 0.05, 10

_GROUPS_SQL = """
select 'by_ipg_model' as grouping, ipg_model as grp, count(*) as patients, sum(days) as days, sum(events) as events
from rows group by all
union all
select 'by_center', center, count(*), sum(days), sum(events) from rows group by all
"""


def two_decimals(value: float) -> float:
    """Round half up to two decimals, after snapping away float noise (1e-10)."""
    return float(Decimal(f"{value:.10f}").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def significant(value: float, digits: int = 3) -> float:
    """``value`` to ``digits`` significant digits (a p-value: 0.000488, 0.0391, 1.0)."""
    return float(f"{value:.{digits}g}")


def group_sums(con: duckdb.DuckDBPyConnection, observation_end: dt.date, table: str | None = None,
               flags: Flags | None = None) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Per grouping (``by_ipg_model``, ``by_center``) and group: (patients, days, events). ``table``: survival.sql's
    rows at ``observation_end`` (:func:`~drg_etl.analysis.survival.survival_table`), if the caller holds them;
    ``flags``: the flags at that day, if the caller found them (:func:`~drg_etl.analysis.flags.flags_at`)."""
    survival = f"select * from {table}" if table is not None else read_sql("analysis/survival.sql")
    sql = (f"with survival as ({survival}), "
           f"rows as ({read_sql('analysis/device_performance.sql')}) {_GROUPS_SQL}")
    statement, parameters = flags_statement(con, sql, observation_end, flags)
    out: dict[str, dict[str, tuple[int, int, int]]] = {"by_ipg_model": {}, "by_center": {}}
    for grouping, group, patients, days, events in con.execute(statement, parameters).fetchall():
        out[grouping][group] = (int(patients), int(days), int(events))
    return out


def group_figures(patients: int, days: int, events: int, total_days: int, total_events: int) -> dict[str, Any]:
    """One group's figures against all other implanted patients (the totals less the group).

    ``rate_per_100``, ``lo``, ``hi`` are null with no patient-years; ``ratio`` is null when the others have no
    events or the group no patient-years; ``p_value`` = P(X >= events), X ~ Poisson(others' rate x the group's
    patient-years), is null only when the others have no patient-years (their rate is undefined); with
    expectation 0 it is 1 for no events, else 0. ``flagged`` compares the unrounded ratio and p.
    """
    years = days / DAYS_PER_YEAR
    other_years, other_events = (total_days - days) / DAYS_PER_YEAR, total_events - events
    rate = lo = hi = ratio = p = None
    if years > 0:
        rate = 100 * events / years
        lo = 0.0 if events == 0 else 100 * chi2_ppf(0.025, 2 * events) / 2 / years
        hi = 100 * chi2_ppf(0.975, 2 * events + 2) / 2 / years
    if other_years > 0:
        other_rate = other_events / other_years
        if rate is not None and other_events > 0:
            ratio = rate / (100 * other_rate)
        expected = other_rate * years
        if events == 0:
            p = 1.0
        elif expected == 0:
            p = 0.0
        else:
            p = poisson_sf(events - 1, expected)
    flagged = ratio is not None and ratio > RATIO_LIMIT and p is not None and p < ALPHA and patients >= MIN_PATIENTS
    return {"patients": patients, "patient_years": two_decimals(years), "events": events,
            "rate_per_100": None if rate is None else two_decimals(rate),
            "lo": None if lo is None else two_decimals(lo), "hi": None if hi is None else two_decimals(hi),
            "ratio": None if ratio is None else two_decimals(ratio),
            "p_value": None if p is None else significant(p), "flagged": bool(flagged)}


def device_performance_figures(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
                               table: str | None = None, flags: Flags | None = None) -> dict[str, Any]:
    """analysis.md's ``device_performance`` object: both models of IPG_MODELS and every center listed (a group
    without patients has zeros and nulls), and ``unknown`` or any other model where some patient has it.
    ``table``: survival.sql's rows at ``observation_end`` (:func:`~drg_etl.analysis.survival.survival_table`);
    ``flags``: as :func:`group_sums` takes them."""
    sums = group_sums(con, observation_end, table, flags)
    out: dict[str, Any] = {}
    for grouping, listed in (("by_ipg_model", IPG_MODELS), ("by_center", CENTERS)):
        groups = sums[grouping]
        total_days = sum(d for _n, d, _x in groups.values())
        total_events = sum(x for _n, _d, x in groups.values())
        names = list(listed) + sorted(g for g in groups if g not in listed)
        out[grouping] = {g: group_figures(*groups.get(g, (0, 0, 0)), total_days, total_events) for g in names}
    return out


def _small(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4


def mask_device_performance(figures: dict[str, Any]) -> dict[str, Any]:
    """Under ``--publish``: ``patients`` and ``events`` from 1 to 4 are "<5". With 1-4 events, everything
    computed from them is too: ``rate_per_100``, ``lo``, ``hi``, ``ratio``, ``p_value``. With 1-4 patients,
    so is ``patient_years`` and everything computed from the group (its events are a few patients' too).
    ``flagged`` stays: it is the screen's verdict, and a group of fewer than 10 patients is never flagged.
    Subtraction from the totals (the others) is issue 17's item 5 (complementary suppression).
    """
    derived = ("rate_per_100", "lo", "hi", "ratio", "p_value")
    out: dict[str, Any] = {}
    for grouping, groups in figures.items():
        masked_groups = {}
        for name, g in groups.items():
            g = dict(g)
            few_patients, few_events = _small(g["patients"]), _small(g["events"])
            if few_patients:
                for key in ("patients", "patient_years", "events", *derived):
                    if g[key] is not None:
                        g[key] = MASK
            elif few_events:
                g["events"] = MASK
                for key in derived:
                    if g[key] is not None:
                        g[key] = MASK
            masked_groups[name] = g
        out[grouping] = masked_groups
    return out
