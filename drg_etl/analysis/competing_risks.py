"""Competing risks (analysis.md, "Beyond the paper: competing risks and device performance"): the
Aalen-Johansen cumulative incidence of a lead defect and of an explantation without one, in the standard library
over the competing-risks SQL's rows (one per day), beside 1 - Kaplan-Meier of "Device survival"."""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Any

import duckdb

from drg_etl.analysis.survival import AT_DAYS, MASK, three_decimals
from drg_etl.core.sql import read_sql
from drg_etl.pipeline.marts import bind, study_parameters, with_flags

#: The two competing events, in the order of the SQL's columns.
KINDS = ("lead_defect", "explant_without_defect")


def _sql(name: str) -> str:
    return read_sql(f"analysis/{name}.sql")


def day_counts(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
               table: str | None = None) -> list[tuple[int, int, int, int]]:
    """Per distinct day of the implanted patients' times: (day, lead defects, explants without a defect,
    everyone whose time is that day), from warehouse/analysis/competing_risks.sql over survival.sql's rows (those
    of ``table``, :func:`~drg_etl.analysis.survival.survival_table`'s at ``observation_end``, when given)."""
    if table is not None:
        sql = f"with survival as (select * from {table}) select * from ({_sql('competing_risks')})"
        statement, parameters = sql, bind(sql, study_parameters(observation_end))
    else:
        sql = f"with survival as ({_sql('survival')}) select * from ({_sql('competing_risks')})"
        statement, parameters = with_flags(con, sql, observation_end)
    return [tuple(int(v) for v in row) for row in con.execute(statement, parameters).fetchall()]


def aalen_johansen(rows: list[tuple[int, int, int, int]], days: tuple[int, ...] = AT_DAYS,
                   ) -> dict[str, list[float | None]]:
    """Each kind's cumulative incidence at ``days`` (unrounded; None where no one's time reaches the day).

    CIF_k(t) = sum over days t_j <= t of S(t_j-) * d_kj / n_j; S is the Kaplan-Meier estimate of being free
    of either event, n_j those whose time is t_j or more (a censoring on t_j is at risk on t_j).
    """
    if not rows:
        return {k: [None] * len(days) for k in KINDS}
    times = [float(row[0]) for row in rows]
    at_risk, remaining = [], 0.0
    for row in reversed(rows):                            # n_j: those whose time is t_j or more
        remaining += row[3]
        at_risk.append(remaining)
    at_risk.reverse()
    cif: dict[str, list[float]] = {k: [] for k in KINDS}
    sums = dict.fromkeys(KINDS, 0.0)
    before = 1.0                                          # S(t_j-)
    for (_day, d1, d2, _ending), n in zip(rows, at_risk, strict=True):
        for k, d in zip(KINDS, (d1, d2), strict=True):
            sums[k] += before * d / n
            cif[k].append(sums[k])
        before *= 1.0 - (d1 + d2) / n
    out: dict[str, list[float | None]] = {k: [] for k in KINDS}
    for day in days:
        reached = bisect.bisect_right(times, day)         # the days t_j <= day
        anyone = max(times) >= day
        for k in KINDS:
            out[k].append(None if not anyone else (cif[k][reached - 1] if reached else 0.0))
    return out


def competing_risks_figures(con: duckdb.DuckDBPyConnection, observation_end: dt.date,
                            lead_defect_free: dict[str, Any], table: str | None = None) -> dict[str, Any]:
    """analysis.md's ``competing_risks`` object.

    ``cif`` to three decimals; ``one_minus_km`` beside the defect's is 1 minus the published (three-decimal)
    lead-defect-free estimate of ``survival`` that day, so the two tables agree to the digit. A day on which
    no one is at risk is null, as it is in ``survival``. ``lead_defect_free``: that curve of ``survival``,
    already computed (the estimate is not fitted twice). ``table``: survival.sql's rows at ``observation_end``
    (:func:`~drg_etl.analysis.survival.survival_table`), if the caller holds them.
    """
    rows = day_counts(con, observation_end, table)
    cif = aalen_johansen(rows)
    km = lead_defect_free["at_days"]
    out: dict[str, Any] = {}
    for index, kind in enumerate(KINDS):
        at_days: dict[str, dict[str, float | None] | None] = {}
        for day, value in zip(AT_DAYS, cif[kind], strict=True):
            if value is None:
                at_days[str(day)] = None
                continue
            entry: dict[str, float | None] = {"cif": three_decimals(value)}
            if kind == "lead_defect":
                survival_entry = km[str(day)]
                entry["one_minus_km"] = None if survival_entry is None else three_decimals(1 - survival_entry["s"])
            at_days[str(day)] = entry
        out[kind] = {"events": sum(r[1 + index] for r in rows), "at_days": at_days}
    return out


def _small(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4


def mask_competing_risks(figures: dict[str, Any], patients: int | None = None) -> dict[str, Any]:
    """Under ``--publish``: an event count from 1 to 4 is "<5", and so is every ``cif`` of that kind (a
    cumulative incidence is those events over the numbers at risk); with 1-4 ``patients`` (the implanted
    patients: ``survival``'s count) every ``cif`` is. ``one_minus_km`` is masked exactly when ``survival``
    masks its lead-defect-free estimate: with 1-4 lead defects (the same events) or 1-4 patients.
    A null (no one at risk) stays null. Recovering a masked count by subtraction from other tables is
    issue 17's item 5 (complementary suppression), not handled here.
    """
    out: dict[str, Any] = {}
    few_patients = _small(patients)
    defects_few = few_patients or _small(figures["lead_defect"]["events"])
    for kind, entry in figures.items():
        few = few_patients or _small(entry["events"])
        at_days = {}
        for day, values in entry["at_days"].items():
            if values is None:
                at_days[day] = None
                continue
            values = dict(values)
            if few and values["cif"] is not None:
                values["cif"] = MASK
            if defects_few and values.get("one_minus_km") is not None:
                values["one_minus_km"] = MASK
            at_days[day] = values
        out[kind] = {"events": MASK if _small(entry["events"]) else entry["events"], "at_days": at_days}
    return out
