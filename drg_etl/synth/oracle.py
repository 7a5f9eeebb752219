"""The generator's oracle: the national figures computed from the true histories in plain Python.

It follows analysis.md's definitions on the generator's own objects, independently of the
readers, the warehouse and its SQL, so that tests can hold the pipeline against it.
Lead states are those the placing center recorded (what the deliveries say).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from fractions import Fraction
from statistics import NormalDist
from typing import Any

import numpy as np

from drg_etl.core.dates import FOLLOW_UP_WINDOWS, STUDY_END, STUDY_START, add_months
from drg_etl.core.vocabulary import (
    CENTERS,
    FAULTY_LEAD_STATUSES,
    LEAD_DEFECT_COMPLICATIONS,
    MEASURES,
    PAIN_LOCATIONS,
    REMOVED_LEAD_STATUSES,
)
from drg_etl.synth.model import Measurement, Person

#: Above this many pairs the exact test is not computed: its cost grows with n^3
#: (1,000 pairs take about a second; 3,000 take over a minute).
EXACT_TEST_MAX_PAIRS = 1000
#: Integer units per measure: NRS average has one decimal.
MEASURE_SCALE = {"nrs_average": 10, "nrs_worst": 1, "pcs_total": 1}
#: The days at which the survival curves are read, and the normal quantile of a 95% interval.
SURVIVAL_DAYS = (365, 730, 1095)
Z_95 = NormalDist().inv_cdf(0.975)
#: Centers whose source gives no timepoint label (dates only): their assessments are placed by the windows.
UNLABELLED_CENTERS = frozenset({"aauh"})
#: The pulse generator models of device performance; "unknown" where a source gives none.
IPG_MODELS = ("Axium", "Proclaim DRG", "unknown")
#: Competing events: the first of a lead defect and the explantation of the complete system.
COMPETING_EVENTS = ("lead_defect", "explant_without_defect")
#: Days per patient-year.
DAYS_PER_YEAR = Fraction(1461, 4)


def round_half_up(value: Fraction, places: int = 1) -> float:
    """Round an exact fraction half away from zero, as a published table does."""
    scale = 10**places
    scaled = value * scale
    whole = int(scaled)
    if abs(scaled - whole) * 2 >= 1:
        whole += 1 if scaled > 0 else -1
    return whole / scale


def pct(part: int, whole: int) -> float | None:
    """A percentage to one decimal, or None for an empty base."""
    return None if whole == 0 else round_half_up(Fraction(100 * part, whole))


def exact_wilcoxon_p(differences: list[int]) -> float | None:
    """Two-sided p of the exact Wilcoxon signed-rank test (sign-flip distribution, mid-ranks, zeros dropped)."""
    diffs = [d for d in differences if d != 0]
    n = len(diffs)
    if n == 0 or n > EXACT_TEST_MAX_PAIRS:
        return None
    order = sorted(range(n), key=lambda i: abs(diffs[i]))
    doubled_ranks = [0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(diffs[order[j + 1]]) == abs(diffs[order[i]]):
            j += 1
        for k in range(i, j + 1):
            doubled_ranks[order[k]] = i + j + 2  # twice the mid-rank of positions i..j (1-based)
        i = j + 1
    observed = sum(r for r, d in zip(doubled_ranks, diffs, strict=True) if d > 0)
    dist = np.zeros(sum(doubled_ranks) + 1)
    dist[0] = 1.0
    for r in doubled_ranks:
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:-r]
        dist = 0.5 * (dist + shifted)
    upper, lower = dist[observed:].sum(), dist[: observed + 1].sum()
    return float(min(1.0, 2 * min(upper, lower)))


class Oracle:
    """Accumulates persons one at a time; ``figures()`` gives the national analysis."""

    def __init__(self, observation_end: dt.date) -> None:
        self.end = observation_end
        self.trial_patients = 0
        self.implanted = 0
        self.still_implanted = 0
        self.fully_functional = 0
        self.pain = Counter()
        self.lead_defect = 0
        self.fragment = 0
        self.nerve = 0
        self.pairs: dict[str, list[tuple[int, int]]] = {m: [] for m in MEASURES}
        self.by_center = {c: Counter() for c in CENTERS}
        # Survival: (days, event) -> patients, per curve; and lead counts.
        self.defect_free: Counter[tuple[int, bool]] = Counter()
        self.explant_free: Counter[tuple[int, bool]] = Counter()
        self.leads = Counter()
        # Follow-up completeness: (center of the first implant, timepoint) -> due / assessed patients.
        self.follow_up_due: Counter[tuple[str, str]] = Counter()
        self.follow_up_assessed: Counter[tuple[str, str]] = Counter()
        # Competing risks: (days, first event or None when censored) -> patients.
        self.competing: Counter[tuple[int, str | None]] = Counter()
        # Device performance: (grouping, group) -> patients, days observed, lead-defect complications.
        self.device: dict[tuple[str, str], Counter[str]] = {}

    @staticmethod
    def _in_window(day: dt.date) -> bool:
        return STUDY_START <= day <= STUDY_END

    def add(self, p: Person) -> None:
        """Count one person."""
        trials = [x for x in p.procedures if x.kind == "trial" and self._in_window(x.date)]
        if not trials:
            return
        self.trial_patients += 1
        self.pain[p.pain_location] += 1
        for center in {x.center for x in trials}:
            self.by_center[center]["trial_patients"] += 1
        implants = [x for x in p.procedures if x.kind == "implant" and self._in_window(x.date)]
        if not implants:
            return
        self.implanted += 1
        for center in {x.center for x in implants}:
            self.by_center[center]["implanted_patients"] += 1
        comps = [c for c in p.complications if c.date <= self.end]
        self.lead_defect += any(c.kind in LEAD_DEFECT_COMPLICATIONS for c in comps)
        self.fragment += any(c.kind == "retained_fragment" for c in comps)
        self.nerve += any(c.kind == "nerve_damage" and c.permanent for c in comps)
        first = min(implants, key=lambda x: x.date)
        self._add_survival(p, first.date)
        self._add_device(p, first)
        self._add_follow_up(p, first.date, first.center)
        if any(x.kind == "explant" and x.date <= self.end for x in p.procedures):
            return
        self.still_implanted += 1
        if not self._fully_functional(p):
            return
        self.fully_functional += 1
        base = _at_timepoint(p.measurements, "baseline")
        later = _at_timepoint(p.measurements, "month_12")
        for measure in MEASURES:
            b = None if base is None else getattr(base, measure)
            m = None if later is None else getattr(later, measure)
            if b is not None and m is not None:
                scale = MEASURE_SCALE[measure]
                self.pairs[measure].append((round(b * scale), round(m * scale)))

    def _fully_functional(self, p: Person) -> bool:
        for lead in p.leads:
            if lead.placed > self.end:
                continue
            changed = lead.status_date is not None and lead.status_date <= self.end
            if changed and lead.status in REMOVED_LEAD_STATUSES:
                continue
            if changed and lead.status in FAULTY_LEAD_STATUSES:
                replaced = any(
                    other.placed > lead.status_date and other.placed <= self.end
                    and other.level == lead.level and other.side == lead.side
                    for other in p.leads if other is not lead
                )
                if not replaced:
                    return False
        return True

    def _add_survival(self, p: Person, first_implant: dt.date) -> None:
        """Times to event from the first implant, and the leads placed, revised and faulty."""
        end = self.end
        explant = min((x.date for x in p.procedures if x.kind == "explant" and first_implant <= x.date <= end),
                      default=None)
        for lead in p.leads:
            if lead.placed > end:
                continue
            self.leads["placed"] += 1
            changed = lead.status_date is not None and lead.status_date <= end
            removed = lead.status_date if changed and lead.status in REMOVED_LEAD_STATUSES else None
            replaced = min((other.placed for other in p.leads
                            if other.replaces == lead.lead_id and other.placed <= end), default=None)
            revision = min((day for day in (removed, replaced) if day is not None), default=None)
            if revision is not None and (explant is None or revision < explant):
                self.leads["revised"] += 1
            if changed and lead.status in FAULTY_LEAD_STATUSES:
                self.leads["faulty_at_end"] += 1
        if first_implant > end:
            return
        censor = explant or end
        defect = min((c.date for c in p.complications
                      if c.kind in LEAD_DEFECT_COMPLICATIONS and first_implant <= c.date <= end), default=None)
        if defect is not None and defect <= censor:
            self.defect_free[((defect - first_implant).days, True)] += 1
        else:
            self.defect_free[((censor - first_implant).days, False)] += 1
        self.explant_free[((censor - first_implant).days, explant is not None)] += 1

    def _add_device(self, p: Person, first: Any) -> None:
        """Competing risks and device performance of one implanted patient (analysis.md "Beyond the paper:
        competing risks and device performance").

        The end is the explantation of the complete system (on or after the first implant, on or before the
        observation end) or the observation end; the lead-defect complications counted are those dated from
        the first implant to that end inclusive, so a defect on the explant day is a defect. The model is
        that of the generator placed at the first implant, as its center records it (every source carries
        it: REDCap's ipg_model, AUH's device rows, OUH's IPG model column, AaUH's Device.modelNumber).
        Injected defects only add rows the pipeline quarantines, so the truth is what it holds.
        """
        start, end = first.date, self.end
        if start > end:
            return
        explant = min((x.date for x in p.procedures if x.kind == "explant" and start <= x.date <= end),
                      default=None)
        stop = explant or end
        defects = sorted(c.date for c in p.complications
                         if c.kind in LEAD_DEFECT_COMPLICATIONS and start <= c.date <= stop)
        if defects:
            self.competing[((defects[0] - start).days, "lead_defect")] += 1
        elif explant is not None:
            self.competing[((explant - start).days, "explant_without_defect")] += 1
        else:
            self.competing[((end - start).days, None)] += 1
        generator = next((g for g in p.generators if g.device_id == first.generator_placed), None)
        model = (generator.model if generator is not None else None) or "unknown"
        for key in (("by_ipg_model", model), ("by_center", first.center)):
            group = self.device.setdefault(key, Counter())
            group["patients"] += 1
            group["days"] += (stop - start).days
            group["events"] += len(defects)

    def _device_figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for grouping, names in (("by_ipg_model", IPG_MODELS), ("by_center", CENTERS)):
            groups = {name: self.device.get((grouping, name), Counter()) for name in names}
            groups.update({name: c for (g, name), c in self.device.items() if g == grouping and name not in groups})
            if grouping == "by_ipg_model" and not groups["unknown"]["patients"]:
                del groups["unknown"]
            total = Counter()
            for c in groups.values():
                total.update(c)
            out[grouping] = {
                name: device_group(c["patients"], c["days"], c["events"],
                                   total["days"] - c["days"], total["events"] - c["events"])
                for name, c in groups.items()
            }
        return out

    def _add_follow_up(self, p: Person, first_implant: dt.date, center: str) -> None:
        """Due and assessed timepoints of one implanted patient (analysis.md "Follow-up completeness").

        Due at t: t's window (months after the first implant, inclusive) has ended on or before the
        observation end, and the complete system was not explanted before the window opened. Assessed:
        one of the three measures for t, labelled t where the source labels its assessments, dated in
        t's window where it does not (aauh). The injected defects add rows the pipeline quarantines and
        take away none of the truth's, so the truth's measurements are what the warehouse holds.
        """
        explant = min((x.date for x in p.procedures if x.kind == "explant" and x.date >= first_implant),
                      default=None)
        measured = [m for m in p.measurements
                    if m.nrs_average is not None or m.nrs_worst is not None or m.pcs_items is not None]
        for timepoint, (low, high) in FOLLOW_UP_WINDOWS.items():
            opens, closes = add_months(first_implant, low), add_months(first_implant, high)
            if closes > self.end or (explant is not None and explant < opens):
                continue
            self.follow_up_due[(center, timepoint)] += 1
            if any(opens <= m.date <= closes if m.center in UNLABELLED_CENTERS else m.timepoint == timepoint
                   for m in measured):
                self.follow_up_assessed[(center, timepoint)] += 1

    def _follow_up_figures(self) -> dict[str, Any]:
        def cell(due: int, assessed: int) -> dict[str, Any]:
            return {"due": due, "assessed": assessed, "pct": pct(assessed, due)}

        national = {
            t: cell(sum(self.follow_up_due[(c, t)] for c in CENTERS),
                    sum(self.follow_up_assessed[(c, t)] for c in CENTERS))
            for t in FOLLOW_UP_WINDOWS
        }
        by_center = {c: {t: cell(self.follow_up_due[(c, t)], self.follow_up_assessed[(c, t)])
                         for t in FOLLOW_UP_WINDOWS} for c in CENTERS}
        return {**national, "by_center": by_center}

    def figures(self) -> dict[str, Any]:
        """The national figures in analysis.md's output shape (with exact means added)."""
        implanted = self.implanted
        outcomes = {}
        for measure, pairs in self.pairs.items():
            scale = MEASURE_SCALE[measure]
            n = len(pairs)
            base = Fraction(sum(b for b, _ in pairs), n * scale) if n else None
            later = Fraction(sum(m for _, m in pairs), n * scale) if n else None
            outcomes[measure] = {
                "n": n,
                "baseline_mean": None if base is None else round_half_up(base),
                "month12_mean": None if later is None else round_half_up(later),
                "baseline_mean_exact": None if base is None else float(base),
                "month12_mean_exact": None if later is None else float(later),
                "p_value": exact_wilcoxon_p([b - m for b, m in pairs]),
            }
            if n > EXACT_TEST_MAX_PAIRS:
                outcomes[measure]["p_value_note"] = f"exact test not computed for n > {EXACT_TEST_MAX_PAIRS}"
        return {
            "observation_end": self.end.isoformat(),
            "cohort": {
                "trial_patients": self.trial_patients,
                "implanted_patients": implanted,
                "still_implanted": self.still_implanted,
                "still_implanted_pct": pct(self.still_implanted, implanted),
                "fully_functional": self.fully_functional,
                "fully_functional_pct": pct(self.fully_functional, implanted),
            },
            "pain_location": {
                loc: {"n": self.pain[loc], "pct": pct(self.pain[loc], self.trial_patients)}
                for loc in PAIN_LOCATIONS
            },
            "outcomes_12m": {
                "nrs_average": outcomes["nrs_average"],
                "nrs_worst": outcomes["nrs_worst"],
                "pcs_total": outcomes["pcs_total"],
            },
            "complications": {
                "lead_defect_patients": self.lead_defect,
                "lead_defect_pct": pct(self.lead_defect, implanted),
                "retained_fragment_patients": self.fragment,
                "retained_fragment_pct": pct(self.fragment, implanted),
                "permanent_nerve_damage_patients": self.nerve,
            },
            "by_center": {
                c: {"trial_patients": self.by_center[c]["trial_patients"],
                    "implanted_patients": self.by_center[c]["implanted_patients"]}
                for c in CENTERS
            },
            "survival": {
                "lead_defect_free": kaplan_meier(self.defect_free),
                "system_explant_free": kaplan_meier(self.explant_free),
                "leads": {"placed": self.leads["placed"], "revised": self.leads["revised"],
                          "revised_pct": pct(self.leads["revised"], self.leads["placed"]),
                          "faulty_at_end": self.leads["faulty_at_end"]},
            },
            "follow_up": self._follow_up_figures(),
            "competing_risks": competing_risks(self.competing),
            "device_performance": self._device_figures(),
        }


def kaplan_meier(counts: Counter[tuple[int, bool]], days: tuple[int, ...] = SURVIVAL_DAYS) -> dict[str, Any]:
    """Kaplan-Meier from (days, event) -> patients: the estimate with a 95% interval at each day.

    On a day with events and censorings the events come first (the censored are still at risk).
    The interval is Greenwood's variance on the log(-log) scale (lifelines' default):
    exp(-exp(log(-log S) -/+ z sqrt(sum d / (n (n - d))) / log S)). Before the first event the
    estimate and bounds are 1; on a day nobody is at risk (time >= day) the entry is None.
    """
    at_risk = sum(counts.values())
    survival, greenwood = Fraction(1), 0.0
    steps: list[tuple[int, Fraction, float]] = []
    for time in sorted({t for t, _ in counts}):
        deaths, censored = counts[(time, True)], counts[(time, False)]
        if deaths:
            survival *= Fraction(at_risk - deaths, at_risk)
            if at_risk > deaths:
                greenwood += deaths / (at_risk * (at_risk - deaths))
            steps.append((time, survival, greenwood))
        at_risk -= deaths + censored
    at_days: dict[str, dict[str, Any] | None] = {}
    for day in days:
        risk = sum(n for (t, _), n in counts.items() if t >= day)
        step = next((s for s in reversed(steps) if s[0] <= day), None)
        if risk == 0:
            at_days[str(day)] = None
            continue
        if step is None:
            at_days[str(day)] = {"s": 1.0, "lo": 1.0, "hi": 1.0, "at_risk": risk}
            continue
        _, s, var = step
        if s == 0:
            lo = hi = 0.0
        else:
            log_s = math.log(float(s))
            lo = math.exp(-math.exp(math.log(-log_s) - Z_95 * math.sqrt(var) / log_s))
            hi = math.exp(-math.exp(math.log(-log_s) + Z_95 * math.sqrt(var) / log_s))
        at_days[str(day)] = {"s": round_half_up(s, 3), "lo": _three(lo), "hi": _three(hi), "at_risk": risk}
    return {"patients": sum(counts.values()), "events": sum(n for (_, e), n in counts.items() if e),
            "at_days": at_days}


def competing_risks(counts: Counter[tuple[int, str | None]],
                    days: tuple[int, ...] = SURVIVAL_DAYS) -> dict[str, Any]:
    """Aalen-Johansen cumulative incidence from (days, first event or None when censored) -> patients.

    CIF_k(t) = sum over event days t_j <= t of S(t_j-) d_kj / n_j, S the Kaplan-Meier estimate of being
    free of either event, n_j those whose time is t_j or more (the censored of t_j are still at risk).
    Beside the defect's, one_minus_km = 1 - the Kaplan-Meier estimate that censors at the explant (the
    lead-defect-free curve) as survival publishes it (three decimals). Three decimals, half up; a day on which
    nobody is at risk (time >= day) is None.
    """
    at_risk = sum(counts.values())
    free, km = Fraction(1), Fraction(1)
    cif = dict.fromkeys(COMPETING_EVENTS, Fraction(0))
    steps: list[tuple[int, dict[str, Fraction], Fraction]] = []
    for time in sorted({t for t, _ in counts}):
        d = {k: counts[(time, k)] for k in COMPETING_EVENTS}
        if any(d.values()):
            for k in COMPETING_EVENTS:
                cif[k] += free * Fraction(d[k], at_risk)
            free *= Fraction(at_risk - sum(d.values()), at_risk)
            km *= Fraction(at_risk - d["lead_defect"], at_risk)
            steps.append((time, dict(cif), km))
        at_risk -= sum(d.values()) + counts[(time, None)]
    out: dict[str, Any] = {k: {"events": sum(n for (_, e), n in counts.items() if e == k), "at_days": {}}
                           for k in COMPETING_EVENTS}
    for day in days:
        risk = sum(n for (t, _), n in counts.items() if t >= day)
        step = next((s for s in reversed(steps) if s[0] <= day), None)
        incidence, survival = (dict.fromkeys(COMPETING_EVENTS, Fraction(0)), Fraction(1)) if step is None \
            else (step[1], step[2])
        for k in COMPETING_EVENTS:
            if risk == 0:
                out[k]["at_days"][str(day)] = None
                continue
            cell = {"cif": round_half_up(incidence[k], 3)}
            if k == "lead_defect":
                # 1 minus the estimate "Device survival" publishes that day (three decimals), as analysis.md says
                cell["one_minus_km"] = round_half_up(1 - Fraction(str(round_half_up(survival, 3))), 3)
            out[k]["at_days"][str(day)] = cell
    return out


def poisson_pmf(k: int, mu: float) -> float:
    """P(X = k) for X ~ Poisson(mu), in log space."""
    if k < 0:
        return 0.0
    if mu == 0:
        return 1.0 if k == 0 else 0.0
    return math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1))


def poisson_cdf(k: int, mu: float) -> float:
    """P(X <= k), summed term by term."""
    return min(1.0, math.fsum(poisson_pmf(i, mu) for i in range(k + 1)))


def poisson_sf(k: int, mu: float) -> float:
    """P(X >= k); the upper tail summed directly where it is small, so small p keep their digits."""
    if k <= 0:
        return 1.0
    if mu == 0:
        return 0.0
    if k <= mu:
        return max(0.0, 1.0 - poisson_cdf(k - 1, mu))
    terms, i = [], k
    while True:
        term = poisson_pmf(i, mu)
        terms.append(term)
        if term == 0.0 or term < 1e-17 * terms[0]:
            break
        i += 1
    return min(1.0, math.fsum(terms))


def _bisect(f: Any, lo: float, hi: float) -> float:
    """The root of an increasing f on [lo, hi] (f(lo) <= 0 <= f(hi)), to float precision."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def garwood(events: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact Poisson interval for a count (Garwood 1936), by bisection on the exact Poisson CDF.

    The lower limit is the mean at which P(X >= events) = alpha/2 (0 for no events), the upper the mean
    at which P(X <= events) = alpha/2: the chi-square quantiles alpha/2 at 2 x events and 1 - alpha/2 at
    2 x events + 2, halved, without the chi-square.
    """
    top = events + 20 * math.sqrt(events + 1) + 20
    lo = 0.0 if events == 0 else _bisect(lambda mu: poisson_sf(events, mu) - alpha / 2, 0.0, top)
    hi = _bisect(lambda mu: alpha / 2 - poisson_cdf(events, mu), 0.0, top)
    return lo, hi


def device_group(patients: int, days: int, events: int, others_days: int, others_events: int) -> dict[str, Any]:
    """One group of device performance: patient-years, the rate per 100 with its exact interval, the ratio
    to all other implanted patients, the one-sided Poisson p and the first-stage flag.

    With no patient-years the rate and its interval are None; with the others' rate zero or undefined the
    ratio is None; with no others' patient-years the p is None (otherwise P(X >= events), X ~ Poisson of
    the others' rate x the group's patient-years, 1 for no events). Flagged: ratio > 2 (exactly) and
    p < 0.05 and patients >= 10.
    """
    years = Fraction(days) / DAYS_PER_YEAR
    others_years = Fraction(others_days) / DAYS_PER_YEAR
    rate = None if days == 0 else 100 * events / years
    others_rate = None if others_days == 0 else 100 * others_events / others_years
    ratio = None if rate is None or not others_rate else rate / others_rate
    if others_rate is None:
        p_value = None
    else:
        p_value = poisson_sf(events, float(others_rate * years / 100))
    lo = hi = None
    if days:
        low, high = garwood(events)
        lo, hi = _two(100 * low / float(years)), _two(100 * high / float(years))
    return {
        "patients": patients,
        "patient_years": round_half_up(years, 2),
        "events": events,
        "rate_per_100": None if rate is None else round_half_up(rate, 2),
        "lo": lo,
        "hi": hi,
        "ratio": None if ratio is None else round_half_up(ratio, 2),
        "p_value": p_value,
        "flagged": bool(ratio is not None and ratio > 2 and p_value is not None and p_value < 0.05
                        and patients >= 10),
    }


def _two(value: float) -> float:
    """Two decimals, half up, after snapping away float noise (1e-10)."""
    return round_half_up(Fraction(f"{value:.10f}"), 2)


def _three(value: float) -> float:
    """Three decimals, half up, after snapping away float noise (1e-10)."""
    return round_half_up(Fraction(f"{value:.10f}"), 3)


def _at_timepoint(measurements: list[Measurement], timepoint: str) -> Measurement | None:
    return next((m for m in measurements if m.timepoint == timepoint), None)
