"""rh: REDCap raw export (codes), UTF-8 with BOM, plus the data dictionary (extracts.md "rh"; files, key columns
and text as drg_etl.core.formats declares them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from drg_etl.core.mappings import source_map
from drg_etl.synth.design import KIND_RULES
from drg_etl.synth.model import Measurement, Person
from drg_etl.synth.render import rh_project as project
from drg_etl.synth.render.base import CenterRenderer, csv_sink, implant_of

EVENTS = {"baseline": "screening_arm_1", "month_3": "month_3_arm_1", "month_6": "month_6_arm_1",
          "month_12": "month_12_arm_1", "month_24": "month_24_arm_1", "month_36": "month_36_arm_1"}
SURGERY_KINDS = ("lead_replacement", "lead_repositioning", "ipg_replacement", "lead_removal", "explant")


class RhRenderer(CenterRenderer):
    """Writes the rh REDCap export and its data dictionary."""

    center = "rh"
    hint_kinds = frozenset({"sex_mismatch", "pcs_mismatch", "score_out_of_range"})

    def __init__(self, inbox: Path, cutoff: dt.date, seed: int) -> None:
        super().__init__(inbox, cutoff, seed)
        self.map = source_map("rh")
        self.file = self.file_name("export")
        self.header = project.export_header()
        self.index = {name: i for i, name in enumerate(self.header)}
        self.sink = csv_sink(self.folder, self.format.file("export"), cutoff, self.header)
        self.next_record = 1
        self.records: dict[int, tuple[str, dict[str, int]]] = {}
        self.empty_rows: list[int] = []

    def _code(self, field: str, concept: str, value: Any) -> int:
        return project.code_for(field, self.map.to_label(concept, value))

    def _row(self, record: str, event: str, instrument: str = "", instance: int | str = "",
             **values: Any) -> list[Any]:
        row: list[Any] = [None] * len(self.header)
        row[0:4] = [record, event, instrument, instance]
        for name, value in values.items():
            row[self.index[name]] = value
        return row

    def _instance(self, person: Person, instrument: str) -> tuple[str, int]:
        record, counters = self.records[person.person_no]
        counters[instrument] = counters.get(instrument, 0) + 1
        return record, counters[instrument]

    @staticmethod
    def _prom(m: Measurement) -> dict[str, Any]:
        values: dict[str, Any] = {"prom_date": m.date.isoformat(), "prom_complete": 2}
        if m.nrs_average is not None:
            values["nrs_avg"] = f"{m.nrs_average:.1f}"
        if m.nrs_worst is not None:
            values["nrs_worst"] = m.nrs_worst
        if m.pcs_items is not None:
            values.update({f"pcs_{i:02d}": v for i, v in enumerate(m.pcs_items, start=1)})
            values["pcs_total"] = m.pcs_total
        return values

    def write_person(self, person: Person, hints: set[str]) -> None:
        """Write the person's REDCap record: event rows, then repeating instruments."""
        facts = person.at(self.center)
        record = str(self.next_record)
        self.next_record += 1
        self.records[person.person_no] = (record, {})
        sex = person.sex
        if "sex_mismatch" in hints:
            sex = "female" if sex == "male" else "male"
        screening = {"cpr": person.cpr.digits if self.rng.random() < 0.7 else person.cpr.hyphenated(),
                     "sex": self._code("sex", "sex", sex),
                     "pain_location": self._code("pain_location", "pain_location", person.pain_location),
                     "diagnosis": self._code("diagnosis", "diagnosis", person.diagnosis),
                     "demographics_complete": 2}
        by_tp = {m.timepoint: m for m in facts["measurements"]}
        if "baseline" in by_tp:
            screening.update(self._prom(by_tp["baseline"]))
        bad = hints & {"pcs_mismatch", "score_out_of_range"}
        if bad:
            items = [2, 3, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3]
            screening.update({"prom_date": "2016-04-11", "nrs_avg": "6.5", "nrs_worst": 8, "prom_complete": 2,
                              "pcs_total": sum(items)})
            screening.update({f"pcs_{i:02d}": v for i, v in enumerate(items, start=1)})
            if "pcs_mismatch" in bad:
                screening["pcs_total"] = sum(items) + 4
            else:
                screening["nrs_avg"] = "10.5"
        row = self.sink.write(self._row(record, "screening_arm_1", **screening))
        if "sex_mismatch" in hints:
            self.defect(self.file, row, "sex", "cpr.sex_mismatch", "sex_mismatch", person)
        for kind in sorted(bad):
            column = "pcs_total" if kind == "pcs_mismatch" else "nrs_avg"
            self.defect(self.file, row, column, KIND_RULES[kind], kind, person)
        procs = sorted(facts["procedures"], key=lambda p: p.date)
        for trial in [p for p in procs if p.kind == "trial"][-1:]:
            self.sink.write(self._row(record, "trial_arm_1", trial_start=trial.date.isoformat(),
                                      trial_end=trial.end_date.isoformat(),
                                      trial_success=self._code("trial_success", "trial_success", trial.trial_success),
                                      trial_complete=2))
        implant = next((p for p in procs if p.kind == "implant"), None)
        if implant is not None:
            ipg = next(g for g in facts["generators"] if g.device_id == implant.generator_placed)
            self.sink.write(self._row(record, "implant_arm_1", implant_date=implant.date.isoformat(),
                                      ipg_model=self._code("ipg_model", "ipg_model", ipg.model),
                                      ipg_serial=ipg.serial, implant_complete=2))
        opened_empty = False
        for tp in ("month_3", "month_6", "month_12", "month_24", "month_36"):
            if tp in by_tp:
                self.sink.write(self._row(record, EVENTS[tp], **self._prom(by_tp[tp])))
            elif not opened_empty and implant is not None and by_tp and self.rng.random() < 0.2:
                # REDCap exports an event row when a form was opened and saved empty (at most one per
                # record); the later timepoints assessed (after a missed 12 months) are still written.
                self.empty_rows.append(self.sink.write(self._row(record, EVENTS[tp], prom_complete=0)))
                opened_empty = True
        for lead in facts["leads"]:
            record, n = self._instance(person, "lead")
            self.sink.write(self._row(
                record, "events_arm_1", "lead", n, lead_date=lead.placed.isoformat(),
                lead_level=project.code_for("lead_level", lead.level),
                lead_side=self._code("lead_side", "side", lead.side), lead_serial=lead.serial,
                lead_status=self._code("lead_status", "lead_status", lead.status),
                lead_status_date=(lead.status_date or lead.placed).isoformat(), lead_complete=2))
        for proc in procs:
            if proc.kind in SURGERY_KINDS:
                record, n = self._instance(person, "surgery")
                self.sink.write(self._row(record, "events_arm_1", "surgery", n, surg_date=proc.date.isoformat(),
                                          surg_type=self._code("surg_type", "surgery_type", proc.kind),
                                          surg_reason=proc.reason, surgery_complete=2))
        groups: dict[tuple[dt.date, bool], list[Any]] = {}
        for c in sorted(facts["complications"], key=lambda c: c.date):
            groups.setdefault((c.date, c.permanent), []).append(c)
        for (day, permanent), comps in groups.items():
            record, n = self._instance(person, "complication")
            checks = {f"comp_type___{code}": 0 for code in project.FIELD_BY_NAME["comp_type"].choices}
            for c in comps:
                checks[f"comp_type___{self._code('comp_type', 'complication', c.kind)}"] = 1
            self.sink.write(self._row(record, "events_arm_1", "complication", n, comp_date=day.isoformat(),
                                      comp_permanent=int(permanent), comp_note="; ".join(c.note for c in comps),
                                      complication_complete=2, **checks))

    # -- defects -------------------------------------------------------------------------
    def eligible(self, kind: str, person: Person) -> bool:
        """Which persons can carry each kind of defect here."""
        implant = implant_of(person, self.center)
        if kind in ("pcs_mismatch", "score_out_of_range"):
            return person.profile == "screened_only" and self.center in person.centers
        if kind == "sex_mismatch":
            return self.center in person.centers and person.profile != "screened_only"
        if kind in ("date_before_2010", "code_unknown", "date_invalid"):
            return implant is not None
        if kind == "followup_outside_window":
            return implant is not None and self.mislabelled_24_month_date(person, 14) is not None
        return False


    def inject(self, kind: str, person: Person | None) -> None:
        """Write the extra rows of one defect."""
        rule_id = KIND_RULES[kind]
        if person is None:
            record = str(self.next_record)
            self.next_record += 1
            row = self.sink.write(self._row(record, "screening_arm_1", cpr="0113851234", sex=2, pain_location=1,
                                            diagnosis=1, demographics_complete=2))
            self.defect(self.file, row, "cpr", rule_id, kind, None)
            return
        if kind == "followup_outside_window":
            record, _ = self.records[person.person_no]
            m = next(m for m in person.measurements if m.timepoint != "baseline")
            values = self._prom(m)
            values["prom_date"] = self.mislabelled_24_month_date(person, 14).isoformat()
            row = self.sink.write(self._row(record, "month_24_arm_1", **values))
            self.defect(self.file, row, "prom_date", rule_id, kind, person)
            return
        if kind == "code_unknown":
            record, n = self._instance(person, "lead")
            implant = implant_of(person, self.center)
            row = self.sink.write(self._row(record, "events_arm_1", "lead", n, lead_date=implant.date.isoformat(),
                                            lead_level=31, lead_side=1, lead_serial="00000000", lead_status=1,
                                            lead_status_date=implant.date.isoformat(), lead_complete=1))
            self.defect(self.file, row, "lead_level", rule_id, kind, person)
            return
        record, n = self._instance(person, "complication")
        day = {"date_before_2010": "2009-06-01", "date_invalid": "2017-02-30"}[kind]
        checks = {f"comp_type___{code}": int(code == 9) for code in project.FIELD_BY_NAME["comp_type"].choices}
        row = self.sink.write(self._row(record, "events_arm_1", "complication", n, comp_date=day, comp_permanent=0,
                                        comp_note="", complication_complete=1, **checks))
        self.defect(self.file, row, "comp_date", rule_id, kind, person)

    def record_counts(self) -> dict[str, int]:
        """REDCap rows that are records (empty instrument rows are not)."""
        return {self.file: self.sink.row - 1 - len(self.empty_rows)}

    def ignored_rows(self) -> dict[str, list[int]]:
        """The empty instrument rows."""
        return {self.file: list(self.empty_rows)}

    def end_block(self) -> None:
        """Forget the block's record numbers (memory must not grow with the cohort)."""
        self.records.clear()

    def close(self) -> list[Path]:
        """Close the export and write the data dictionary."""
        self.sink.close()
        dictionary = csv_sink(self.folder, self.format.file("dictionary"), self.cutoff)
        for row in project.dictionary_rows():
            dictionary.write(row)
        dictionary.close()
        return [self.sink.path, dictionary.path]
