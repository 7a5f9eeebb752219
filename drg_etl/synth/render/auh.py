"""auh: five CSV files, Windows-1252, ';', CRLF, decimal comma, dd-mm-yyyy (extracts.md "auh"; files, columns and
text as drg_etl.core.formats declares them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from drg_etl.core.mappings import source_map
from drg_etl.synth.design import KIND_RULES
from drg_etl.synth.model import Measurement, Person, Procedure
from drg_etl.synth.render.base import CenterRenderer, csv_sink, explant_of, implant_of


def auh_date(day: dt.date | None) -> str:
    """``dd-mm-yyyy``, or empty."""
    return "" if day is None else f"{day:%d-%m-%Y}"


def auh_decimal(value: float | int | None, decimals: int = 1) -> str:
    """A number with a decimal comma, or empty."""
    if value is None:
        return ""
    return f"{value:.{decimals}f}".replace(".", ",") if decimals else str(int(value))


class AuhRenderer(CenterRenderer):
    """Writes the auh delivery."""

    center = "auh"
    hint_kinds = frozenset({"sex_mismatch"})

    def __init__(self, inbox: Path, cutoff: dt.date, seed: int) -> None:
        super().__init__(inbox, cutoff, seed)
        self.map = source_map("auh")
        self.sinks = {f.role: csv_sink(self.folder, f, cutoff) for f in self.format.files}  # by role
        self._cpr_spelling: dict[int, bool] = {}

    # -- rendering ---------------------------------------------------------------------
    def cpr_text(self, person: Person) -> str:
        """The person's CPR as auh writes it: with or without the hyphen (fixed per person)."""
        if person.person_no not in self._cpr_spelling:
            self._cpr_spelling[person.person_no] = self.rng.random() < 0.5
        return person.cpr.hyphenated() if self._cpr_spelling[person.person_no] else person.cpr.digits

    def _description(self, proc: Procedure) -> str:
        text = self.map.to_label("procedure_text", proc.kind)
        roll = self.rng.random()
        if roll < 0.08:
            return text.lower()
        if roll < 0.14:
            return f"{text}; {self.rng.choice(['venstre side', 'højre side', 'ambulant'])}"
        if roll < 0.18:
            return f'{text} ("akut")'
        return text

    def _prom_row(self, person: Person, m: Measurement) -> list[str]:
        return [self.cpr_text(person), auh_date(m.date), self.map.to_label("timepoint", m.timepoint),
                auh_decimal(m.nrs_average), auh_decimal(m.nrs_worst, 0), auh_decimal(m.pcs_total, 0)]

    def _patient_row(self, person: Person, sex: str | None = None, diagnosis: str | None = None) -> list[str]:
        return [self.cpr_text(person), self.map.to_label("sex", sex or person.sex),
                self.map.to_label("pain_location", person.pain_location),
                self.map.to_label("diagnosis", diagnosis or person.diagnosis)]

    def write_person(self, person: Person, hints: set[str]) -> None:
        """Write the person's rows in all five files."""
        facts = person.at(self.center)
        cpr = self.cpr_text(person)
        if "sex_mismatch" in hints:
            other = "female" if person.sex == "male" else "male"
            row = self.sinks["patients"].write(self._patient_row(person, sex=other))
            self.defect(self.file_name("patients"), row, "Køn", "cpr.sex_mismatch", "sex_mismatch", person)
        else:
            self.sinks["patients"].write(self._patient_row(person))
        for proc in sorted(facts["procedures"], key=lambda p: p.date):
            result = "" if proc.trial_success is None else ("Positiv" if proc.trial_success else "Negativ")
            self.sinks["procedures"].write([
                cpr, auh_date(proc.date), auh_date(proc.end_date), self.map.to_label("procedure", proc.kind),
                self._description(proc), result])
        status = self.map.labels["lead_status"]
        inverse = {v: k for k, v in reversed(list(status.items()))}
        for ipg in facts["generators"]:
            self.sinks["devices"].write([
                cpr, "Generator", ipg.model, ipg.serial, auh_date(ipg.placed), "", "",
                inverse[ipg.status], auh_date(ipg.status_date)])
        for lead in facts["leads"]:
            self.sinks["devices"].write([
                cpr, "Elektrode", lead.model, lead.serial, auh_date(lead.placed), lead.level,
                self.map.to_label("side", lead.side), inverse[lead.status], auh_date(lead.status_date)])
        for m in sorted(facts["measurements"], key=lambda m: m.date):
            self.sinks["measurements"].write(self._prom_row(person, m))
        for c in sorted(facts["complications"], key=lambda c: c.date):
            note = c.note
            if self.rng.random() < 0.15:
                note = f"{note}\nKontrol aftalt; pt. informeret"
            self.sinks["complications"].write([
                cpr, auh_date(c.date), self.map.to_label("complication", c.kind),
                "Ja" if c.permanent else "Nej", note])

    # -- defects -------------------------------------------------------------------------
    def eligible(self, kind: str, person: Person) -> bool:
        """Which persons can carry each kind of defect here."""
        facts = person.at(self.center)
        implant = implant_of(person, self.center)
        if kind in ("cpr_invalid", "date_invalid", "score_out_of_range", "duplicate"):
            return bool(facts["measurements"])
        if kind == "sex_mismatch":
            return self.center in person.centers and person.profile != "screened_only"
        if kind in ("date_after_cutoff", "code_unknown", "missing_required"):
            return implant is not None
        if kind == "implant_without_trial":
            return person.profile == "screened_only" and self.center in person.centers
        if kind == "explant_before_implant":
            return implant is not None and explant_of(person) is None
        if kind == "followup_outside_window":
            return implant is not None and self.mislabelled_24_month_date(person, 13) is not None
        return False


    def inject(self, kind: str, person: Person | None) -> None:
        """Write the extra rows of one defect."""
        rule_id = KIND_RULES[kind]
        if person is None:
            from drg_etl.synth.cohort import phantom_cpr

            phantom = phantom_cpr(self.defect_rng.randrange(10_000), self.defect_rng)
            if kind == "conflict":
                diagnoses = self.defect_rng.sample(list(self.map.labels["diagnosis"]), 2)
                for diagnosis in diagnoses:
                    row = self.sinks["patients"].write([phantom.digits, "M" if phantom.sex == "male" else "K",
                                                             "Underekstremitet", diagnosis])
                    self.defect(self.file_name("patients"), row, "Diagnose", rule_id, kind, None)
            elif kind == "no_demographics":
                row = self.sinks["complications"].write([phantom.digits, "14-03-2017", "Infektion", "Nej", ""])
                self.defect(self.file_name("complications"), row, "CPR", rule_id, kind, None)
            return
        cpr = self.cpr_text(person)
        facts = person.at(self.center)
        if kind in ("cpr_invalid", "date_invalid", "score_out_of_range", "duplicate"):
            values = self._prom_row(person, self.defect_rng.choice(facts["measurements"]))
            column = {"cpr_invalid": "CPR", "date_invalid": "Dato", "score_out_of_range": "NRS_gns",
                      "duplicate": None}[kind]
            if kind == "cpr_invalid":
                values[0] = person.cpr.digits[:9]
            elif kind == "date_invalid":
                values[1] = "31-02-2016"
            elif kind == "score_out_of_range":
                values[3] = "11,5"
            row = self.sinks["measurements"].write(values)
            self.defect(self.file_name("measurements"), row, column, rule_id, kind, person)
            return
        implant = implant_of(person, self.center)
        if kind == "date_after_cutoff":
            day = self.cutoff + dt.timedelta(days=75)
            row = self.sinks["complications"].write([cpr, auh_date(day), "Andet", "Nej", "Kontrol"])
            self.defect(self.file_name("complications"), row, "Dato", rule_id, kind, person)
        elif kind == "code_unknown":
            row = self.sinks["procedures"].write([cpr, auh_date(implant.date + dt.timedelta(days=40)), "",
                                                      "DRG-REVIS", "Revision", ""])
            self.defect(self.file_name("procedures"), row, "Procedurekode", rule_id, kind, person)
        elif kind == "missing_required":
            row = self.sinks["complications"].write([cpr, auh_date(implant.date + dt.timedelta(days=20)), "",
                                                          "Nej", "Type ikke udfyldt"])
            self.defect(self.file_name("complications"), row, "Type", rule_id, kind, person)
        elif kind == "implant_without_trial":
            row = self.sinks["procedures"].write([cpr, "12-05-2016", "", "DRG-IMPL",
                                                      "Implantation af DRG-stimulator", ""])
            self.defect(self.file_name("procedures"), row, "Procedurekode", rule_id, kind, person)
        elif kind == "explant_before_implant":
            row = self.sinks["procedures"].write([cpr, auh_date(implant.date - dt.timedelta(days=10)), "",
                                                      "DRG-EKSPL", "Eksplantation af DRG-system", ""])
            self.defect(self.file_name("procedures"), row, "Dato", rule_id, kind, person)
        elif kind == "followup_outside_window":
            m = self.defect_rng.choice(facts["measurements"])
            values = self._prom_row(person, m)
            values[1], values[2] = auh_date(self.mislabelled_24_month_date(person, 13)), "24 mdr"
            row = self.sinks["measurements"].write(values)
            self.defect(self.file_name("measurements"), row, "Dato", rule_id, kind, person)

    def end_block(self) -> None:
        """Forget the block's CPR spellings."""
        self._cpr_spelling.clear()

    def record_counts(self) -> dict[str, int]:
        """Data rows per file."""
        return {sink.path.name: sink.row - 1 for sink in self.sinks.values()}

    def close(self) -> list[Path]:
        """Close the five files."""
        for sink in self.sinks.values():
            sink.close()
        return [sink.path for sink in self.sinks.values()]
