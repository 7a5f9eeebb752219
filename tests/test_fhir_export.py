"""export-fhir: Bulk Data NDJSON that validates, whose references resolve, stable across runs, without CPR."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest
from fhir.resources.R4B import get_fhir_model_class
from helpers import TEST_KEY, Loaded, all_cprs
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.core.mappings import MAPPINGS_DIR
from drg_etl.fhir.terminology import code_system_resource, terminology

TYPES = ["Patient", "Organization", "Condition", "Procedure", "Device", "Observation", "AdverseEvent"]
SKS = "urn:oid:1.2.208.176.2.4"  # K-codes (terminology-dk.md, fhir.md)
SKS_D = "urn:oid:1.2.208.176.2.4.12"  # D-codes, where DK Core's Condition slices them
SNOMED = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def export(loaded_demo: Loaded, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    result = CliRunner().invoke(app, ["export-fhir", "--warehouse", str(loaded_demo.warehouse), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _resources(out: Path) -> list[dict]:
    return [json.loads(line) for t in TYPES for line in (out / f"{t}.ndjson").read_text("utf-8").splitlines()]


def test_every_line_validates_as_r4(export: Path) -> None:
    count = 0
    for resource_type in TYPES:
        model = get_fhir_model_class(resource_type)
        for line in (export / f"{resource_type}.ndjson").read_text("utf-8").splitlines():
            assert model.model_validate_json(line).get_resource_type() == resource_type
            count += 1
    assert count > 700


def _local(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file" and parts.netloc in ("", "localhost"), url
    return Path(url2pathname(parts.path))


def test_manifest_has_the_bulk_data_shape(export: Path) -> None:
    """The Bulk Data Access IG v2 manifest: the kick-off URL, absolute file URLs that resolve, counts, no errors."""
    manifest = json.loads((export / "manifest.json").read_text("utf-8"))
    assert set(manifest) == {"transactionTime", "request", "requiresAccessToken", "output", "error"}
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    request = urlsplit(manifest["request"])
    assert request.scheme == "file" and request.path.endswith("/$export")
    assert request.query == "_type=" + ",".join(TYPES)
    assert _local(manifest["request"]).parent == export.resolve()
    assert [o["type"] for o in manifest["output"]] == TYPES
    for entry in manifest["output"]:
        assert set(entry) == {"type", "url", "count"}
        path = _local(entry["url"])
        assert path == (export / f"{entry['type']}.ndjson").resolve()
        lines = path.read_text("utf-8").splitlines()
        assert entry["count"] == len(lines) > 0


def test_base_url_names_where_the_files_are_served(loaded_demo: Loaded, export: Path, tmp_path: Path) -> None:
    """--base-url: absolute http(s) URLs a standard Bulk client (drg_etl/pull/bulk.py among them) can follow."""
    out = tmp_path / "served"
    result = CliRunner().invoke(app, ["export-fhir", "--warehouse", str(loaded_demo.warehouse), "--out", str(out),
                                      "--base-url", "https://x.example/export/"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert [o["url"] for o in manifest["output"]] == [f"https://x.example/export/{t}.ndjson" for t in TYPES]
    assert manifest["request"] == "https://x.example/export/$export?_type=" + ",".join(TYPES)
    for t in TYPES:
        assert (out / f"{t}.ndjson").read_bytes() == (export / f"{t}.ndjson").read_bytes(), t
    without_slash = tmp_path / "no-slash"
    CliRunner().invoke(app, ["export-fhir", "--warehouse", str(loaded_demo.warehouse), "--out", str(without_slash),
                             "--base-url", "https://x.example/export"])
    assert json.loads((without_slash / "manifest.json").read_text("utf-8")) == manifest
    refused = CliRunner().invoke(app, ["export-fhir", "--warehouse", str(loaded_demo.warehouse),
                                       "--out", str(tmp_path / "refused"), "--base-url", "export/"])
    assert refused.exit_code == 2 and "--base-url" in refused.output


def test_every_reference_resolves_inside_the_export(export: Path) -> None:
    resources = _resources(export)
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    assert len(ids) == len(resources), "ids are unique per type"

    def references(value: object) -> list[str]:
        if isinstance(value, dict):
            found = [value["reference"]] if isinstance(value.get("reference"), str) else []
            return found + [r for v in value.values() for r in references(v)]
        if isinstance(value, list):
            return [r for v in value for r in references(v)]
        return []

    unresolved = {ref for r in resources for ref in references(r) if ref not in ids}
    assert unresolved == set()


def test_lineage_and_identity(export: Path) -> None:
    for r in _resources(export):
        if r["resourceType"] != "Organization":
            assert r["meta"]["source"].startswith("urn:drg-etl:delivery:")
            assert r["meta"]["tag"][0]["code"] in ("auh", "ouh", "rh", "aauh")
    patients = [r for r in _resources(export) if r["resourceType"] == "Patient"]
    assert all(len(p["birthDate"]) == 4 and len(p["identifier"][0]["value"]) == 64 for p in patients)


def test_standard_codes_are_used(export: Path) -> None:
    text = "".join((export / f"{t}.ndjson").read_text("utf-8") for t in TYPES)
    for code in ("72514-3", "61685007", "385669000", "KABD60", "DT851", "http://unitsofmeasure.org"):
        assert code in text


def test_ids_are_stable_across_runs(loaded_demo: Loaded, export: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    CliRunner().invoke(app, ["export-fhir", "--warehouse", str(loaded_demo.warehouse), "--out", str(again)])
    for name in [f"{t}.ndjson" for t in TYPES]:
        assert (again / name).read_bytes() == (export / name).read_bytes(), name
    # the manifest names its own folder; apart from that it is the same
    first = (export / "manifest.json").read_text("utf-8").replace(export.resolve().as_uri(), "DIR")
    second = (again / "manifest.json").read_text("utf-8").replace(again.resolve().as_uri(), "DIR")
    assert first == second


def _codings(export: Path, resource_type: str, element: str) -> list[dict]:
    return [c for r in _resources(export) if r["resourceType"] == resource_type for c in r[element]["coding"]]


def test_sks_d_codes_sit_where_dk_core_slices_them(export: Path) -> None:
    """SKS D-codes (diagnoses, complications) under urn:oid:1.2.208.176.2.4.12, never under the K-code system."""
    codings = _codings(export, "Condition", "code") + _codings(export, "AdverseEvent", "event")
    under_sks = [c for c in codings if c["system"] == SKS]
    assert under_sks == [], {c["code"] for c in under_sks}
    assert {c["code"] for c in codings if c["system"] == SKS_D} == {"DM890", "DT818J", "DT851", "DT857"}
    assert all(c["code"].startswith("D") for c in codings if c["system"] == SKS_D)
    procedures = _codings(export, "Procedure", "code")
    assert {c["code"] for c in procedures if c["system"] == SKS} >= {"KABD60"}
    assert all(c["code"].startswith("K") for c in procedures if c["system"] == SKS)
    assert not any(c["system"] == SKS_D for c in procedures)


def test_focal_device_actions_are_the_verified_snomed_codes(export: Path) -> None:
    text = "".join((export / f"{t}.ndjson").read_text("utf-8") for t in TYPES)
    assert "device-action" not in text
    verified = {(SNOMED, e["snomed"]["code"], e["snomed"]["display"]) for e in terminology()["device_actions"].values()}
    assert {code for _, code, _ in verified} == {"129336009", "129303008", "129426002"}
    actions = [f["action"] for r in _resources(export) if r["resourceType"] == "Procedure"
               for f in r.get("focalDevice", [])]
    assert len(actions) > 100
    codings = {(c["system"], c["code"], c["display"]) for a in actions for c in a["coding"]}
    assert all(len(a["coding"]) == 1 for a in actions)
    assert codings <= verified
    assert {code for _, code, _ in codings} >= {"129336009", "129303008"}  # implants and explants both happen


def test_ids_survive_a_reload_into_a_new_warehouse(loaded_demo: Loaded, export: Path, tmp_path: Path) -> None:
    from drg_etl.pipeline.load import load_inbox

    path = tmp_path / "w2.duckdb"
    load_inbox(loaded_demo.gen.inbox, path, TEST_KEY)
    out = tmp_path / "reloaded"
    CliRunner().invoke(app, ["export-fhir", "--warehouse", str(path), "--out", str(out)])
    for t in TYPES:
        assert (out / f"{t}.ndjson").read_bytes() == (export / f"{t}.ndjson").read_bytes(), t


def test_no_cpr_in_the_export(loaded_demo: Loaded, export: Path) -> None:
    text = "".join(p.read_text("utf-8") for p in export.iterdir())
    assert [c for c in all_cprs(loaded_demo.gen) if c in text] == []


def test_the_published_code_system_is_in_sync_with_the_terminology_map() -> None:
    published = json.loads((MAPPINGS_DIR / "CodeSystem-drg-etl.json").read_text("utf-8"))
    assert published == code_system_resource()
    get_fhir_model_class("CodeSystem").model_validate(published)
