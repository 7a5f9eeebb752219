"""`drg-etl quality --json`: the contract of cli.md, and the human report."""

from __future__ import annotations

import json

from helpers import Loaded
from typer.testing import CliRunner

from drg_etl.cli import app


def test_quality_json_contract(loaded_demo: Loaded) -> None:
    result = CliRunner().invoke(app, ["quality", "--warehouse", str(loaded_demo.warehouse), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    prom = next(f for f in report["files"] if f["center"] == "auh" and f["file"] == "prom.csv")
    assert set(prom) >= {"center", "delivery", "file", "rows_read", "rows_loaded", "rows_quarantined", "rejected",
                         "reason"}
    assert prom["delivery"] == "2019-12-31" and prom["rejected"] is False and prom["reason"] is None
    assert prom["rows_read"] == prom["rows_loaded"] + prom["rows_quarantined"] > 0
    rules = {r["rule_id"]: r for r in report["rules"]}
    expected = {}
    for d in loaded_demo.gen.truth["defects"]:
        expected[d["rule_id"]] = expected.get(d["rule_id"], 0) + 1
    assert {k: v["count"] for k, v in rules.items()} == expected
    assert rules["cpr.sex_mismatch"]["severity"] == "warning"
    assert rules["score.out_of_range"]["kahn_category"] == "plausibility"
    assert all(r["examples"] and r["examples"][0]["message"] for r in report["rules"])
    assert report["reconciliation"]["balanced"] is True


def test_quality_without_a_warehouse_exits_2(tmp_path) -> None:
    result = CliRunner().invoke(app, ["quality", "--warehouse", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2


def test_quality_table_names_rules(loaded_demo: Loaded) -> None:
    result = CliRunner().invoke(app, ["quality", "--warehouse", str(loaded_demo.warehouse)])
    assert result.exit_code == 0
    assert "balanced" in result.output and "pcs.total_mismatch" in result.output
