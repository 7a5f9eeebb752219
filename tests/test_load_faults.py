"""Whole-file faults, idempotent loads, superseding deliveries, and the key."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.pipeline.load import load_inbox
from tests.conftest import TEST_KEY, Generated

TABLES = ["canonical.patients", "canonical.procedures", "canonical.devices", "canonical.measurements",
          "canonical.complications", "quality.quarantine", "staging.source_records", "quality.deliveries",
          "quality.delivery_files"]


def snapshot(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: sorted(con.execute(f"select * exclude (loaded_at) from {t}" if t == "quality.deliveries"
                                      else f"select * from {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        con.close()


def _new_delivery(inbox: Path, center: str, cutoff: str = "2020-03-31") -> Path:
    """A new delivery of a center, a copy of its current one (rh's file renamed to the new cutoff)."""
    source = inbox / center / "2019-12-31"
    target = inbox / center / cutoff
    shutil.copytree(source, target)
    if center == "rh":
        (target / "DRGDK_DATA_2019-12-31.csv").rename(target / f"DRGDK_DATA_{cutoff}.csv")
    return target


def utf8_instead_of_cp1252(folder: Path) -> None:
    path = folder / "patienter.csv"
    path.write_bytes(path.read_bytes().decode("cp1252").encode("utf-8"))


def comma_delimiter(folder: Path) -> None:
    path = folder / "prom.csv"
    path.write_bytes(path.read_bytes().replace(b",", b".").replace(b";", b","))


def missing_column(folder: Path) -> None:
    path = folder / "prom.csv"
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    path.write_bytes("\r\n".join(line.rsplit(";", 1)[0] for line in lines if line).encode("cp1252") + b"\r\n")


def truncated(folder: Path) -> None:
    path = folder / "udstyr.csv"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2 + 7])


def empty_file(folder: Path) -> None:
    (folder / "komplikationer.csv").write_bytes(b"")


def missing_file(folder: Path) -> None:
    (folder / "procedurer.csv").unlink()


def broken_workbook(folder: Path) -> None:
    path = folder / "DRG_registrering.xlsx"
    path.write_bytes(path.read_bytes()[:3000])


def non_json_line(folder: Path) -> None:
    with (folder / "Observation.ndjson").open("a", encoding="utf-8") as handle:
        handle.write('{"resourceType": "Observation", "id": "x1", \n')


def not_fhir_line(folder: Path) -> None:
    with (folder / "Device.ndjson").open("a", encoding="utf-8") as handle:
        handle.write('{"resourceType": "Device", "id": "d1", "status": 17, "bogusElement": true}\n')


def rh_semicolons(folder: Path) -> None:
    path = folder / "DRGDK_DATA_2020-03-31.csv"
    path.write_bytes(path.read_bytes().replace(b",", b";"))


FAULTS: list[tuple[str, Callable[[Path], None], str, str, str]] = [
    ("auh", utf8_instead_of_cp1252, "patienter.csv", "file.encoding", "UTF-8"),
    ("auh", comma_delimiter, "prom.csv", "file.delimiter", "separated by ','"),
    ("auh", missing_column, "prom.csv", "file.columns", "missing column(s) ['PCS']"),
    ("auh", truncated, "udstyr.csv", "file.empty", "truncated"),
    ("auh", empty_file, "komplikationer.csv", "file.empty", "empty"),
    ("auh", missing_file, "procedurer.csv", "file.missing", "missing"),
    ("ouh", broken_workbook, "DRG_registrering.xlsx", "file.unreadable", "cannot be opened"),
    ("aauh", non_json_line, "Observation.ndjson", "file.ndjson", "is not JSON"),
    ("aauh", not_fhir_line, "Device.ndjson", "file.ndjson", "not valid FHIR R4"),
    ("rh", rh_semicolons, "DRGDK_DATA_2020-03-31.csv", "file.delimiter", "';'"),
]


@pytest.mark.parametrize(("center", "fault", "file", "rule_id", "words"), FAULTS,
                         ids=[f[1].__name__ for f in FAULTS])
def test_a_file_that_breaks_its_format_is_rejected_and_nothing_changes(
        clean_warehouse: tuple[Path, Path], center: str, fault: Callable[[Path], None], file: str, rule_id: str,
        words: str) -> None:
    inbox, path = clean_warehouse
    before = snapshot(path)
    fault(_new_delivery(inbox, center))
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
    folder = _new_delivery(inbox, "auh", "2020-06-30")
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
