"""The canonical base is one setting (mappings/terminology.yaml, DRG_ETL_CANONICAL_BASE for a run): changing it
changes every project URL of the export, the package and the warehouse, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from helpers import Loaded, copy_of, run_cli

from drg_etl.core.mappings import canonical_base

OTHER = "https://registry.example.dk/fhir"
ENV = {"DRG_ETL_CANONICAL_BASE": OTHER}


def _texts(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in (".json", ".ndjson")}


def test_another_base_changes_every_project_url_and_nothing_else(loaded_clean: Loaded, tmp_path: Path) -> None:
    old = canonical_base()
    warehouse = copy_of(loaded_clean, tmp_path / "other")
    reloaded = run_cli("load", str(loaded_clean.gen.inbox), "--warehouse", str(warehouse), **ENV)
    assert reloaded.returncode in (0, 1), reloaded.stderr  # nothing new to load; the FHIR layer is rebuilt whole
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from fhir.resources where resource::varchar like ?",
                           [f"%{old}%"]).fetchone()[0] == 0
        assert con.execute("select count(*) from fhir.resources where resource::varchar like ?",
                           [f"%{OTHER}%"]).fetchone()[0] > 0
        assert con.execute("select value from quality.settings where name = 'canonical_base'").fetchone()[0] == OTHER
    outputs = {}
    for name, where, env in (("default", loaded_clean.warehouse, {}), ("other", warehouse, ENV)):
        export, package = tmp_path / f"export-{name}", tmp_path / f"package-{name}"
        for args in (("export-fhir", "--warehouse", str(where), "--out", str(export)),
                     ("fhir-package", "--out", str(package))):
            done = run_cli(*args, **env)
            assert done.returncode == 0, done.stderr
        outputs[name] = {**{f"export/{k}": v for k, v in _texts(export).items() if k != "manifest.json"},
                         **{f"package/{k}": v for k, v in _texts(package).items()}}
    assert outputs["default"].keys() == outputs["other"].keys()
    assert not [name for name, text in outputs["other"].items() if old in text], "no trace of the old base"
    changed = [name for name, text in outputs["default"].items() if old in text]
    assert len(changed) > 20
    for name, text in outputs["default"].items():
        assert text.replace(old, OTHER) == outputs["other"][name], name
    resources = [json.loads(line) for line in outputs["other"]["export/Observation.ndjson"].splitlines()]
    assert any(e["url"].startswith(OTHER) for r in resources for e in r.get("extension", []))


def test_a_base_that_is_not_a_url_is_refused_by_name(tmp_path: Path) -> None:
    done = run_cli("fhir-package", "--out", str(tmp_path / "p"), DRG_ETL_CANONICAL_BASE="registry/fhir/")
    assert done.returncode == 2
    assert "DRG_ETL_CANONICAL_BASE" in done.stderr and "absolute http(s) URL" in done.stderr
