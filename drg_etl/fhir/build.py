"""Map the canonical model (the deliveries in force) to FHIR R4 resources, as fhir.md specifies: the definition in
Python, one patient at a time, that the SQL the load builds with (:mod:`drg_etl.fhir.sql_build`) is held to byte for
byte by the tests (``tests/test_fhir_sql_build.py``); the load takes the ids and the Organizations from here.

Ids are UUID v5 of the pseudonym and the fact's natural key, so a re-load gives the same
ids. Every resource carries ``meta.source`` (center and delivery) and a ``meta.tag`` for the
center. Resources are built per patient from that patient's facts alone, so the layer can be
rebuilt for just the patients a delivery touches, in bounded batches of patients; validation
is the store's job (drg_etl/fhir/store.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import yaml

from drg_etl.core.paths import MAPPINGS_DIR
from drg_etl.core.vocabulary import CENTER_NAMES, CENTERS, FAULTY_LEAD_STATUSES, REMOVED_LEAD_STATUSES
from drg_etl.fhir.package import profile_url
from drg_etl.fhir.terminology import codeable, device_action, system

NAMESPACE = uuid.UUID("6f1c2b0e-4d7a-5c3e-9b8f-2a1d0e9c7b65")
_NAMESPACE_BYTES = NAMESPACE.bytes
PLACING = {"implant", "lead_replacement", "ipg_replacement"}
REMOVING = {"explant", "lead_removal", "lead_replacement", "ipg_replacement"}
PatientFacts = dict[str, list[dict[str, Any]]]
# The centers are the registry's own reference data, not a delivery's (no SOR code was verified: none is given).
ORGANIZATION_SOURCE = "urn:drg-etl:registry:centers"


def resource_id(resource_type: str, *natural_key: Any) -> str:
    """A deterministic id: UUID v5 of the type and the natural key (pseudonym first).

    The same value as ``uuid.uuid5(NAMESPACE, name)``, computed without building UUID objects
    (this runs for every resource and every reference).
    """
    name = "|".join([resource_type, *(str(k) for k in natural_key)])
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _meta(resource_type: str, center: str, cutoff: Any) -> dict[str, Any]:
    return {"profile": [profile_url(resource_type)], "source": f"urn:drg-etl:delivery:{center}:{_iso(cutoff)}",
            "tag": [{"system": system("center"), "code": center, "display": CENTER_NAMES[center]}]}


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)[:10]


@functools.cache
def manufacturers() -> dict[str, str]:
    """Device model -> manufacturer, from mappings/devices.yaml."""
    return yaml.safe_load((MAPPINGS_DIR / "devices.yaml").read_text(encoding="utf-8"))["manufacturers"]


@functools.cache
def centers() -> dict[str, Any]:
    """The centers' SOR codes where verified (mappings/centers.yaml)."""
    return yaml.safe_load((MAPPINGS_DIR / "centers.yaml").read_text(encoding="utf-8"))


def organizations() -> Iterator[dict[str, Any]]:
    """The four centers, with their SOR code where one was verified."""
    spec = centers()
    for center in CENTERS:
        identifiers = [{"system": system("center"), "value": center}]
        if center in spec["sor"]:
            identifiers.insert(0, {"use": "official", "system": spec["sor_system"],
                                   "value": spec["sor"][center]["code"]})
        yield {"resourceType": "Organization", "id": center,
               "meta": {"profile": [profile_url("Organization")], "source": ORGANIZATION_SOURCE,
                        "tag": [{"system": system("center"), "code": center}]},
               "identifier": identifiers, "active": True, "name": CENTER_NAMES[center]}


def build_patient(key: str, facts: PatientFacts) -> Iterator[dict[str, Any]]:
    """Every resource of one patient, from that patient's facts in force (all centers)."""
    patients, procedures = facts["patients"], facts["procedures"]
    devices, complications = facts["devices"], facts["complications"]
    if patients:
        home = _first_center(procedures, patients)
        fact = next((q for q in patients if q["center"] == home), patients[0])
        yield {"resourceType": "Patient", "id": resource_id("Patient", key), "meta": _meta("Patient", fact["center"],
                                                                                           fact["cutoff"]),
               "identifier": [{"system": system("pseudonym"), "value": key}],
               "gender": fact["sex"], "birthDate": str(fact["birth_year"]),
               "managingOrganization": {"reference": f"Organization/{home}"}}
        yield {"resourceType": "Condition", "id": resource_id("Condition", key, "pain"),
               "meta": _meta("Condition", fact["center"], fact["cutoff"]),
               "clinicalStatus": {"coding": [{"system": system("condition_clinical"), "code": "active"}]},
               "category": [{"coding": [{"system": system("condition_category"), "code": "problem-list-item"}]}],
               "code": codeable("diagnosis", fact["diagnosis"]),
               "bodySite": [codeable("pain_location", fact["pain_location"])],
               "subject": _subject(key)}
    device_ids = {(d["center"], d["device_ref"]): resource_id("Device", key, d["center"], d["device_ref"])
                  for d in devices}
    comp_ids: dict[tuple[str, Any], list[str]] = defaultdict(list)
    for c in complications:
        comp_ids[(c["center"], c["date"])].append(_complication_id(c))
    by_center: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in devices:
        by_center[d["center"]].append(d)
        yield _device(d, device_ids)
    for p in procedures:
        yield _procedure(p, by_center[p["center"]], device_ids, comp_ids)
    for m in facts["measurements"]:
        yield _observation(m)
    for c in complications:
        yield from _complication(c, _complication_device(c, by_center[c["center"]], device_ids))


def _first_center(procedures: list[dict[str, Any]], patients: list[dict[str, Any]]) -> str:
    """The center that saw the patient first (earliest procedure; else the first with demographics)."""
    if procedures:
        return min((p["date"], CENTERS.index(p["center"]), p["center"]) for p in procedures)[2]
    return min((q["center"] for q in patients), key=CENTERS.index)


@functools.lru_cache(maxsize=4096)
def _subject(key: str) -> dict[str, str]:
    """A reference to the patient (cached: one patient's resources are built together; do not change it)."""
    return {"reference": f"Patient/{resource_id('Patient', key)}"}


def _device(d: dict[str, Any], device_ids: dict) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Device", "id": device_ids[(d["center"], d["device_ref"])],
        "meta": _meta("Device", d["center"], d["cutoff"]),
        "identifier": [{"system": system("device_reference"), "value": d["device_ref"]}],
        "type": codeable("device_type", d["device_type"]),
        "serialNumber": d["serial"], "patient": _subject(d["patient_key"]),
        "status": "active" if d["status"] == "active" else "inactive",
        "extension": [],
    }
    if d["model"] in manufacturers():
        resource["manufacturer"] = manufacturers()[d["model"]]
    if d["model"]:
        resource["deviceName"] = [{"name": d["model"], "type": "model-name"}]
    if d["placed_date"]:
        resource["extension"].append({"url": system("placed_extension"), "valueDate": _iso(d["placed_date"])})
    if d["status"] != "active":
        resource["statusReason"] = [codeable("lead_status", d["status"])]
        if d["status_date"]:
            resource["extension"].append({"url": system("status_date_extension"), "valueDate": _iso(d["status_date"])})
    if d["device_type"] == "lead":
        resource["property"] = [{"type": {"text": "spinal level"}, "valueCode": [{"text": d["level"]}]},
                                {"type": {"text": "side"}, "valueCode": [{"text": d["side"]}]}]
    if not resource["extension"]:
        del resource["extension"]
    return resource


def _procedure(p: dict[str, Any], mine: list[dict[str, Any]], device_ids: dict,
               comp_ids: dict[tuple[str, Any], list[str]]) -> dict[str, Any]:
    """A Procedure; ``mine`` are the devices of the same patient and center."""
    key, center = p["patient_key"], p["center"]
    resource: dict[str, Any] = {
        "resourceType": "Procedure", "id": resource_id("Procedure", key, center, p["procedure"], _iso(p["date"]),
                                                       p["device_ref"]),
        "meta": _meta("Procedure", center, p["cutoff"]), "status": "completed",
        "code": codeable("procedure", p["procedure"]),
        "subject": _subject(key), "performer": [{"actor": {"reference": f"Organization/{center}"}}],
    }
    if p["procedure"] == "trial":
        resource["performedPeriod"] = {"start": _iso(p["date"]), "end": _iso(p["end_date"])}
        resource["outcome"] = codeable("trial_outcome", bool(p["trial_success"]))
    else:
        resource["performedDateTime"] = _iso(p["date"])
    focal = []
    if p["procedure"] in PLACING:
        focal += [("implanted", d) for d in mine if d["placed_date"] == p["date"]]
    if p["procedure"] in REMOVING:
        focal += [("explanted", d) for d in mine if d["status"] in REMOVED_LEAD_STATUSES
                  and d["status_date"] == p["date"]]
    if p["device_ref"]:
        focal += [("manipulated", d) for d in mine if d["device_ref"] == p["device_ref"]
                  and all(d is not other for _, other in focal)]
    if focal:
        resource["focalDevice"] = [
            {"action": device_action(action),
             "manipulated": {"reference": f"Device/{device_ids[(center, d['device_ref'])]}"}}
            for action, d in focal]
        sites = sorted({f"{d['level']} {d['side']}" for _, d in focal if d["device_type"] == "lead"})
        if sites:
            resource["bodySite"] = [{"text": f"dorsal root ganglion, {site}"} for site in sites]
    complications = comp_ids.get((center, p["date"]), [])
    if complications:
        resource["complicationDetail"] = [{"reference": f"Condition/{c}"} for c in complications]
    return resource


def _observation(m: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id("Observation", m["patient_key"], m["center"], _iso(m["date"]), m["measure"], m["timepoint"]),
        "meta": _meta("Observation", m["center"], m["cutoff"]), "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "survey"}]}],
        "code": codeable("measure", m["measure"]), "subject": _subject(m["patient_key"]),
        "effectiveDateTime": _iso(m["date"]),
        "valueQuantity": {"value": m["value"], "unit": "{score}", "system": system("ucum"), "code": "{score}"},
    }
    if m["timepoint"]:
        resource["extension"] = [{"url": system("timepoint_extension"),
                                  "valueCodeableConcept": codeable("timepoint", m["timepoint"])}]
    return resource


def _complication_key(c: dict[str, Any]) -> tuple[Any, ...]:
    """A complication's natural key: patient, center, day, kind, and the device when the source names one (two
    leads broken on one day are two complications)."""
    device = (c["device_ref"],) if c["device_ref"] else ()
    return (c["patient_key"], c["center"], _iso(c["date"]), c["complication"], *device)


def _complication_id(c: dict[str, Any]) -> str:
    return resource_id("Condition", *_complication_key(c))


def _complication_device(c: dict[str, Any], mine: list[dict[str, Any]], device_ids: dict) -> str | None:
    """The Device a complication concerns: the source's link, or the lead whose status changed that day."""
    if c["device_ref"]:
        match = [d for d in mine if d["device_ref"] == c["device_ref"]]
    elif c["complication"] in ("lead_fracture", "lead_malfunction"):
        match = [d for d in mine if d["status"] in FAULTY_LEAD_STATUSES and d["status_date"] == c["date"]]
    elif c["complication"] == "retained_fragment":
        match = [d for d in mine if d["status"] == "removed_fragment_retained" and d["status_date"] == c["date"]]
    else:
        match = []
    return device_ids[(c["center"], match[0]["device_ref"])] if len(match) == 1 else None


def _complication(c: dict[str, Any], device: str | None) -> Iterator[dict[str, Any]]:
    cid = _complication_id(c)
    condition: dict[str, Any] = {
        "resourceType": "Condition", "id": cid, "meta": _meta("Condition", c["center"], c["cutoff"]),
        "category": [{"coding": [{"system": system("condition_category"), "code": "encounter-diagnosis"}]}],
        "code": codeable("complication", c["complication"]), "subject": _subject(c["patient_key"]),
        "onsetDateTime": _iso(c["date"]),
    }
    if c["permanent"] is not None:  # permanence is an outcome; where the source does not say, neither do we
        condition["clinicalStatus"] = {"coding": [{"system": system("condition_clinical"),
                                                   "code": "active" if c["permanent"] else "resolved"}]}
    if device:
        condition["evidence"] = [{"detail": [{"reference": f"Device/{device}"}]}]
    if c["note"]:
        condition["note"] = [{"text": c["note"]}]
    yield condition
    event: dict[str, Any] = {
        "resourceType": "AdverseEvent", "id": resource_id("AdverseEvent", *_complication_key(c)),
        "meta": _meta("AdverseEvent", c["center"], c["cutoff"]), "actuality": "actual",
        "event": codeable("complication", c["complication"]),
        "subject": _subject(c["patient_key"]), "date": _iso(c["date"]),
        "resultingCondition": [{"reference": f"Condition/{cid}"}],
    }
    if c["permanent"] is not None:
        event["seriousness"] = {"coding": [{"system": system("adverse_event_seriousness"),
                                            "code": "serious" if c["permanent"] else "non-serious"}]}
        event["outcome"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-outcome",
                                        "code": "resolvedWithSequelae" if c["permanent"] else "resolved"}]}
    if device:
        event["suspectEntity"] = [{"instance": {"reference": f"Device/{device}"}}]
    yield event
