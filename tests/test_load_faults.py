"""Whole-file faults, idempotent loads, superseding deliveries, and the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from helpers import FAULTS, TEST_KEY, Generated, new_delivery, snapshot
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.pipeline.load import load_inbox


@pytest.mark.parametrize(("center", "fault", "file", "rule_id", "words"), FAULTS,
                         ids=[f[1].__name__ for f in FAULTS])
def test_a_file_that_breaks_its_format_is_rejected_and_nothing_changes(
        clean_warehouse: tuple[Path, Path], center: str, fault: Callable[[Path], None], file: str, rule_id: str,
        words: str) -> None:
    inbox, path = clean_warehouse
    before = snapshot(path)
    fault(new_delivery(inbox, center))
    report = load_inbox(inbox, path, TEST_KEY)
    assert report.exit_code == 1
    assert report.rejected == [f"{center}/2020-03-31"]
    rejected = [f for f in report.files if f.rejected]
    assert [(f.file, f.rule_id) for f in rejected] == [(file, rule_id)]
    assert words in rejected[0].reason
    assert snapshot(path) == before, "the warehouse's data is unchanged; the previous delivery stays in force"
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("select center, file, rule_id from quality.rejections").fetchall() == [(center, file, rule_id)]
    con.close()
    again = load_inbox(inbox, path, TEST_KEY)
    assert again.exit_code == 1 and snapshot(path) == before


def test_loading_twice_changes_nothing(clean_warehouse: tuple[Path, Path]) -> None:
    inbox, path = clean_warehouse
    before = snapshot(path)
    report = load_inbox(inbox, path, TEST_KEY)
    assert report.loaded == [] and len(report.skipped) == 4
    assert snapshot(path) == before


def test_a_newer_delivery_supersedes_and_history_stays(clean_warehouse: tuple[Path, Path]) -> None:
    inbox, path = clean_warehouse
    folder = new_delivery(inbox, "auh", "2020-06-30")
    prom = folder / "prom.csv"
    lines = prom.read_bytes().split(b"\r\n")
    prom.write_bytes(b"\r\n".join(lines[:1] + lines[2:]))  # the new extract lacks one assessment
    report = load_inbox(inbox, path, TEST_KEY)
    assert report.loaded == ["auh/2020-06-30"] and report.exit_code == 0
    con = duckdb.connect(str(path), read_only=True)
    status = dict(con.execute("select strftime(cutoff, '%Y-%m-%d'), status from quality.deliveries "
                              "where center = 'auh'").fetchall())
    assert status == {"2019-12-31": "superseded", "2020-06-30": "in_force"}
    current = con.execute("select count(*) from canonical.current_measurements where center = 'auh'").fetchone()[0]
    old = con.execute("select count(*) from canonical.measurements m join quality.deliveries d using (delivery_id) "
                      "where d.center = 'auh' and d.cutoff = '2019-12-31'").fetchone()[0]
    assert 1 <= old - current <= 3  # one assessment row holds up to three scores
    assert con.execute("select count(distinct cutoff) from canonical.current_patients where center = 'auh'"
                       ).fetchone()[0] == 1
    con.close()


def test_load_without_the_key_exits_2_and_says_how(tmp_path: Path, demo_clean: Generated,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRG_ETL_PSEUDONYM_KEY", raising=False)
    result = CliRunner().invoke(app, ["load", str(demo_clean.inbox), "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "DRG_ETL_PSEUDONYM_KEY is not set" in output and "export DRG_ETL_PSEUDONYM_KEY" in output
    assert not (tmp_path / "w.duckdb").exists()


def test_load_of_a_missing_inbox_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRG_ETL_PSEUDONYM_KEY", TEST_KEY.decode())
    result = CliRunner().invoke(app, ["load", str(tmp_path / "nowhere"), "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 2 and "not a folder" in " ".join(result.output.split())
