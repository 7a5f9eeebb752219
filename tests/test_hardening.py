"""Unattended nights: weak and changed keys, hostile files, locked, unbuilt and stale warehouses, clean errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from helpers import TEST_KEY, Generated, all_cprs, digest, new_delivery, run_cli, snapshot
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.core.pseudonym import DEMO_KEY
from drg_etl.pipeline.load import load_inbox
from drg_etl.pipeline.write import write_pending

OTHER_KEY = "c3a91f06d2e84b7590fa1e6c4d2b8a73e05f91c6b2d4a8e7f3c0b69d1a5e2f48"


@pytest.mark.parametrize(("key", "why"), [
    (" " * 16, "blank"), (DEMO_KEY, "public demo key"), ("abc123", "fewer than 32"),
    ("not-hex-" * 8, "not hexadecimal"), ("ab" * 32, "repeats a pattern"), ("0" * 63 + "1", "too regular"),
])
def test_a_weak_or_public_key_is_refused_before_anything_is_written(key: str, why: str, demo_clean: Generated,
                                                                     tmp_path: Path) -> None:
    done = run_cli("load", str(demo_clean.inbox), "--warehouse", str(tmp_path / "w.duckdb"), key=key)
    assert done.returncode == 2, done.stderr
    assert why in done.stderr and "token_hex" in done.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_a_load_under_another_key_exits_2_and_changes_nothing(clean_warehouse: tuple[Path, Path]) -> None:
    inbox, path = clean_warehouse
    before = snapshot(path)
    new_delivery(inbox, "auh")
    done = run_cli("load", str(inbox), "--warehouse", str(path), key=OTHER_KEY)
    assert done.returncode == 2
    assert "another pseudonym key" in done.stderr and OTHER_KEY not in done.stderr + done.stdout
    assert snapshot(path) == before
    again = run_cli("load", str(inbox), "--warehouse", str(path))
    assert again.returncode == 0, again.stderr
    con = duckdb.connect(str(path), read_only=True)
    persons = con.execute("select count(distinct patient_key) from canonical.current_patients").fetchone()[0]
    stored = con.execute("select value from quality.settings where name = 'pseudonym_key_fingerprint'").fetchall()
    everything = " ".join(v for (v,) in con.execute("select value from quality.settings").fetchall())
    con.close()
    assert persons == snapshot_persons(before)
    assert len(stored) == 1 and TEST_KEY.decode() not in everything


def snapshot_persons(snap: dict[str, list[tuple]]) -> int:
    return len({row[5] for row in snap["canonical.patients"]})


def test_a_csv_without_its_header_is_rejected_without_quoting_a_cpr(demo: Generated, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo.inbox, inbox)
    patients = inbox / "auh" / "2019-12-31" / "patienter.csv"
    patients.write_bytes(patients.read_bytes().split(b"\r\n", 1)[1])
    path = tmp_path / "w.duckdb"
    done = run_cli("load", str(inbox), "--warehouse", str(path))
    quality = run_cli("quality", "--warehouse", str(path), "--json")
    assert done.returncode == 1 and "patienter.csv" in done.stdout
    con = duckdb.connect(str(path), read_only=True)
    stored = " ".join(str(r) for r in con.execute("select * from quality.rejections").fetchall())
    con.close()
    text = done.stdout + done.stderr + quality.stdout + stored
    assert "file.columns" in stored
    leaked = [c for c in all_cprs(demo) if c in text or f"{c[:6]}-{c[6:]}" in text]
    assert leaked == []


@pytest.mark.parametrize("line", ["[" * 10_000 + "]" * 10_000,
                                  '{"resourceType": "Observation", "id": "o1", "valueInteger": ' + "9" * 5000 + "}",
                                  '{"resourceType": "Observation", "id": "' + "x" * 2_000_000 + '"}'])
def test_one_hostile_ndjson_line_rejects_aauh_and_the_others_load(line: str, demo_clean: Generated,
                                                                  tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    with (inbox / "aauh" / "2019-12-31" / "Observation.ndjson").open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.rejected == ["aauh/2019-12-31"]
    assert sorted(report.loaded) == ["auh/2019-12-31", "ouh/2019-12-31", "rh/2019-12-31"]
    rejected = [f for f in report.files if f.rejected]
    assert [f.file for f in rejected] == ["Observation.ndjson"] and "line" in rejected[0].reason


def test_a_header_only_demographics_file_rejects_the_delivery(clean_warehouse: tuple[Path, Path]) -> None:
    inbox, path = clean_warehouse
    before = snapshot(path)
    folder = new_delivery(inbox, "auh")
    header = (folder / "patienter.csv").read_bytes().split(b"\r\n", 1)[0] + b"\r\n"
    (folder / "patienter.csv").write_bytes(header)
    report = load_inbox(inbox, path, TEST_KEY)
    assert report.rejected == ["auh/2020-03-31"]
    assert any(f.rule_id == "file.empty" and f.file == "patienter.csv" for f in report.files)
    assert snapshot(path) == before


def _one_error_line(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0]


def test_analyze_reports_missing_damaged_and_unbuilt_warehouses_in_one_line(tmp_path: Path) -> None:
    _one_error_line(run_cli("analyze", "--warehouse", str(tmp_path / "none.duckdb"), "--json"), "no warehouse")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database" * 100)
    _one_error_line(run_cli("analyze", "--warehouse", str(garbage), "--json"), "cannot open")
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    _one_error_line(run_cli("export-fhir", "--warehouse", str(empty), "--out", str(tmp_path / "x")), "never loaded")


def test_a_truncated_warehouse_is_one_line_too(clean_warehouse: tuple[Path, Path], tmp_path: Path) -> None:
    _, path = clean_warehouse
    cut = tmp_path / "cut.duckdb"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    done = run_cli("analyze", "--warehouse", str(cut), "--json")
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_stale_fhir_layer_is_refused_until_a_load_finishes_it(clean_warehouse: tuple[Path, Path]) -> None:
    inbox, path = clean_warehouse
    new_delivery(inbox, "ouh")
    from drg_etl.core.pseudonym import Pseudonymizer
    from drg_etl.pipeline.load import stage_center
    from drg_etl.pipeline.warehouse import connect

    con = connect(path)
    stage_center(inbox, "ouh", con, Pseudonymizer(TEST_KEY), "interrupted")
    write_pending(con, "interrupted")  # the deliveries are written; the FHIR layer is not (a killed load)
    con.close()
    _one_error_line(run_cli("analyze", "--warehouse", str(path), "--json"), "older than its deliveries")
    assert run_cli("load", str(inbox), "--warehouse", str(path)).returncode == 0
    done = run_cli("analyze", "--warehouse", str(path), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["observation_end"] == "2020-03-31"


def test_a_second_writer_waits_then_exits_2_and_a_reader_is_told(clean_warehouse: tuple[Path, Path]) -> None:
    inbox, path = clean_warehouse
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(30)", str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        done = run_cli("load", str(inbox), "--warehouse", str(path), DRG_ETL_LOCK_WAIT="2")
        assert done.returncode == 2 and "in use by another process" in done.stderr
        assert 2 <= time.monotonic() - started < 20
        _one_error_line(run_cli("analyze", "--warehouse", str(path), "--json"), "in use by another process")
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("analyze", "--warehouse", str(path), "--json").returncode == 0


def test_quality_under_the_cli_runner_prints_errors_to_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["quality", "--warehouse", str(tmp_path / "none.duckdb"), "--json"])
    assert result.exit_code == 2 and "no warehouse" in result.output


def test_odd_folders_are_reported_with_exit_1_and_nothing_outside_the_inbox_is_read(
        clean_warehouse: tuple[Path, Path], tmp_path: Path) -> None:
    inbox, path = clean_warehouse
    before = snapshot(path)
    outside = tmp_path / "outside"
    shutil.copytree(inbox / "auh" / "2019-12-31", outside)
    (inbox / "auh" / "2019-13-45").mkdir()
    (inbox / "xyz").mkdir()
    (inbox / "AUH").mkdir()
    shutil.copytree(inbox / "auh" / "2019-12-31", inbox / "auh" / "20200630")
    (inbox / "auh" / "2020-09-30").symlink_to(outside, target_is_directory=True)
    done = run_cli("load", str(inbox), "--warehouse", str(path))
    assert done.returncode == 1, done.stderr
    for where, why in (("auh/2019-13-45", "YYYY-MM-DD"), ("xyz", "not a center"), ("AUH", "lower case"),
                       ("auh/20200630", "YYYY-MM-DD"), ("auh/2020-09-30", "out of the inbox")):
        line = next((x for x in done.stdout.splitlines() if where in x and why in x), None)
        assert line is not None, (where, done.stdout)
    assert snapshot(path) == before


def test_an_implant_whose_trial_arrives_later_is_released_with_an_audit_record(demo_clean: Generated,
                                                                               tmp_path: Path) -> None:
    """aauh's delivery (an implant whose trial was at rh) loads before rh's: held, then released."""
    from drg_etl.fhir.export import export_fhir
    from drg_etl.quality.report import quality_report

    everything = tmp_path / "all.duckdb"
    load_inbox(demo_clean.inbox, everything, TEST_KEY)
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox / "aauh", inbox / "aauh")
    path = tmp_path / "w.duckdb"
    first = load_inbox(inbox, path, TEST_KEY)
    assert [i.rule_id for i in first.issues] == ["implant.without_trial"]
    for center in ("auh", "ouh", "rh"):
        shutil.copytree(demo_clean.inbox / center, inbox / center)
    load_inbox(inbox, path, TEST_KEY)

    con = duckdb.connect(str(path), read_only=True)
    released = con.execute("select file, rule_id, released_by from quality.releases").fetchall()
    open_issues = con.execute("select count(*) from quality.open_quarantine").fetchone()[0]
    report = quality_report(con)
    export_fhir(con, tmp_path / "stepwise")
    con.close()
    assert len(released) == 1 and released[0][1] == "implant.without_trial" and "rh/2019-12-31" in released[0][2]
    assert open_issues == 0 and report["reconciliation"]["balanced"] and len(report["released"]) == 1
    con = duckdb.connect(str(everything), read_only=True)
    export_fhir(con, tmp_path / "at-once")
    con.close()
    ndjson = sorted(p.name for p in (tmp_path / "at-once").glob("*.ndjson"))
    assert all((tmp_path / "stepwise" / n).read_bytes() == (tmp_path / "at-once" / n).read_bytes() for n in ndjson)
    stepwise, at_once = snapshot(path), snapshot(everything)
    for table in ("canonical.patients", "canonical.procedures", "canonical.devices", "canonical.measurements",
                  "canonical.complications", "quality.delivery_files"):
        assert stepwise[table] == at_once[table], table


def test_rekey_rotates_every_pseudonym_in_one_go_and_equals_a_load_under_the_new_key(demo: Generated,
                                                                                     tmp_path: Path) -> None:
    rotated, fresh = tmp_path / "rotated.duckdb", tmp_path / "fresh.duckdb"
    assert run_cli("load", str(demo.inbox), "--warehouse", str(rotated)).returncode == 0
    wrong = run_cli("rekey", "--warehouse", str(rotated), "--inbox", str(demo.inbox), key=OTHER_KEY,
                 DRG_ETL_OLD_PSEUDONYM_KEY=OTHER_KEY)
    assert wrong.returncode == 2 and "not the key" in wrong.stderr
    done = run_cli("rekey", "--warehouse", str(rotated), "--inbox", str(demo.inbox), key=OTHER_KEY,
                DRG_ETL_OLD_PSEUDONYM_KEY=TEST_KEY.decode())
    assert done.returncode == 0, done.stderr
    assert run_cli("load", str(demo.inbox), "--warehouse", str(fresh), key=OTHER_KEY).returncode == 0
    a, b = digest(rotated), digest(fresh)
    for table in a:
        assert a[table] == b[table], table
    export = [run_cli("export-fhir", "--warehouse", str(w), "--out", str(tmp_path / w.stem), key=OTHER_KEY)
              for w in (rotated, fresh)]
    assert all(e.returncode == 0 for e in export)
    for name in ("Patient.ndjson", "Observation.ndjson", "Device.ndjson"):
        assert (tmp_path / "rotated" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()
    assert run_cli("load", str(demo.inbox), "--warehouse", str(rotated)).returncode == 2  # the old key is refused now


def test_the_formats_device_references_are_the_ones_rekey_rewrites() -> None:
    from drg_etl.core.formats import FORMATS

    key = "3fa2c1d0e9b84a7f" + "0" * 48
    refs = {center: fmt.device_ref for center, fmt in FORMATS.items()}
    assert refs["auh"].make(serial="AX129015") == "auh:AX129015"
    assert (refs["ouh"].generator(patient=key), refs["ouh"].lead(2, patient=key)) == \
        ("ouh:3fa2c1d0e9b84a7f:ipg", "ouh:3fa2c1d0e9b84a7f:lead2")
    assert (refs["rh"].generator(record_id="17"), refs["rh"].lead(3, record_id="17")) == ("rh:17:ipg", "rh:17:lead:3")
    assert refs["aauh"].make(device="0867a66b") == "aauh:0867a66b"
    assert {c: r.pseudonym_span() for c, r in refs.items()} == {"auh": None, "ouh": ("ouh:", 5, 16), "rh": None,
                                                                "aauh": None}


def test_a_cpr_typed_as_a_number_into_a_workbook_cell_is_scrubbed_not_fatal(demo_clean: Generated,
                                                                             tmp_path: Path) -> None:
    import openpyxl

    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    path = inbox / "ouh" / "2019-12-31" / "DRG_registrering.xlsx"
    book = openpyxl.load_workbook(path)
    sheet = book["Complications"]
    sheet.cell(row=2, column=5, value=1503851234)
    sheet.cell(row=3, column=5, value="pt. 150385–1234, see note")
    book.save(path)
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.rejected == [] and len(report.loaded) == 4
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    text = " ".join(str(r) for r in con.execute("select record from staging.source_records").fetchall())
    con.close()
    assert "1503851234" not in text and "150385" not in text and "<CPR?>" in text


def test_an_unfinished_stage_does_not_block_a_parallel_load(demo_clean: Generated, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from drg_etl.core.pseudonym import Pseudonymizer
    from drg_etl.pipeline import parallel
    from drg_etl.pipeline.load import stage_center
    from drg_etl.pipeline.warehouse import connect

    path = tmp_path / "w.duckdb"
    con = connect(path)
    stage_center(demo_clean.inbox, "auh", con, Pseudonymizer(TEST_KEY), "killed")  # then the process died
    con.close()
    monkeypatch.setattr(parallel, "PARALLEL_BYTES", 0)
    report = load_inbox(demo_clean.inbox, path, TEST_KEY)
    assert len(report.loaded) == 4 and report.rejected == []


def test_a_link_loop_in_the_inbox_is_reported_not_fatal(clean_warehouse: tuple[Path, Path]) -> None:
    inbox, path = clean_warehouse
    (inbox / "auh" / "2020-03-31").mkdir()
    (inbox / "auh" / "2020-03-31" / "self").symlink_to(inbox / "auh" / "2020-03-31" / "self")
    report = load_inbox(inbox, path, TEST_KEY)
    assert report.rejected == ["auh/2020-03-31"]
    assert "link" in next(f.reason for f in report.files if f.rejected)


def test_a_backlog_is_checked_against_what_will_be_in_force(demo_clean: Generated, tmp_path: Path) -> None:
    """rh delivers twice at once; the newer delivery no longer has the trial of aauh's implant: flagged."""
    import csv
    import io

    person = next(p for p in demo_clean.truth["patients"] if set(p["centers"]) == {"rh", "aauh"})
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    newer = new_delivery(inbox, "rh")
    data = newer / "DRGDK_DATA_2020-03-31.csv"
    rows = list(csv.reader(io.StringIO(data.read_text("utf-8-sig"))))
    record = next(r[0] for r in rows[1:] if r[4].replace("-", "") == person["cpr"])
    kept = [r for r in rows if not (r[0] == record and r[1] == "trial_arm_1")]
    assert len(kept) == len(rows) - 1
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(kept)
    data.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    flagged = [i for i in report.issues if i.center == "aauh"]
    assert [i.rule_id for i in flagged] == ["implant.without_trial"]
