"""The project's FHIR package: what a validator needs to resolve the export, generated from ``mappings/``.

One JSON resource a file, in the FHIR package layout (``package/package.json`` and
``package/.index.json``), as a folder and as the ``.tgz`` the FHIR package spec defines: a
profile per exported resource type (``mappings/profiles.yaml``; every exported resource names it
in ``meta.profile``), a StructureDefinition per extension the export uses, the project's
CodeSystems (every project code the export uses is defined there), NamingSystems for the
identifiers, a ValueSet per coded element, ConceptMaps from each center's local codes and labels
to the canonical and standard codes; and, beside the R4 resources in ``package/other/`` (not
R4 resources, so not in ``.index.json``), the SQL-on-FHIR ViewDefinitions of the flat tables
(``warehouse/views/``). ``drg-etl fhir-package --out DIR`` writes it; a test keeps the committed
copy (``fhir-package/``) in sync.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
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

FHIR_VERSION = "4.0.1"
PACKAGE_NAME = "example.drg-etl.fhir"
# Every code system the export uses outside the project's own: R4 core, and HL7 Terminology (THO) for
# condition-category, condition-clinical, observation-category, adverse-event-seriousness and -outcome.
# SKS, SNOMED CT, LOINC and UCUM are external systems identified by their URIs (no package defines their codes).
DEPENDENCIES = {"hl7.fhir.r4.core": FHIR_VERSION, "hl7.terminology.r4": "6.5.0"}
INDEX_KEYS = ("url", "version", "kind", "type", "derivation", "content", "supplements")  # .index.json, version 2
OTHER = "other"  # what is not an R4 resource (the SQL-on-FHIR ViewDefinitions): not in .index.json
TAR_MTIME = 946684800  # 2000-01-01: the tarball's entries carry a fixed time, so the same package is the same bytes
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


def profile_url(resource_type: str) -> str:
    """The canonical URL of the project's profile of ``resource_type`` (what ``meta.profile`` names)."""
    return f"{canonical_base()}/StructureDefinition/drg-etl-{resource_type.lower()}"


def profile_declarations() -> dict[str, dict[str, dict[str, Any]]]:
    """Per exported resource type, what the export guarantees of its elements (mappings/profiles.yaml)."""
    return yaml.safe_load((MAPPINGS_DIR / "profiles.yaml").read_text(encoding="utf-8"))


def _value_set_url(concept: str) -> str:
    return f"{canonical_base()}/ValueSet/{concept.replace('_', '-')}"


def profiles() -> list[dict[str, Any]]:
    """A StructureDefinition per exported resource type: a constraint on the R4 base, differential only.

    The differential fixes what the export guarantees: required elements, the one type of a choice, the system of
    an identifier and the ValueSet a code comes from (mappings/profiles.yaml).
    """
    out = []
    for resource_type, elements in profile_declarations().items():
        rid = f"drg-etl-{resource_type.lower()}"
        differential = [{"id": resource_type, "path": resource_type,
                         "short": f"A {resource_type} of the national DRG data set"}]
        for path, spec in elements.items():
            element: dict[str, Any] = {"id": path, "path": path}
            if spec.get("min"):
                element["min"] = spec["min"]
            if "max" in spec:
                element["max"] = str(spec["max"])
            if "type" in spec:
                element["type"] = [{"code": spec["type"]}]
            if "fixedUri" in spec:
                element["fixedUri"] = system(spec["fixedUri"])
            if "valueset" in spec:
                element["binding"] = {"strength": "extensible", "valueSet": _value_set_url(spec["valueset"])}
            differential.append(element)
        out.append({**_common("StructureDefinition", rid, profile_url(resource_type), f"DrgEtl{resource_type}",
                              f"drg-etl {resource_type}"),
                    "description": f"The {resource_type} resources drg-etl exports: the elements always present "
                                   "and the value sets their codes come from (fhir.md, mappings/profiles.yaml).",
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
        out.append({**_common("ValueSet", rid, _value_set_url(concept), f"DrgEtl{rid.title().replace('-', '')}",
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
        url = f"{canonical_base()}/ConceptMap/{center}-to-drg-etl"
        out.append({**_common("ConceptMap", f"{center}-to-drg-etl", url,
                              f"DrgEtl{center.title()}Map", f"{CENTER_NAMES[center]}: local codes to drg-etl codes"),
                    "description": f"How drg-etl reads {CENTER_NAMES[center]}'s delivery (mappings/{center}.yaml).",
                    "targetUri": f"{canonical_base()}/CodeSystem/drg-etl", "group": groups})
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
    out.append({**_common("ConceptMap", "drg-etl-to-standard", f"{canonical_base()}/ConceptMap/drg-etl-to-standard",
                          "DrgEtlToStandard", "drg-etl codes to SKS, SNOMED CT and LOINC"),
                "description": "The standard codes carried beside each project code (mappings/terminology.yaml, "
                               "where each cites its source).", "group": standard})
    return out


def view_definitions() -> list[dict[str, Any]]:
    """The SQL-on-FHIR ViewDefinitions of the flat tables (warehouse/views/)."""
    return [json.loads(with_canonical_base(p.read_text(encoding="utf-8")))
            for p in sorted((SQL_DIR / "views").glob("*.json"))]


def package_resources() -> list[dict[str, Any]]:
    """Every R4 resource of the package (the ViewDefinitions are not R4 resources: ``view_definitions``)."""
    return [*extension_definitions(), *profiles(), code_system_resource(), center_code_system(), *naming_systems(),
            *value_sets(), *concept_maps()]


def _file_name(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def _index_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A file's entry in ``.index.json`` (index-version 2): the keys the resource has, none null."""
    entry = {"filename": _file_name(resource), "resourceType": resource["resourceType"], "id": resource["id"]}
    for key in INDEX_KEYS:
        if resource.get(key) is not None:
            entry[key] = resource[key]
    return entry


def manifest() -> dict[str, Any]:
    """``package/package.json``: the package and what it depends on."""
    return {"name": PACKAGE_NAME, "version": __version__, "canonical": canonical_base(), "fhirVersions": [FHIR_VERSION],
            "type": "fhir.ig", "title": "drg-etl: the national DRG-stimulation data set",
            "description": "Profiles, extensions, code systems, value sets and concept maps of the drg-etl FHIR R4 "
                           "export; its SQL-on-FHIR views in other/.",
            "author": "drg-etl", "license": "CC0-1.0", "dependencies": DEPENDENCIES}


def package_files() -> dict[str, dict[str, Any]]:
    """Every file of the package by its path under ``package/``."""
    resources = package_resources()
    index = {"index-version": 2, "files": [_index_entry(r) for r in resources]}
    return {"package.json": manifest(), ".index.json": index, **{_file_name(r): r for r in resources},
            **{f"{OTHER}/{_file_name(v)}": v for v in view_definitions()}}


def tarball_name() -> str:
    return f"{PACKAGE_NAME}-{__version__}.tgz"


def _dump(content: dict[str, Any]) -> bytes:
    return (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_package(out: Path) -> list[Path]:
    """Write the package into ``out/package/`` and as ``out/<name>-<version>.tgz``; return the files written.

    The tarball is the FHIR package layout (every entry under ``package/``), reproducible: entries sorted, a fixed
    modification time, no owner, and no timestamp in the gzip header.
    """
    folder = out / "package"
    for stale in {*folder.glob("*.json"), *folder.glob(".index.json"), *(folder / OTHER).glob("*.json")}:
        stale.unlink()
    files = {name: _dump(content) for name, content in sorted(package_files().items())}
    written = []
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    tarball = out / tarball_name()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    with tarball.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buffer.getvalue())
    written.append(tarball)
    return written
