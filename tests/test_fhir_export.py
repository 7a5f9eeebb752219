"""export-fhir: Bulk Data NDJSON that validates, whose references resolve, stable across runs, without CPR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from helpers import TEST_KEY, Loaded, all_cprs
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.core.mappings import MAPPINGS_DIR
from drg_etl.fhir.terminology import code_system_resource

TYPES = ["Patient", "Organization", "Condition", "Procedure", "Device", "Observation", "AdverseEvent"]


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


def test_manifest_has_the_bulk_data_shape(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text("utf-8"))
    assert manifest["transactionTime"].endswith("Z")
    assert [o["type"] for o in manifest["output"]] == TYPES
    for entry in manifest["output"]:
        lines = (export / entry["url"]).read_text("utf-8").splitlines()
        assert entry["count"] == len(lines) > 0


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
    for name in [f"{t}.ndjson" for t in TYPES] + ["manifest.json"]:
        assert (again / name).read_bytes() == (export / name).read_bytes(), name


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
