"""The national analysis: run the SQL over the FHIR layer's flat tables and shape analysis.md's JSON contract."""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb

from drg_etl.analysis.competing_risks import competing_risks_figures, mask_competing_risks
from drg_etl.analysis.device_performance import device_performance_figures, mask_device_performance
from drg_etl.analysis.disclosure import suppress
from drg_etl.analysis.flags import Flags, flags_at
from drg_etl.analysis.survival import mask_survival, survival_figures, survival_table
from drg_etl.analysis.wilcoxon import MAX_PAIRS, signed_rank_p
from drg_etl.core.dates import FOLLOW_UP_WINDOWS
from drg_etl.core.sql import read_sql
from drg_etl.core.vocabulary import CENTERS, MEASURES, PAIN_LOCATIONS

MASK = "<5"


def _sql(name: str) -> str:
    return read_sql(f"analysis/{name}.sql")


def _query(con: duckdb.DuckDBPyConnection, sql: str, flags: Flags) -> duckdb.DuckDBPyConnection:
    """Run ``sql`` over the patient flags ``flags`` (:func:`~drg_etl.analysis.flags.flags_at`)."""
    statement, parameters = flags.with_flags(sql)
    return con.execute(statement, parameters)


def one_decimal(value: Decimal) -> float:
    """Round half up to one decimal, as a published table does."""
    return float(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def pct(part: int, whole: int) -> float | None:
    """A percentage to one decimal."""
    return None if whole == 0 else one_decimal(Decimal(100 * part) / Decimal(whole))


def default_observation_end(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The latest cutoff among the deliveries in force."""
    value = con.execute("select max(cutoff) from quality.deliveries_in_force").fetchone()[0]
    if value is None:
        raise ValueError("the warehouse holds no delivery; load one first")
    return value


def national_analysis(con: duckdb.DuckDBPyConnection, observation_end: dt.date | None = None) -> dict[str, Any]:
    """The figures of analysis.md, computed from the warehouse's FHIR layer."""
    end = observation_end or default_observation_end(con)
    with flags_at(con, end) as flags:
        return _national_analysis(con, end, flags)


def _national_analysis(con: duckdb.DuckDBPyConnection, end: dt.date, flags: Flags) -> dict[str, Any]:
    pain: dict[Any, int] = {}
    counts: tuple[int, ...] = (0,) * 7
    for whole, location, *values in _query(con, """
        select grouping(pain_location) = 1, pain_location, count(*), count(*) filter (where implanted),
               count(*) filter (where still_implanted), count(*) filter (where fully_functional),
               count(*) filter (where lead_defect), count(*) filter (where retained_fragment),
               count(*) filter (where permanent_nerve_damage)
        from patient_flags group by grouping sets ((), (pain_location))""", flags).fetchall():
        if whole:
            counts = tuple(values)
        else:
            pain[location] = values[0]
    trial, implanted, still, functional, defect, fragment, nerve = counts
    by_center = {c: {"trial_patients": 0, "implanted_patients": 0} for c in CENTERS}
    for center, trials, implants in _query(con, _sql("by_center"), flags).fetchall():
        by_center[center] = {"trial_patients": trials, "implanted_patients": implants}
    with survival_table(con, end, flags) as table:  # survival.sql runs once for the three analyses that read it
        survival = survival_figures(con, end, table, flags)
        competing_risks = competing_risks_figures(con, end, survival["lead_defect_free"], table)
        device_performance = device_performance_figures(con, end, table, flags)
    return {
        "observation_end": end.isoformat(),
        "cohort": {
            "trial_patients": trial,
            "implanted_patients": implanted,
            "still_implanted": still,
            "still_implanted_pct": pct(still, implanted),
            "fully_functional": functional,
            "fully_functional_pct": pct(functional, implanted),
        },
        "pain_location": {loc: {"n": pain.get(loc, 0), "pct": pct(pain.get(loc, 0), trial)}
                          for loc in PAIN_LOCATIONS},
        "outcomes_12m": outcomes_12m(con, flags),
        "complications": {
            "lead_defect_patients": defect,
            "lead_defect_pct": pct(defect, implanted),
            "retained_fragment_patients": fragment,
            "retained_fragment_pct": pct(fragment, implanted),
            "permanent_nerve_damage_patients": nerve,
        },
        "by_center": by_center,
        "survival": survival,
        "follow_up": follow_up_completeness(con, end, flags),
        "competing_risks": competing_risks,
        "device_performance": device_performance,
    }


def follow_up_completeness(con: duckdb.DuckDBPyConnection, end: dt.date, flags: Flags | None = None,
                           ) -> dict[str, Any]:
    """analysis.md's ``follow_up``: due, assessed and percent per timepoint, nationally and per center of the
    first implant (every center and timepoint; ``pct`` null where none is due). ``flags``: the flags at ``end``
    (:func:`~drg_etl.analysis.flags.flags_at`), found here when not given."""
    if flags is None:
        with flags_at(con, end) as found:
            return follow_up_completeness(con, end, found)
    counts = {(center, timepoint): (due, assessed)
              for center, timepoint, due, assessed in _query(con, _sql("follow_up"), flags).fetchall()}

    def cell(due: int, assessed: int) -> dict[str, Any]:
        return {"due": due, "assessed": assessed, "pct": pct(assessed, due)}

    national = {t: cell(sum(d for (_c, tp), (d, _a) in counts.items() if tp == t),
                        sum(a for (_c, tp), (_d, a) in counts.items() if tp == t)) for t in FOLLOW_UP_WINDOWS}
    by_center = {c: {t: cell(*counts.get((c, t), (0, 0))) for t in FOLLOW_UP_WINDOWS} for c in CENTERS}
    return {**national, "by_center": by_center}


def outcomes_12m(con: duckdb.DuckDBPyConnection, flags: Flags) -> dict[str, Any]:
    """analysis.md's ``outcomes_12m``: per measure, the pairs of warehouse/analysis/outcome_pairs.sql, their means
    and the exact Wilcoxon signed-rank p.

    SQL counts the pairs per distinct (baseline, 12-month) value, and the exact decimal sums are taken from those
    counts (:func:`_exact_sum`). A measure whose test has a p (1 to MAX_PAIRS non-zero differences: the float
    path's sums depend on the pairs' order), or whose sums could round in the decimal context, or with a value that
    is not finite, takes its pairs one by one in the order of (measure, patient), as :func:`_outcome` always did.
    """
    grouped: dict[str, list[tuple[float, float, int]]] = {m: [] for m in MEASURES}
    for measure, baseline, month12, count in _query(
            con, "select measure, baseline, month12, count(*) from (" + _sql("outcome_pairs") + ") group by all",
            flags).fetchall():
        grouped.setdefault(measure, []).append((baseline, month12, count))
    out: dict[str, Any] = {}
    for measure in MEASURES:
        rows = grouped[measure]
        n = sum(count for _b, _m, count in rows)
        if n == 0:
            out[measure] = _outcome([], [])
            continue
        different = sum(count for b, m, count in rows if b != m)
        sums = _exact_sum([(b, count) for b, _m, count in rows]), _exact_sum([(m, count) for _b, m, count in rows])
        if 0 < different <= MAX_PAIRS or None in sums:
            out[measure] = _outcome(*_pairs(con, flags, measure))
            continue
        base, later = sums[0] / n, sums[1] / n
        out[measure] = {"n": n, "baseline_mean": one_decimal(base), "month12_mean": one_decimal(later),
                        "baseline_mean_exact": float(base), "month12_mean_exact": float(later),
                        "p_value": None, "test": "exact Wilcoxon signed-rank, two-sided"}
    return out


def _exact_sum(values: list[tuple[float, int]]) -> Decimal | None:
    """sum(Decimal(str(v)) for each of ``count`` copies of each v), exactly as :func:`_outcome` sums one by one; None
    where that sum could differ (a value not finite, or a partial sum past the context's precision, where the one
    by one sum would round)."""
    decimals = [(Decimal(str(v)), count) for v, count in values]
    if not all(d.is_finite() for d, _c in decimals):
        return None
    exponent = min(0, *(int(d.as_tuple().exponent) for d, _c in decimals))
    with decimal.localcontext() as wide:
        wide.prec = 1000
        magnitude = sum((abs(d) * count for d, count in decimals), Decimal(0))  # every partial sum is below it ...
    digits = len(str(int(magnitude))) + 1 - exponent                             # ... and a multiple of 10^exponent
    if digits > decimal.getcontext().prec:
        return None
    return sum((d * count for d, count in decimals), Decimal(0))


def _pairs(con: duckdb.DuckDBPyConnection, flags: Flags, measure: str) -> tuple[list[float], list[float]]:
    """The (baseline, 12-month) pairs of ``measure``, in the order of the patients."""
    statement, parameters = flags.with_flags(
        "select baseline, month12 from (" + _sql("outcome_pairs") + ") where measure = $measure order by patient_id")
    rows = con.execute(statement, {**parameters, "measure": measure}).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def _outcome(baseline: list[float], month12: list[float]) -> dict[str, Any]:
    n = len(baseline)
    if n == 0:
        return {"n": 0, "baseline_mean": None, "month12_mean": None, "p_value": None}
    base = sum(Decimal(str(v)) for v in baseline) / n
    later = sum(Decimal(str(v)) for v in month12) / n
    return {"n": n, "baseline_mean": one_decimal(base), "month12_mean": one_decimal(later),
            "baseline_mean_exact": float(base), "month12_mean_exact": float(later),
            "p_value": signed_rank_p(baseline, month12), "test": "exact Wilcoxon signed-rank, two-sided"}


def publishable(figures: dict[str, Any], *, complementary: bool = True) -> dict[str, Any]:
    """Mask every count from 1 to 4 (and the percentages and means computed from it) as "<5"; then, unless
    ``complementary`` is off, suppress whatever would let a masked count be recovered by subtraction
    (``disclosure.suppress``)."""
    def small(n: Any) -> bool:
        return isinstance(n, int) and 1 <= n <= 4

    out = {k: v for k, v in figures.items()}
    cohort = dict(figures["cohort"])
    for count, share in (("trial_patients", None), ("implanted_patients", None),
                         ("still_implanted", "still_implanted_pct"), ("fully_functional", "fully_functional_pct")):
        if small(cohort[count]):
            cohort[count] = MASK
            if share:
                cohort[share] = MASK
    out["cohort"] = cohort
    out["pain_location"] = {k: ({"n": MASK, "pct": MASK} if small(v["n"]) else dict(v))
                            for k, v in figures["pain_location"].items()}
    outcomes = {}
    for measure, o in figures["outcomes_12m"].items():
        o = dict(o)
        if small(o["n"]):
            for key in ("n", "baseline_mean", "month12_mean", "baseline_mean_exact", "month12_mean_exact"):
                if key in o:
                    o[key] = MASK
        outcomes[measure] = o
    out["outcomes_12m"] = outcomes
    comps = dict(figures["complications"])
    for count, share in (("lead_defect_patients", "lead_defect_pct"),
                         ("retained_fragment_patients", "retained_fragment_pct"),
                         ("permanent_nerve_damage_patients", None)):
        if small(comps[count]):
            comps[count] = MASK
            if share:
                comps[share] = MASK
    out["complications"] = comps
    out["by_center"] = {c: {k: (MASK if small(v) else v) for k, v in counts.items()}
                        for c, counts in figures["by_center"].items()}
    if "survival" in figures:
        out["survival"] = mask_survival(figures["survival"])
    if "follow_up" in figures:
        out["follow_up"] = _mask_follow_up(figures["follow_up"], small)
    if "competing_risks" in figures:
        patients = figures.get("survival", {}).get("lead_defect_free", {}).get("patients")
        out["competing_risks"] = mask_competing_risks(figures["competing_risks"], patients)
    if "device_performance" in figures:
        out["device_performance"] = mask_device_performance(figures["device_performance"])
    return suppress(out, figures) if complementary else out


def _mask_follow_up(follow_up: dict[str, Any], small: Any) -> dict[str, Any]:
    """Counts 1-4 of due and assessed as "<5", and the percentage beside a masked count."""
    def cell(entry: dict[str, Any]) -> dict[str, Any]:
        masked = {k: (MASK if small(entry[k]) else entry[k]) for k in ("due", "assessed")}
        masked["pct"] = MASK if MASK in masked.values() else entry["pct"]
        return masked

    out: dict[str, Any] = {t: cell(v) for t, v in follow_up.items() if t != "by_center"}
    out["by_center"] = {c: {t: cell(v) for t, v in cells.items()} for c, cells in follow_up["by_center"].items()}
    return out
