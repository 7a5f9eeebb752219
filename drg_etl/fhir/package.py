"""The project's FHIR package: what a validator needs to resolve the export, generated from ``mappings/``.

One JSON resource a file, in the FHIR package layout (``package/package.json`` and
``package/.index.json``): a StructureDefinition per extension the export uses, the project's
CodeSystems (every project code the export uses is defined there), a NamingSystem for the
pseudonym identifier, a ValueSet per coded element, ConceptMaps from each center's local codes
and labels to the canonical and standard codes, and the SQL-on-FHIR ViewDefinitions of the
flat tables (``warehouse/views/``). ``drg-etl fhir-package --out DIR`` writes it; a test keeps
the committed copy (``fhir-package/``) in sync.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from drg_etl import __version__
from drg_etl.core.paths import MAPPINGS_DIR, SQL_DIR
from drg_etl.core.vocabulary import CENTER_NAMES, CENTERS
from drg_etl.fhir.terminology import (
    STANDARD,
    canonical_base,
    code_system_resource,
    codeable,
    project_code,
    system,
    terminology,
    with_canonical_base,
)

CANONICAL = canonical_base()  # mappings/terminology.yaml (or DRG_ETL_CANONICAL_BASE for a run)
FHIR_VERSION = "4.0.1"
PACKAGE_NAME = "example.drg-etl.fhir"
EXTENSIONS = {  # short name in terminology.yaml -> (id, title, context, value type)
    "timepoint_extension": ("study-timepoint", "The study timepoint of a measurement (baseline, month_3 ...)",
                            "Observation", "CodeableConcept"),
    "placed_extension": ("device-placed-date", "The date the device was implanted", "Device", "date"),
    "status_date_extension": ("device-status-date", "The date the device's status (fault, removal) changed",
                              "Device", "date"),
}
# a center map's concept -> the terminology concept its labels take values of
CONCEPT_OF = {"trial_success": "trial_outcome", "surgery_type": "procedure"}


def _common(resource_type: str, rid: str, url: str, name: str, title: str) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": rid, "url": url, "version": __version__, "name": name,
            "title": title, "status": "active", "experimental": False, "publisher": "drg-etl"}


def extension_definitions() -> list[dict[str, Any]]:
    """A StructureDefinition for every extension the export uses."""
    out = []
    for key, (rid, title, context, value_type) in EXTENSIONS.items():
        url = system(key)
        name = "".join(part.title() for part in rid.split("-"))
        value = "Extension.value[x]"
        out.append({
            **_common("StructureDefinition", rid, url, name, title),
            "description": title + ".", "fhirVersion": FHIR_VERSION, "kind": "complex-type", "abstract": False,
            "context": [{"type": "element", "expression": context}], "type": "Extension",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension", "derivation": "constraint",
            "differential": {"element": [
                {"id": "Extension", "path": "Extension", "short": title, "definition": title + ".", "max": "1"},
                {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                {"id": value, "path": value, "min": 1, "type": [{"code": value_type}]},
            ]},
        })
    return out


# Profiles: what the export guarantees per resource type (required elements, the value sets they draw on).
PROFILES: dict[str, list[tuple[str, int, str | None, str | None]]] = {  # path, min, type, value set
    "Procedure": [("Procedure.status", 1, None, None), ("Procedure.code", 1, None, "procedure"),
                  ("Procedure.subject", 1, None, None), ("Procedure.performed[x]", 1, None, None),
                  ("Procedure.performer", 1, None, None), ("Procedure.outcome", 0, None, "trial-outcome")],
    "Device": [("Device.identifier", 1, None, None), ("Device.type", 1, None, "device-type"),
               ("Device.serialNumber", 1, None, None), ("Device.patient", 1, None, None),
               ("Device.status", 1, None, None), ("Device.statusReason", 0, None, "lead-status")],
    "Observation": [("Observation.status", 1, None, None), ("Observation.code", 1, None, "measure"),
                    ("Observation.subject", 1, None, None), ("Observation.effective[x]", 1, "dateTime", None),
                    ("Observation.value[x]", 1, "Quantity", None)],
    "AdverseEvent": [("AdverseEvent.event", 1, None, "complication"), ("AdverseEvent.subject", 1, None, None),
                     ("AdverseEvent.date", 1, None, None), ("AdverseEvent.resultingCondition", 1, None, None)],
}


def profiles() -> list[dict[str, Any]]:
    """StructureDefinitions constraining Procedure, Device, Observation and AdverseEvent to what the export emits."""
    out = []
    for resource_type, elements in PROFILES.items():
        rid = f"drg-etl-{resource_type.lower()}"
        differential = [{"id": resource_type, "path": resource_type,
                         "short": f"A {resource_type} of the national DRG data set"}]
        for path, minimum, type_code, value_set in elements:
            element: dict[str, Any] = {"id": path, "path": path}
            if minimum:
                element["min"] = minimum
            if type_code:
                element["type"] = [{"code": type_code}]
            if value_set:
                element["binding"] = {"strength": "extensible",
                                      "valueSet": f"{CANONICAL}/ValueSet/{value_set}"}
            differential.append(element)
        out.append({**_common("StructureDefinition", rid, f"{CANONICAL}/StructureDefinition/{rid}",
                              f"DrgEtl{resource_type}", f"drg-etl {resource_type}"),
                    "description": f"The {resource_type} resources drg-etl exports: the elements always present "
                                   "and the value sets their codes come from (fhir.md).",
                    "fhirVersion": FHIR_VERSION, "kind": "resource", "abstract": False, "type": resource_type,
                    "baseDefinition": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
                    "derivation": "constraint", "differential": {"element": differential}})
    return out


def center_code_system() -> dict[str, Any]:
    """The CodeSystem of the four centers (meta.tag, Organization.identifier)."""
    return {**_common("CodeSystem", "center", system("center"), "DrgEtlCenters", "The registry's implanting centers"),
            "description": "The four Danish centers that implant DRG stimulation systems.", "caseSensitive": True,
            "content": "complete", "count": len(CENTERS),
            "concept": [{"code": c, "display": CENTER_NAMES[c]} for c in CENTERS]}


def naming_systems() -> list[dict[str, Any]]:
    """The identifier systems of the export: the patient pseudonym and the device reference."""
    def naming(rid: str, name: str, url: str, description: str) -> dict[str, Any]:
        return {"resourceType": "NamingSystem", "id": rid, "name": name, "status": "active", "kind": "identifier",
                "date": "2026-11-27", "publisher": "drg-etl", "description": description,
                "uniqueId": [{"type": "uri", "value": url, "preferred": True}]}

    return [naming("patient-pseudonym", "DrgEtlPatientPseudonym", system("pseudonym"),
                   "A patient's pseudonym in the national DRG data set: the hex HMAC-SHA256 of the normalised CPR "
                   "number under the registry's secret key. Not reversible without the key."),
            naming("device-reference", "DrgEtlDeviceReference", system("device_reference"),
                   "A device as its center's delivery names it: `<center>:<the source's reference>` (a serial "
                   "number, a REDCap record and instance, an EHR Device id, or a workbook slot).")]


def value_sets() -> list[dict[str, Any]]:
    """A ValueSet per coded element: the project codes and the standard codes of one concept."""
    out = []
    for concept, values in terminology()["concepts"].items():
        includes: dict[str, list[dict[str, str]]] = {system("project"): []}
        for value in values:
            for coding in codeable(concept, value)["coding"]:
                entry = {"code": coding["code"], "display": coding["display"]}
                if entry not in includes.setdefault(coding["system"], []):
                    includes[coding["system"]].append(entry)
        rid = concept.replace("_", "-")
        title = f"drg-etl {concept.replace('_', ' ')}"
        out.append({**_common("ValueSet", rid, f"{CANONICAL}/ValueSet/{rid}", f"DrgEtl{rid.title().replace('-', '')}",
                              title),
                    "description": f"The codes of the {concept.replace('_', ' ')} element of the national DRG data "
                                   "set: the project's code and the standard codes mapped to it.",
                    "compose": {"include": [{"system": s, "concept": c} for s, c in includes.items() if c]}})
    return out


def _local_system(center: str, concept: str, spec: dict[str, Any]) -> str:
    return spec.get("systems", {}).get(concept) or f"urn:drg-etl:{center}:local:{concept}"


def concept_maps() -> list[dict[str, Any]]:
    """Per center, its local codes and labels -> the project codes (and the project codes -> standard codes)."""
    concepts = terminology()["concepts"]
    out = []
    for center in CENTERS:
        spec = yaml.safe_load((MAPPINGS_DIR / f"{center}.yaml").read_text(encoding="utf-8"))
        groups = []
        for local_concept, labels in spec.get("labels", {}).items():
            concept = CONCEPT_OF.get(local_concept, local_concept)
            if concept not in concepts:
                continue
            elements = [{"code": str(label), "target": [{"code": project_code(concept, value),
                                                         "display": concepts[concept][str(value).lower()]["text"],
                                                         "equivalence": "equivalent"}]}
                        for label, value in labels.items()]
            groups.append({"source": _local_system(center, local_concept, spec), "target": system("project"),
                           "element": elements})
        out.append({**_common("ConceptMap", f"{center}-to-drg-etl", f"{CANONICAL}/ConceptMap/{center}-to-drg-etl",
                              f"DrgEtl{center.title()}Map", f"{CENTER_NAMES[center]}: local codes to drg-etl codes"),
                    "description": f"How drg-etl reads {CENTER_NAMES[center]}'s delivery (mappings/{center}.yaml).",
                    "targetUri": f"{CANONICAL}/CodeSystem/drg-etl", "group": groups})
    standard = []
    for name in STANDARD:
        elements = []
        for concept, values in concepts.items():
            for value, entry in values.items():
                if name in entry:
                    elements.append({"code": project_code(concept, value), "display": entry["text"],
                                     "target": [{"code": entry[name]["code"], "display": entry[name]["display"],
                                                 "equivalence": entry[name].get("equivalence", "equivalent")}]})
        if elements:
            standard.append({"source": system("project"), "target": system(name), "element": elements})
    out.append({**_common("ConceptMap", "drg-etl-to-standard", f"{CANONICAL}/ConceptMap/drg-etl-to-standard",
                          "DrgEtlToStandard", "drg-etl codes to SKS, SNOMED CT and LOINC"),
                "description": "The standard codes carried beside each project code (mappings/terminology.yaml, "
                               "where each cites its source).", "group": standard})
    return out


def view_definitions() -> list[dict[str, Any]]:
    """The SQL-on-FHIR ViewDefinitions of the flat tables (warehouse/views/)."""
    return [json.loads(with_canonical_base(p.read_text(encoding="utf-8")))
            for p in sorted((SQL_DIR / "views").glob("*.json"))]


def package_resources() -> list[dict[str, Any]]:
    """Every resource of the package."""
    return [*extension_definitions(), *profiles(), code_system_resource(), center_code_system(), *naming_systems(),
            *value_sets(), *concept_maps(), *view_definitions()]


def _file_name(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def write_package(out: Path) -> list[Path]:
    """Write the package into ``out/package/``; return the files written."""
    folder = out / "package"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        stale.unlink()
    resources = package_resources()
    manifest = {"name": PACKAGE_NAME, "version": __version__, "canonical": CANONICAL, "fhirVersions": [FHIR_VERSION],
                "type": "fhir.ig", "title": "drg-etl: the national DRG-stimulation data set",
                "description": "Extensions, code systems, value sets, concept maps and SQL-on-FHIR views of the "
                               "drg-etl FHIR R4 export.",
                "author": "drg-etl", "license": "CC0-1.0", "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION}}
    index = {"index-version": 1, "files": [
        {"filename": _file_name(r), "resourceType": r["resourceType"], "id": r["id"], "url": r.get("url"),
         "version": r.get("version")} for r in resources]}
    written = []
    for name, content in [("package.json", manifest), (".index.json", index),
                          *((_file_name(r), r) for r in resources)]:
        path = folder / name
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
