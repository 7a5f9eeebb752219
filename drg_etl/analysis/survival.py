"""Device survival (analysis.md, "Beyond the paper"): Kaplan-Meier in the standard library over the survival SQL's
rows, counted per day by SQL.

The estimate and its band are lifelines' KaplanMeierFitter's (alpha 0.05), step for step and operation for
operation in the same order (tests/test_kaplan_meier.py holds them to lifelines to 1e-12; ``math``'s exp and log
may differ from NumPy's in the last bit, far below the three published decimals); lifelines itself is only the
tests' oracle: importing it took analyze most of a second, and NumPy's import (a tenth of a second) is not on
analyze's path either.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb

from drg_etl.analysis.flags import Flags, flags_statement
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
def survival_table(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
                   flags: Flags | None = None) -> Iterator[str]:
    """warehouse/analysis/survival.sql's rows at ``observation_end``, run once into a temp table for the block
    (the survival figures, competing risks and device performance all read them); yields the table's name.

    A temp table lives in the connection's own temp catalog, so a read-only connection makes one too; it is
    dropped when the block ends (and would go with the connection anyway). ``flags``: the flags at
    ``observation_end``, found once for the caller's statements (:func:`~drg_etl.analysis.flags.flags_at`).
    """
    name = f"drg_etl_survival_{next(_TABLES)}"
    statement, parameters = flags_statement(con, _sql("survival"), observation_end, flags)
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


#: Per distinct time, in order: (time, patients whose time it is, events among them).
DayCounts = list[tuple[int, int, int]]


def day_counts(times: Iterable[int], events: Iterable[bool]) -> DayCounts:
    """Per-patient times and event flags, counted per distinct time (what the SQL of :func:`survival_figures`
    returns)."""
    leaving: Counter[int] = Counter()
    dying: Counter[int] = Counter()
    for time, event in zip(times, events, strict=True):
        leaving[time] += 1
        dying[time] += bool(event)
    return [(time, leaving[time], dying[time]) for time in sorted(leaving)]


class _Fit:
    """Kaplan-Meier as lifelines' KaplanMeierFitter fits it: the timeline and, at each of its times, the estimate
    and the 95% log(-log) Greenwood band (:meth:`band`). ``counts`` must not be empty.

    The timeline is every distinct time and the entry time (0, or the least time if below 0). On a time, n
    is everyone whose time is that or later and d the events among them (an event before a censoring on the
    same day). S = exp(cumsum(log(n - d) - log(n))); the variance is cumsum(d / (n (n - d))), a term with
    n = d counting 0; the band is exp(-exp(log(-log S) -/+ z sqrt(var) / log S)), 1 where that is undefined
    (S = 1) and 0 where S is 0, as lifelines computes them (IEEE arithmetic, in NumPy, of the same expressions).
    """

    def __init__(self, counts: DayCounts) -> None:
        entry = min(0, counts[0][0])
        rows = counts if counts[0][0] == entry else [(entry, 0, 0), *counts]  # nobody leaves on the entry time
        self.timeline = [float(time) for time, _n, _d in rows]
        self.survival: list[float] = []
        self.variance: list[float] = []
        population = float(sum(n for _t, n, _d in rows))  # at risk on each time
        log_estimate = variance = 0.0
        for _time, removed, deaths in rows:
            left = population - deaths
            log_estimate += (math.log(left) if left > 0 else -math.inf) - math.log(population)
            variance += deaths / (population * left) if left > 0 else 0.0
            self.survival.append(math.exp(log_estimate))
            self.variance.append(variance)
            population -= removed

    def band(self, step: int) -> tuple[float, float]:
        """The 95% band at the timeline's ``step``: lifelines' exp(-exp(log(-v) -/+ z sqrt(var) / v)), v = log S."""
        survival, variance = self.survival[step], self.variance[step]
        if survival == 0:  # v = -inf: both bounds exp(-exp(inf)) = 0
            return 0.0, 0.0
        if survival == 1:  # v = 0: log(-v) = -inf and the quotient infinite or undefined: NaN, taken as 1
            return 1.0, 1.0
        v = math.log(survival)
        spread = Z_95 * math.sqrt(variance) / v
        return _bound(math.log(-v) - spread), _bound(math.log(-v) + spread)


def _bound(exponent: float) -> float:
    """exp(-exp(exponent)), 0 where the inner exp overflows (as in NumPy)."""
    try:
        return math.exp(-math.exp(exponent))
    except OverflowError:
        return 0.0


def estimates_at(times: list[int], events: list[bool], days: tuple[int, ...] = AT_DAYS,
                 ) -> dict[str, dict[str, Any] | None]:
    """At each day, unrounded: the estimate ``s``, its 95% log(-log) Greenwood interval ``lo``-``hi`` and ``at_risk``
    (:func:`estimates_from_counts` over the patients' times and events)."""
    return estimates_from_counts(day_counts(times, events), days)


def estimates_from_counts(counts: DayCounts, days: tuple[int, ...] = AT_DAYS) -> dict[str, dict[str, Any] | None]:
    """At each day, unrounded: the estimate ``s``, its 95% log(-log) Greenwood interval ``lo``-``hi`` and ``at_risk``,
    from the patients counted per time (:data:`DayCounts`).

    As lifelines' KaplanMeierFitter (:class:`_Fit`): an event before a censoring on the same day; the estimate at
    a day is the step at the last time on or before it. "At risk" on day d is the number whose time is d or
    more; with nobody at risk the day's entry is None; before the first event (or with none) it is 1 (1-1).
    """
    at_days: dict[str, dict[str, Any] | None] = {}
    first_event = next((time for time, _n, deaths in counts if deaths), None)
    fitted = _Fit(counts) if first_event is not None else None
    for day in days:
        at_risk = sum(n for time, n, _d in counts if time >= day)
        if at_risk == 0:
            at_days[str(day)] = None
            continue
        if fitted is None or first_event > day:
            s = lo = hi = 1.0
        else:
            step = bisect.bisect_right(fitted.timeline, day) - 1   # the last time on or before the day
            s, (lo, hi) = fitted.survival[step], fitted.band(step)
        at_days[str(day)] = {"s": s, "lo": lo, "hi": hi, "at_risk": at_risk}
    return at_days


def kaplan_meier(times: list[int], events: list[bool], days: tuple[int, ...] = AT_DAYS) -> dict[str, Any]:
    """Patients, events and, at each day, the estimate with its 95% log(-log) Greenwood interval to three
    decimals and the number at risk (:func:`estimates_at`; None where nobody is at risk)."""
    return kaplan_meier_from_counts(day_counts(times, events), days)


def kaplan_meier_from_counts(counts: DayCounts, days: tuple[int, ...] = AT_DAYS) -> dict[str, Any]:
    """:func:`kaplan_meier` from the patients counted per time (:data:`DayCounts`)."""
    at_days = {day: None if entry is None else {**{k: three_decimals(entry[k]) for k in ("s", "lo", "hi")},
                                                "at_risk": entry["at_risk"]}
               for day, entry in estimates_from_counts(counts, days).items()}
    return {"patients": sum(n for _t, n, _d in counts), "events": sum(d for _t, _n, d in counts), "at_days": at_days}


def patient_times(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
                  table: str | None = None) -> list[tuple]:
    """Per implanted patient: days to a lead defect (or censoring) and to explantation, with the event flags.
    ``table``: :func:`survival_table`'s, already holding the survival SQL's rows at ``observation_end``."""
    columns = "select defect_days, defect_event, explant_days, explant_event"
    if table is not None:
        return con.execute(f"{columns} from {table} order by patient_id").fetchall()
    statement, parameters = with_flags(con, f"{columns} from ({_sql('survival')}) order by patient_id", observation_end)
    return con.execute(statement, parameters).fetchall()


def survival_figures(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
                     table: str | None = None, flags: Flags | None = None) -> dict[str, Any]:
    """analysis.md's ``survival`` object, from the survival SQL over the marts and the flat tables (``table``:
    :func:`survival_table`'s, holding that SQL's rows at ``observation_end``; made here when not given; ``flags``:
    as :func:`survival_table` takes them)."""
    if table is None:
        with survival_table(con, observation_end, flags) as made:
            return survival_figures(con, observation_end, made, flags)
    counts: dict[str, DayCounts] = {"defect": [], "explant": []}
    for curve, time, patients, events in con.execute(
            f"select 'defect', defect_days, count(*), count(*) filter (where defect_event) from {table} group by 2 "
            f"union all select 'explant', explant_days, count(*), count(*) filter (where explant_event) from {table} "
            "group by 2 order by 1, 2").fetchall():
        counts[curve].append((time, patients, events))
    statement, parameters = flags_statement(con, _sql("survival_leads"), observation_end, flags)
    placed, revised, faulty = con.execute(statement, parameters).fetchone()
    return {
        "lead_defect_free": kaplan_meier_from_counts(counts["defect"]),
        "system_explant_free": kaplan_meier_from_counts(counts["explant"]),
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
    fitted = _Fit(day_counts(times, events))
    return [{"t": t, "s": s, "lo": lo, "hi": hi}
            for step, (t, s) in enumerate(zip(fitted.timeline, fitted.survival, strict=True))
            for lo, hi in (fitted.band(step),)]


def survival_curves(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> dict[str, list[dict[str, float]]]:
    """Both Kaplan-Meier curves of :func:`survival_figures`, every step, for the report's plots."""
    rows = patient_times(con, observation_end)
    return {"lead_defect_free": _curve([r[0] for r in rows], [bool(r[1]) for r in rows]),
            "system_explant_free": _curve([r[2] for r in rows], [bool(r[3]) for r in rows])}
