"""Device survival (analysis.md, "Beyond the paper"): the warehouse's SQL + lifelines against the oracle, and
the definitions pinned on hand-built histories."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections import Counter

import duckdb
import pytest
from helpers import Loaded, Tiny
from typer.testing import CliRunner

from drg_etl.analysis import survival
from drg_etl.analysis.national import national_analysis, publishable
from drg_etl.cli import app
from drg_etl.synth import oracle

DAYS = ("365", "730", "1095")


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_other_seed", "loaded_seed13", "loaded_2000"])
def test_survival_equals_the_generators_oracle(fixture: str, request: pytest.FixtureRequest) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    con = duckdb.connect(str(loaded.warehouse), read_only=True)
    try:
        ours = national_analysis(con)["survival"]
    finally:
        con.close()
    truth = loaded.gen.truth["figures"]["survival"]
    assert ours == truth
    assert ours["lead_defect_free"]["events"] > 0 and ours["system_explant_free"]["events"] > 0
    assert ours["leads"]["revised"] > 0 and ours["leads"]["faulty_at_end"] > 0


def test_the_demos_survival_agrees_with_its_cohort_figures(loaded_demo: Loaded) -> None:
    figures = loaded_demo.gen.truth["figures"]
    s, cohort = figures["survival"], figures["cohort"]
    # Everyone of the demo was implanted before the cutoff; every lead defect followed the implant.
    assert s["lead_defect_free"]["patients"] == s["system_explant_free"]["patients"] == cohort["implanted_patients"]
    assert s["lead_defect_free"]["events"] == figures["complications"]["lead_defect_patients"]
    assert s["system_explant_free"]["events"] == cohort["implanted_patients"] - cohort["still_implanted"]


def test_lifelines_and_the_oracles_kaplan_meier_agree_on_random_samples() -> None:
    rng = random.Random(4)
    for _ in range(200):
        n = rng.randint(1, 40)
        times = [rng.choice([0, 100, 200, 364, 365, 366, 700, 730, 1000, 1095, 1200, rng.randint(0, 1500)])
                 for _ in range(n)]
        events = [rng.random() < 0.5 for _ in range(n)]
        counts = Counter(zip(times, events, strict=True))
        assert survival.kaplan_meier(times, events) == oracle.kaplan_meier(counts), (times, events)


# -- the definitions, pinned on hand-built histories ---------------------------------------------------

IMPLANT = dt.date(2015, 3, 1)


def _day(offset: int) -> dt.date:
    return IMPLANT + dt.timedelta(days=offset)


class Cohort:
    """Several patients of a ``Tiny`` warehouse, each implanted at auh on IMPLANT unless told."""

    def __init__(self, tiny: Tiny) -> None:
        self.t = tiny

    def person(self, no: int, implant: dt.date = IMPLANT) -> str:
        key = f"{no:064d}"
        self.t.patient("auh", key)
        self.t.add("procedures", "auh", patient_key=key, procedure="trial", date=implant - dt.timedelta(days=40),
                   end_date=implant - dt.timedelta(days=30), trial_success=True)
        self.t.add("procedures", "auh", patient_key=key, procedure="implant", date=implant)
        return key

    def lead(self, key: str, ref: str, placed: dt.date, status: str = "active", status_date: dt.date | None = None,
             level: str = "L5", side: str = "left") -> None:
        self.t.add("devices", "auh", patient_key=key, device_ref=ref, device_type="lead", serial=ref,
                   placed_date=placed, level=level, side=side, status=status, status_date=status_date or placed)

    def defect(self, key: str, day: dt.date, kind: str = "lead_fracture") -> None:
        self.t.add("complications", "auh", patient_key=key, date=day, complication=kind, permanent=False)

    def explant(self, key: str, day: dt.date) -> None:
        self.t.add("procedures", "auh", patient_key=key, procedure="explant", date=day)


def _ties(tiny: Tiny) -> Cohort:
    """Five patients implanted 2015-03-01, lead-defect and explant times in days from the implant:

    P1 fracture at 100 (event); P2 explanted at 100 (defect curve: censored on P1's event day);
    P3 malfunction and explant both at 200 (an event on its censoring day); P5 fracture at 400;
    P4 nothing (censored at observation end; a fracture before the implant does not count).
    """
    c = Cohort(tiny)
    p1, p2, p3, p4, p5 = (c.person(n) for n in range(1, 6))
    c.lead(p1, "A", IMPLANT, "fractured", _day(100))            # faulty at end, replaced (abandoned) at 130
    c.lead(p1, "B", _day(130))
    c.defect(p1, _day(100))
    c.lead(p2, "C", IMPLANT, "removed", _day(100))              # removed at the explant: not revised
    c.explant(p2, _day(100))
    c.lead(p3, "D", IMPLANT, "removed", _day(50), level="L4")   # replaced before the explant: revised
    c.lead(p3, "E", _day(50), "removed", _day(200), level="L4")
    c.defect(p3, _day(200), "lead_malfunction")
    c.explant(p3, _day(200))
    c.lead(p4, "G", IMPLANT)
    c.lead(p4, "H", IMPLANT, "removed", _day(300), level="L3")  # removed, no explant: revised
    c.defect(p4, IMPLANT - dt.timedelta(days=20))
    c.lead(p5, "F", IMPLANT, "fractured", _day(400))            # faulty at end
    c.defect(p5, _day(400))
    return c


def _ci(s: float, greenwood: float) -> tuple[float, float]:
    """Greenwood's variance on the log(-log) scale, written out by hand."""
    z = 1.959963984540054
    v = math.log(s)
    return (math.exp(-math.exp(math.log(-v) - z * math.sqrt(greenwood) / v)),
            math.exp(-math.exp(math.log(-v) + z * math.sqrt(greenwood) / v)))


def test_hand_computed_ties_and_an_event_on_its_censoring_day(tiny: Tiny) -> None:
    _ties(tiny)
    s = tiny.analyze()["survival"]
    defect, system = s["lead_defect_free"], s["system_explant_free"]
    assert (defect["patients"], defect["events"]) == (5, 3)
    assert (system["patients"], system["events"]) == (5, 2)
    # Defect curve. Day 100: 5 at risk (P2's censoring counts after P1's event) -> 4/5; censoring first
    # would give 3/4. Day 200: 3 at risk, P3's event on its explant day -> 8/15. Day 400: 2 at risk -> 4/15.
    lo, hi = _ci(8 / 15, 1 / (5 * 4) + 1 / (3 * 2))
    assert (round(lo, 3), round(hi, 3)) == (0.068, 0.863)
    assert defect["at_days"]["365"] == {"s": 0.533, "lo": 0.068, "hi": 0.863, "at_risk": 2}
    lo, hi = _ci(4 / 15, 1 / (5 * 4) + 1 / (3 * 2) + 1 / (2 * 1))
    assert (round(lo, 3), round(hi, 3)) == (0.01, 0.686)
    assert defect["at_days"]["730"] == {"s": 0.267, "lo": 0.01, "hi": 0.686, "at_risk": 1}
    assert defect["at_days"]["1095"] == {"s": 0.267, "lo": 0.01, "hi": 0.686, "at_risk": 1}
    # System curve: explants at 100 (5 at risk) and 200 (4 at risk) -> 4/5 * 3/4 = 0.6.
    lo, hi = _ci(0.6, 1 / (5 * 4) + 1 / (4 * 3))
    assert (round(lo, 3), round(hi, 3)) == (0.126, 0.882)
    for day in DAYS:
        assert system["at_days"][day] == {"s": 0.6, "lo": 0.126, "hi": 0.882, "at_risk": 3}
    # Leads A-H: A (replaced by B at its level and side) and D (replaced before the explant) and
    # H (removed, no explant) revised; C and E went at an explant; A and F fractured at the end.
    assert s["leads"] == {"placed": 8, "revised": 3, "revised_pct": 37.5, "faulty_at_end": 2}


def test_nobody_at_risk_gives_null_and_later_implants_and_events_are_left_out(tiny: Tiny) -> None:
    c = _ties(tiny)
    late = c.person(6, implant=dt.date(2017, 9, 1))  # implanted in the window, but after this observation end
    c.lead(late, "L", dt.date(2017, 9, 1))
    figures = tiny.analyze("2017-06-30")             # 852 days after IMPLANT
    assert figures["cohort"]["implanted_patients"] == 6
    defect, system = figures["survival"]["lead_defect_free"], figures["survival"]["system_explant_free"]
    assert defect["patients"] == system["patients"] == 5
    assert defect["at_days"]["1095"] is None and system["at_days"]["1095"] is None
    assert defect["at_days"]["730"]["at_risk"] == 1 and system["at_days"]["730"]["at_risk"] == 3
    assert figures["survival"]["leads"]["placed"] == 8


def test_no_events_gives_one_and_an_interval_of_one(tiny: Tiny) -> None:
    c = Cohort(tiny)
    for n in (1, 2):
        c.lead(c.person(n), f"L{n}", IMPLANT)
    s = tiny.analyze()["survival"]
    for curve in ("lead_defect_free", "system_explant_free"):
        assert s[curve]["events"] == 0 and s[curve]["patients"] == 2
        for day in DAYS:
            assert s[curve]["at_days"][day] == {"s": 1.0, "lo": 1.0, "hi": 1.0, "at_risk": 2}
    assert s["leads"] == {"placed": 2, "revised": 0, "revised_pct": 0.0, "faulty_at_end": 0}


def test_before_the_first_event_the_estimate_is_one(tiny: Tiny) -> None:
    c = Cohort(tiny)
    for n in range(1, 4):
        c.lead(c.person(n), f"L{n}", IMPLANT)
    c.defect(f"{1:064d}", _day(800))
    defect = tiny.analyze()["survival"]["lead_defect_free"]
    assert defect["at_days"]["365"] == {"s": 1.0, "lo": 1.0, "hi": 1.0, "at_risk": 3}
    assert defect["at_days"]["730"] == {"s": 1.0, "lo": 1.0, "hi": 1.0, "at_risk": 3}
    lo, hi = _ci(2 / 3, 1 / (3 * 2))
    assert defect["at_days"]["1095"] == {"s": 0.667, "lo": round(lo, 3), "hi": round(hi, 3), "at_risk": 2}


# -- publishing ----------------------------------------------------------------------------------------

def test_publish_masks_survival_counts_one_to_four(tiny: Tiny) -> None:
    _ties(tiny)
    masked = publishable(tiny.analyze("2017-06-30"))["survival"]
    defect, system = masked["lead_defect_free"], masked["system_explant_free"]
    assert defect["patients"] == 5 and defect["events"] == "<5" and system["events"] == "<5"
    # The estimates of a curve with 1-4 events are computed from them: masked too.
    assert defect["at_days"]["365"] == {"s": "<5", "lo": "<5", "hi": "<5", "at_risk": "<5"}
    assert system["at_days"]["730"] == {"s": "<5", "lo": "<5", "hi": "<5", "at_risk": "<5"}
    assert defect["at_days"]["1095"] is None
    assert masked["leads"] == {"placed": 8, "revised": "<5", "revised_pct": "<5", "faulty_at_end": "<5"}


def test_publish_keeps_zero_and_five_or_more() -> None:
    figures = {
        "lead_defect_free": {"patients": 40, "events": 0, "at_days": {
            "365": {"s": 1.0, "lo": 1.0, "hi": 1.0, "at_risk": 5}, "730": {"s": 1.0, "lo": 1.0, "hi": 1.0,
                                                                           "at_risk": 4}, "1095": None}},
        "system_explant_free": {"patients": 40, "events": 7, "at_days": {
            "365": {"s": 0.9, "lo": 0.8, "hi": 0.95, "at_risk": 30}, "730": None, "1095": None}},
        "leads": {"placed": 80, "revised": 5, "revised_pct": 6.3, "faulty_at_end": 0},
    }
    masked = survival.mask_survival(figures)
    assert masked["lead_defect_free"]["events"] == 0
    assert masked["lead_defect_free"]["at_days"]["365"] == {"s": 1.0, "lo": 1.0, "hi": 1.0, "at_risk": 5}
    assert masked["lead_defect_free"]["at_days"]["730"] == {"s": 1.0, "lo": 1.0, "hi": 1.0, "at_risk": "<5"}
    assert masked["system_explant_free"] == figures["system_explant_free"]
    assert masked["leads"] == figures["leads"]
    assert figures["lead_defect_free"]["at_days"]["730"]["at_risk"] == 4  # the input is left alone


def test_analyze_publish_prints_survival(loaded_demo: Loaded) -> None:
    runner = CliRunner()
    args = ["analyze", "--warehouse", str(loaded_demo.warehouse), "--json"]
    plain = json.loads(runner.invoke(app, args).output)["survival"]
    published = json.loads(runner.invoke(app, [*args, "--publish"]).output)["survival"]
    assert plain == loaded_demo.gen.truth["figures"]["survival"]
    assert published == survival.mask_survival(plain)
