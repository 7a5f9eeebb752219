"""No CPR number of the input appears in the warehouse, its tables, or anything the commands print."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from helpers import FAULTS, TEST_KEY, Generated, all_cprs, new_delivery
from typer.testing import CliRunner

from drg_etl.cli import app


def test_no_cpr_in_warehouse_tables_file_or_output(demo: Generated, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRG_ETL_PSEUDONYM_KEY", TEST_KEY.decode())
    warehouse = tmp_path / "w.duckdb"
    runner = CliRunner()
    outputs = [runner.invoke(app, ["load", str(demo.inbox), "--warehouse", str(warehouse)]).output,
               runner.invoke(app, ["quality", "--warehouse", str(warehouse)]).output,
               runner.invoke(app, ["quality", "--warehouse", str(warehouse), "--json"]).output]
    con = duckdb.connect(str(warehouse), read_only=True)
    tables = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    dump = []
    for schema, table in tables:
        dump += [json.dumps(row, default=str) for row in con.execute(f"select * from {schema}.{table}").fetchall()]
    con.close()
    text = "\n".join(outputs + dump)
    raw = warehouse.read_bytes()
    cprs = all_cprs(demo)
    assert len(dump) > 500 and len(cprs) > 100
    assert [c for c in cprs if c in text] == []
    assert [c for c in cprs if c.encode() in raw] == []
    # The invalid CPRs of injected defects are not persisted either. ("12345678" is only checked in
    # the tables: DuckDB's compression symbol tables hold the hex alphabet "0123456789abcdef".)
    for invalid in ("31O585-1234", "0113851234", "12345678"):
        assert invalid not in text
    for invalid in ("31O585-1234", "0113851234"):
        assert invalid.encode() not in raw


def test_a_different_key_gives_unlinkable_pseudonyms(demo: Generated, tmp_path: Path) -> None:
    from drg_etl.pipeline.load import load_inbox

    keys = []
    for key in (TEST_KEY, b"another-key-entirely-0123456789"):
        path = tmp_path / f"{len(keys)}.duckdb"
        load_inbox(demo.inbox, path, key)
        con = duckdb.connect(str(path), read_only=True)
        keys.append({r[0] for r in con.execute("select patient_key from canonical.patients").fetchall()})
        con.close()
    assert len(keys[0]) == len(keys[1]) > 40 and keys[0].isdisjoint(keys[1])


def _without_header(folder: Path) -> None:
    path = folder / "patienter.csv"
    path.write_bytes(path.read_bytes().split(b"\r\n", 1)[1])


def _shifted_cpr(folder: Path) -> None:
    """A record whose CPR slid into another column (an extra field before it)."""
    path = folder / "prom.csv"
    lines = path.read_bytes().split(b"\r\n")
    lines[1] = b"x;" + lines[1]
    path.write_bytes(b"\r\n".join(lines))


def test_no_cpr_in_any_table_or_line_of_any_bad_input(demo: Generated, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file fault and hostile case of the suite, each loaded by the CLI: no CPR anywhere."""
    monkeypatch.setenv("DRG_ETL_PSEUDONYM_KEY", TEST_KEY.decode())
    monkeypatch.setenv("COLUMNS", "250")
    cprs = all_cprs(demo)
    cases = [(center, fault) for center, fault, *_ in FAULTS] + [("auh", _without_header), ("auh", _shifted_cpr)]
    runner = CliRunner()
    for number, (center, fault) in enumerate(cases):
        inbox, warehouse = tmp_path / f"inbox{number}", tmp_path / f"w{number}.duckdb"
        shutil.copytree(demo.inbox, inbox)
        fault(new_delivery(inbox, center))
        outputs = [runner.invoke(app, ["load", str(inbox), "--warehouse", str(warehouse)]).output,
                   runner.invoke(app, ["quality", "--warehouse", str(warehouse), "--json"]).output]
        con = duckdb.connect(str(warehouse), read_only=True)
        dump = [json.dumps(row, default=str) for schema, table in
                con.execute("select table_schema, table_name from information_schema.tables").fetchall()
                for row in con.execute(f"select * from {schema}.{table}").fetchall()]
        con.close()
        text = "\n".join(outputs + dump)
        assert [c for c in cprs if c in text] == [], fault.__name__
