"""The project's FHIR package: in sync with mappings/, valid, and enough to resolve every extension and code
of the export; and the export's terminology says one thing per coding."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fhir.resources.R4B import get_fhir_model_class
from helpers import Loaded

from drg_etl.fhir.export import export_fhir
from drg_etl.fhir.package import profile_url, tarball_name, write_package
from drg_etl.fhir.terminology import canonical_base
from drg_etl.fhir.validate import first_error

ROOT = Path(__file__).resolve().parents[1]
SKS = "urn:oid:1.2.208.176.2.4"
SKS_D = "urn:oid:1.2.208.176.2.4.12"
CORE_TYPES = {"StructureDefinition", "CodeSystem", "ValueSet", "ConceptMap", "NamingSystem"}


def _files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every JSON file under ``folder`` by its path there (``other/ViewDefinition-...json``)."""
    return {p.relative_to(folder).as_posix(): json.loads(p.read_text("utf-8"))
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    write_package(out)
    return out


@pytest.fixture(scope="module")
def package(written: Path) -> dict[str, dict[str, Any]]:
    """The R4 resources, package.json and .index.json of the package folder (what is beside them: ``other``)."""
    return {name: content for name, content in _files(written / "package").items() if "/" not in name}


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


def test_the_committed_package_is_what_the_command_writes(written: Path) -> None:
    committed = _files(ROOT / "fhir-package" / "package")
    fresh = _files(written / "package")
    assert set(committed) == set(fresh), "run `drg-etl fhir-package --out fhir-package`"
    for name, content in fresh.items():
        assert committed[name] == content, name


def test_the_tgz_is_the_folder_in_the_fhir_package_layout_and_the_same_bytes_every_time(
        written: Path, tmp_path: Path) -> None:
    tarball = written / tarball_name()
    assert tarball.name == "example.drg-etl.fhir-0.1.0.tgz"
    with tarfile.open(tarball, "r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names) and all(m.isfile() and m.name.startswith("package/") for m in members)
        assert {m.mtime for m in members} == {946684800} and {(m.uid, m.gid, m.uname) for m in members} == {(0, 0, "")}
        contents = {m.name.removeprefix("package/"): json.load(io.BytesIO(tar.extractfile(m).read()))  # type: ignore[union-attr]
                    for m in members}
    assert contents == _files(written / "package")
    assert "package/package.json" in names and "package/.index.json" in names
    write_package(tmp_path)
    assert (tmp_path / tarball_name()).read_bytes() == tarball.read_bytes()


def test_the_index_lists_every_r4_resource_without_nulls_and_the_views_sit_beside_them(written: Path) -> None:
    everything = _files(written / "package")
    index = everything[".index.json"]
    assert index["index-version"] == 2
    assert all(v is not None for entry in index["files"] for v in entry.values())
    listed = {f["filename"] for f in index["files"]}
    assert listed == {n for n in everything if "/" not in n} - {"package.json", ".index.json"}
    for entry in index["files"]:
        resource = everything[entry["filename"]]
        assert {k: resource[k] for k in entry if k != "filename"} == {k: v for k, v in entry.items() if k != "filename"}
    views = {n: r for n, r in everything.items() if "/" in n}
    assert len(views) == 6 and all(n.startswith("other/ViewDefinition-") for n in views)
    assert {r["resourceType"] for r in views.values()} == {"ViewDefinition"}
    assert not any(r.get("resourceType") == "ViewDefinition" for n, r in everything.items() if "/" not in n)


def test_every_package_resource_is_valid_r4(package: dict[str, dict[str, Any]]) -> None:
    manifest = package["package.json"]
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1", "hl7.terminology.r4": "6.5.0"}
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
            if "system" in node and "code" in node and node["system"].startswith(canonical_base()):
                used_codes.add((node["system"], node["code"]))
            if "system" in node and "value" in node and node["system"].startswith(canonical_base()):
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
    assert {p["type"] for p in profiles} == {r["resourceType"] for r in export} == {
        "Patient", "Organization", "Condition", "Procedure", "Device", "Observation", "AdverseEvent"}
    value_sets = {r["url"] for r in package.values() if r.get("resourceType") == "ValueSet"}
    for profile in profiles:
        assert profile["url"] == profile_url(profile["type"])
        resources = [r for r in export if r["resourceType"] == profile["type"]]
        assert resources and all(r["meta"]["profile"] == [profile["url"]] for r in resources)
        for element in profile["differential"]["element"][1:]:
            name = element["path"].split(".", 1)[1]
            if "." in name:  # inside a data type (Patient.identifier.system): the validator's (test_fhir_validator)
                continue
            if element.get("binding"):
                assert element["binding"]["valueSet"] in value_sets
            if not element.get("min"):
                continue
            for r in resources:
                present = [k for k in r if k == name or (name.endswith("[x]") and k.startswith(name[:-3]))]
                assert present, (profile["type"], name, r["id"])
