"""CPR numbers planted in every identifier and free-text field of every format, in many spellings, are never
written: not to a table, the warehouse file's bytes, the FHIR export, nor any line a command prints.

A CPR where an identifier belongs (a serial, a model, a REDCap record id, a resource id) quarantines the
record with ``cpr.in_identifier``; one in free text (a note, a reason) is replaced, with ``cpr.in_free_text``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest
from helpers import CUTOFF, TEST_KEY, Generated
from openpyxl.comments import Comment
from typer.testing import CliRunner

from drg_etl.cli import app
from drg_etl.core.cpr import fold_text, holds_cpr, scrub_cpr

# Each planted CPR is its own number (230487-12NN), so a leak names the field it came through.
_next = iter(range(10, 100))


def plant(spelling: str) -> tuple[str, str]:
    """A new CPR number written in ``spelling`` (a format with {d6}, {s4} or the digit pairs)."""
    serial = f"12{next(_next):02d}"
    digits = "230487" + serial
    text = spelling.format(d6="230487", s4=serial, p=" ".join([digits[i:i + 2] for i in range(0, 10, 2)]))
    return digits, text


ASCII_SPELLINGS = ["pt {d6}-{s4} ringede", "pt{d6}{s4}", "23.04.87-{s4}", "CPR: {d6} {s4}", "{d6}\u2013{s4}",
                   "{p}", "{d6}\u00a0{s4}", "{d6}/{s4}"]
UNICODE_SPELLINGS = ["{d6}\u2011{s4}", "".join(chr(0xFF10 + int(c)) for c in "230487") + "{s4}", "x{d6}\u2212{s4}y"]
PLANTED: list[str] = []  # every planted number's ten digits


def _spell(spellings: list[str], i: int) -> str:
    digits, text = plant(spellings[i % len(spellings)])
    PLANTED.append(digits)
    return text


def _rewrite_csv(path: Path, encoding: str, delimiter: str, edit) -> None:
    text = path.read_bytes().decode(encoding)  # a byte order mark stays in the first column's name
    terminator = "\r\n" if "\r\n" in text else "\n"
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header = rows[0]
    edit(header, rows[1:])
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=terminator).writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))


def _plant_auh(folder: Path) -> None:
    def fields(columns: list[str]):
        def edit(header: list[str], rows: list[list[str]]) -> None:
            for n, column in enumerate(columns):
                rows[n + 1][header.index(column)] = _spell(ASCII_SPELLINGS, n + len(PLANTED))
        return edit

    _rewrite_csv(folder / "komplikationer.csv", "cp1252", ";", fields(["Note"] * 4))
    _rewrite_csv(folder / "procedurer.csv", "cp1252", ";", fields(["Beskrivelse"] * 4))
    _rewrite_csv(folder / "udstyr.csv", "cp1252", ";", fields(["Model", "Serienr", "Model", "Serienr"]))
    (folder / f"{_spell(['{d6}{s4}'], 0)}.txt").write_text("a stray file named by a CPR number\n")


def _plant_ouh(folder: Path) -> None:
    path = folder / "DRG_registrering.xlsx"
    book = openpyxl.load_workbook(path)
    treatment, complications = book["Treatment"], book["Complications"]
    columns = [c.value for c in treatment[1]]
    for n, column in enumerate(["IPG model", "IPG serial", "Lead 1 serial", "Explant reason"]):
        rows = [r for r in range(2, treatment.max_row + 1) if treatment.cell(r, columns.index(column) + 1).value]
        treatment.cell(rows[n % len(rows)], columns.index(column) + 1).value = _spell(UNICODE_SPELLINGS, n)
    comment = [c.value for c in complications[1]].index("Comment") + 1
    for n, row in enumerate(range(2, 6)):
        complications.cell(row, comment).value = _spell(ASCII_SPELLINGS + UNICODE_SPELLINGS, n)
    digits, _ = plant("{d6}{s4}")
    PLANTED.append(digits)
    complications.cell(6, comment).value = int(digits)  # an Excel number
    digits, text = plant("{d6}-{s4}")
    PLANTED.append(digits)
    complications.cell(7, comment).comment = Comment(f"pt {text}", "nurse")  # a cell comment
    book.save(path)


def _plant_rh(folder: Path) -> None:
    path = next(folder.glob("*_DATA_*.csv"))

    def edit(header: list[str], rows: list[list[str]]) -> None:
        for column in ("comp_note", "surg_reason", "ipg_serial", "lead_serial"):
            at = header.index(column)
            filled = [r for r in rows if r[at]]
            for n, row in enumerate(filled[:3]):
                row[at] = _spell(ASCII_SPELLINGS + UNICODE_SPELLINGS, n + len(PLANTED))
        record = rows[-1][0]  # one patient numbered by the CPR
        number = _spell(["{d6}-{s4}"], 0)
        for row in rows:
            if row[0] == record:
                row[0] = number

    _rewrite_csv(path, "utf-8", ",", edit)


def _plant_aauh(folder: Path) -> None:
    devices = [json.loads(line) for line in (folder / "Device.ndjson").read_text().splitlines()]
    devices[0]["serialNumber"] = _spell(UNICODE_SPELLINGS, 0)
    devices[1]["modelNumber"] = _spell(ASCII_SPELLINGS, 1)
    devices[2]["deviceName"] = [{"name": _spell(ASCII_SPELLINGS, 2), "type": "user-friendly-name"}]
    devices[3]["identifier"] = [{"system": "urn:example:udi", "value": _spell(ASCII_SPELLINGS, 3)}]
    (folder / "Device.ndjson").write_text("".join(json.dumps(d) + "\n" for d in devices))
    # A Device and a Patient whose ids are CPR numbers: every reference to them carries the number too.
    replace = {devices[4]["id"]: _spell(["{d6}{s4}"], 0), devices[4]["patient"]["reference"].split("/")[1]:
               _spell(["{d6}-{s4}"], 0)}
    for file in folder.glob("*.ndjson"):
        text = file.read_text()
        for old, new in replace.items():
            text = text.replace(old, new)
        file.write_text(text)


@pytest.fixture(scope="module")
def planted(demo: Generated, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The demo inbox with CPRs planted in every format, loaded, checked and exported through the CLI."""
    base = tmp_path_factory.mktemp("planted")
    inbox = base / "inbox"
    shutil.copytree(demo.inbox, inbox)
    _plant_auh(inbox / "auh" / CUTOFF)
    _plant_ouh(inbox / "ouh" / CUTOFF)
    _plant_rh(inbox / "rh" / CUTOFF)
    _plant_aauh(inbox / "aauh" / CUTOFF)
    folder = inbox / "aauh" / _spell(["{d6}-{s4}"], 0)  # a folder named by a CPR number
    folder.mkdir()
    (folder / "Patient.ndjson").write_text("")
    warehouse, export = base / "w.duckdb", base / "export"
    runner = CliRunner()
    env = {"DRG_ETL_PSEUDONYM_KEY": TEST_KEY.decode()}
    results = [runner.invoke(app, args, env=env) for args in (
        ["load", str(inbox), "--warehouse", str(warehouse)],
        ["quality", "--warehouse", str(warehouse)],
        ["quality", "--warehouse", str(warehouse), "--json"],
        ["analyze", "--warehouse", str(warehouse), "--json"],
        ["export-fhir", "--warehouse", str(warehouse), "--out", str(export)])]
    con = duckdb.connect(str(warehouse), read_only=True)
    dump = []
    for schema, table in con.execute("select table_schema, table_name from information_schema.tables").fetchall():
        dump += [json.dumps(row, default=str, ensure_ascii=False)
                 for row in con.execute(f'select * from "{schema}"."{table}"').fetchall()]
    quarantine = con.execute("select file, column_name, rule_id from quality.quarantine "
                             "where rule_id like 'cpr.in_%'").fetchall()
    notes = [n for (n,) in con.execute("select note from canonical.complications where note is not null").fetchall()]
    con.close()
    exported = [p.read_text(encoding="utf-8") for p in export.rglob("*") if p.is_file()]
    return {"results": results, "dump": dump, "exported": exported, "raw": warehouse.read_bytes(),
            "quarantine": quarantine, "notes": notes}


def _leaks(text: str) -> list[str]:
    folded = fold_text(text)
    squeezed = "".join(c for c in folded if c.isdigit() or c.isalpha())  # separators gone: any spelling
    return sorted({d for d in PLANTED if d in squeezed or f"{d[:6]}-{d[6:]}" in folded})


def test_the_planted_inbox_loads_and_every_command_runs(planted: dict[str, object]) -> None:
    results = planted["results"]
    assert [r.exit_code for r in results] == [1, 0, 0, 0, 0], [r.output[-400:] for r in results]
    assert len(PLANTED) > 40


def test_no_planted_cpr_in_any_table_export_or_output(planted: dict[str, object]) -> None:
    outputs = "\n".join(r.output for r in planted["results"])
    assert len(planted["dump"]) > 500 and len(planted["exported"]) >= 5
    assert _leaks(outputs) == []
    assert _leaks("\n".join(planted["exported"])) == []
    # The squeezed scan runs per row: digits of neighbouring values must not join into a false alarm.
    assert [row for row in planted["dump"] if _leaks(row)] == []
    raw: bytes = planted["raw"]
    assert [d for d in PLANTED if d.encode() in raw or f"{d[:6]}-{d[6:]}".encode() in raw] == []


def test_a_cpr_in_an_identifier_quarantines_the_record_and_one_in_free_text_is_scrubbed(
        planted: dict[str, object]) -> None:
    found = {(file.split("#")[-1], column, rule) for file, column, rule in planted["quarantine"]}
    for expected in [("udstyr.csv", "Serienr", "cpr.in_identifier"), ("udstyr.csv", "Model", "cpr.in_identifier"),
                     ("komplikationer.csv", "Note", "cpr.in_free_text"),
                     ("procedurer.csv", "Beskrivelse", "cpr.in_free_text"),
                     ("Treatment", "IPG serial", "cpr.in_identifier"), ("Treatment", "IPG model", "cpr.in_identifier"),
                     ("Treatment", "Lead 1 serial", "cpr.in_identifier"),
                     ("Treatment", "Explant reason", "cpr.in_free_text"),
                     ("Complications", "Comment", "cpr.in_free_text"),
                     ("Device.ndjson", "serialNumber", "cpr.in_identifier"),
                     ("Device.ndjson", "modelNumber", "cpr.in_identifier"),
                     ("Device.ndjson", "id", "cpr.in_identifier")]:
        assert expected in found, expected
    rh = {(column, rule) for file, column, rule in found if file.startswith("DRGDK_DATA")}
    assert {("record_id", "cpr.in_identifier"), ("ipg_serial", "cpr.in_identifier"),
            ("lead_serial", "cpr.in_identifier"), ("comp_note", "cpr.in_free_text")} <= rh
    assert sum("<CPR?>" in note for note in planted["notes"]) >= 8


@pytest.mark.parametrize("text", ["230487-1236", "2304871236", "pt230487-1236x", "23.04.87-1236", "23 04 87 12 36",
                                  "230487\u20111236", "230487\u20131236", "２３０４８７１２３６", "CPR:2304871236",
                                  "230487\u00a01236", "230487 - 1236"])
def test_every_spelling_is_scrubbed_and_found_in_an_identifier(text: str) -> None:
    assert "1236" not in scrub_cpr(f"note {text} end") and scrub_cpr(f"note {text} end").startswith("note ")
    assert holds_cpr(f"SN{text}")


@pytest.mark.parametrize("serial", ["AX129015", "42428562", "ouh:3fa2c1d0e9b84a7f:ipg", "12345678901234",
                                    "SN-0000123456", "2016-03-04", "L5 H", "Slim-Tip DRG lead 90 cm",
                                    "9d741620-78fe-4a28-ba08-ab2304871236", "ab230487-1236-4a28-ba08-c4bca8876987"])
def test_an_identifier_without_a_cpr_is_not_taken_for_one(serial: str) -> None:
    assert not holds_cpr(serial)
