"""Device survival (analysis.md, "Beyond the paper"): Kaplan-Meier by lifelines over the survival SQL's rows."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb

from drg_etl.core.sql import read_sql
from drg_etl.pipeline.marts import with_flags

MASK = "<5"
#: The days at which the survival curves are read (analysis.md).
AT_DAYS = (365, 730, 1095)


def _sql(name: str) -> str:
    return read_sql(f"analysis/{name}.sql")


def three_decimals(value: float) -> float:
    """Round half up to three decimals, after snapping away float noise (1e-10)."""
    return float(Decimal(f"{value:.10f}").quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))


def _pct(part: int, whole: int) -> float | None:
    if whole == 0:
        return None
    return float((Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def kaplan_meier(times: list[int], events: list[bool], days: tuple[int, ...] = AT_DAYS) -> dict[str, Any]:
    """Patients, events and the estimate with its 95% log(-log) Greenwood interval at each day.

    lifelines' KaplanMeierFitter counts an event before a censoring on the same day. "At risk" on
    day d is the number whose time is d or more; with nobody at risk the day's entry is None.
    """
    at_days: dict[str, dict[str, Any] | None] = {}
    fitter = None
    if any(events):
        from lifelines import KaplanMeierFitter  # imported here: slow, and only the analysis needs it

        fitter = KaplanMeierFitter().fit(times, event_observed=events)  # alpha 0.05, log(-log) Greenwood
    first_event = min((t for t, e in zip(times, events, strict=True) if e), default=None)
    for day in days:
        at_risk = sum(t >= day for t in times)
        if at_risk == 0:
            at_days[str(day)] = None
            continue
        if fitter is None or first_event > day:
            s = lo = hi = 1.0
        else:
            s = float(fitter.survival_function_at_times(day).iloc[0])
            bounds = fitter.confidence_interval_survival_function_.loc[:day].iloc[-1]
            lo, hi = float(bounds.iloc[0]), float(bounds.iloc[1])
        at_days[str(day)] = {"s": three_decimals(s), "lo": three_decimals(lo), "hi": three_decimals(hi),
                             "at_risk": at_risk}
    return {"patients": len(times), "events": sum(bool(e) for e in events), "at_days": at_days}


def patient_times(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> list[tuple]:
    """Per implanted patient: days to a lead defect (or censoring) and to explantation, with the event flags."""
    statement, parameters = with_flags(
        con, "select defect_days, defect_event, explant_days, explant_event from (" + _sql("survival") + ")",
        observation_end)
    return con.execute(statement, parameters).fetchall()


def survival_figures(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> dict[str, Any]:
    """analysis.md's ``survival`` object, from the survival SQL over the marts and the flat tables."""
    rows = patient_times(con, observation_end)
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
    """The whole Kaplan-Meier step function with its 95% band (for plots): one point per distinct time."""
    if not times:
        return []
    if not any(events):
        return [{"t": 0.0, "s": 1.0, "lo": 1.0, "hi": 1.0}, {"t": float(max(times)), "s": 1.0, "lo": 1.0, "hi": 1.0}]
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter().fit(times, event_observed=events)
    band = fitter.confidence_interval_survival_function_
    return [{"t": float(t), "s": float(s), "lo": float(lo), "hi": float(hi)}
            for t, s, lo, hi in zip(fitter.survival_function_.index, fitter.survival_function_.iloc[:, 0],
                                    band.iloc[:, 0], band.iloc[:, 1], strict=True)]


def survival_curves(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> dict[str, list[dict[str, float]]]:
    """Both Kaplan-Meier curves of :func:`survival_figures`, every step, for the report's plots."""
    rows = patient_times(con, observation_end)
    return {"lead_defect_free": _curve([r[0] for r in rows], [bool(r[1]) for r in rows]),
            "system_explant_free": _curve([r[2] for r in rows], [bool(r[3]) for r in rows])}
