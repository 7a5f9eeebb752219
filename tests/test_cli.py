"""The drg-etl command line: generate and demo, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from drg_etl.cli import app

runner = CliRunner()


def test_generate_writes_deliveries_and_truth(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "inbox"), "--seed", "5", "--patients", "20",
                                 "--truth", str(tmp_path / "truth.json")])
    assert result.exit_code == 0, result.output
    assert "prom.csv" in result.output
    assert (tmp_path / "inbox" / "ouh" / "2019-12-31" / "DRG_registrering.xlsx").exists()
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert truth["figures"]["cohort"]["trial_patients"] == 20


def test_generate_clean_says_no_defects(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "inbox"), "--clean"])
    assert result.exit_code == 0
    assert "0 injected defects" in result.output


def test_bad_patients_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "inbox"), "--patients", "0"])
    assert result.exit_code == 2
    assert "--patients" in result.output


def test_demo_makes_a_fresh_workdir(tmp_path: Path) -> None:
    stale = tmp_path / "work" / "inbox" / "auh" / "2001-01-01"
    stale.mkdir(parents=True)
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert (tmp_path / "work" / "inbox" / "rh" / "2019-12-31" / "DRGDK_DataDictionary.csv").exists()
    assert (tmp_path / "work" / "truth.json").exists()
    output = " ".join(result.output.split())
    assert "fixed demo key" in output and "loaded 4" in output
    assert (tmp_path / "work" / "warehouse.duckdb").exists()
    report = tmp_path / "work" / "report.html"
    assert report.exists() and "HTML report" in output and "Cohort flow" in report.read_text("utf-8")
