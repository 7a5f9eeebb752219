"""Build per-patient histories, block by block, so memory does not grow with the cohort.

A block holds ``design.block`` trial patients (43 for the demo cohort) plus a few
screened-only persons. Each person gets a random stream of its own, derived from the
seed and its number, so a block is reproducible on its own.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from typing import Any

from drg_etl.core.cpr import Cpr, synthesize_cpr
from drg_etl.core.dates import STUDY_START, add_months
from drg_etl.synth.design import Design
from drg_etl.synth.model import Complication, Generator, Lead, Measurement, Person, Procedure
from drg_etl.synth.scores import (
    clamp,
    fit_pairs,
    pcs_items_for_total,
    worst_for_average,
)

#: The courses that bring a lead defect (the model-failure setting steers their generator model).
LEAD_DEFECT_PROFILES = frozenset({"functional_replaced", "broken", "explanted_lead_defect"})
FULLY_FUNCTIONAL_PROFILES = ("functional", "functional_migration", "functional_replaced")
LEVELS_BY_LOCATION = {
    "lower_extremity": ["L2", "L3", "L4", "L5", "S1"],
    "upper_extremity": ["C5", "C6", "C7", "C8", "T1"],
    "thoracic_abdominal": ["T4", "T6", "T8", "T10", "T11", "T12"],
}
DIAGNOSIS_WEIGHTS = {
    "crps_1": 30, "crps_2": 10, "postsurgical": 30, "posttraumatic": 15, "postherpetic": 5, "other": 10,
}
LEAD_MODELS = ["Slim-Tip DRG lead 50 cm", "Slim-Tip DRG lead 90 cm"]
# Birth dates cycle over this many days from 1935-01-01 (to 1984); see person_cpr.
_BIRTH_DAYS = 18_000
_BIRTH_START = dt.date(1935, 1, 1)
PHANTOM_SERIAL = 99  # CPR digits 8-9 reserved for injected phantom persons


def person_cpr(person_no: int, sex: str, seed: int, rng: random.Random) -> Cpr:
    """A CPR number unique to ``person_no``: birth date and digits 8-9 encode the number."""
    day = (person_no * 7919 + seed * 104_729) % _BIRTH_DAYS
    serial = person_no // _BIRTH_DAYS
    if serial >= PHANTOM_SERIAL:
        raise ValueError("cohort too large for unique synthetic CPR numbers")
    birth = _BIRTH_START + dt.timedelta(days=day)
    return _cpr_with_serial(birth, sex, serial, rng)


def phantom_cpr(number: int, rng: random.Random) -> Cpr:
    """A valid CPR number that belongs to no person of the cohort."""
    birth = _BIRTH_START + dt.timedelta(days=(number * 7919) % _BIRTH_DAYS)
    return _cpr_with_serial(birth, rng.choice(["male", "female"]), PHANTOM_SERIAL, rng)


def _cpr_with_serial(birth: dt.date, sex: str, serial: int, rng: random.Random) -> Cpr:
    base = synthesize_cpr(birth, sex, rng)
    digits = base.digits[:6] + base.digits[6] + f"{serial:02d}" + base.digits[9]
    return Cpr(digits)


def _rand_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    if end < start:
        end = start
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def _days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


class _Builder:
    """Builds one person's course; keeps the running state (leads, ids) of that person."""

    def __init__(self, person: Person, rng: random.Random, design: Design, targets: dict[str, Any],
                 model_rng: random.Random | None = None):
        self.p = person
        self.rng = rng
        # The model-failure setting's own stream: the person's stream draws exactly as without it.
        self.model_rng = model_rng
        self.failure_ratio = design.model_failure_ratio
        self.failing_model = design.failing_model
        self.cutoff = design.cutoff
        self.targets = targets
        self.next_lead = 1

    # -- devices ---------------------------------------------------------------------
    def place_leads(self, center: str, day: dt.date, count: int) -> list[str]:
        levels = LEVELS_BY_LOCATION[self.p.pain_location]
        side = self.rng.choice(["left", "right"])
        chosen = sorted(self.rng.sample(levels, count), key=levels.index)
        return [self.place_lead(center, day, level, side) for level in chosen]

    def place_lead(self, center: str, day: dt.date, level: str, side: str, replaces: str | None = None) -> str:
        lead_id = f"lead-{self.next_lead}"
        self.next_lead += 1
        self.p.leads.append(
            Lead(
                lead_id=lead_id,
                center=center,
                model=self.rng.choice(LEAD_MODELS),
                serial=f"{self.rng.randint(10_000_000, 99_999_999)}",
                level=level,
                side=side,
                placed=day,
                status="active",
                status_date=day,
                replaces=replaces,
            )
        )
        return lead_id

    def place_generator(self, center: str, day: dt.date, first: bool = False) -> str:
        model = "Axium" if day.year < 2017 else self.rng.choice(["Axium", "Proclaim DRG"])
        if first and day.year >= 2017 and self.model_rng is not None and self.p.profile in LEAD_DEFECT_PROFILES:
            other = "Axium" if self.failing_model == "Proclaim DRG" else "Proclaim DRG"
            ratio = self.failure_ratio
            model = self.failing_model if self.model_rng.random() < ratio / (ratio + 1) else other
        prefix = "AX" if model == "Axium" else "PD"
        device_id = f"ipg-{len(self.p.generators) + 1}"
        self.p.generators.append(
            Generator(device_id, center, model, f"{prefix}{self.rng.randint(100_000, 999_999)}", day, "active", day)
        )
        return device_id

    def active_leads(self) -> list[Lead]:
        return [lead for lead in self.p.leads if lead.status not in ("removed", "removed_fragment_retained")]

    # -- events ----------------------------------------------------------------------
    def trial(self, center: str, start: dt.date, success: bool) -> dt.date:
        end = start + _days(self.rng.randint(5, 14))
        self.p.procedures.append(Procedure("trial", center, start, end, success))
        return end

    def implant(self, center: str, day: dt.date) -> None:
        count = self.rng.choice([1, 2, 2, 3])
        ipg = self.place_generator(center, day, first=True)
        leads = self.place_leads(center, day, count)
        self.p.procedures.append(
            Procedure("implant", center, day, leads_placed=leads, generator_placed=ipg)
        )

    def complication(self, center: str, day: dt.date, kind: str, permanent: bool = False,
                     lead_id: str | None = None, note: str = "") -> None:
        self.p.complications.append(Complication(center, day, kind, permanent, lead_id, note))

    def fault(self, center: str, day: dt.date, kind: str) -> Lead:
        lead = self.rng.choice(self.active_leads())
        lead.set_status("fractured" if kind == "lead_fracture" else "malfunction", day)
        self.complication(center, day, kind, False, lead.lead_id,
                          "Impedans > 4000 ohm" if kind == "lead_fracture" else "Ingen stimulation")
        return lead

    def replace_lead(self, center: str, day: dt.date, old: Lead, *, fragment: bool = False,
                     abandoned: bool = False, nerve: str | None = None) -> None:
        if not abandoned:
            old.set_status("removed_fragment_retained" if fragment else "removed", day)
        new = self.place_lead(center, day, old.level, old.side, replaces=old.lead_id)
        self.p.procedures.append(
            Procedure("lead_replacement", center, day, leads_placed=[new],
                      leads_removed=[] if abandoned else [old.lead_id], lead_concerned=old.lead_id,
                      reason="elektrodeproblem")
        )
        if fragment:
            self.complication(center, day, "retained_fragment", False, old.lead_id, "Fragment efterladt")
        if nerve:
            self.complication(center, day, "nerve_damage", nerve == "permanent", new,
                              "Nerveskade ved elektrodeskift")

    def explant(self, center: str, day: dt.date, reason: str, fragment_lead: Lead | None = None) -> None:
        removed = []
        for lead in self.active_leads():
            if lead.center != center:
                continue
            retained = fragment_lead is not None and lead.lead_id == fragment_lead.lead_id
            lead.set_status("removed_fragment_retained" if retained else "removed", day)
            removed.append(lead.lead_id)
        ipg = next((g for g in self.p.generators if g.status == "active"), None)
        if ipg is not None and ipg.center == center:
            ipg.status, ipg.status_date = "removed", day
        self.p.procedures.append(
            Procedure("explant", center, day, leads_removed=removed,
                      generator_removed=ipg.device_id if ipg is not None and ipg.center == center else None,
                      reason=reason)
        )
        if fragment_lead is not None:
            self.complication(center, day, "retained_fragment", False, fragment_lead.lead_id,
                              "Fragment efterladt ved eksplantation")

    # -- measurements ------------------------------------------------------------------
    def baseline(self, center: str, trial_start: dt.date) -> Measurement:
        t = self.targets
        avg = round(clamp(self.rng.gauss(t["nrs_average"]["baseline"], 0.9), 4.0, 9.5), 1)
        worst = int(clamp(round(self.rng.gauss(t["nrs_worst"]["baseline"], 0.8)), math.ceil(avg), 10))
        pcs = int(clamp(round(self.rng.gauss(t["pcs_total"]["baseline"], 6)), 10, 52))
        m = Measurement(center, "baseline", trial_start - _days(self.rng.randint(7, 60)),
                        avg, worst, pcs_items_for_total(pcs, self.rng))
        self.p.measurements.append(m)
        return m

    def follow_ups(self, center: str, implant: dt.date, until: dt.date, base: Measurement,
                   worse_from: dt.date | None, variant: dict[str, Any], analysed: bool) -> None:
        t = self.targets
        for timepoint, months in (("month_3", 3), ("month_6", 6), ("month_12", 12),
                                  ("month_24", 24), ("month_36", 36)):
            day = add_months(implant, months) + _days(self.rng.randint(-14, 14))
            if day > until or day > self.cutoff:
                break
            followup = variant.get("followup", "full")
            if timepoint == "month_12" and followup == "missed_12m":
                continue
            working = worse_from is None or day < worse_from
            if working:
                relief = clamp(self.rng.gauss(
                    1 - t["nrs_average"]["month_12"] / t["nrs_average"]["baseline"], 0.15), 0.05, 0.9)
            else:
                relief = self.rng.uniform(0.0, 0.25)
            avg = round(clamp(base.nrs_average * (1 - relief), 0, 10), 1)
            worst: int | None = worst_for_average(avg, self.rng, 3)
            pcs: int | None = int(clamp(round(base.pcs_total * (1 - relief) + self.rng.gauss(0, 3)), 0, 52))
            if timepoint == "month_12" and followup == "nrs_average_only":
                worst = pcs = None
            elif not analysed and self.rng.random() < 0.1:
                worst = None
            self.p.measurements.append(
                Measurement(center, timepoint, day, avg, worst,
                            None if pcs is None else pcs_items_for_total(pcs, self.rng))
            )


def _course(b: _Builder, slot: dict[str, Any]) -> None:
    """Lay out one trial patient's course from its profile and variant."""
    p, rng, cutoff = b.p, b.rng, b.cutoff
    profile, variant = p.profile, p.variant
    trial_center = slot.get("trial", p.centers[0])
    implant_center = slot.get("implant", trial_center)
    explant_center = slot.get("explant", implant_center)
    latest_trial = dt.date(2018, 12, 1) if profile == "trial_failed" else dt.date(2018, 6, 30)
    start = _rand_date(rng, STUDY_START + _days(14), latest_trial)
    if variant.get("second_trial") and trial_center in ("auh", "ouh"):
        first = _rand_date(rng, STUDY_START + _days(14), start - _days(120))
        if first < start - _days(60):
            base = b.baseline(trial_center, first)
            b.trial(trial_center, first, False)
        else:
            base = b.baseline(trial_center, start)
    else:
        base = b.baseline(trial_center, start)
    success = profile != "trial_failed"
    trial_end = b.trial(trial_center, start, success)
    if not success:
        return
    implant = trial_end + _days(rng.randint(14, 70))
    b.implant(implant_center, implant)
    room = (cutoff - implant).days
    until, worse_from = cutoff, None
    if profile == "functional" and variant.get("ipg_replacement") and implant_center in ("auh", "aauh"):
        day = implant + _days(rng.randint(int(room * 0.6), room - 10))
        old = next(g for g in p.generators if g.status == "active")
        old.status, old.status_date = "removed", day
        new = b.place_generator(implant_center, day)
        p.procedures.append(Procedure("ipg_replacement", implant_center, day,
                                      generator_placed=new, generator_removed=old.device_id,
                                      reason="batteri opbrugt"))
    elif profile == "functional_migration":
        day = implant + _days(rng.randint(30, 120))
        lead = rng.choice(b.active_leads())
        b.complication(implant_center, day, "lead_migration", False, lead.lead_id, "Elektrode migreret")
        p.procedures.append(Procedure("lead_repositioning", implant_center, day + _days(rng.randint(7, 30)),
                                      lead_concerned=lead.lead_id, reason="migration"))
    elif profile == "functional_replaced":
        day = implant + _days(rng.randint(60, 300))
        lead = b.fault(implant_center, day, variant["fault"])
        b.replace_lead(implant_center, day + _days(rng.randint(14, 60)), lead,
                       fragment=bool(variant.get("fragment")), abandoned=bool(variant.get("abandoned")),
                       nerve=variant.get("nerve"))
    elif profile == "broken":
        day = implant + _days(rng.randint(60, room - 30))
        b.fault(implant_center, day, variant["fault"])
        worse_from = day
    elif profile == "explanted_lead_defect":
        day = implant + _days(rng.randint(60, min(400, room - 240)))
        lead = b.fault(implant_center, day, variant["fault"])
        until = day + _days(rng.randint(30, 200))
        b.explant(explant_center, until, "elektrodedefekt", lead if variant.get("fragment") else None)
        worse_from = day
    elif profile == "explanted_infection":
        day = implant + _days(rng.randint(10, 60))
        b.complication(implant_center, day, "infection", False, None, "Sårinfektion ved generator")
        until = day + _days(rng.randint(3, 20))
        b.explant(explant_center, until, "infektion")
    elif profile == "explanted_inefficacy":
        until = implant + _days(rng.randint(200, min(900, room - 5)))
        b.explant(explant_center, until, "manglende effekt")
        worse_from = implant + _days(rng.randint(90, (until - implant).days))
    elif profile == "explanted_replaced_nerve":
        day = implant + _days(rng.randint(30, 200))
        lead = rng.choice(b.active_leads())
        b.complication(implant_center, day, "lead_migration", False, lead.lead_id, "Elektrode migreret")
        b.replace_lead(implant_center, day + _days(rng.randint(14, 60)), lead, nerve=variant.get("nerve"))
        until = day + _days(rng.randint(200, min(500, (cutoff - day).days - 5)))
        b.explant(explant_center, until, "manglende effekt")
        worse_from = day
    b.follow_ups(implant_center, implant, until, base, worse_from, variant,
                 analysed=profile in FULLY_FUNCTIONAL_PROFILES)


def _block_slots(design: Design, rng: random.Random) -> list[dict[str, Any]]:
    """Assign profile, variant, pain location and centers to each trial patient of a block."""
    slots = [{"profile": name, "index": index, "variant": variant}
             for name, index, variant in design.profile_slots()]
    rng.shuffle(slots)
    locations = [loc for loc, n in design.pain_location.items() for _ in range(n)]
    rng.shuffle(locations)
    centers = [c for c, n in design.centers.items() for _ in range(n)]
    for slot, location in zip(slots, locations, strict=True):
        slot["pain_location"] = location
    for cross in design.cross_center:
        slot = next(s for s in slots if s["profile"] == cross["profile"] and s["index"] == cross["index"])
        slot.update({k: cross[k] for k in ("trial", "implant", "explant") if k in cross})
        slot["home"] = cross["trial"]
        centers.remove(cross["trial"])
    rng.shuffle(centers)
    free = iter(centers)
    for slot in slots:
        if "home" not in slot:
            slot["home"] = next(free)
    return slots


def _centers_of(slot: dict[str, Any]) -> list[str]:
    centers = [slot["home"]]
    for key in ("trial", "implant", "explant"):
        if key in slot and slot[key] not in centers:
            centers.append(slot[key])
    return centers


def iter_blocks(design: Design, seed: int, n_patients: int | None) -> Iterator[list[Person]]:
    """Yield the cohort block by block; ``n_patients=None`` is the demo cohort (one fitted block)."""
    total = design.block if n_patients is None else n_patients
    person_no = 0
    for block_no in range(math.ceil(total / design.block)):
        block_rng = random.Random(f"{seed}:block:{block_no}")
        slots = _block_slots(design, block_rng)[: total - block_no * design.block]
        persons = []
        for slot in slots:
            rng = random.Random(f"{seed}:person:{person_no}")
            person = _new_person(person_no, slot, rng, seed, block_rng)
            model_rng = None if design.model_failure_ratio is None else random.Random(f"{seed}:model:{person_no}")
            _course(_Builder(person, rng, design, design.score_targets, model_rng), slot)
            persons.append(person)
            person_no += 1
        for center, count in design.screened_only.items():
            for _ in range(count):
                rng = random.Random(f"{seed}:person:{person_no}")
                slot = {"profile": "screened_only", "variant": {}, "home": center,
                        "pain_location": rng.choice(list(design.pain_location))}
                persons.append(_new_person(person_no, slot, rng, seed, block_rng))
                person_no += 1
        if n_patients is None:
            fit_demo_scores(persons, design, block_rng)
        yield persons


def _new_person(person_no: int, slot: dict[str, Any], rng: random.Random, seed: int,
                block_rng: random.Random) -> Person:
    sex = rng.choice(["male", "female"])
    diagnosis = rng.choices(list(DIAGNOSIS_WEIGHTS), weights=list(DIAGNOSIS_WEIGHTS.values()))[0]
    return Person(
        person_no=person_no,
        cpr=person_cpr(person_no, sex, seed, rng),
        pain_location=slot["pain_location"],
        diagnosis=diagnosis,
        profile=slot["profile"],
        variant=slot["variant"],
        centers=_centers_of(slot),
    )


def analysis_pairs(persons: list[Person], measure: str) -> list[tuple[Any, Any]]:
    """The (baseline, month_12) measurements with ``measure`` present of the fully functional profiles."""
    pairs = []
    for p in persons:
        if p.profile not in FULLY_FUNCTIONAL_PROFILES:
            continue
        base = next((m for m in p.measurements if m.timepoint == "baseline"), None)
        later = next((m for m in p.measurements if m.timepoint == "month_12"), None)
        if base is None or later is None:
            continue
        if getattr(base, measure) is None or getattr(later, measure) is None:
            continue
        pairs.append((base, later))
    return pairs


def fit_demo_scores(persons: list[Person], design: Design, rng: random.Random) -> None:
    """Fit the analysis set's scores to the design's target means; every pair improves."""
    t = design.score_targets
    pairs = analysis_pairs(persons, "nrs_average")
    n = len(pairs)
    base, later = fit_pairs(
        [round(b.nrs_average * 10) for b, _ in pairs],
        [round(m.nrs_average * 10) for _, m in pairs],
        (round(t["nrs_average"]["baseline"] * 10 * n), round(t["nrs_average"]["month_12"] * 10 * n)),
        lambda i: (40, 95),
        lambda i, b: (0, b - 5),
        rng,
    )
    for (b, m), vb, vm in zip(pairs, base, later, strict=True):
        b.nrs_average, m.nrs_average = vb / 10, vm / 10
        if b.nrs_worst is not None:
            b.nrs_worst = max(b.nrs_worst, math.ceil(b.nrs_average))
        if m.nrs_worst is not None:
            m.nrs_worst = max(m.nrs_worst, math.ceil(m.nrs_average))
    pairs = analysis_pairs(persons, "nrs_worst")
    n = len(pairs)
    base, later = fit_pairs(
        [b.nrs_worst for b, _ in pairs],
        [m.nrs_worst for _, m in pairs],
        (round(t["nrs_worst"]["baseline"] * n), round(t["nrs_worst"]["month_12"] * n)),
        lambda i: (math.ceil(pairs[i][0].nrs_average), 10),
        lambda i, b: (math.ceil(pairs[i][1].nrs_average), b - 1),
        rng,
    )
    for (b, m), vb, vm in zip(pairs, base, later, strict=True):
        b.nrs_worst, m.nrs_worst = vb, vm
    pairs = analysis_pairs(persons, "pcs_total")
    n = len(pairs)
    base, later = fit_pairs(
        [b.pcs_total for b, _ in pairs],
        [m.pcs_total for _, m in pairs],
        (round(t["pcs_total"]["baseline"] * n), round(t["pcs_total"]["month_12"] * n)),
        lambda i: (10, 52),
        lambda i, b: (0, b - 1),
        rng,
    )
    for (b, m), vb, vm in zip(pairs, base, later, strict=True):
        b.pcs_items = pcs_items_for_total(vb, rng)
        m.pcs_items = pcs_items_for_total(vm, rng)
