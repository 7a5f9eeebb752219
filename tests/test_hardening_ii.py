"""Hardening II: a bad row never costs a delivery, a bad dictionary never replaces a good one, a future cutoff is
refused, a call that loads nothing says why, and the load's report is bounded, not one object per finding."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import openpyxl
import pytest
from helpers import CUTOFF, TEST_KEY, Generated, new_delivery
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.pipeline import load as load_module
from drg_etl.pipeline.load import load_inbox

runner = CliRunner()
ENV = {"DRG_ETL_PSEUDONYM_KEY": TEST_KEY.decode()}


def _copy(gen: Generated, tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    shutil.copytree(gen.inbox, inbox)
    return inbox


def _query(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _rewrite_rh(folder: Path, edit) -> None:
    """Edit rh's export (rows as lists, header first) and write it back as REDCap does (BOM, CRLF)."""
    path = next(folder.glob("DRGDK_DATA_*.csv"))
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    edit(rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))


def _rewrite_dictionary(folder: Path, field: str, choices: str | None = None, kind: str | None = None) -> None:
    path = folder / "DRGDK_DataDictionary.csv"
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows[1:]:
        if row[0] == field:
            if choices is not None:
                row[5] = choices
            if kind is not None:
                row[3] = kind
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))


def test_rows_that_name_a_patient_but_hold_no_fact_are_findings_and_every_center_loads(
        demo_clean: Generated, tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    book_path = inbox / "ouh" / CUTOFF / "DRG_registrering.xlsx"
    book = openpyxl.load_workbook(book_path)
    treatment = book["Treatment"]
    cpr = treatment.cell(2, 1).value
    treatment.append([cpr])  # registered, not yet treated: only the CPR number
    book.save(book_path)

    def empty_complete_form(rows: list[list[str]]) -> None:
        header = rows[0]
        row = next(r for r in rows[1:] if r[1] == "month_3_arm_1")
        blank = [""] * len(header)
        blank[0], blank[1], blank[header.index("prom_complete")] = row[0], "month_6_arm_1", "2"
        rows.append(blank)

    _rewrite_rh(inbox / "rh" / CUTOFF, empty_complete_form)
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.rejected == [] and len(report.loaded) == 4
    found = _query(tmp_path / "w.duckdb", "select center, file from quality.quarantine where rule_id = 'row.no_fact'")
    assert sorted(found) == [("ouh", "DRG_registrering.xlsx#Treatment"), ("rh", "DRGDK_DATA_2019-12-31.csv")]


def test_a_cutoff_in_the_future_is_reported_and_not_loaded(demo_clean: Generated, tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    new_delivery(inbox, "auh", "2091-12-31")
    warehouse = tmp_path / "w.duckdb"
    result = runner.invoke(app, ["load", str(inbox), "--warehouse", str(warehouse)], env=ENV)
    assert result.exit_code == 1, result.output
    assert "not read: auh/2091-12-31" in result.output and "after today" in result.output
    assert _query(warehouse, "select center, strftime(cutoff, '%Y-%m-%d') from quality.deliveries_in_force "
                             "order by center") == [(c, CUTOFF) for c in ("aauh", "auh", "ouh", "rh")]


@pytest.mark.parametrize(("choices", "why"), [("1, Female | 1, Male", "given twice"),
                                              ("1 Female | 2 Male", "is not 'code, label'")])
def test_a_redcap_dictionary_not_in_redcaps_form_rejects_the_delivery(demo_clean: Generated, tmp_path: Path,
                                                                       choices: str, why: str) -> None:
    inbox = _copy(demo_clean, tmp_path)
    _rewrite_dictionary(inbox / "rh" / CUTOFF, "sex", choices=choices)
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.rejected == [f"rh/{CUTOFF}"] and len(report.loaded) == 3
    rejection = next(f for f in report.files if f.rejected)
    assert rejection.rule_id == "file.dictionary" and why in rejection.reason


def test_an_unknown_redcap_field_type_is_a_finding(demo_clean: Generated, tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    _rewrite_dictionary(inbox / "rh" / CUTOFF, "comp_note", kind="richtext")
    load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    found = _query(tmp_path / "w.duckdb", "select file, column_name, severity, message from quality.quarantine "
                                          "where rule_id = 'redcap.field_type'")
    assert len(found) == 1 and found[0][:3] == ("DRGDK_DataDictionary.csv", "Field Type", "warning")
    assert "comp_note" in found[0][3] and "richtext" in found[0][3]


def test_a_delivery_that_would_replace_a_center_with_nearly_nothing_is_refused_unless_accepted(
        demo_clean: Generated, tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    warehouse = tmp_path / "w.duckdb"
    load_inbox(inbox, warehouse, TEST_KEY)
    before = _query(warehouse, "select count(*) from canonical.current_patients where center = 'rh'")[0][0]
    newer = new_delivery(inbox, "rh")
    _rewrite_dictionary(newer, "sex", choices="3, Female | 4, Male")  # no row's code: every patient quarantined
    result = runner.invoke(app, ["load", str(inbox), "--warehouse", str(warehouse)], env=ENV)
    assert result.exit_code == 1, result.output
    [(rule, reason)] = _query(warehouse, "select rule_id, reason from quality.rejections")
    assert rule == "delivery.mostly_quarantined" and "--accept-quarantine" in reason, reason
    assert "rejected rh/2020-03-31" in result.output
    assert _query(warehouse, "select strftime(cutoff, '%Y-%m-%d') from quality.deliveries_in_force "
                             "where center = 'rh'") == [(CUTOFF,)]
    assert _query(warehouse, "select count(*) from canonical.current_patients where center = 'rh'")[0][0] == before
    accepted = runner.invoke(app, ["load", str(inbox), "--warehouse", str(warehouse), "--accept-quarantine"],
                             env=ENV)
    assert accepted.exit_code == 0, accepted.output
    assert _query(warehouse, "select strftime(cutoff, '%Y-%m-%d') from quality.deliveries_in_force "
                             "where center = 'rh'") == [("2020-03-31",)]


def test_an_empty_inbox_or_one_level_off_loads_nothing_says_why_and_leaves_no_file(demo_clean: Generated,
                                                                                      tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    warehouse = tmp_path / "w.duckdb"
    result = runner.invoke(app, ["load", str(empty), "--warehouse", str(warehouse)], env=ENV)
    # cli.md: nothing was done is exit 2; an inbox whose every entry was rejected (each named) is exit 1
    assert result.exit_code == 2 and "nothing to load" in result.output and "<center>/<YYYY-MM-DD>" in result.output
    deep = runner.invoke(app, ["load", str(demo_clean.inbox / "auh"), "--warehouse", str(warehouse)], env=ENV)
    assert deep.exit_code == 1 and "looks like a center's folder" in deep.output
    assert not warehouse.exists()


def test_the_newcomers_help_names_the_key_shows_no_bool_and_there_is_a_version() -> None:
    helped = runner.invoke(app, ["load", "--help"])
    assert "DRG_ETL_PSEUDONYM_KEY" in helped.output and "<bool>" not in helped.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("drg-etl ")


def test_generate_to_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["generate", "--out", str(blocker / "inbox")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Traceback" not in result.output


def test_the_load_report_carries_counts_and_a_bounded_sample_not_every_finding(
        demo: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_module, "SAMPLE_PER_RULE", 1)
    report = load_inbox(demo.inbox, tmp_path / "w.duckdb", TEST_KEY)
    counts = dict(_query(tmp_path / "w.duckdb", "select rule_id, count(*) from quality.quarantine group by 1"))
    assert report.issue_counts == counts and report.issue_total == sum(counts.values()) > len(counts)
    assert sorted(i.rule_id for i in report.issues) == sorted(counts)  # one of each rule


def test_an_unclosed_quote_is_a_finding_and_no_text_of_the_records_it_swallowed_is_kept(
        demo_clean: Generated, tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    path = inbox / "auh" / CUTOFF / "komplikationer.csv"
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    first, second = lines[1].split(";"), lines[2].split(";")
    first[4] = '"unclosed note'  # the quote is never closed: the next records fold into this field
    second[4] = "swallowed text"
    lines[1], lines[2] = ";".join(first), ";".join(second)
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    warehouse = tmp_path / "w.duckdb"
    report = load_inbox(inbox, warehouse, TEST_KEY)
    assert report.rejected == [] and len(report.loaded) == 4
    assert _query(warehouse, "select \"row\", column_name from quality.quarantine where rule_id = 'row.quoting'"
                  ) == [(2, "Note")]
    dump = "\n".join(str(row) for table in ("quality.quarantine", "staging.source_records", "canonical.complications")
                     for row in _query(warehouse, f"select * from {table}"))
    assert "swallowed text" not in dump
    assert "unclosed note" in dump  # the text before the line break is the record's own


HOSTILE = ["", "   ", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "-1", "9" * 40, "0x1A", "1_000", "٣",
           "１０", "\u00a0", "[/x]", "=1/0", "NULL", "None", "true", "31.02.2016", "2016-02-30", "99-99-9999",
           "x" * 5000, "\t", "'", '"']


def _append_hostile_csv(path: Path, encoding: str, delimiter: str, keep_first: int) -> int:
    """Copies of the file's first record, each with one column (after the first ``keep_first``) set to one hostile
    value; returns how many were added."""
    raw = path.read_bytes().decode(encoding)
    bom = raw.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(raw.lstrip("\ufeff"), newline=""), delimiter=delimiter))
    added = []
    for column in range(keep_first, len(rows[0])):
        for value in HOSTILE:
            try:
                value.encode(encoding)
            except UnicodeEncodeError:
                continue
            row = list(rows[1])
            row[column] = value
            added.append(row)
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows + added)
    path.write_bytes((("\ufeff" if bom else "") + out.getvalue()).encode(encoding))
    return len(added)


def test_hostile_values_in_every_column_quarantine_rows_never_a_delivery(demo_clean: Generated,
                                                                           tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    added = 0
    for file in ("patienter.csv", "procedurer.csv", "udstyr.csv", "prom.csv", "komplikationer.csv"):
        added += _append_hostile_csv(inbox / "auh" / CUTOFF / file, "cp1252", ";", keep_first=1)
    added += _append_hostile_csv(next((inbox / "rh" / CUTOFF).glob("DRGDK_DATA_*.csv")), "utf-8", ",",
                                 keep_first=4)
    book_path = inbox / "ouh" / CUTOFF / "DRG_registrering.xlsx"
    book = openpyxl.load_workbook(book_path)
    numbers = [float("inf"), -1.5, 1e308, 10**20, 3.5, True, 0]
    for sheet in book.worksheets:
        first = [c.value for c in sheet[2]]
        for column in range(1, len(first)):
            for value in [*HOSTILE[:12], *numbers, None]:
                row = list(first)
                row[column] = value
                sheet.append(row)
                added += 1
        merged = list(first)
        merged[0] = None  # an empty (or merged-down) CPR cell
        sheet.append(merged)
        added += 1
    book.save(book_path)
    observations = inbox / "aauh" / CUTOFF / "Observation.ndjson"
    lines = observations.read_text().splitlines()
    for n, value in enumerate([1e300, -0.0, 10**30]):
        hostile = json.loads(lines[0])
        hostile["id"], hostile["valueQuantity"]["value"] = f"h{n}-{hostile['id']}", value
        lines.append(json.dumps(hostile))
    observations.write_text("\n".join(lines) + "\n")
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.rejected == [] and len(report.loaded) == 4, [f.reason for f in report.files if f.rejected]
    assert added > 1000
    read, loaded, quarantined = _query(tmp_path / "w.duckdb", "select sum(rows_read), sum(rows_loaded), "
                                                              "sum(rows_quarantined) from quality.delivery_files")[0]
    assert read == loaded + quarantined



def test_a_rekeyed_warehouse_file_holds_no_old_pseudonym_in_its_bytes(demo_clean: Generated, tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    warehouse = tmp_path / "the \"registry's\" w.duckdb"  # quotes in the name: never formatted into SQL
    load_inbox(inbox, warehouse, TEST_KEY)
    from drg_etl.pipeline.marts import refresh_marts
    from drg_etl.pipeline.warehouse import connect

    con = connect(warehouse)
    refresh_marts(con)  # as Dagster builds them: the marts carry Patient ids, which derive from the pseudonyms
    con.close()
    old = {k for (k,) in _query(warehouse, "select distinct patient_key from canonical.patients union "
                                           "select distinct patient_key from quality.quarantine "
                                           "where patient_key is not null union "
                                           "select distinct id from fhir.resources where resource_type = 'Patient'")}
    assert len(old) > 40 and all(k.encode() in warehouse.read_bytes() for k in list(old)[:5])
    new_key = "8e1f6a2b9c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b"
    result = runner.invoke(app, ["rekey", "--warehouse", str(warehouse), "--inbox", str(inbox)],
                           env={"DRG_ETL_OLD_PSEUDONYM_KEY": TEST_KEY.decode(), "DRG_ETL_PSEUDONYM_KEY": new_key})
    assert result.exit_code == 0, result.output
    raw = warehouse.read_bytes()
    assert [k for k in old if k.encode() in raw] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox", warehouse.name]  # no work file left behind
    analyzed = runner.invoke(app, ["analyze", "--warehouse", str(warehouse), "--json"])
    assert analyzed.exit_code == 0 and json.loads(analyzed.output)["cohort"]["trial_patients"] > 40


@pytest.mark.parametrize(("key", "why"), [
    ("00112233445566778899aabbccddeeff", "sequence"), ("0123456789abcdeffedcba9876543210", "sequence"),
    ("5f0c3e9a7d1b42c8e6a09f3b71d4c2e8 zz", "not hexadecimal: it holds ' ', 'z'")])
def test_sequences_are_weak_keys_and_a_refusal_says_why(key: str, why: str) -> None:
    from drg_etl.core.pseudonym import key_weakness

    assert why in (key_weakness(key) or "")


def test_a_key_is_the_same_whatever_its_case_and_surrounding_whitespace() -> None:
    from drg_etl.core.pseudonym import Pseudonymizer, check_key

    key = TEST_KEY.decode()
    spellings = [key, key.upper(), f"  {key}\n", f"{key}\r\n"]
    assert len({Pseudonymizer(check_key(k)).fingerprint for k in spellings}) == 1
    assert check_key(key) == TEST_KEY  # earlier warehouses' (lower-case) keys give the same pseudonyms


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc (Linux)")
def test_a_killed_parallel_load_leaves_no_reader_and_no_folder(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from drg_etl.synth.generate import generate

    generate(tmp_path / "inbox", seed=3, patients=1500)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, **ENV, "DRG_ETL_PARALLEL_BYTES": "0", "DRG_ETL_READ_WORKERS": "2", "TMPDIR": str(tmp)}
    workers = _kill_the_load_once_it_runs(tmp_path, env, lambda pid: True, "a reader", grace=2)
    assert not any(_alive(w) for w in workers)  # the readers died with their load
    assert [p.name for p in tmp.iterdir()] != []  # a killed load leaves its folder ...
    rerun = subprocess.run([sys.executable, "-m", "drg_etl.entry", "load", str(tmp_path / "inbox"), "--warehouse",
                            str(tmp_path / "w.duckdb")], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert list(tmp.iterdir()) == []  # ... and the next load removes it


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc (Linux)")
def test_a_load_killed_while_building_fhir_on_every_core_leaves_no_worker_and_no_folder(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from drg_etl.synth.generate import generate

    generate(tmp_path / "inbox", seed=3, patients=1500)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, **ENV, "DRG_ETL_READ_WORKERS": "1", "DRG_ETL_FHIR_PARALLEL_PATIENTS": "0",
           "DRG_ETL_FHIR_WORKERS": "2", "TMPDIR": str(tmp)}
    workers = _kill_the_load_once_it_runs(tmp_path, env, lambda pid: b"drg_etl.fhir.worker" in _command_line(pid),
                                          "a FHIR worker", grace=5)
    assert not any(_alive(w) for w in workers)  # the workers died with their load
    assert [p.name for p in tmp.iterdir() if "-fhir-" in p.name]  # a killed load leaves its folder ...
    rerun = subprocess.run([sys.executable, "-m", "drg_etl.entry", "load", str(tmp_path / "inbox"), "--warehouse",
                            str(tmp_path / "w.duckdb")], env={**env, "DRG_ETL_FHIR_WORKERS": "1"},
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert list(tmp.iterdir()) == []  # ... and the next load removes it


def _kill_the_load_once_it_runs(tmp_path: Path, env: dict[str, str], is_worker: Callable[[int], bool], what: str,
                                grace: float) -> list[int]:
    """Start a load of ``tmp_path/inbox``; SIGKILL it once a child ``is_worker``; return those children after
    ``grace`` seconds (a worker takes longer than that to finish its work), or skip when the load was faster."""
    import signal
    import subprocess
    import sys
    import time

    load = subprocess.Popen([sys.executable, "-m", "drg_etl.entry", "load", str(tmp_path / "inbox"), "--warehouse",
                             str(tmp_path / "w.duckdb")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 120, []
    while time.monotonic() < deadline and not workers and load.poll() is None:
        workers = [pid for pid in _children_of(load.pid) if is_worker(pid)]
        time.sleep(0.02)
    if not workers:
        load.kill()
        pytest.skip(f"the load finished before {what} was seen")
    load.send_signal(signal.SIGKILL)
    load.wait()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    return workers


def _command_line(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def test_extra_and_hidden_sheets_are_reported_like_extra_files(demo_clean: Generated, tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    path = inbox / "ouh" / CUTOFF / "DRG_registrering.xlsx"
    book = openpyxl.load_workbook(path)
    book.create_sheet("Private").append(["CPR-nr", "note"])
    book["Complications"].sheet_state = "hidden"
    book.active = 0
    book.save(path)
    load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    found = _query(tmp_path / "w.duckdb", "select file, severity, message from quality.quarantine "
                                          "where rule_id = 'file.unexpected' order by file")
    assert [(f, s) for f, s, _ in found] == [("DRG_registrering.xlsx#Complications", "warning"),
                                             ("DRG_registrering.xlsx#Private", "warning")]
    assert "hidden" in found[0][2] and "not read" in found[1][2]


def test_a_delivery_that_vanishes_after_the_survey_is_reported(demo_clean: Generated, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = _copy(demo_clean, tmp_path)
    real = load_module.survey

    def survey_then_vanish(path: Path, today: object = None) -> tuple[list, list]:
        found = real(path)
        shutil.rmtree(inbox / "rh" / CUTOFF)  # moved away between the survey and the reading
        return found

    monkeypatch.setattr(load_module, "survey", survey_then_vanish)
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.exit_code == 1 and report.rejected == [f"rh/{CUTOFF}"] and len(report.loaded) == 3
    assert "disappeared" in next(f.reason for f in report.files if f.rejected)


def test_a_quote_in_the_temporary_folder_or_the_inbox_path_is_never_sql(demo_clean: Generated,
                                                                         tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    base = tmp_path / "it's \"quoted\"; drop table x; --"
    inbox = base / "in'box"
    shutil.copytree(demo_clean.inbox, inbox)
    tmp = base / "tmp'); create table quality.pwned as select 1; --"
    tmp.mkdir()
    env = {**os.environ, **ENV, "TMPDIR": str(tmp), "DRG_ETL_PARALLEL_BYTES": "0", "DRG_ETL_READ_WORKERS": "2"}
    warehouse = base / "w'.duckdb"
    run = subprocess.run([sys.executable, "-m", "drg_etl.entry", "load", str(inbox), "--warehouse", str(warehouse)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert _query(warehouse, "select count(*) from duckdb_tables() where table_name = 'pwned'") == [(0,)]
    assert _query(warehouse, "select count(*) from quality.deliveries_in_force") == [(4,)]


def test_a_two_line_note_with_semicolons_is_a_note_not_an_unclosed_quote(demo_clean: Generated,
                                                                          tmp_path: Path) -> None:
    inbox = _copy(demo_clean, tmp_path)
    path = inbox / "auh" / CUTOFF / "komplikationer.csv"
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    fields = lines[1].split(";")
    fields[4] = '"Behandling:\r\nDicloxacillin; Panodil; Ibuprofen; Morfin; Tramadol"'
    lines[1] = ";".join(fields)
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert _query(tmp_path / "w.duckdb", "select count(*) from quality.quarantine where rule_id = 'row.quoting'"
                  ) == [(0,)]
    notes = [n for (n,) in _query(tmp_path / "w.duckdb", "select note from canonical.complications")]
    assert any(n and n.endswith("Morfin; Tramadol") for n in notes)


@pytest.mark.parametrize("note", ["set d. 12.05.17 ved kontrol", "Lot 123456 blev kasseret", "12.05.19 til 15.05.19",
                                  "NRS 7, PCS 30 ved 12 mdr", "tlf 12345678"])
def test_dates_and_numbers_in_a_note_are_not_taken_for_a_cpr_number(note: str) -> None:
    from drg_etl.core.cpr import scrub_cpr

    assert scrub_cpr(note) == note


@pytest.mark.parametrize("spelling", ["LD_230487_1236", "230487:1236", "230487,1236", "230487+1236", "(230487)1236",
                                      "23-04-87-12-36", "23.04.87.12.36", "2304\u200b871236", "2304\u00ad871236",
                                      "230487\t1236", "230487\n1236"])
def test_every_separator_of_a_cpr_number_is_found(spelling: str) -> None:
    from drg_etl.core.cpr import holds_cpr, scrub_cpr

    assert holds_cpr(spelling) and "1236" not in scrub_cpr(spelling).replace("<CPR?>", "")
