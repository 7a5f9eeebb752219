"""The project's FHIR package: in sync with mappings/, valid, and enough to resolve every extension and code
of the export; and the export's terminology says one thing per coding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fhir.resources.R4B import get_fhir_model_class
from helpers import Loaded

from drg_etl.fhir.export import export_fhir
from drg_etl.fhir.package import CANONICAL, write_package
from drg_etl.fhir.validate import first_error

ROOT = Path(__file__).resolve().parents[1]
SKS = "urn:oid:1.2.208.176.2.4"
SKS_D = "urn:oid:1.2.208.176.2.4.12"
CORE_TYPES = {"StructureDefinition", "CodeSystem", "ValueSet", "ConceptMap", "NamingSystem"}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("package")
    write_package(out)
    return {p.name: json.loads(p.read_text("utf-8")) for p in (out / "package").glob("*.json")} | {
        ".index.json": json.loads((out / "package" / ".index.json").read_text("utf-8"))}


@pytest.fixture(scope="module")
def export(loaded_demo: Loaded, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("export")
    con = duckdb.connect(str(loaded_demo.warehouse), read_only=True)
    export_fhir(con, out)
    con.close()
    return [json.loads(line) for p in sorted(out.glob("*.ndjson")) for line in p.read_text("utf-8").splitlines()]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_committed_package_is_what_the_command_writes(package: dict[str, dict[str, Any]]) -> None:
    committed = ROOT / "fhir-package" / "package"
    names = {p.name for p in committed.iterdir()}
    assert names == set(package), "run `drg-etl fhir-package --out fhir-package`"
    for name, content in package.items():
        assert json.loads((committed / name).read_text("utf-8")) == content, name


def test_every_package_resource_is_valid_r4(package: dict[str, dict[str, Any]]) -> None:
    manifest = package["package.json"]
    assert manifest["fhirVersions"] == ["4.0.1"] and manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}
    listed = {f["filename"] for f in package[".index.json"]["files"]}
    assert listed == set(package) - {"package.json", ".index.json"}
    for name, resource in package.items():
        if resource.get("resourceType") in CORE_TYPES:
            assert first_error(resource) is None, (name, first_error(resource))
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_every_extension_and_project_code_of_the_export_resolves_in_the_package(
        package: dict[str, dict[str, Any]], export: list[dict[str, Any]]) -> None:
    resources = [r for r in package.values() if "resourceType" in r]
    definitions = {r["url"] for r in resources if r["resourceType"] == "StructureDefinition"}
    codes = {(r["url"], c["code"]) for r in resources if r["resourceType"] == "CodeSystem" for c in r["concept"]}
    naming = {u["value"] for r in resources if r["resourceType"] == "NamingSystem" for u in r["uniqueId"]}
    used_extensions, used_codes, used_identifiers = set(), set(), set()
    for resource in export:
        for node in _walk(resource):
            if "url" in node and any(k.startswith("value") for k in node):
                used_extensions.add(node["url"])
            if "system" in node and "code" in node and node["system"].startswith(CANONICAL):
                used_codes.add((node["system"], node["code"]))
            if "system" in node and "value" in node and node["system"].startswith(CANONICAL):
                used_identifiers.add(node["system"])
    assert used_extensions and used_extensions <= definitions, used_extensions - definitions
    assert used_codes and used_codes <= codes, used_codes - codes
    assert used_identifiers <= naming | {s for s, _ in codes}, used_identifiers


def _codings(resource: dict[str, Any], element: str) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in resource[element]["coding"]}


def test_one_coding_means_one_thing_for_the_measures(export: list[dict[str, Any]]) -> None:
    by_measure: dict[str, set[tuple[str, str]]] = {}
    for r in export:
        if r["resourceType"] == "Observation":
            project = next(c["code"] for c in r["code"]["coding"] if c["code"].startswith("measure/"))
            by_measure.setdefault(project, set()).update(_codings(r, "code"))
    assert set(by_measure) == {"measure/nrs_average", "measure/nrs_worst", "measure/pcs_total"}
    pairs = list(by_measure.values())
    for i, a in enumerate(pairs):
        for b in pairs[i + 1:]:
            assert not a & b, (a, b)
    assert ("http://loinc.org", "72514-3") in by_measure["measure/nrs_average"]


def test_danish_sks_codes_sit_beside_snomed_where_sks_has_the_concept(export: list[dict[str, Any]]) -> None:
    implants = [r for r in export if r["resourceType"] == "Procedure"
                and any(c["code"] == "procedure/implant" for c in r["code"]["coding"])]
    assert implants and all((SKS, "KABD60") in _codings(r, "code") for r in implants)
    defects = [r for r in export if r["resourceType"] == "Condition"
               and any(c["code"] in ("complication/lead_fracture", "complication/lead_malfunction")
                       for c in r["code"]["coding"])]
    assert defects and all((SKS_D, "DT851") in _codings(r, "code") for r in defects)


def test_permanence_is_an_outcome_never_a_severity_and_unknown_stays_unsaid(export: list[dict[str, Any]]) -> None:
    conditions = [r for r in export if r["resourceType"] == "Condition"]
    assert not any("severity" in r for r in conditions)
    complications = [r for r in conditions if r["category"][0]["coding"][0]["code"] == "encounter-diagnosis"]
    statuses = {r.get("clinicalStatus", {}).get("coding", [{}])[0].get("code") for r in complications}
    assert statuses <= {"active", "resolved", None} and "active" in statuses
    events = {r["resultingCondition"][0]["reference"].split("/")[1]: r for r in export
              if r["resourceType"] == "AdverseEvent"}
    for condition in complications:
        event = events[condition["id"]]
        assert ("clinicalStatus" in condition) == ("outcome" in event) == ("seriousness" in event)


def test_organizations_carry_their_source(export: list[dict[str, Any]]) -> None:
    organizations = [r for r in export if r["resourceType"] == "Organization"]
    assert len(organizations) == 4 and all(r["meta"]["source"] for r in organizations)


def test_every_exported_resource_has_what_its_profile_requires(package: dict[str, dict[str, Any]],
                                                               export: list[dict[str, Any]]) -> None:
    profiles = [r for r in package.values() if r.get("resourceType") == "StructureDefinition"
                and r.get("kind") == "resource"]
    assert {p["type"] for p in profiles} == {"Procedure", "Device", "Observation", "AdverseEvent"}
    value_sets = {r["url"] for r in package.values() if r.get("resourceType") == "ValueSet"}
    for profile in profiles:
        resources = [r for r in export if r["resourceType"] == profile["type"]]
        assert resources
        for element in profile["differential"]["element"][1:]:
            name = element["path"].split(".", 1)[1]
            if element.get("binding"):
                assert element["binding"]["valueSet"] in value_sets
            if not element.get("min"):
                continue
            for r in resources:
                present = [k for k in r if k == name or (name.endswith("[x]") and k.startswith(name[:-3]))]
                assert present, (profile["type"], name, r["id"])
