"""Unit tests of the aauh reader: a few hand-written FHIR R4 resources in, canonical facts and findings out.

Each test writes a tiny FHIR Bulk Data export (extracts.md "aauh": one NDJSON file per resource
type, R4 JSON, the EHR's local code systems), reads it with
:func:`drg_etl.sources.deliveries.read_delivery` and asserts facts and findings (file, line, column,
rule, and the resource id) exactly. A line that is not JSON or not a valid R4 resource of its
file's type rejects the file; everything else is a finding on its line.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import pseudonym_of, read_delivery_facts, rejected_by

from drg_etl.core.model import TABLES

KEY = bytes.fromhex("061ea107805e401ab584c59dd4bf8ff5cae31e6bff57af1cb7563aa39796667d")
D = dt.date
RESOURCE_TYPES = ("Patient", "Condition", "Procedure", "Device", "Observation")
SYSTEMS = {
    "cpr": "urn:oid:1.2.208.176.1.2",
    "diagnosis": "http://aauh.example/fhir/CodeSystem/smertediagnose",
    "pain_location": "http://aauh.example/fhir/CodeSystem/smerteomraade",
    "complication": "http://aauh.example/fhir/CodeSystem/komplikation",
    "procedure": "http://aauh.example/fhir/CodeSystem/procedure",
    "device": "http://aauh.example/fhir/CodeSystem/udstyr",
    "prom": "http://aauh.example/fhir/CodeSystem/prom",
    "category": "http://terminology.hl7.org/CodeSystem/condition-category",
    "action": "http://hl7.org/fhir/device-action",
    "snomed": "http://snomed.info/sct",
}
SUCCESSFUL, UNSUCCESSFUL, SEVERE = "385669000", "385671000", "24484000"
ANNA = "0101801234"  # synthetic: born 1 Jan 1980, female
BO = "0202753457"  # synthetic: born 2 Feb 1975, male


def coded(system: str, code: str) -> dict[str, Any]:
    """A CodeableConcept with one coding in one of the EHR's systems."""
    return {"coding": [{"system": SYSTEMS[system], "code": code}]}


def patient(pid: str, cpr: str | None = ANNA, gender: str = "female") -> dict[str, Any]:
    """A Patient with its CPR identifier."""
    resource: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": gender}
    if cpr is not None:
        resource["identifier"] = [{"system": SYSTEMS["cpr"], "value": cpr}]
    return resource


def pain(cid: str, pid: str, diagnosis: str = "CRPS1", site: str = "UE") -> dict[str, Any]:
    """The pain Condition (problem-list item): diagnosis and body site."""
    return {"resourceType": "Condition", "id": cid, "category": [coded("category", "problem-list-item")],
            "code": coded("diagnosis", diagnosis), "bodySite": [coded("pain_location", site)],
            "subject": {"reference": f"Patient/{pid}"}}


def complication(cid: str, pid: str, code: str, day: str, *, severe: bool = False,
                 device: str | None = None) -> dict[str, Any]:
    """A complication Condition (encounter diagnosis), Severe when the harm is permanent."""
    resource: dict[str, Any] = {"resourceType": "Condition", "id": cid,
                                "category": [coded("category", "encounter-diagnosis")],
                                "code": coded("complication", code), "subject": {"reference": f"Patient/{pid}"},
                                "onsetDateTime": day}
    if severe:
        resource["severity"] = coded("snomed", SEVERE)
    if device:
        resource["evidence"] = [{"detail": [{"reference": f"Device/{device}"}]}]
    return resource


def procedure(rid: str, pid: str, code: str, day: str, *, end: str | None = None, outcome: str | None = None,
              devices: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """A completed Procedure: a period when ``end`` is given (a trial), else a dateTime; focal devices by action."""
    resource: dict[str, Any] = {"resourceType": "Procedure", "id": rid, "status": "completed",
                                "code": coded("procedure", code), "subject": {"reference": f"Patient/{pid}"}}
    if end is not None:
        resource["performedPeriod"] = {"start": day, "end": end}
    else:
        resource["performedDateTime"] = day
    if outcome:
        resource["outcome"] = coded("snomed", outcome)
    if devices:
        resource["focalDevice"] = [{"action": coded("action", action), "manipulated": {"reference": f"Device/{d}"}}
                                   for action, d in devices]
    return resource


def device(did: str, pid: str, kind: str, serial: str | None, *, model: str = "MN10450-50A", active: bool = True,
           note: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """A Device: a lead's level and side in its note, a fault or removal in statusReason."""
    resource: dict[str, Any] = {"resourceType": "Device", "id": did, "type": coded("device", kind),
                                "modelNumber": model, "patient": {"reference": f"Patient/{pid}"},
                                "status": "active" if active else "inactive"}
    if serial is not None:
        resource["serialNumber"] = serial
    if note is not None:
        resource["note"] = [{"text": note}]
    if reason is not None:
        resource["statusReason"] = [{"text": reason}]
    return resource


def observation(oid: str, pid: str, code: str, day: str, value: float | None) -> dict[str, Any]:
    """A final Observation of one PROM score."""
    resource: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final",
                                "code": coded("prom", code), "subject": {"reference": f"Patient/{pid}"},
                                "effectiveDateTime": day}
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": "{score}", "system": "http://unitsofmeasure.org",
                                     "code": "{score}"}
    return resource


# One patient with a full treatment: trial, implant of a generator and a lead, the lead replaced
# (the old one leaves a fragment), the system explanted; PROMs at baseline and 3 months.
CLEAN: dict[str, list[Any]] = {
    "Patient": [patient("p-anna")],
    "Condition": [pain("c-pain", "p-anna"),
                  complication("c-fracture", "p-anna", "ELEKTRODEBRUD", "2016-12-20", device="d-lead1")],
    "Procedure": [
        procedure("pr-trial", "p-anna", "PROEVESTIM", "2016-03-10", end="2016-03-17", outcome=SUCCESSFUL),
        procedure("pr-implant", "p-anna", "IMPLANT", "2016-04-07T09:30:00+02:00",
                  devices=(("implanted", "d-ipg"), ("implanted", "d-lead1"))),
        procedure("pr-swap", "p-anna", "ELEKTRODESKIFT", "2017-01-05",
                  devices=(("explanted", "d-lead1"), ("implanted", "d-lead2"))),
        procedure("pr-explant", "p-anna", "EKSPLANTATION", "2019-02-01",
                  devices=(("explanted", "d-ipg"), ("explanted", "d-lead2"))),
    ],
    "Device": [
        device("d-ipg", "p-anna", "GENERATOR", "IPG-0001", model="Proclaim DRG", active=False, reason="fjernet"),
        device("d-lead1", "p-anna", "ELEKTRODE", "LD-0001", active=False, note="L5 venstre",
               reason="fjernet, fragment efterladt"),
        device("d-lead2", "p-anna", "ELEKTRODE", "LD-0002", active=False, note="S1 højre", reason="fjernet"),
    ],
    "Observation": [
        observation("o-1", "p-anna", "NRS-GNS", "2016-03-01", 6.8),
        observation("o-2", "p-anna", "NRS-MAX", "2016-03-01", 9),
        observation("o-3", "p-anna", "PCS", "2016-03-01", 30),
        observation("o-4", "p-anna", "NRS-GNS", "2016-07-07", 3.1),
    ],
}


def write_aauh(inbox: Path, files: dict[str, list[Any]] | None = None, cutoff: str = "2019-12-31") -> Path:
    """Write the five NDJSON files: the clean resources, with ``files`` replacing a type's lines.

    A line is a resource (written as compact JSON) or a string written as it is.
    """
    folder = inbox / "aauh" / cutoff
    folder.mkdir(parents=True)
    for rt in RESOURCE_TYPES:
        lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False, separators=(",", ":"))
                 for r in (files or {}).get(rt, CLEAN[rt])]
        (folder / f"{rt}.ndjson").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return folder


# The reading harness (helpers.py) for aauh under this module's test key; findings name the resource.
read = partial(read_delivery_facts, "aauh", key=KEY, resource_ids=True)  # read(folder) -> ReadOutcome
rejection = partial(rejected_by, "aauh", key=KEY)  # rejection(folder) -> [(file, rule id)]
pseudonym = partial(pseudonym_of, key=KEY)  # pseudonym(cpr) -> the patient key the reader must give


def plus(rt: str, *lines: Any) -> dict[str, list[Any]]:
    """The clean resources of a type with ``lines`` after them."""
    return {rt: [*CLEAN[rt], *lines]}


# -- a clean patient -------------------------------------------------------------------------------


def test_aauh_clean_patient_with_full_treatment_gives_every_canonical_fact(tmp_path: Path) -> None:
    """Every resource of a clean patient becomes its canonical fact, with no finding."""
    out = read(write_aauh(tmp_path))
    key = pseudonym(ANNA)
    assert out.issues == []
    assert out.facts["patients"] == [
        {"source_file": "Patient.ndjson", "source_row": 1, "patient_key": key, "sex": "female", "birth_year": 1980,
         "pain_location": "lower_extremity", "diagnosis": "crps_1", "recorded_sex": "female"}]
    assert {f["patient_key"] for t in TABLES for f in out.facts[t]} == {key}
    assert [(f["source_file"], f["source_row"], f["procedure"], f["date"], f["end_date"], f["trial_success"],
             f["device_ref"]) for f in out.facts["procedures"]] == [
        ("Procedure.ndjson", 1, "trial", D(2016, 3, 10), D(2016, 3, 17), True, None),
        ("Procedure.ndjson", 2, "implant", D(2016, 4, 7), None, None, None),
        ("Procedure.ndjson", 3, "lead_replacement", D(2017, 1, 5), None, None, "aauh:d-lead1"),
        ("Procedure.ndjson", 4, "explant", D(2019, 2, 1), None, None, None),
    ]
    assert [(f["source_file"], f["source_row"], f["device_ref"], f["device_type"], f["model"], f["serial"],
             f["placed_date"], f["level"], f["side"], f["status"], f["status_date"])
            for f in out.facts["devices"]] == [
        ("Device.ndjson", 1, "aauh:d-ipg", "generator", "Proclaim DRG", "IPG-0001", D(2016, 4, 7), None, None,
         "removed", D(2019, 2, 1)),
        ("Device.ndjson", 2, "aauh:d-lead1", "lead", "MN10450-50A", "LD-0001", D(2016, 4, 7), "L5", "left",
         "removed_fragment_retained", D(2017, 1, 5)),
        ("Device.ndjson", 3, "aauh:d-lead2", "lead", "MN10450-50A", "LD-0002", D(2017, 1, 5), "S1", "right",
         "removed", D(2019, 2, 1)),
    ]
    # the EHR knows dates, not study timepoints
    assert [(f["source_file"], f["source_row"], f["date"], f["timepoint"], f["measure"], f["value"])
            for f in out.facts["measurements"]] == [
        ("Observation.ndjson", 1, D(2016, 3, 1), None, "nrs_average", 6.8),
        ("Observation.ndjson", 2, D(2016, 3, 1), None, "nrs_worst", 9.0),
        ("Observation.ndjson", 3, D(2016, 3, 1), None, "pcs_total", 30.0),
        ("Observation.ndjson", 4, D(2016, 7, 7), None, "nrs_average", 3.1),
    ]
    assert out.facts["complications"] == [
        {"source_file": "Condition.ndjson", "source_row": 2, "patient_key": key, "date": D(2016, 12, 20),
         "complication": "lead_fracture", "permanent": False, "device_ref": "aauh:d-lead1", "note": None}]
    assert {f: c.rows_read for f, c in out.counts.items()} == {
        "Patient.ndjson": 1, "Condition.ndjson": 2, "Procedure.ndjson": 4, "Device.ndjson": 3,
        "Observation.ndjson": 4}


def test_aauh_faulty_lead_is_dated_by_its_complication_and_severity_means_permanent(tmp_path: Path) -> None:
    """An active lead with statusReason 'brud' is fractured on the date of its lead-fracture Condition."""
    out = read(write_aauh(tmp_path, {
        "Condition": [pain("c-pain", "p-anna"),
                      complication("c-fracture", "p-anna", "ELEKTRODEBRUD", "2017-05-02", severe=True,
                                   device="d-lead1")],
        "Procedure": [*CLEAN["Procedure"][:2]],
        "Device": [device("d-ipg", "p-anna", "GENERATOR", "IPG-0001", model="Axium"),
                   device("d-lead1", "p-anna", "ELEKTRODE", "LD-0001", note="T12 højre", reason="brud")],
    }))
    assert out.issues == []
    assert [(f["status"], f["status_date"]) for f in out.facts["devices"]] == [
        ("active", D(2016, 4, 7)), ("fractured", D(2017, 5, 2))]
    assert out.facts["complications"][0]["permanent"] is True


# -- row rules -------------------------------------------------------------------------------------


def test_aauh_gender_contradicting_the_cpr_is_a_warning_and_the_patient_loads(tmp_path: Path) -> None:
    """gender male for a woman's CPR: cpr.sex_mismatch (warning) on the Patient line."""
    out = read(write_aauh(tmp_path, {"Patient": [patient("p-anna", gender="male")]}))
    assert out.findings() == [("Patient.ndjson", 1, "gender", "cpr.sex_mismatch", "p-anna")]
    assert (out.facts["patients"][0]["sex"], out.facts["patients"][0]["recorded_sex"]) == ("female", "male")


@pytest.mark.parametrize("cpr", ["010180123", "01018A1234", "3002801234"])
def test_aauh_invalid_cpr_quarantines_the_patient_and_orphans_its_resources(tmp_path: Path, cpr: str) -> None:
    """An invalid CPR identifier is cpr.invalid on the Patient; its pain Condition then has no patient."""
    out = read(write_aauh(tmp_path, {"Patient": [*CLEAN["Patient"], patient("p-bad", cpr)],
                                     "Condition": [*CLEAN["Condition"], pain("c-bad", "p-bad")]}))
    assert out.findings() == [("Patient.ndjson", 2, "identifier", "cpr.invalid", "p-bad"),
                              ("Condition.ndjson", 3, "subject", "patient.no_demographics", "c-bad")]
    assert out.rows("patients") == [1]


def test_aauh_patient_without_cpr_identifier_is_missing_a_required_value(tmp_path: Path) -> None:
    """A Patient with no identifier in the CPR system breaks value.missing_required in identifier."""
    out = read(write_aauh(tmp_path, plus("Patient", patient("p-anon", cpr=None))))
    assert out.findings() == [("Patient.ndjson", 2, "identifier", "value.missing_required", "p-anon")]


@pytest.mark.parametrize(
    ("rt", "resource", "column"),
    [
        ("Observation", observation("o-x", "p-nobody", "NRS-GNS", "2016-03-01", 5), "subject"),
        ("Procedure", procedure("pr-x", "Bo", "IMPLANT", "2016-04-07"), "subject"),
        ("Device", device("d-x", "p-nobody", "GENERATOR", "IPG-X"), "patient"),
        ("Condition", complication("c-x", "p-nobody", "INFEKTION", "2016-06-01"), "subject"),
    ],
)
def test_aauh_reference_to_a_patient_not_in_the_delivery_has_no_demographics(tmp_path: Path, rt: str,
                                                                            resource: dict[str, Any],
                                                                            column: str) -> None:
    """A resource whose subject (or Device.patient) is no Patient of this delivery: patient.no_demographics."""
    out = read(write_aauh(tmp_path, plus(rt, resource)))
    line = len(CLEAN[rt]) + 1
    assert out.findings() == [(f"{rt}.ndjson", line, column, "patient.no_demographics", resource["id"])]


def test_aauh_patient_without_pain_condition_is_missing_a_required_value(tmp_path: Path) -> None:
    """Demographics need the pain Condition's diagnosis and body site: without one, value.missing_required."""
    out = read(write_aauh(tmp_path, plus("Patient", patient("p-bo", BO, "male"))))
    assert out.findings() == [("Patient.ndjson", 2, "Condition", "value.missing_required", "p-bo")]
    assert out.rows("patients") == [1]


def test_aauh_exact_duplicate_line_breaks_row_duplicate(tmp_path: Path) -> None:
    """A line repeated exactly is row.duplicate on the repeat; the first loads once."""
    out = read(write_aauh(tmp_path, plus("Observation", CLEAN["Observation"][0])))
    assert out.findings() == [("Observation.ndjson", 5, None, "row.duplicate", "o-1")]
    assert out.rows("measurements") == [1, 2, 3, 4]


def test_aauh_same_id_with_other_content_breaks_row_conflict(tmp_path: Path) -> None:
    """Two lines with one resource id and different content: row.conflict in id on the second."""
    out = read(write_aauh(tmp_path, plus("Observation", observation("o-1", "p-anna", "NRS-GNS", "2016-03-01", 7.2))))
    assert out.findings() == [("Observation.ndjson", 5, "id", "row.conflict", "o-1")]


@pytest.mark.parametrize(
    ("rt", "resource", "column"),
    [
        ("Procedure", procedure("pr-x", "p-anna", "BATTERISKIFT", "2017-04-07"), "code"),
        ("Procedure", procedure("pr-x", "p-anna", "PROEVESTIM", "2015-03-10", end="2015-03-17",
                                outcome="260385009"), "outcome"),
        ("Condition", complication("c-x", "p-anna", "HOVEDPINE", "2016-06-01"), "code"),
        ("Condition", {**complication("c-x", "p-anna", "INFEKTION", "2016-06-01"),
                       "category": [coded("category", "health-concern")]}, "category"),
        ("Device", device("d-x", "p-anna", "BATTERI", "B-1"), "type"),
        ("Device", device("d-x", "p-anna", "ELEKTRODE", "LD-X", note="L5 midt"), "note"),
        ("Device", device("d-x", "p-anna", "ELEKTRODE", "LD-X", note="L6 venstre"), "note"),
        ("Device", device("d-x", "p-anna", "ELEKTRODE", "LD-X", note="L4 venstre", reason="tabt"), "statusReason"),
        ("Observation", observation("o-x", "p-anna", "ODI", "2016-03-01", 30), "code"),
    ],
)
def test_aauh_unknown_local_code_breaks_code_unknown(tmp_path: Path, rt: str, resource: dict[str, Any],
                                                     column: str) -> None:
    """A code outside the EHR's code system map (or a lead note's level or side) is code.unknown."""
    files = plus(rt, resource)
    if rt == "Device":  # place the device, so that only its code is wrong
        files["Procedure"] = [*CLEAN["Procedure"], procedure("pr-x", "p-anna", "REPOSITION", "2017-06-01",
                                                             devices=(("implanted", "d-x"),))]
    out = read(write_aauh(tmp_path, files))
    assert out.findings() == [(f"{rt}.ndjson", len(CLEAN[rt]) + 1, column, "code.unknown", resource["id"])]


@pytest.mark.parametrize(
    ("rt", "resource", "column", "rule"),
    [
        ("Observation", observation("o-x", "p-anna", "NRS-MAX", "2016-02-30", 5), "effectiveDateTime",
         "date.invalid"),  # the R4 schema's regex lets 30 February through; the calendar does not
        ("Observation", observation("o-x", "p-anna", "NRS-MAX", "2020-01-01", 5), "effectiveDateTime",
         "date.out_of_range"),
        ("Procedure", procedure("pr-x", "p-anna", "GENERATORSKIFT", "2009-12-31"), "performed[x]",
         "date.out_of_range"),
        ("Procedure", procedure("pr-x", "p-anna", "PROEVESTIM", "2015-03-10", end="2015-02-31",
                                outcome=UNSUCCESSFUL), "performedPeriod.end", "date.invalid"),
        ("Condition", complication("c-x", "p-anna", "CSF", "2021-06-01T10:00:00Z"), "onsetDateTime",
         "date.out_of_range"),
    ],
)
def test_aauh_bad_date_is_reported_in_its_element(tmp_path: Path, rt: str, resource: dict[str, Any], column: str,
                                                  rule: str) -> None:
    """A date that does not exist is date.invalid; one after the cutoff or before 2010 is date.out_of_range."""
    out = read(write_aauh(tmp_path, plus(rt, resource)))
    assert out.findings() == [(f"{rt}.ndjson", len(CLEAN[rt]) + 1, column, rule, resource["id"])]


@pytest.mark.parametrize(("code", "value"), [("NRS-GNS", 10.5), ("NRS-MAX", -1), ("PCS", 53)])
def test_aauh_score_out_of_range_breaks_score_out_of_range(tmp_path: Path, code: str, value: float) -> None:
    """NRS outside 0-10, PCS outside 0-52: score.out_of_range in valueQuantity.value; no measurement."""
    out = read(write_aauh(tmp_path, plus("Observation", observation("o-x", "p-anna", code, "2016-03-01", value))))
    assert out.findings() == [("Observation.ndjson", 5, "valueQuantity.value", "score.out_of_range", "o-x")]
    assert out.rows("measurements") == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("rt", "resource", "column"),
    [
        ("Observation", observation("o-x", "p-anna", "PCS", "2016-03-01", None), "valueQuantity.value"),
        ("Procedure", {**procedure("pr-x", "p-anna", "PROEVESTIM", "2015-03-10", outcome=SUCCESSFUL),
                       "performedPeriod": {"start": "2015-03-10"}}, "performedPeriod.end"),
        ("Procedure", procedure("pr-x", "p-anna", "PROEVESTIM", "2015-03-10", end="2015-03-17"), "outcome"),
        ("Device", device("d-x", "p-anna", "ELEKTRODE", "LD-X"), "note"),
        ("Device", device("d-x", "p-anna", "GENERATOR", None), "serialNumber"),
    ],
)
def test_aauh_missing_required_value_is_reported_in_its_element(tmp_path: Path, rt: str, resource: dict[str, Any],
                                                                column: str) -> None:
    """A score without a value, a trial without its end or outcome, a lead without its note, a serial-less device."""
    files = plus(rt, resource)
    if rt == "Device":
        files["Procedure"] = [*CLEAN["Procedure"], procedure("pr-x", "p-anna", "REPOSITION", "2017-06-01",
                                                             devices=(("implanted", "d-x"),))]
    out = read(write_aauh(tmp_path, files))
    assert out.findings() == [(f"{rt}.ndjson", len(CLEAN[rt]) + 1, column, "value.missing_required", resource["id"])]


def test_aauh_device_no_procedure_places_is_lead_never_placed(tmp_path: Path) -> None:
    """A Device no Procedure names as implanted breaks lead.never_placed in id."""
    out = read(write_aauh(tmp_path, plus("Device", device("d-ghost", "p-anna", "ELEKTRODE", "LD-9", note="L3 højre"))))
    assert out.findings() == [("Device.ndjson", 4, "id", "lead.never_placed", "d-ghost")]
    assert out.rows("devices") == [1, 2, 3]


def test_aauh_cpr_as_a_resource_id_is_quarantined_and_never_kept(tmp_path: Path) -> None:
    """A resource id that is a CPR number breaks cpr.in_identifier; the finding names the id as a placeholder."""
    out = read(write_aauh(tmp_path, plus("Observation", observation(BO, "p-anna", "PCS", "2016-03-01", 20))))
    assert out.findings() == [("Observation.ndjson", 5, "id", "cpr.in_identifier", "<CPR?>")]
    assert out.rows("measurements") == [1, 2, 3, 4]


# -- file-level rejections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"resourceType": "Observation", "id": "o-x", ',  # not JSON
        "[1, 2, 3]",  # JSON, not a resource
        json.dumps(patient("p-x")),  # a Patient in Observation.ndjson
        json.dumps({**observation("o-x", "p-anna", "PCS", "2016-03-01", 20), "valueScore": 20}),  # unknown element
        json.dumps({**observation("o-x", "p-anna", "PCS", "2016-03-01", 20), "status": "done"}),  # not an R4 code
        json.dumps({**observation("o-x", "p-anna", "PCS", "2016-03-01", 20), "effectiveDateTime": "01-03-2016"}),
    ],
)
def test_aauh_line_that_is_not_r4_json_of_its_type_rejects_the_file(tmp_path: Path, line: str) -> None:
    """A line that is not JSON, not a resource of the file's type, or not valid FHIR R4: file.ndjson."""
    assert rejection(write_aauh(tmp_path, plus("Observation", line))) == [("Observation.ndjson", "file.ndjson")]


def test_aauh_blank_lines_are_not_resources(tmp_path: Path) -> None:
    """Empty lines between resources are skipped; line numbers still count them."""
    out = read(write_aauh(tmp_path, {"Observation": ["", CLEAN["Observation"][0], "   "]}))
    assert out.issues == []
    assert out.rows("measurements") == [2]


@pytest.mark.xfail(strict=True, reason="an NDJSON file of no resources (no Device yet: trials only) is rejected "
                                       "as an empty file, though only Patient and Procedure must hold records")
def test_aauh_export_without_any_device_yet_is_read(tmp_path: Path) -> None:
    """At an early cutoff a patient may have had only the trial: Device.ndjson holds no line, the rest is read."""
    out = read(write_aauh(tmp_path, {"Condition": [pain("c-pain", "p-anna")], "Procedure": CLEAN["Procedure"][:1],
                                     "Device": []}))
    assert out.issues == []
    assert (out.rows("patients"), out.rows("procedures")) == ([1], [1])


def test_aauh_missing_file_rejects_the_delivery(tmp_path: Path) -> None:
    """A delivery without Device.ndjson breaks file.missing."""
    folder = write_aauh(tmp_path)
    (folder / "Device.ndjson").unlink()
    assert rejection(folder) == [("Device.ndjson", "file.missing")]


def test_aauh_empty_patient_file_is_rejected(tmp_path: Path) -> None:
    """Patient.ndjson must hold resources: an empty file breaks file.empty."""
    assert rejection(write_aauh(tmp_path, {"Patient": []})) == [("Patient.ndjson", "file.empty")]


def test_aauh_file_not_in_utf8_is_rejected_for_its_encoding(tmp_path: Path) -> None:
    """NDJSON is UTF-8: a file written in Windows-1252 ('ø' as one byte) breaks file.encoding."""
    folder = write_aauh(tmp_path)
    text = (folder / "Device.ndjson").read_text(encoding="utf-8")
    (folder / "Device.ndjson").write_bytes(text.encode("cp1252"))
    assert rejection(folder) == [("Device.ndjson", "file.encoding")]


def test_aauh_seen_lines_tell_a_repeat_from_a_conflict_as_a_set_of_lines_would() -> None:
    """SeenLines (a few dozen bytes a line) answers as a set of every line read and a dict of each id's first line
    would: a repeat of any earlier line of an id (the first or a later conflicting one) is a repeat; other content
    under a known id names the id's first line; ids are equal as dict keys are (1, 1.0 and True; not "1")."""
    from drg_etl.sources.aauh import REPEATED, SeenLines

    seen = SeenLines()
    assert seen.earlier("o-1", '{"id":"o-1","v":1}', 3) is None
    assert seen.earlier("o-1", '{"id":"o-1","v":2}', 4) == 3
    assert seen.earlier("o-1", '{"id":"o-1","v":2}', 5) == REPEATED
    assert seen.earlier("o-1", '{"id":"o-1","v":1}', 6) == REPEATED
    assert seen.earlier("o-2", '{"id":"o-2","v":1}', 7) is None
    assert seen.earlier(1, '{"id":1}', 8) is None
    assert seen.earlier(1.0, '{"id":1.0}', 9) == 8
    assert seen.earlier(True, '{"id":true}', 10) == 8
    assert seen.earlier("1", '{"id":"1"}', 11) is None
    noted = (dict(seen.first), {key: set(digests) for key, digests in seen.more.items()})
    for odd in ({"not": "hashable"}, ["o-1"], 1 << 70):  # no dict key; too wide for the id's JSON digest
        with pytest.raises(TypeError):
            seen.earlier(odd, json.dumps({"id": str(odd)}), 12)
        # nothing noted: the set reader hands such a line to the row reader ("ask"), which meets the same error
        assert (seen.first, seen.more) == noted
