"""aauh delivery: FHIR R4 NDJSON that validates with fhir.resources (R4B models), coded as extracts.md says."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from fhir.resources.R4B import get_fhir_model_class
from helpers import CUTOFF, Generated

from drg_etl.core.formats import FORMATS
from drg_etl.core.levels import parse_level

TYPES = ["Patient", "Condition", "Procedure", "Device", "Observation"]
BASE = "http://aauh.example/fhir/CodeSystem/"


@pytest.mark.parametrize("resource_type", TYPES)
def test_every_line_is_a_valid_r4_resource_of_its_file(demo: Generated, resource_type: str) -> None:
    model = get_fhir_model_class(resource_type)
    lines = (demo.folder("aauh") / f"{resource_type}.ndjson").read_text("utf-8").splitlines()
    assert lines
    for line in lines:
        resource = model.model_validate_json(line)
        assert resource.get_resource_type() == resource_type


def test_the_generator_writes_exactly_the_declared_files(demo: Generated) -> None:
    declared = FORMATS["aauh"]
    folder = demo.folder("aauh")
    assert sorted(p.name for p in folder.iterdir()) == sorted(declared.file_names(dt.date.fromisoformat(CUTOFF)))
    for source in declared.files:
        lines = (folder / source.name).read_text("utf-8").splitlines()
        assert lines and {json.loads(line)["resourceType"] for line in lines} == {source.resource_type}, source.name


def _resources(demo: Generated, resource_type: str) -> list[dict]:
    path = demo.folder("aauh") / f"{resource_type}.ndjson"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_codes_and_systems(demo: Generated) -> None:
    for patient in _resources(demo, "Patient"):
        assert patient["identifier"][0]["system"] == "urn:oid:1.2.208.176.1.2"
        assert patient["gender"] in ("male", "female")
    for condition in _resources(demo, "Condition"):
        category = condition["category"][0]["coding"][0]
        assert category["system"] == "http://terminology.hl7.org/CodeSystem/condition-category"
        coding = condition["code"]["coding"][0]
        if category["code"] == "problem-list-item":
            assert coding["system"] == BASE + "smertediagnose"
            assert coding["code"] in {"CRPS1", "CRPS2", "POSTOP", "POSTTRAUM", "POSTHERP", "ANDET"}
            assert condition["bodySite"][0]["coding"][0]["code"] in {"UE", "OE", "TA"}
        else:
            assert category["code"] == "encounter-diagnosis"
            assert coding["system"] == BASE + "komplikation"
            assert "onsetDateTime" in condition
            if "severity" in condition:
                assert condition["severity"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "24484000",
                                                              "display": "Severe"}
    procedures = _resources(demo, "Procedure")
    codes = Counter(p["code"]["coding"][0]["code"] for p in procedures)
    assert set(codes) <= {"PROEVESTIM", "IMPLANT", "ELEKTRODESKIFT", "REPOSITION", "GENERATORSKIFT",
                          "ELEKTRODEFJERN", "EKSPLANTATION"}
    for proc in procedures:
        assert proc["status"] == "completed"
        if proc["code"]["coding"][0]["code"] == "PROEVESTIM":
            assert set(proc["performedPeriod"]) == {"start", "end"}
            assert proc["outcome"]["coding"][0]["code"] in ("385669000", "385671000")
        for focal in proc.get("focalDevice", []):
            action = focal["action"]["coding"][0]
            assert action["system"] == "http://hl7.org/fhir/device-action"
            assert action["code"] in ("implanted", "explanted", "manipulated")
    for device in _resources(demo, "Device"):
        assert device["type"]["coding"][0]["code"] in ("GENERATOR", "ELEKTRODE")
        assert device["status"] in ("active", "inactive")
        if device["type"]["coding"][0]["code"] == "ELEKTRODE":
            level, side = device["note"][0]["text"].split(" ")
            assert parse_level(level) == level and side in ("venstre", "højre")
        for reason in device.get("statusReason", []):
            assert reason["text"] in ("brud", "defekt", "fjernet", "fjernet, fragment efterladt")
    for obs in _resources(demo, "Observation"):
        assert obs["status"] == "final"
        assert obs["valueQuantity"]["unit"] == "{score}"
        assert obs["valueQuantity"]["system"] == "http://unitsofmeasure.org"


def test_references_resolve_apart_from_the_injected_orphan(demo: Generated) -> None:
    patients = {p["id"] for p in _resources(demo, "Patient")}
    devices = {d["id"] for d in _resources(demo, "Device")}
    orphans = {d["resource_id"] for d in demo.defects_in("Observation.ndjson") if d["rule_id"] ==
               "patient.no_demographics"}
    for rt in ("Condition", "Procedure", "Observation"):
        for resource in _resources(demo, rt):
            if resource["id"] in orphans:
                continue
            assert resource["subject"]["reference"].removeprefix("Patient/") in patients
            for focal in resource.get("focalDevice", []):
                assert focal["manipulated"]["reference"].removeprefix("Device/") in devices


def test_aauh_observations_agree_with_the_truth(demo: Generated) -> None:
    patients = {p["identifier"][0]["value"]: p["id"] for p in _resources(demo, "Patient")}
    errors = demo.defect_rows("Observation.ndjson")
    observations = [o for line, o in enumerate(_resources(demo, "Observation"), start=1) if line not in errors]
    for person in demo.persons_at("aauh"):
        pid = patients[person["cpr"]]
        mine = sorted((o["effectiveDateTime"], o["code"]["coding"][0]["code"], o["valueQuantity"]["value"])
                      for o in observations if o["subject"]["reference"] == f"Patient/{pid}")
        expected = sorted(
            (m["date"], code, m[field])
            for m in person["measurements"] if m["center"] == "aauh"
            for field, code in (("nrs_average", "NRS-GNS"), ("nrs_worst", "NRS-MAX"), ("pcs_total", "PCS"))
            if m[field] is not None)
        assert mine == expected
