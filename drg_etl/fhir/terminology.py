"""Codes for canonical values, from mappings/terminology.yaml (the only place codes live)."""

from __future__ import annotations

import functools
from typing import Any

import yaml

from drg_etl.core.errors import MappingSpecError
from drg_etl.core.mappings import MAPPINGS_DIR, canonical_base, with_canonical_base

__all__ = ["STANDARD", "canonical_base", "with_canonical_base"]

STANDARD = ("sks", "sks_d", "snomed", "loinc")  # in this order in every CodeableConcept, before the project code
SKS_PREFIX = {"sks": "K", "sks_d": "D"}  # SKS procedures (K-codes) and diagnoses (D-codes) have their own systems


@functools.cache
def terminology() -> dict[str, Any]:
    """The terminology map, checked: every standard code cites its source."""
    spec = yaml.safe_load((MAPPINGS_DIR / "terminology.yaml").read_text(encoding="utf-8"))
    spec["systems"] = {name: with_canonical_base(uri) for name, uri in spec["systems"].items()}
    for concept, values in spec["concepts"].items():
        for value, entry in values.items():
            if "text" not in entry:
                raise MappingSpecError(f"terminology.yaml: {concept}.{value} has no text")
            for system in STANDARD:
                if system in entry and not entry[system].get("source"):
                    raise MappingSpecError(f"terminology.yaml: {concept}.{value} {system} code cites no source")
            for system, prefix in SKS_PREFIX.items():
                if system in entry and not str(entry[system]["code"]).startswith(prefix):
                    raise MappingSpecError(f"terminology.yaml: {concept}.{value} {entry[system]['code']} is not an "
                                           f"SKS {prefix}-code, so it does not belong under {system}")
    for action, entry in spec["device_actions"].items():
        if not entry.get("snomed", {}).get("source") or "text" not in entry:
            raise MappingSpecError(f"terminology.yaml: device action {action} needs a text and a SNOMED CT code "
                                   "that cites its source")
    return spec


def system(name: str) -> str:
    """A system URI by its short name."""
    return terminology()["systems"][name]


def project_code(concept: str, value: Any) -> str:
    """The project CodeSystem's code of a canonical value: ``concept/value``."""
    return f"{concept}/{str(value).lower()}"


@functools.cache
def codeable(concept: str, value: Any) -> dict[str, Any]:
    """A CodeableConcept: the standard codes where verified, the project code, and the text.

    Cached: the same dict is shared by every resource that codes this value, so callers must not
    change it.
    """
    entry = terminology()["concepts"][concept][str(value).lower()]
    codings = [{"system": system(s), "code": entry[s]["code"], "display": entry[s]["display"]}
               for s in STANDARD if s in entry]
    codings.append({"system": system("project"), "code": project_code(concept, value), "display": entry["text"]})
    return {"coding": codings, "text": entry["text"]}


@functools.cache
def device_action(action: str) -> dict[str, Any]:
    """Procedure.focalDevice.action: the SNOMED CT action code of ``implanted``, ``explanted`` or ``manipulated``.

    Cached and shared, as :func:`codeable`: callers must not change it.
    """
    entry = terminology()["device_actions"][action]
    return {"coding": [{"system": system("snomed"), "code": entry["snomed"]["code"],
                        "display": entry["snomed"]["display"]}], "text": entry["text"]}


def all_codeables() -> list[dict[str, Any]]:
    """The CodeableConcept of every value of every concept in the terminology map."""
    return [codeable(concept, value) for concept, values in terminology()["concepts"].items() for value in values]


def code_system_resource() -> dict[str, Any]:
    """The project's CodeSystem as a FHIR R4 resource (published in mappings/)."""
    spec = terminology()
    concepts = []
    for concept, values in spec["concepts"].items():
        for value, entry in values.items():
            concepts.append({"code": project_code(concept, value), "display": entry["text"]})
    return {
        "resourceType": "CodeSystem",
        "id": "drg-etl",
        "url": system("project"),
        "version": str(spec["version"]),
        "name": "DrgEtlCodes",
        "title": "drg-etl codes for DRG-stimulation registry concepts",
        "status": "active",
        "experimental": False,
        "publisher": "drg-etl",
        "description": "Codes for the national DRG-stimulation data set where no standard code was verified; "
                       "every concept also carries standard codes (SNOMED CT, LOINC) where one was.",
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "concept": concepts,
    }
