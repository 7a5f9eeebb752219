"""Device survival (analysis.md, "Beyond the paper"): Kaplan-Meier by NumPy over the survival SQL's rows.

The estimate and its band are lifelines' KaplanMeierFitter's (alpha 0.05), step for step and operation for
operation (tests/test_kaplan_meier.py holds them to lifelines to 1e-12); lifelines itself is only the tests'
oracle: importing it took analyze most of a second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import numpy as np

from drg_etl.core.sql import read_sql
from drg_etl.pipeline.marts import with_flags

MASK = "<5"
#: The days at which the survival curves are read (analysis.md).
AT_DAYS = (365, 730, 1095)
#: The standard normal's 0.975 quantile as scipy.stats.norm.ppf gives it (lifelines' z for alpha 0.05;
#: statistics.NormalDist differs in the last bit).
Z_95 = 1.959963984540054


#: Numbers the temp tables of :func:`survival_table` (one connection may hold two at a time).
_TABLES = itertools.count(1)


def _sql(name: str) -> str:
    return read_sql(f"analysis/{name}.sql")


@contextlib.contextmanager
def survival_table(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> Iterator[str]:
    """warehouse/analysis/survival.sql's rows at ``observation_end``, run once into a temp table for the block
    (the survival figures, competing risks and device performance all read them); yields the table's name.

    A temp table lives in the connection's own temp catalog, so a read-only connection makes one too; it is
    dropped when the block ends (and would go with the connection anyway).
    """
    name = f"drg_etl_survival_{next(_TABLES)}"
    statement, parameters = with_flags(con, _sql("survival"), observation_end)
    con.execute(f"create temp table {name} as {statement}", parameters)
    try:
        yield name
    finally:
        with contextlib.suppress(duckdb.Error):  # never hide the block's own error
            con.execute(f"drop table if exists temp.{name}")


def three_decimals(value: float) -> float:
    """Round half up to three decimals, after snapping away float noise (1e-10)."""
    return float(Decimal(f"{value:.10f}").quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))


def _pct(part: int, whole: int) -> float | None:
    if whole == 0:
        return None
    return float((Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _fit(times: list[int], events: list[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kaplan-Meier as lifelines' KaplanMeierFitter fits it: the timeline and, at each of its times, the estimate
    and the 95% log(-log) Greenwood band. ``times`` must not be empty.

    The timeline is every distinct time and the entry time (0, or the least time if below 0). On a time, n
    is everyone whose time is that or later and d the events among them (an event before a censoring on the
    same day). S = exp(cumsum(log(n - d) - log(n))); the variance is cumsum(d / (n (n - d))), a term with
    n = d counting 0; the band is exp(-exp(log(-log S) -/+ z sqrt(var) / log S)), 1 where that is undefined
    (S = 1), as lifelines computes them.
    """
    durations = np.asarray(times, dtype=float)
    observed = np.asarray(events, dtype=bool)
    entry = min(0.0, float(durations.min()))
    timeline, index = np.unique(np.append(durations, entry), return_inverse=True)
    index = index[:-1]                                      # the entry time is on the timeline, nobody leaves on it
    removed = np.bincount(index, minlength=len(timeline)).astype(float)
    deaths = np.bincount(index, weights=observed.astype(float), minlength=len(timeline))
    population = len(durations) - np.concatenate(([0.0], np.cumsum(removed)[:-1]))   # at risk on each time
    with np.errstate(divide="ignore", invalid="ignore"):
        log_estimate = np.cumsum(np.log(population - deaths) - np.log(population))
        terms = deaths / (population * (population - deaths))
        variance = np.cumsum(np.where(terms == np.inf, 0.0, terms))
        survival = np.exp(log_estimate)
        v = np.log(survival)
        lower = np.exp(-np.exp(np.log(-v) - Z_95 * np.sqrt(variance) / v))
        upper = np.exp(-np.exp(np.log(-v) + Z_95 * np.sqrt(variance) / v))
    return timeline, survival, np.where(np.isnan(lower), 1.0, lower), np.where(np.isnan(upper), 1.0, upper)


def estimates_at(times: list[int], events: list[bool], days: tuple[int, ...] = AT_DAYS,
                 ) -> dict[str, dict[str, Any] | None]:
    """At each day, unrounded: the estimate ``s``, its 95% log(-log) Greenwood interval ``lo``-``hi`` and ``at_risk``.

    As lifelines' KaplanMeierFitter (:func:`_fit`): an event before a censoring on the same day; the estimate at
    a day is the step at the last time on or before it. "At risk" on day d is the number whose time is d or
    more; with nobody at risk the day's entry is None; before the first event (or with none) it is 1 (1-1).
    """
    at_days: dict[str, dict[str, Any] | None] = {}
    durations = np.asarray(times, dtype=float)
    fitted = _fit(times, events) if any(events) else None
    first_event = min((t for t, e in zip(times, events, strict=True) if e), default=None)
    for day in days:
        at_risk = int(np.count_nonzero(durations >= day))
        if at_risk == 0:
            at_days[str(day)] = None
            continue
        if fitted is None or first_event > day:
            s = lo = hi = 1.0
        else:
            timeline, survival, lower, upper = fitted
            step = int(np.searchsorted(timeline, day, side="right")) - 1   # the last time on or before the day
            s, lo, hi = float(survival[step]), float(lower[step]), float(upper[step])
        at_days[str(day)] = {"s": s, "lo": lo, "hi": hi, "at_risk": at_risk}
    return at_days


def kaplan_meier(times: list[int], events: list[bool], days: tuple[int, ...] = AT_DAYS) -> dict[str, Any]:
    """Patients, events and, at each day, the estimate with its 95% log(-log) Greenwood interval to three
    decimals and the number at risk (:func:`estimates_at`; None where nobody is at risk)."""
    at_days = {day: None if entry is None else {**{k: three_decimals(entry[k]) for k in ("s", "lo", "hi")},
                                                "at_risk": entry["at_risk"]}
               for day, entry in estimates_at(times, events, days).items()}
    return {"patients": len(times), "events": sum(bool(e) for e in events), "at_days": at_days}


def patient_times(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
                  table: str | None = None) -> list[tuple]:
    """Per implanted patient: days to a lead defect (or censoring) and to explantation, with the event flags.
    ``table``: :func:`survival_table`'s, already holding the survival SQL's rows at ``observation_end``."""
    columns = "select defect_days, defect_event, explant_days, explant_event"
    if table is not None:
        return con.execute(f"{columns} from {table} order by patient_id").fetchall()
    statement, parameters = with_flags(con, f"{columns} from ({_sql('survival')})", observation_end)
    return con.execute(statement, parameters).fetchall()


def survival_figures(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
                     table: str | None = None) -> dict[str, Any]:
    """analysis.md's ``survival`` object, from the survival SQL over the marts and the flat tables (``table``:
    :func:`survival_table`'s, holding that SQL's rows at ``observation_end``)."""
    rows = patient_times(con, observation_end, table)
    statement, parameters = with_flags(
        con, "select count(*), count(*) filter (where revised), count(*) filter (where faulty_at_end) from ("
        + _sql("survival_leads") + ")", observation_end)
    placed, revised, faulty = con.execute(statement, parameters).fetchone()
    return {
        "lead_defect_free": kaplan_meier([r[0] for r in rows], [bool(r[1]) for r in rows]),
        "system_explant_free": kaplan_meier([r[2] for r in rows], [bool(r[3]) for r in rows]),
        "leads": {"placed": placed, "revised": revised, "revised_pct": _pct(revised, placed),
                  "faulty_at_end": faulty},
    }


def _small(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4


def mask_survival(figures: dict[str, Any]) -> dict[str, Any]:
    """Mask every count from 1 to 4 as "<5", and what is computed from it.

    Counts: patients, events, at_risk, placed, revised, faulty_at_end. A curve with 1-4 events
    (or patients) has its estimates and bounds masked too (they are computed from those events);
    ``revised_pct`` goes with ``revised`` (or ``placed``).
    """
    out: dict[str, Any] = {}
    for name, curve in figures.items():
        if name == "leads":
            continue
        masked = dict(curve)
        few = _small(curve["patients"]) or _small(curve["events"])
        for key in ("patients", "events"):
            if _small(curve[key]):
                masked[key] = MASK
        at_days = {}
        for day, entry in curve["at_days"].items():
            if entry is None:
                at_days[day] = None
                continue
            entry = dict(entry)
            if _small(entry["at_risk"]):
                entry["at_risk"] = MASK
            if few:
                entry.update({"s": MASK, "lo": MASK, "hi": MASK})
            at_days[day] = entry
        masked["at_days"] = at_days
        out[name] = masked
    if "leads" in figures:
        leads = dict(figures["leads"])
        for key in ("placed", "revised", "faulty_at_end"):
            if _small(leads[key]):
                leads[key] = MASK
        if leads["placed"] == MASK or leads["revised"] == MASK:
            leads["revised_pct"] = MASK
        out["leads"] = leads
    return out


def _curve(times: list[int], events: list[bool]) -> list[dict[str, float]]:
    """The whole Kaplan-Meier step function with its 95% band (for plots): one point per time of the timeline
    (every distinct time, and 0), as lifelines' ``survival_function_`` and its confidence interval."""
    if not times:
        return []
    if not any(events):
        return [{"t": 0.0, "s": 1.0, "lo": 1.0, "hi": 1.0}, {"t": float(max(times)), "s": 1.0, "lo": 1.0, "hi": 1.0}]
    timeline, survival, lower, upper = _fit(times, events)
    return [{"t": t, "s": s, "lo": lo, "hi": hi}
            for t, s, lo, hi in zip(timeline.tolist(), survival.tolist(), lower.tolist(), upper.tolist(), strict=True)]


def survival_curves(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> dict[str, list[dict[str, float]]]:
    """Both Kaplan-Meier curves of :func:`survival_figures`, every step, for the report's plots."""
    rows = patient_times(con, observation_end)
    return {"lead_defect_free": _curve([r[0] for r in rows], [bool(r[1]) for r in rows]),
            "system_explant_free": _curve([r[2] for r in rows], [bool(r[3]) for r in rows])}
