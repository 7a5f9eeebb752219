"""Threshold checks (quality/thresholds.py): the YAML, one check per rule and delivery, history, overrides."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from helpers import TEST_KEY, Generated, Loaded
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.core.errors import MappingSpecError, UsageError
from drg_etl.core.rules import RULES
from drg_etl.pipeline.load import LoadReport, load_inbox
from drg_etl.quality import thresholds as dq
from drg_etl.quality.report import quality_report
from drg_etl.quality.thresholds import THRESHOLDS_FILE, THRESHOLDS_VARIABLE, load_thresholds, record_checks

NEW_CUTOFF = "2020-03-31"
TOLERATED = "followup.outside_window"  # fails in the demo, yet under its default threshold


def load_and_check(inbox: Path, warehouse: Path) -> LoadReport:
    """Load the inbox, then record the checks of every delivery (as write.py will, once it calls record_checks)."""
    report = load_inbox(inbox, warehouse, TEST_KEY)
    con = duckdb.connect(str(warehouse))
    try:
        for delivery_id, load_id in con.execute("select delivery_id, load_id from quality.deliveries").fetchall():
            assert record_checks(con, delivery_id, load_id) == len(RULES)
    finally:
        con.close()
    return report


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checked(demo: Generated, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo loaded once, its checks recorded."""
    base = tmp_path_factory.mktemp("dq_checked")
    shutil.copytree(demo.inbox, base / "inbox")
    load_and_check(base / "inbox", base / "wh.duckdb")
    return base / "wh.duckdb"


@pytest.fixture(scope="module")
def reloaded(demo: Generated, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo loaded, then a newer auh delivery loaded on top; checks recorded after each load."""
    base = tmp_path_factory.mktemp("dq_reloaded")
    inbox = base / "inbox"
    shutil.copytree(demo.inbox, inbox)
    load_and_check(inbox, base / "wh.duckdb")
    shutil.copytree(inbox / "auh" / "2019-12-31", inbox / "auh" / NEW_CUTOFF)
    assert load_and_check(inbox, base / "wh.duckdb").loaded == [f"auh/{NEW_CUTOFF}"]
    return base / "wh.duckdb"


def test_thresholds_file_covers_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THRESHOLDS_VARIABLE, raising=False)
    import yaml

    spec = yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    assert set(spec["thresholds"]) == set(RULES)
    thresholds = load_thresholds()
    assert set(thresholds) == set(RULES) and all(0 <= t <= 1 for t in thresholds.values())
    assert thresholds["cpr.invalid"] == 0 and 0 < thresholds["cpr.sex_mismatch"] < 0.1


def test_override_file_replaces_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = _yaml(tmp_path / "base.yaml", "default: 0.5\nthresholds:\n  cpr.invalid: 0\n  code.unknown: 0.2\n")
    assert load_thresholds(base)["row.shape"] == 0.5
    override = _yaml(tmp_path / "over.yaml", "thresholds:\n  code.unknown: 0.03\n")
    monkeypatch.setenv(THRESHOLDS_VARIABLE, str(override))
    merged = load_thresholds(base)
    assert merged["code.unknown"] == 0.03 and merged["cpr.invalid"] == 0 and merged["row.shape"] == 0.5
    assert load_thresholds()[TOLERATED] == load_thresholds(override=THRESHOLDS_FILE)[TOLERATED]
    _yaml(override, "default: 0.1\n")
    assert load_thresholds(base)["row.shape"] == 0.1 and load_thresholds(base)["code.unknown"] == 0.2


@pytest.mark.parametrize("text", ["thresholds:\n  cpr.invalid: 5\n", "thresholds:\n  no.such_rule: 0\n",
                                  "default: yes\n", "thresholds: [1]\n"])
def test_bad_thresholds_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(MappingSpecError):
        load_thresholds(_yaml(tmp_path / "bad.yaml", text))


def test_missing_override_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THRESHOLDS_VARIABLE, str(tmp_path / "none.yaml"))
    with pytest.raises(UsageError):
        load_thresholds()


def test_every_rule_checked_per_delivery(checked: Path) -> None:
    con = duckdb.connect(str(checked), read_only=True)
    try:
        deliveries = dict(con.execute("select delivery_id, center from quality.deliveries").fetchall())
        failures = {(d, r): n for d, r, n in con.execute(
            'select delivery_id, rule_id, count(distinct (file, "row")) from quality.quarantine group by all'
        ).fetchall()}
        read = dict(con.execute("select delivery_id, sum(rows_read) from quality.delivery_files group by all")
                    .fetchall())
        history = dq.check_history(con)
    finally:
        con.close()
    assert len(deliveries) == 4 and failures
    assert {(c["delivery_id"], c["rule_id"]) for c in history} == {(d, r) for d in deliveries for r in RULES}
    assert len(history) == len(deliveries) * len(RULES)
    thresholds = load_thresholds()
    for c in history:
        assert c["rows_failed"] == failures.get((c["delivery_id"], c["rule_id"]), 0)
        assert c["rows_checked"] == read[c["delivery_id"]] > 0
        assert c["share_failed"] == pytest.approx(c["rows_failed"] / c["rows_checked"])
        assert c["threshold"] == thresholds[c["rule_id"]]
        assert c["passed"] is (c["share_failed"] <= c["threshold"])
        assert c["severity"] == RULES[c["rule_id"]].severity
        assert c["kahn_category"] == RULES[c["rule_id"]].kahn_category
    assert [(c["center"], c["rule_id"], c["delivery"]) for c in history] == sorted(
        (c["center"], c["rule_id"], c["delivery"]) for c in history)
    assert any(c["rows_failed"] == 0 and c["passed"] for c in history)
    tolerated = [c for c in history if c["rule_id"] == TOLERATED and c["rows_failed"]]
    assert tolerated and all(c["passed"] for c in tolerated)


def test_record_checks_is_idempotent(checked: Path, tmp_path: Path) -> None:
    copy = tmp_path / "wh.duckdb"
    shutil.copy(checked, copy)
    con = duckdb.connect(str(copy))
    try:
        delivery_id, load_id = con.execute("select delivery_id, load_id from quality.deliveries limit 1").fetchone()
        record_checks(con, delivery_id, load_id)
        record_checks(con, delivery_id, load_id)
        assert con.execute("select count(*) from quality.check_results where delivery_id = ?",
                           [delivery_id]).fetchone()[0] == len(RULES)
        with pytest.raises(ValueError):
            record_checks(con, "no-such-delivery", load_id)
    finally:
        con.close()


def test_failing_checks_and_verdict(checked: Path) -> None:
    con = duckdb.connect(str(checked), read_only=True)
    try:
        failing = dq.failing_checks(con)
        auh = dq.failing_checks(con, "auh")
        passed, metadata = dq.center_verdict(con, "auh")
        nothing = dq.center_verdict(con, "nowhere")
    finally:
        con.close()
    assert {c["center"] for c in failing} == {"aauh", "auh", "ouh", "rh"}
    assert auh and {c["center"] for c in auh} == {"auh"} and not any(c["passed"] for c in auh)
    assert ("cpr.invalid", "error") in {(c["rule_id"], c["severity"]) for c in auh}  # threshold 0, one invalid CPR
    assert passed is False and metadata["delivery"] == "2019-12-31" and metadata["checks"] == len(RULES)
    assert "cpr.invalid" in {e["rule_id"] for e in metadata["failed errors"]}
    json.dumps(metadata)
    assert nothing == (True, {"delivery": None, "checks": 0, "reason": "no delivery in force"})


def test_history_holds_both_deliveries_of_a_center(reloaded: Path) -> None:
    con = duckdb.connect(str(reloaded), read_only=True)
    try:
        history = dq.check_history(con)
        failing = dq.failing_checks(con, "auh")
    finally:
        con.close()
    auh = [c for c in history if c["center"] == "auh"]
    assert {c["delivery"] for c in auh} == {"2019-12-31", NEW_CUTOFF}
    for rule_id in RULES:
        rows = [c for c in auh if c["rule_id"] == rule_id]
        assert [c["delivery"] for c in rows] == ["2019-12-31", NEW_CUTOFF]
        assert [c["status"] for c in rows] == ["superseded", "in_force"]
    assert len({c["load_id"] for c in auh}) == 2
    assert {c["delivery"] for c in history if c["center"] == "rh"} == {"2019-12-31"}
    assert failing and {c["delivery"] for c in failing} == {NEW_CUTOFF}


def test_override_of_zero_fails_a_tolerated_check(checked: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "wh.duckdb"
    shutil.copy(checked, copy)
    monkeypatch.setenv(THRESHOLDS_VARIABLE, str(_yaml(tmp_path / "strict.yaml", f"thresholds:\n  {TOLERATED}: 0\n")))
    con = duckdb.connect(str(copy))
    try:
        for delivery_id, load_id in con.execute("select delivery_id, load_id from quality.deliveries").fetchall():
            record_checks(con, delivery_id, load_id)
        checks = [c for c in dq.check_history(con) if c["rule_id"] == TOLERATED and c["rows_failed"]]
    finally:
        con.close()
    assert checks and all(c["threshold"] == 0 and c["passed"] is False for c in checks)


def test_report_has_checks_and_summary(reloaded: Path) -> None:
    con = duckdb.connect(str(reloaded), read_only=True)
    try:
        report = quality_report(con)
    finally:
        con.close()
    assert {"files", "rules", "rules_by_file", "released", "reconciliation"} <= set(report)
    keys = {"center", "delivery", "rule_id", "severity", "kahn_category", "rows_checked", "rows_failed",
            "share_failed", "threshold", "passed"}
    assert report["checks"] and all(keys <= set(c) for c in report["checks"])
    assert len(report["checks"]) == 5 * len(RULES)  # four centers, auh twice
    summary = {s["center"]: s for s in report["checks_summary"]}
    assert set(summary) == {"aauh", "auh", "ouh", "rh"} and summary["auh"]["delivery"] == NEW_CUTOFF
    for s in summary.values():
        assert s["checks"] == len(RULES) and s["failed"] == len(s["failed_rules"]) >= s["failed_errors"]
        assert s["passed"] is (s["failed_errors"] == 0)
    result = CliRunner().invoke(app, ["quality", "--warehouse", str(reloaded), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["checks_summary"] == report["checks_summary"]


def test_clean_demo_passes_every_check(loaded_clean: Loaded, tmp_path: Path) -> None:
    copy = tmp_path / "wh.duckdb"
    shutil.copy(loaded_clean.warehouse, copy)
    con = duckdb.connect(str(copy))
    try:
        for delivery_id, load_id in con.execute("select delivery_id, load_id from quality.deliveries").fetchall():
            record_checks(con, delivery_id, load_id)
        history = dq.check_history(con)
        verdicts = [dq.center_verdict(con, center)[0] for center in ("aauh", "auh", "ouh", "rh")]
    finally:
        con.close()
    assert len(history) == 4 * len(RULES) and all(c["passed"] for c in history) and all(verdicts)


def test_report_without_checks_is_empty(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    try:
        con.execute("create schema quality")
        assert dq.check_history(con) == [] and dq.failing_checks(con) == []
    finally:
        con.close()
