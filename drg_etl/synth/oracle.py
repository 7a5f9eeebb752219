"""The generator's oracle: the national figures computed from the true histories in plain Python.

It follows analysis.md's definitions on the generator's own objects, independently of the
readers, the warehouse and its SQL, so that tests can hold the pipeline against it.
Lead states are those the placing center recorded (what the deliveries say).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from fractions import Fraction
from typing import Any

import numpy as np

from drg_etl.dates import STUDY_END, STUDY_START
from drg_etl.synth.model import Measurement, Person
from drg_etl.vocabulary import (
    CENTERS,
    FAULTY_LEAD_STATUSES,
    LEAD_DEFECT_COMPLICATIONS,
    MEASURES,
    PAIN_LOCATIONS,
    REMOVED_LEAD_STATUSES,
)

#: Above this many pairs the exact test is not computed: its cost grows with n^3
#: (1,000 pairs take about a second; 3,000 take over a minute).
EXACT_TEST_MAX_PAIRS = 1000
#: Integer units per measure: NRS average has one decimal.
MEASURE_SCALE = {"nrs_average": 10, "nrs_worst": 1, "pcs_total": 1}


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
        }


def _at_timepoint(measurements: list[Measurement], timepoint: str) -> Measurement | None:
    return next((m for m in measurements if m.timepoint == timepoint), None)
