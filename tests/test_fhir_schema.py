"""The FHIR R4 JSON Schema check (drg_etl.fhir.validate) on resources shaped like the ones build.py emits."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
import uuid
from typing import Any

import pytest

from drg_etl.fhir.terminology import canonical_base, system
from drg_etl.fhir.validate import (
    SCHEMA_PATH,
    InvalidResource,
    check_resources,
    fhir_schema,
    resource_types,
    schema_errors,
)

PROJECT = system("project")
CENTER = system("center")
EXTENSION = f"{canonical_base()}/StructureDefinition/"


def _id(*key: Any) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(map(str, key))))


def _meta() -> dict[str, Any]:
    return {"source": "urn:drg-etl:delivery:ouh:2019-12-31",
            "tag": [{"system": CENTER, "code": "ouh", "display": "Odense University Hospital"}]}


def _concept(value: str, text: str, snomed: str | None = None, loinc: str | None = None) -> dict[str, Any]:
    coding = []
    if snomed:
        coding.append({"system": "http://snomed.info/sct", "code": snomed, "display": text})
    if loinc:
        coding.append({"system": "http://loinc.org", "code": loinc, "display": text})
    coding.append({"system": PROJECT, "code": value, "display": text})
    return {"coding": coding, "text": text}


def _ref(resource_type: str, i: int) -> dict[str, str]:
    return {"reference": f"{resource_type}/{_id(resource_type, i)}"}


def organization(i: int = 0) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": f"center{i}", "meta": {"tag": [{"system": CENTER, "code": "ouh"}]},
            "identifier": [{"system": CENTER, "value": "ouh"}], "active": True, "name": "Odense University Hospital"}


def patient(i: int = 0) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": _id("Patient", i), "meta": _meta(),
            "identifier": [{"system": system("pseudonym"),
                            "value": f"P{i:08d}"}],
            "gender": "female", "birthDate": "1961", "managingOrganization": {"reference": "Organization/ouh"}}


def condition(i: int = 0) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": _id("Condition", i), "meta": _meta(),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "problem-list-item"}]}],
            "code": _concept("diagnosis/crps_1", "Complex regional pain syndrome type 1", snomed="734947007"),
            "bodySite": [_concept("pain_location/lower_extremity", "Lower extremity", snomed="61685007")],
            "subject": _ref("Patient", i), "onsetDateTime": "2018-03-04",
            "evidence": [{"detail": [_ref("Device", i)]}], "note": [{"text": "Lead fracture at follow-up."}]}


def procedure(i: int = 0) -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": _id("Procedure", i), "meta": _meta(), "status": "completed",
            "code": _concept("procedure/trial", "DRG stimulation trial"), "subject": _ref("Patient", i),
            "performer": [{"actor": {"reference": "Organization/ouh"}}],
            "performedPeriod": {"start": "2018-04-01", "end": "2018-04-08"},
            "outcome": _concept("trial_outcome/true", "Successful trial", snomed="385669000"),
            "focalDevice": [{"action": {"coding": [{"system": "http://snomed.info/sct", "code": "129336009",
                                                    "display": "Implantation - action"}],
                                        "text": "Device implanted"},
                             "manipulated": _ref("Device", i)}],
            "bodySite": [{"text": "dorsal root ganglion, L4 left"}], "complicationDetail": [_ref("Condition", i)]}


def device(i: int = 0) -> dict[str, Any]:
    return {"resourceType": "Device", "id": _id("Device", i), "meta": _meta(),
            "identifier": [{"system": f"{PROJECT}/device/ouh", "value": f"L{i}"}],
            "type": _concept("device_type/lead", "DRG stimulation lead"), "manufacturer": "Abbott",
            "serialNumber": f"SN{i:06d}", "patient": _ref("Patient", i), "status": "inactive",
            "deviceName": [{"name": "Axium 50 cm", "type": "model-name"}],
            "statusReason": [_concept("lead_status/fractured", "Fractured")],
            "extension": [{"url": EXTENSION + "device-placed-date", "valueDate": "2018-04-08"},
                          {"url": EXTENSION + "device-status-date", "valueDate": "2019-02-01"}],
            "property": [{"type": {"text": "spinal level"}, "valueCode": [{"text": "L4"}]},
                         {"type": {"text": "side"}, "valueCode": [{"text": "left"}]}]}


def observation(i: int = 0) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": _id("Observation", i), "meta": _meta(), "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey"}]}],
            "code": _concept("measure/nrs_average", "Average pain, NRS 0-10", loinc="72514-3"),
            "subject": _ref("Patient", i), "effectiveDateTime": "2018-07-01",
            "valueQuantity": {"value": 3.5, "unit": "{score}", "system": "http://unitsofmeasure.org",
                              "code": "{score}"},
            "extension": [{"url": EXTENSION + "study-timepoint",
                           "valueCodeableConcept": _concept("timepoint/month_3", "3-month follow-up")}]}


def adverse_event(i: int = 0) -> dict[str, Any]:
    return {"resourceType": "AdverseEvent", "id": _id("AdverseEvent", i), "meta": _meta(), "actuality": "actual",
            "event": _concept("complication/lead_fracture", "Lead fracture"), "subject": _ref("Patient", i),
            "date": "2019-02-01", "resultingCondition": [_ref("Condition", i)],
            "seriousness": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                                        "code": "serious"}]},
            "outcome": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-outcome",
                                    "code": "resolvedWithSequelae"}]},
            "suspectEntity": [{"instance": _ref("Device", i)}]}


BUILDERS = [patient, condition, procedure, device, observation, adverse_event, organization]


def _with(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy with elements set (``...`` removes one)."""
    out = {k: v for k, v in resource.items() if changes.get(k, None) is not ...}
    out.update({k: v for k, v in changes.items() if v is not ...})
    return out


# (resource, a fragment one of its errors must contain)
INVALID = {
    "status not in the enum": (_with(observation(), status="bogus"), "Observation.status: 'bogus' is not one of"),
    "unknown top-level element": (_with(observation(), foo=1), "'foo' was unexpected"),
    "unknown nested element": (_with(observation(), code={"coding": [{"code": "x", "bogus": 1}]}), "'bogus'"),
    "gender not in the enum": (_with(patient(), gender="x"), "Patient.gender: 'x' is not one of"),
    "birthDate a number": (_with(patient(), birthDate=1990), "Patient.birthDate: 1990 is not of type"),
    "birthDate month 13": (_with(patient(), birthDate="1990-13-01"), "Patient.birthDate"),
    "missing Observation.code": (_with(observation(), code=...), '"code" is a required property'),
    "missing Procedure.subject": (_with(procedure(), subject=...), '"subject" is a required property'),
    "dateTime with a time but no zone": (_with(observation(), effectiveDateTime="2018-07-01T10:00:00"),
                                         "Observation.effectiveDateTime"),
    "id with a space": (_with(device(), id="a b"), "Device.id"),
    "code with a leading space": (_with(observation(), status=" final"), "Observation.status"),
    "quantity value a string": (_with(observation(), valueQuantity={"value": "3.5"}),
                                "Observation.valueQuantity.value"),
    "invalid contained resource": (_with(observation(), contained=[{"resourceType": "Patient", "gender": "x"}]),
                                   "Observation.contained[0].gender"),
    "a date object, not JSON": (_with(observation(), effectiveDateTime=dt.date(2018, 7, 1)),
                                "Observation.effectiveDateTime"),
    "unknown resourceType": ({"resourceType": "Foo", "id": "x"}, "resourceType: 'Foo' is not a FHIR R4"),
    "no resourceType": ({"id": "x", "status": "final"}, "resourceType: None is not a FHIR R4"),
    "wrong-case resourceType": (_with(patient(), resourceType="patient"), "resourceType: 'patient'"),
}


def test_the_vendored_schema_is_fhir_r4_and_matches_its_readme() -> None:
    schema = fhir_schema()
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0"
    assert schema["$schema"] == "http://json-schema.org/draft-06/schema#"
    assert len(resource_types()) == 146 and {"Observation", "AdverseEvent", "Device"} <= set(resource_types())
    readme = (SCHEMA_PATH.parent / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(gzip.decompress(SCHEMA_PATH.read_bytes())).hexdigest()
    assert digest in re.findall(r"\b[0-9a-f]{64}\b", readme)


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_valid_resources_pass(build: Any) -> None:
    resource = build()
    assert schema_errors(resource) == []
    assert check_resources([resource]) == 1


def test_check_resources_counts_a_mixed_batch() -> None:
    batch = [build(i) for i in range(50) for build in BUILDERS]
    assert check_resources(iter(batch)) == len(batch) == 350


@pytest.mark.parametrize("case", INVALID)
def test_invalid_resources_are_named(case: str) -> None:
    resource, fragment = INVALID[case]
    errors = schema_errors(resource)
    assert any(fragment in e for e in errors), errors
    assert 1 <= len(errors) <= 5


@pytest.mark.parametrize("case", INVALID)
def test_check_resources_rejects_on_the_fast_path(case: str) -> None:
    resource, fragment = INVALID[case]
    with pytest.raises(InvalidResource) as raised:
        check_resources([patient(1), resource, patient(2)])
    assert raised.value.resource_type == str(resource.get("resourceType"))
    assert raised.value.resource_id == str(resource.get("id"))
    assert any(fragment in e for e in raised.value.errors)
    assert f"{resource.get('resourceType')}/{resource.get('id')}" in str(raised.value)


def test_the_exception_names_type_id_and_errors() -> None:
    bad = _with(observation(7), status="bogus")
    with pytest.raises(InvalidResource, match=rf"Observation/{bad['id']} .*Observation\.status: 'bogus'"):
        check_resources([observation(6), bad])


def test_errors_are_capped() -> None:
    bad = _with(observation(), status="bogus", code=..., id="a b", language=1, issued="x", effectiveDateTime="y")
    assert len(schema_errors(bad)) == 5


# What the schema does NOT catch (validate.py's docstring lists them): these pass, so other checks must.
GAPS = {
    "missing Observation.status (1..1 primitive)": _with(observation(), status=...),
    "missing AdverseEvent.actuality (1..1 primitive)": _with(adverse_event(), actuality=...),
    "two choices of effective[x]": _with(observation(), effectivePeriod={"start": "2018-07-01"}),
    "extension without url or value": _with(device(), extension=[{"valueDate": "2018-04-08"}, {"url": "urn:x"}]),
    "February 30": _with(patient(), birthDate="1990-02-30"),
    "empty CodeableConcept": _with(observation(), code={}),
    "empty meta.source": _with(observation(), meta={"source": ""}),
    "malformed reference": _with(observation(), subject={"reference": "not a reference"}),
}


@pytest.mark.parametrize("case", GAPS)
def test_known_gaps_pass_the_schema(case: str) -> None:
    assert schema_errors(GAPS[case]) == []
    assert check_resources([GAPS[case]]) == 1
