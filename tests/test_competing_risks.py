"""Competing risks and device performance (analysis.md, "Beyond the paper: competing risks and device
performance"): the definitions pinned on hand-built histories, the Aalen-Johansen sums against lifelines,
and the demo's ``analyze --json`` shape."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from helpers import Loaded, Tiny
from scipy.stats import chi2, poisson
from typer.testing import CliRunner

from drg_etl.analysis.competing_risks import aalen_johansen
from drg_etl.analysis.device_performance import group_figures
from drg_etl.analysis.national import publishable
from drg_etl.cli import app

DAYS = ("365", "730", "1095")
IMPLANT = dt.date(2015, 3, 1)
END = dt.date(2019, 12, 31)
FOLLOWED = (END - IMPLANT).days  # 1766: the days of a patient followed from IMPLANT to the observation end


def _day(offset: int) -> dt.date:
    return IMPLANT + dt.timedelta(days=offset)


class Cohort:
    """Patients of a ``Tiny`` warehouse, each implanted on IMPLANT (at auh unless told) with a pulse generator."""

    def __init__(self, tiny: Tiny) -> None:
        self.t = tiny

    def person(self, no: int, center: str = "auh", model: str | None = "Axium", implant: dt.date = IMPLANT,
               generator: bool = True) -> str:
        key = f"{no:064d}"
        self.t.patient(center, key)
        self.t.add("procedures", center, patient_key=key, procedure="trial", date=implant - dt.timedelta(days=40),
                   end_date=implant - dt.timedelta(days=30), trial_success=True)
        self.t.add("procedures", center, patient_key=key, procedure="implant", date=implant)
        if generator:
            self.generator(key, f"ipg-{no}", implant, model, center)
        return key

    def generator(self, key: str, ref: str, placed: dt.date, model: str | None, center: str = "auh") -> None:
        self.t.add("devices", center, patient_key=key, device_ref=ref, device_type="generator", serial=ref,
                   model=model, placed_date=placed, status="active", status_date=placed)

    def defect(self, key: str, day: dt.date, kind: str = "lead_fracture", center: str = "auh") -> None:
        self.t.add("complications", center, patient_key=key, date=day, complication=kind, permanent=False)

    def explant(self, key: str, day: dt.date, center: str = "auh") -> None:
        self.t.add("procedures", center, patient_key=key, procedure="explant", date=day)


# -- competing risks ------------------------------------------------------------------------------------------

def _ties(tiny: Tiny) -> None:
    """P1 fracture at 100 and P2 explanted at 100 (two patients, one day, two kinds); P3 malfunction and
    explant both at 200 (the defect); P5 fracture at 400 (and a second at 500: only the first counts here);
    P4 nothing (a fracture before the implant does not count)."""
    c = Cohort(tiny)
    p1, p2, p3, p4, p5 = (c.person(n) for n in range(1, 6))
    c.defect(p1, _day(100))
    c.explant(p2, _day(100))
    c.defect(p3, _day(200), "lead_malfunction")
    c.explant(p3, _day(200))
    c.defect(p4, IMPLANT - dt.timedelta(days=20))
    c.defect(p5, _day(400))
    c.defect(p5, _day(500))


def test_hand_computed_aalen_johansen_with_ties(tiny: Tiny) -> None:
    _ties(tiny)
    figures = tiny.analyze()
    cr = figures["competing_risks"]
    assert cr["lead_defect"]["events"] == 3 and cr["explant_without_defect"]["events"] == 1
    # Day 100: 5 at risk, one defect and one explant -> each 1/5; S = 3/5. Day 200: 3 at risk, P3's defect
    # (on its explant day: the defect) -> + 3/5 * 1/3; S = 2/5. Day 400: 2 at risk -> + 2/5 * 1/2.
    assert [cr["lead_defect"]["at_days"][d]["cif"] for d in DAYS] == [0.4, 0.6, 0.6]
    assert [cr["explant_without_defect"]["at_days"][d]["cif"] for d in DAYS] == [0.2, 0.2, 0.2]
    # 1 - KM (censoring at the explant): 1 - 8/15 at 365, 1 - 4/15 after 400; the same as survival's.
    assert [cr["lead_defect"]["at_days"][d]["one_minus_km"] for d in DAYS] == [0.467, 0.733, 0.733]
    km = figures["survival"]["lead_defect_free"]["at_days"]
    for d in DAYS:
        assert cr["lead_defect"]["at_days"][d]["one_minus_km"] == round(1 - km[d]["s"], 3)
        assert cr["lead_defect"]["at_days"][d]["cif"] <= cr["lead_defect"]["at_days"][d]["one_minus_km"]
    assert cr["lead_defect"]["events"] == figures["survival"]["lead_defect_free"]["events"]
    assert set(cr["explant_without_defect"]["at_days"]["365"]) == {"cif"}


def test_no_events_and_nobody_at_risk(tiny: Tiny) -> None:
    c = Cohort(tiny)
    c.person(1)
    c.person(2)
    cr = tiny.analyze()["competing_risks"]
    for kind in ("lead_defect", "explant_without_defect"):
        assert cr[kind]["events"] == 0
        assert all(cr[kind]["at_days"][d]["cif"] == 0.0 for d in DAYS)
    assert all(cr["lead_defect"]["at_days"][d]["one_minus_km"] == 0.0 for d in DAYS)
    # Observed for 487 days only: nobody is at risk at 730 and 1095 (null), as in survival.
    cr = tiny.analyze("2016-06-30")["competing_risks"]
    assert cr["lead_defect"]["at_days"]["365"] == {"cif": 0.0, "one_minus_km": 0.0}
    for d in ("730", "1095"):
        assert cr["lead_defect"]["at_days"][d] is None
        assert cr["explant_without_defect"]["at_days"][d] is None


def test_nobody_implanted(tiny: Tiny) -> None:
    tiny.patient("auh").trial("auh", "2015-01-10")
    figures = tiny.analyze()
    for kind in ("lead_defect", "explant_without_defect"):
        assert figures["competing_risks"][kind]["events"] == 0
        assert all(v is None for v in figures["competing_risks"][kind]["at_days"].values())
    for group in figures["device_performance"]["by_center"].values():
        assert group == {"patients": 0, "patient_years": 0.0, "events": 0, "rate_per_100": None, "lo": None,
                         "hi": None, "ratio": None, "p_value": None, "flagged": False}


def test_an_event_on_the_implant_day(tiny: Tiny) -> None:
    c = Cohort(tiny)
    p1, p2, _p3, _p4 = (c.person(n) for n in range(1, 5))
    c.defect(p1, IMPLANT)                    # day 0: a defect
    c.explant(p2, IMPLANT)                   # day 0: an explant
    cr = tiny.analyze()["competing_risks"]
    assert cr["lead_defect"]["at_days"]["365"] == {"cif": 0.25, "one_minus_km": 0.25}
    assert cr["explant_without_defect"]["at_days"]["1095"] == {"cif": 0.25}


def _lifelines_cif(times: list[int], kinds: list[int], kind: int, day: int) -> float:
    from lifelines import AalenJohansenFitter

    fitter = AalenJohansenFitter(calculate_variance=False).fit(times, kinds, event_of_interest=kind)
    curve = fitter.cumulative_density_.iloc[:, 0]
    return float(curve.loc[:day].iloc[-1])


def test_aalen_johansen_equals_lifelines_without_ties_of_different_kinds() -> None:
    """lifelines jitters an event tied with one of the other kind; so every day here has one kind of event
    at most (ties of one kind, and censorings on an event day, remain). No time is 0: lifelines' curve starts
    at 0 with 0 and leaves out events at time 0, where the spec's sum (t_j <= t) counts a defect on the implant
    day (pinned by hand in test_an_event_on_the_implant_day)."""
    rng = random.Random(17)
    for _ in range(60):
        n = rng.randint(2, 40)
        kind_of_day: dict[int, int] = {}
        times, kinds = [], []
        for _ in range(n):
            t = rng.choice([1, 50, 100, 364, 365, 366, 700, 730, 1000, 1095, 1200, rng.randint(1, 1500)])
            k = rng.choice([0, 1, 2])
            if k and kind_of_day.setdefault(t, k) != k:
                k = 0  # the other kind already ends on this day: censor instead
            times.append(t)
            kinds.append(k)
        if not any(kinds):
            continue
        rows = [(t, sum(1 for u, k in zip(times, kinds, strict=True) if u == t and k == 1),
                 sum(1 for u, k in zip(times, kinds, strict=True) if u == t and k == 2), times.count(t))
                for t in sorted(set(times))]
        ours = aalen_johansen(rows)
        for index, day in enumerate((365, 730, 1095)):
            for kind, name in ((1, "lead_defect"), (2, "explant_without_defect")):
                if not any(t >= day for t in times):
                    assert ours[name][index] is None
                elif kind not in kinds or min(t for t, k in zip(times, kinds, strict=True) if k == kind) > day:
                    assert ours[name][index] == 0.0
                else:
                    assert ours[name][index] == pytest.approx(_lifelines_cif(times, kinds, kind, day), abs=1e-12)


# -- device performance -----------------------------------------------------------------------------------

def _garwood(events: int, years: float) -> tuple[float, float]:
    lo = 0.0 if events == 0 else chi2.ppf(0.025, 2 * events) / 2
    return 100 * lo / years, 100 * chi2.ppf(0.975, 2 * events + 2) / 2 / years


def test_rates_per_model_and_center_by_hand(tiny: Tiny) -> None:
    c = Cohort(tiny)
    a1 = c.person(1)                                    # Axium, auh: followed to the end, two defects
    c.defect(a1, _day(100))
    c.defect(a1, _day(900), "lead_malfunction")
    c.defect(a1, IMPLANT - dt.timedelta(days=5))        # before the implant: not counted
    a2 = c.person(2, center="ouh")                      # Axium, ouh: explanted at 730, a defect on that day
    c.defect(a2, _day(730), center="ouh")               # counts; one after the explant does not
    c.defect(a2, _day(731), center="ouh")
    c.explant(a2, _day(730), center="ouh")
    p3 = c.person(3, model="Proclaim DRG")              # Proclaim DRG, auh: one defect
    c.defect(p3, _day(300))
    p4 = c.person(4, model="Proclaim DRG", center="rh")  # its first generator is Proclaim DRG, the later Axium
    c.generator(p4, "ipg-4b", _day(400), "Axium", "rh")
    c.person(5, center="aauh", model=None)              # no model: unknown
    c.person(6, center="aauh", generator=False)         # no generator: unknown
    dp = tiny.analyze()["device_performance"]
    assert list(dp["by_ipg_model"]) == ["Axium", "Proclaim DRG", "unknown"]  # unknown: some patient has it
    assert list(dp["by_center"]) == ["auh", "ouh", "rh", "aauh"]
    total_days, total_events = 5 * FOLLOWED + 730, 4
    for group, patients, days, events in (
            (dp["by_ipg_model"]["Axium"], 2, FOLLOWED + 730, 3),
            (dp["by_ipg_model"]["Proclaim DRG"], 2, 2 * FOLLOWED, 1),
            (dp["by_ipg_model"]["unknown"], 2, 2 * FOLLOWED, 0),
            (dp["by_center"]["auh"], 2, 2 * FOLLOWED, 3),
            (dp["by_center"]["ouh"], 1, 730, 1),
            (dp["by_center"]["aauh"], 2, 2 * FOLLOWED, 0)):
        years = days / 365.25
        other_rate = (total_events - events) / ((total_days - days) / 365.25)
        lo, hi = _garwood(events, years)
        p = 1.0 if events == 0 else poisson.sf(events - 1, other_rate * years)
        assert group == {
            "patients": patients, "patient_years": round(years, 2), "events": events,
            "rate_per_100": round(100 * events / years, 2), "lo": round(lo, 2), "hi": round(hi, 2),
            "ratio": round(100 * events / years / (100 * other_rate), 2),
            "p_value": float(f"{p:.3g}"), "flagged": False}, group
    # auh by hand: 3 events in 3532 days = 9.67 years, 31.02 per 100; the others: 1 in 6028 days = 16.50 years,
    # 6.06 per 100; ratio 5.12; p = P(X >= 3), X ~ Poisson(3532 / 6028) = 0.0217.
    assert (dp["by_center"]["auh"]["rate_per_100"], dp["by_center"]["auh"]["ratio"]) == (31.02, 5.12)
    assert dp["by_center"]["auh"]["p_value"] == 0.0217
    assert dp["by_center"]["auh"]["flagged"] is False  # ratio > 2 and p < 0.05, but 2 patients


def test_no_patient_years_and_others_without_events(tiny: Tiny) -> None:
    c = Cohort(tiny)
    p1 = c.person(1, model="Proclaim DRG")   # explanted on the implant day: no patient-years
    c.explant(p1, IMPLANT)
    c.person(2)                              # Axium, no events
    c.person(3)
    dp = tiny.analyze()["device_performance"]["by_ipg_model"]
    assert dp["Proclaim DRG"] == {"patients": 1, "patient_years": 0.0, "events": 0, "rate_per_100": None,
                                  "lo": None, "hi": None, "ratio": None, "p_value": 1.0, "flagged": False}
    # The others of Axium (the Proclaim DRG patient) have no events and no years: no ratio, no p.
    assert dp["Axium"]["ratio"] is None and dp["Axium"]["p_value"] is None
    assert dp["Axium"]["rate_per_100"] == 0.0 and dp["Axium"]["lo"] == 0.0
    assert dp["Axium"]["hi"] == round(100 * chi2.ppf(0.975, 2) / 2 / (2 * FOLLOWED / 365.25), 2)


def test_the_others_without_events_give_no_ratio_and_a_defect_with_zero_expected_has_p_zero(tiny: Tiny) -> None:
    c = Cohort(tiny)
    p1 = c.person(1, model="Proclaim DRG")
    c.defect(p1, _day(10))
    c.person(2)
    dp = tiny.analyze()["device_performance"]["by_ipg_model"]
    assert dp["Proclaim DRG"]["events"] == 1 and dp["Proclaim DRG"]["ratio"] is None
    assert dp["Proclaim DRG"]["p_value"] == 0.0  # X ~ Poisson(0): P(X >= 1) = 0
    assert dp["Axium"]["ratio"] == 0.0 and dp["Axium"]["p_value"] == 1.0


def test_a_model_failing_more_often_is_flagged(tiny: Tiny) -> None:
    c = Cohort(tiny)
    for n in range(1, 11):                   # ten Proclaim DRG patients, two defects each
        key = c.person(n, model="Proclaim DRG", center="ouh")
        c.defect(key, _day(100 + n), center="ouh")
        c.defect(key, _day(600 + n), center="ouh")
    for n in range(11, 21):                  # ten Axium patients, one defect among them
        key = c.person(n)
        if n == 11:
            c.defect(key, _day(50))
    figures = tiny.analyze()
    dp = figures["device_performance"]
    proclaim = dp["by_ipg_model"]["Proclaim DRG"]
    assert (proclaim["patients"], proclaim["events"], proclaim["ratio"]) == (10, 20, 20.0)
    assert proclaim["p_value"] < 0.05 and proclaim["flagged"] is True
    assert dp["by_center"]["ouh"]["flagged"] is True and dp["by_ipg_model"]["Axium"]["flagged"] is False
    # Nine of them would not be enough patients: the flag is the first-stage screen.
    assert group_figures(9, 9 * FOLLOWED, 18, 19 * FOLLOWED, 19)["flagged"] is False
    assert group_figures(10, 10 * FOLLOWED, 18, 20 * FOLLOWED, 19)["flagged"] is True


def test_publish_masks_one_to_four_and_what_is_computed_from_them(tiny: Tiny) -> None:
    _ties(tiny)                              # 5 Axium patients at auh, 3 lead defects (4 complications)
    c = Cohort(tiny)
    p6 = c.person(6, model="Proclaim DRG", center="rh")
    c.defect(p6, _day(20), center="rh")
    figures = tiny.analyze()
    masked = publishable(figures, complementary=False)  # the counts' own masking (complementary: test_disclosure)
    cr = masked["competing_risks"]
    assert cr["lead_defect"]["events"] == "<5" and cr["explant_without_defect"]["events"] == "<5"
    assert all(cr["lead_defect"]["at_days"][d] == {"cif": "<5", "one_minus_km": "<5"} for d in DAYS)
    assert all(cr["explant_without_defect"]["at_days"][d] == {"cif": "<5"} for d in DAYS)
    axium = masked["device_performance"]["by_ipg_model"]["Axium"]
    assert axium["patients"] == 5 and axium["patient_years"] == figures["device_performance"][
        "by_ipg_model"]["Axium"]["patient_years"]
    assert axium["events"] == "<5"
    assert all(axium[k] == "<5" for k in ("rate_per_100", "lo", "hi", "ratio", "p_value"))
    proclaim = masked["device_performance"]["by_ipg_model"]["Proclaim DRG"]
    assert all(v == "<5" for k, v in proclaim.items() if k != "flagged") and proclaim["flagged"] is False
    assert masked["device_performance"]["by_center"]["ouh"] == figures["device_performance"]["by_center"]["ouh"]


def test_the_demos_analyze_json_has_both_sections(loaded_demo: Loaded) -> None:
    result = CliRunner().invoke(app, ["analyze", "--warehouse", str(loaded_demo.warehouse), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    cr, dp = figures["competing_risks"], figures["device_performance"]
    assert set(cr) == {"lead_defect", "explant_without_defect"}
    for kind, keys in (("lead_defect", {"cif", "one_minus_km"}), ("explant_without_defect", {"cif"})):
        assert set(cr[kind]) == {"events", "at_days"} and set(cr[kind]["at_days"]) == set(DAYS)
        assert all(set(v) == keys for v in cr[kind]["at_days"].values())
    assert cr["lead_defect"]["events"] == figures["survival"]["lead_defect_free"]["events"]
    assert cr["explant_without_defect"]["events"] <= figures["survival"]["system_explant_free"]["events"]
    for d in DAYS:
        s = figures["survival"]["lead_defect_free"]["at_days"][d]["s"]
        assert cr["lead_defect"]["at_days"][d]["one_minus_km"] == round(1 - s, 3)
        assert cr["lead_defect"]["at_days"][d]["cif"] <= cr["lead_defect"]["at_days"][d]["one_minus_km"]
    assert set(dp) == {"by_ipg_model", "by_center"}
    assert set(dp["by_ipg_model"]) >= {"Axium", "Proclaim DRG"} and set(dp["by_center"]) == {"auh", "ouh", "rh", "aauh"}
    keys = {"patients", "patient_years", "events", "rate_per_100", "lo", "hi", "ratio", "p_value", "flagged"}
    for grouping in dp.values():
        assert all(set(g) == keys for g in grouping.values())
    implanted = figures["cohort"]["implanted_patients"]
    assert sum(g["patients"] for g in dp["by_ipg_model"].values()) == implanted
    assert sum(g["patients"] for g in dp["by_center"].values()) == implanted
    assert sum(g["events"] for g in dp["by_ipg_model"].values()) == sum(g["events"] for g in dp["by_center"].values())
    published = CliRunner().invoke(app, ["analyze", "--warehouse", str(loaded_demo.warehouse), "--json",
                                         "--publish"])
    assert published.exit_code == 0, published.output
    masked = json.loads(published.output)
    for grouping in masked["device_performance"].values():
        for g in grouping.values():
            assert not (isinstance(g["events"], int) and 1 <= g["events"] <= 4)
            assert not (isinstance(g["patients"], int) and 1 <= g["patients"] <= 4)
