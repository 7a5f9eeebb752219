"""ouh: one hand-kept workbook, DRG_registrering.xlsx (extracts.md "ouh"; sheets and columns as
drg_etl.core.formats declares them).

Dates are Excel dates, with some typed as text ``dd.mm.yyyy``; a ``Note:`` row may stand
below the last record. The workbook is streamed (openpyxl write-only) and its zip entries
get fixed timestamps, so the same seed gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from drg_etl.core.dates import add_months
from drg_etl.core.formats import OUH_FOLLOW_UP, OUH_LEAD_SLOTS, OUH_REVISION_SLOTS, sheet_file
from drg_etl.core.mappings import source_map
from drg_etl.synth.design import KIND_RULES
from drg_etl.synth.model import Person
from drg_etl.synth.render.base import CenterRenderer, explant_of, implant_of

REVISION_KINDS = ("lead_replacement", "lead_repositioning", "ipg_replacement", "lead_removal")


class OuhRenderer(CenterRenderer):
    """Writes the ouh workbook."""

    center = "ouh"
    hint_kinds = frozenset({"lead_never_placed", "score_out_of_range", "duplicate"})

    def __init__(self, inbox: Path, cutoff: dt.date, seed: int) -> None:
        super().__init__(inbox, cutoff, seed)
        self.map = source_map("ouh")
        self.timepoints = self.map.spec["follow_up_columns"]  # the Follow-up sheet's suffix -> timepoint
        self.book = self.format.file("workbook")
        self.workbook = Workbook(write_only=True)
        self.notes: dict[str, int] = {}
        self.sheets = {}  # by the sheet's role
        self.rows = {}
        for declared in self.book.sheets:
            sheet = self.workbook.create_sheet(declared.name)
            sheet.append(list(declared.columns))
            self.sheets[declared.role], self.rows[declared.role] = sheet, 1

    def _append(self, sheet: str, values: list[Any]) -> int:
        """Append a row to the sheet of role ``sheet``; return its row number."""
        self.sheets[sheet].append(values)
        self.rows[sheet] += 1
        return self.rows[sheet]

    def _file(self, sheet: str) -> str:
        """The sheet of role ``sheet`` as a file of its own (``<workbook>#<sheet>``)."""
        return sheet_file(self.book.file_name(self.cutoff), self.book.sheet(sheet).name)

    def _date(self, day: dt.date | None) -> dt.date | str | None:
        """An Excel date, or now and then the same date typed as text."""
        if day is None:
            return None
        return f"{day:%d.%m.%Y}" if self.rng.random() < 0.1 else day

    def write_person(self, person: Person, hints: set[str]) -> None:
        """Write the person's rows on all four sheets."""
        facts = person.at(self.center)
        cpr = person.cpr.hyphenated()
        patient = [cpr, self.map.to_label("sex", person.sex),
                   self.rng.choice(self.map.labels_for("pain_location", person.pain_location)),
                   self.map.to_label("diagnosis", person.diagnosis)]
        self._append("patients", patient)
        if "duplicate" in hints:
            row = self._append("patients", patient)
            self.defect(self._file("patients"), row, None, "row.duplicate", "duplicate", person)
        self._treatment(person, facts, hints)
        self._follow_up(person, facts, hints)
        for c in sorted(facts["complications"], key=lambda c: c.date):
            self._append("complications", [cpr, self._date(c.date), self.map.to_label("complication", c.kind),
                                           "Yes" if c.permanent else "No", c.note or None])

    def _treatment(self, person: Person, facts: dict[str, list[Any]], hints: set[str]) -> None:
        cpr = person.cpr.hyphenated()
        treatment_columns = self.book.sheet("treatments").columns
        procs = sorted(facts["procedures"], key=lambda p: p.date)
        trials = [p for p in procs if p.kind == "trial"]
        others = [p for p in procs if p.kind != "trial"]
        if not trials and not others:
            return
        rows: list[list[Any]] = []
        for trial in trials or [None]:
            row: list[Any] = [cpr] + [None] * (len(treatment_columns) - 1)
            if trial is not None:
                row[1:4] = [self._date(trial.date), self._date(trial.end_date),
                            "Success" if trial.trial_success else "Failure"]
            rows.append(row)
        row = rows[-1]
        col = {name: i for i, name in enumerate(treatment_columns)}
        numbers = {lead.lead_id: n for n, lead in enumerate(facts["leads"], start=1)}
        implant = next((p for p in others if p.kind == "implant"), None)
        if implant is not None:
            ipg = next(g for g in facts["generators"] if g.device_id == implant.generator_placed)
            row[col["Implant date"]] = self._date(implant.date)
            row[col["IPG model"]], row[col["IPG serial"]] = ipg.model, ipg.serial
        for lead in facts["leads"]:
            n = numbers[lead.lead_id]
            row[col[f"Lead {n} level"]] = f"{lead.level} {self.map.to_label('side', lead.side)}"
            row[col[f"Lead {n} serial"]] = lead.serial
            row[col[f"Lead {n} status"]] = self.map.to_label("lead_status", lead.status)
        revisions = [p for p in others if p.kind in REVISION_KINDS]
        for n, rev in enumerate(revisions, start=1):
            row[col[f"Revision {n} date"]] = self._date(rev.date)
            row[col[f"Revision {n} type"]] = self.map.to_label("revision_type", rev.kind)
            row[col[f"Revision {n} lead"]] = numbers.get(rev.lead_concerned) if rev.lead_concerned else None
        explant = next((p for p in others if p.kind == "explant"), None)
        if explant is not None:
            row[col["Explant date"]] = self._date(explant.date)
            row[col["Explant reason"]] = explant.reason
        never_placed_row = None
        if "lead_never_placed" in hints:
            n = len(revisions) + 1
            day = implant.date + dt.timedelta(days=self.defect_rng.randint(30, 90))
            row[col[f"Revision {n} date"]] = day
            row[col[f"Revision {n} type"]] = "Lead repositioning"
            row[col[f"Revision {n} lead"]] = OUH_LEAD_SLOTS
            never_placed_row = f"Revision {n} lead"
        for values in rows:
            number = self._append("treatments", values)
        if never_placed_row is not None:
            self.defect(self._file("treatments"), number, never_placed_row, "lead.never_placed",
                        "lead_never_placed", person)

    def _follow_up(self, person: Person, facts: dict[str, list[Any]], hints: set[str]) -> None:
        by_tp = {m.timepoint: m for m in facts["measurements"]}
        bad_baseline = "score_out_of_range" in hints
        if not by_tp and not bad_baseline:
            return
        values: list[Any] = [person.cpr.hyphenated()]
        for suffix in OUH_FOLLOW_UP:
            m = by_tp.get(self.timepoints[suffix])
            if m is None:
                values += [None] * 4
            else:
                values += [self._date(m.date), m.nrs_average, m.nrs_worst, m.pcs_total]
        if bad_baseline:
            values[1:5] = [dt.date(2016, 3, 1), 14.0, 9, 30]
        row = self._append("follow_up", values)
        if bad_baseline:
            self.defect(self._file("follow_up"), row, "NRS avg baseline", "score.out_of_range",
                        "score_out_of_range", person)

    # -- defects -------------------------------------------------------------------------
    def eligible(self, kind: str, person: Person) -> bool:
        """Which persons can carry each kind of defect here."""
        facts = person.at(self.center)
        if kind == "lead_never_placed":
            implant = implant_of(person, self.center)
            revisions = [p for p in facts["procedures"] if p.kind in REVISION_KINDS]
            return (implant is not None and len(facts["leads"]) < OUH_LEAD_SLOTS
                    and len(revisions) < OUH_REVISION_SLOTS and explant_of(person) is None
                    and add_months(implant.date, 3) < self.cutoff)
        if kind == "score_out_of_range":
            return person.profile == "screened_only" and self.center in person.centers
        if kind in ("date_invalid", "code_unknown", "missing_required", "date_before_2010"):
            return implant_of(person, self.center) is not None
        if kind == "duplicate":
            return self.center in person.centers and person.profile != "screened_only"
        return False

    def inject(self, kind: str, person: Person | None) -> None:
        """Write the extra rows of one defect."""
        rule_id = KIND_RULES[kind]
        if person is None:
            from drg_etl.synth.cohort import phantom_cpr

            phantom = phantom_cpr(self.defect_rng.randrange(10_000, 20_000), self.defect_rng)
            if kind == "conflict":
                for diagnosis in self.defect_rng.sample(list(self.map.labels["diagnosis"]), 2):
                    row = self._append("patients", [phantom.hyphenated(), "M" if phantom.sex == "male" else "F",
                                                    "Knee", diagnosis])
                    self.defect(self._file("patients"), row, "Diagnosis", rule_id, kind, None)
            elif kind == "cpr_invalid":
                row = self._append("complications", ["31O585-1234", dt.date(2017, 5, 2), "Infection", "No", None])
                self.defect(self._file("complications"), row, "CPR-nr", rule_id, kind, None)
            return
        cpr = person.cpr.hyphenated()
        implant = implant_of(person, self.center)
        day = implant.date + dt.timedelta(days=45)
        cells = {
            "date_invalid": ([cpr, "31.02.2017", "Pocket pain", "No", None], "Date"),
            "code_unknown": ([cpr, day, "Lead snapped", "No", None], "Complication"),
            "missing_required": ([cpr, None, "Pocket pain", "No", "date unknown"], "Date"),
            "date_before_2010": ([cpr, dt.date(2009, 6, 15), "Other", "No", None], "Date"),
        }
        values, column = cells[kind]
        row = self._append("complications", values)
        self.defect(self._file("complications"), row, column, rule_id, kind, person)

    def record_counts(self) -> dict[str, int]:
        """Rows per sheet, less the header and the notes."""
        return {self._file(role): rows - 1 - self.notes.get(role, 0) for role, rows in self.rows.items()}

    def close(self) -> list[Path]:
        """Add the notes, save, and fix the zip timestamps."""
        self.notes = {"treatments": 1, "complications": 1}
        self._append("treatments", ["Note: revisions before 2015 entered from paper charts"])
        self._append("complications", ["Note: permanent harm as judged at 12 months"])
        stamp = dt.datetime.combine(self.cutoff, dt.time())
        self.workbook.properties.created = stamp
        self.workbook.properties.modified = stamp
        path = self.folder / self.book.file_name(self.cutoff)
        self.workbook.save(path)
        _fix_zip_timestamps(path, stamp)
        return [path]


def _fix_zip_timestamps(path: Path, stamp: dt.datetime) -> None:
    """Rewrite a zip file with every entry dated ``stamp``, so the bytes are reproducible."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    # openpyxl stamps the save time into the core properties whatever was set.
    iso = stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    entries = [
        (info, re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>" + iso + rb"\g<2>", data)
         if info.filename == "docProps/core.xml" else data)
        for info, data in entries
    ]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            target.writestr(fixed, data)
