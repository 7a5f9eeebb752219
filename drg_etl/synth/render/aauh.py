"""aauh: a FHIR R4 bulk export from the regional EHR, one NDJSON file per type (extracts.md "aauh"; files as
drg_etl.core.formats declares them).

Resources are written as plain JSON (the tests validate every line with fhir.resources);
ids are the EHR's own, random but fixed by the seed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from pathlib import Path
from typing import Any

from drg_etl.core.mappings import source_map
from drg_etl.synth.design import KIND_RULES
from drg_etl.synth.model import Person
from drg_etl.synth.render.base import CenterRenderer, implant_of

MEASURE_FIELDS = {"nrs_average": "NRS-GNS", "nrs_worst": "NRS-MAX", "pcs_total": "PCS"}
LEAD_STATUS_REASON = {"fractured": "brud", "malfunction": "defekt", "removed": "fjernet",
                      "removed_fragment_retained": "fjernet, fragment efterladt"}


class NdjsonSink:
    """One NDJSON file, a resource a line, counting lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", encoding="utf-8", newline="\n")
        self.row = 0

    def write(self, resource: dict[str, Any]) -> int:
        """Write one resource; return its line number."""
        self._handle.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.row += 1
        return self.row

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class AauhRenderer(CenterRenderer):
    """Writes the aauh FHIR bulk export."""

    center = "aauh"

    def __init__(self, inbox: Path, cutoff: dt.date, seed: int) -> None:
        super().__init__(inbox, cutoff, seed)
        self.map = source_map("aauh")
        self.systems = self.map.spec["systems"]
        # by resource type (a file's role)
        self.sinks = {f.role: NdjsonSink(self.folder / f.file_name(cutoff)) for f in self.format.files}
        self.patient_ids: dict[int, str] = {}
        self.last_observation: dict[int, dict[str, Any]] = {}

    def new_id(self, rng: random.Random | None = None) -> str:
        """A random (seeded) UUID as the EHR would assign."""
        return str(uuid.UUID(int=(rng or self.rng).getrandbits(128), version=4))

    def _coding(self, system_key: str, code: str, display: str | None = None) -> dict[str, Any]:
        coding = {"system": self.systems[system_key], "code": code}
        if display:
            coding["display"] = display
        return {"coding": [coding]}

    def _observation(self, patient_id: str, code: str, day: dt.date, value: float,
                     rng: random.Random | None = None) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": self.new_id(rng), "status": "final",
                "code": self._coding("measure", code), "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": day.isoformat(),
                "valueQuantity": {"value": value, "unit": "{score}", "system": self.systems["ucum"],
                                  "code": "{score}"}}

    def write_person(self, person: Person, hints: set[str]) -> None:
        """Write the person's resources."""
        facts = person.at(self.center)
        pid = self.new_id()
        self.patient_ids[person.person_no] = pid
        subject = {"reference": f"Patient/{pid}"}
        self.sinks["Patient"].write({
            "resourceType": "Patient", "id": pid,
            "identifier": [{"system": self.systems["cpr"], "value": person.cpr.digits}],
            "gender": person.sex, "birthDate": person.cpr.birth_date.isoformat()})
        self.sinks["Condition"].write({
            "resourceType": "Condition", "id": self.new_id(),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "category": [self._coding("condition_category", "problem-list-item")],
            "code": self._coding("diagnosis", self.map.to_label("diagnosis", person.diagnosis)),
            "bodySite": [self._coding("pain_location", self.map.to_label("pain_location", person.pain_location))],
            "subject": subject})
        device_ids: dict[str, str] = {}
        for ipg in facts["generators"]:
            device_ids[ipg.device_id] = self.new_id()
            device = {"resourceType": "Device", "id": device_ids[ipg.device_id],
                      "type": self._coding("device_type", "GENERATOR"), "manufacturer": "Abbott",
                      "modelNumber": ipg.model, "serialNumber": ipg.serial, "patient": subject,
                      "status": "active" if ipg.status == "active" else "inactive"}
            if ipg.status != "active":
                device["statusReason"] = [{"text": "fjernet"}]
            self.sinks["Device"].write(device)
        for lead in facts["leads"]:
            device_ids[lead.lead_id] = self.new_id()
            device = {"resourceType": "Device", "id": device_ids[lead.lead_id],
                      "type": self._coding("device_type", "ELEKTRODE"), "manufacturer": "Abbott",
                      "modelNumber": lead.model, "serialNumber": lead.serial, "patient": subject,
                      "status": "active" if lead.status == "active" else "inactive",
                      "note": [{"text": f"{lead.level} {self.map.to_label('side', lead.side)}"}]}
            if lead.status != "active":
                device["statusReason"] = [{"text": LEAD_STATUS_REASON[lead.status]}]
            self.sinks["Device"].write(device)
        for proc in sorted(facts["procedures"], key=lambda p: p.date):
            resource: dict[str, Any] = {
                "resourceType": "Procedure", "id": self.new_id(), "status": "completed",
                "code": self._coding("procedure", self.map.to_label("procedure", proc.kind)), "subject": subject}
            if proc.kind == "trial":
                resource["performedPeriod"] = {"start": proc.date.isoformat(), "end": proc.end_date.isoformat()}
                code = self.map.to_label("trial_success", proc.trial_success)
                resource["outcome"] = {"coding": [{"system": self.systems["snomed"], "code": code}]}
            else:
                resource["performedDateTime"] = proc.date.isoformat()
            focal = [("implanted", d) for d in [proc.generator_placed, *proc.leads_placed] if d]
            focal += [("explanted", d) for d in [proc.generator_removed, *proc.leads_removed] if d]
            if proc.kind == "lead_repositioning" and proc.lead_concerned:
                focal.append(("manipulated", proc.lead_concerned))
            if focal:
                resource["focalDevice"] = [
                    {"action": {"coding": [{"system": self.systems["device_action"], "code": action}]},
                     "manipulated": {"reference": f"Device/{device_ids[d]}"}}
                    for action, d in focal if d in device_ids]
            self.sinks["Procedure"].write(resource)
        for c in sorted(facts["complications"], key=lambda c: c.date):
            resource = {
                "resourceType": "Condition", "id": self.new_id(),
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "resolved" if not c.permanent else "active"}]},
                "category": [self._coding("condition_category", "encounter-diagnosis")],
                "code": self._coding("complication", self.map.to_label("complication", c.kind)),
                "subject": subject, "onsetDateTime": c.date.isoformat()}
            if c.permanent:
                resource["severity"] = {"coding": [{"system": self.systems["snomed"],
                                                    "code": self.map.spec["severity_permanent"],
                                                    "display": "Severe"}]}
            if c.lead_id in device_ids:
                resource["evidence"] = [{"detail": [{"reference": f"Device/{device_ids[c.lead_id]}"}]}]
            self.sinks["Condition"].write(resource)
        for m in sorted(facts["measurements"], key=lambda m: m.date):
            for field, code in MEASURE_FIELDS.items():
                value = getattr(m, field)
                if value is not None:
                    obs = self._observation(pid, code, m.date, value)
                    self.sinks["Observation"].write(obs)
                    self.last_observation[person.person_no] = obs

    # -- defects -------------------------------------------------------------------------
    def eligible(self, kind: str, person: Person) -> bool:
        """Which persons can carry each kind of defect here."""
        has_obs = any(m.center == self.center for m in person.measurements)
        if kind in ("score_out_of_range", "code_unknown", "duplicate", "date_after_cutoff"):
            return has_obs
        if kind in ("missing_required", "lead_never_placed"):
            return implant_of(person, self.center) is not None
        return False

    def inject(self, kind: str, person: Person | None) -> None:
        """Write the extra resources of one defect."""
        rule_id = KIND_RULES[kind]
        if person is None:
            if kind == "cpr_invalid":
                rid = self.new_id(self.defect_rng)
                row = self.sinks["Patient"].write({
                    "resourceType": "Patient", "id": rid,
                    "identifier": [{"system": self.systems["cpr"], "value": "12345678"}], "gender": "female"})
                self.defect(self.file_name("Patient"), row, "identifier", rule_id, kind, None, rid)
            elif kind == "no_demographics":
                nobody = self.new_id(self.defect_rng)
                obs = self._observation(nobody, "NRS-GNS", dt.date(2017, 3, 3), 5.5, self.defect_rng)
                row = self.sinks["Observation"].write(obs)
                self.defect(self.file_name("Observation"), row, "subject", rule_id, kind, None, obs["id"])
            return
        pid = self.patient_ids[person.person_no]
        if kind == "duplicate":
            obs = self.last_observation[person.person_no]
            row = self.sinks["Observation"].write(obs)
            self.defect(self.file_name("Observation"), row, None, rule_id, kind, person, obs["id"])
            return
        if kind in ("score_out_of_range", "code_unknown", "date_after_cutoff"):
            day = self.cutoff + dt.timedelta(days=33) if kind == "date_after_cutoff" else dt.date(2017, 6, 1)
            code = "NRS-XYZ" if kind == "code_unknown" else "NRS-GNS"
            value = 12.0 if kind == "score_out_of_range" else 4.0
            obs = self._observation(pid, code, day, value, self.defect_rng)
            column = {"score_out_of_range": "valueQuantity.value", "code_unknown": "code",
                      "date_after_cutoff": "effectiveDateTime"}[kind]
            row = self.sinks["Observation"].write(obs)
            self.defect(self.file_name("Observation"), row, column, rule_id, kind, person, obs["id"])
            return
        subject = {"reference": f"Patient/{pid}"}
        if kind == "missing_required":
            rid = self.new_id(self.defect_rng)
            row = self.sinks["Procedure"].write({
                "resourceType": "Procedure", "id": rid, "status": "completed",
                "code": self._coding("procedure", "REPOSITION"), "subject": subject})
            self.defect(self.file_name("Procedure"), row, "performed[x]", rule_id, kind, person, rid)
        elif kind == "lead_never_placed":
            rid = self.new_id(self.defect_rng)
            row = self.sinks["Device"].write({
                "resourceType": "Device", "id": rid, "type": self._coding("device_type", "ELEKTRODE"),
                "manufacturer": "Abbott", "modelNumber": "Slim-Tip DRG lead 50 cm", "serialNumber": "10000001",
                "patient": subject, "status": "inactive", "note": [{"text": "L4 venstre"}],
                "statusReason": [{"text": "brud"}]})
            self.defect(self.file_name("Device"), row, "id", rule_id, kind, person, rid)

    def end_block(self) -> None:
        """Forget the block's ids."""
        self.patient_ids.clear()
        self.last_observation.clear()

    def record_counts(self) -> dict[str, int]:
        """Lines per file."""
        return {sink.path.name: sink.row for sink in self.sinks.values()}

    def close(self) -> list[Path]:
        """Close the five files."""
        for sink in self.sinks.values():
            sink.close()
        return [sink.path for sink in self.sinks.values()]
