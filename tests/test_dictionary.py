"""The data dictionary (issue 16, item 2): every table, view and column of the analyst-facing schemas carries a
COMMENT from its declaration, coded columns their code lists, and `drg-etl dictionary` prints the same text as
Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from helpers import Loaded, copy_of, run_cli

from drg_etl.core.dictionary import (
    DOCUMENTED_SCHEMAS,
    all_relations,
    dictionary_rows,
    split_comment,
    undocumented,
    write_comments,
)
from drg_etl.core.tables import MARTS
from drg_etl.pipeline.warehouse import connect


@pytest.fixture(scope="module")
def warehouse(loaded_clean: Loaded, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the loaded clean demo warehouse, with its marts."""
    return copy_of(loaded_clean, tmp_path_factory.mktemp("dictionary"))


def test_every_declared_column_has_a_description() -> None:
    """The declarations themselves: no table, view or column without a description."""
    missing = [r.qualified for r in all_relations() if not r.description]
    missing += [f"{r.qualified}.{c.name}" for r in all_relations() for c in r.columns if not c.description]
    assert missing == []


def test_every_table_view_and_column_has_a_comment(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = con.execute("select schema_name, table_name, column_name, comment from duckdb_columns() "
                              "where schema_name in ('canonical', 'quality', 'fhir', 'marts', 'staging')").fetchall()
        relations = con.execute("select schema_name, table_name, comment from duckdb_tables() union all "
                                "select schema_name, view_name, comment from duckdb_views() where not internal"
                                ).fetchall()
        found = {s for s, _, _ in relations}
        kinds = con.execute("select count(*) from duckdb_views() where schema_name = 'canonical'").fetchone()[0]
        assert undocumented(con) == []
    finally:
        con.close()
    assert {"canonical", "quality", "fhir", "marts", "staging"} <= found
    assert kinds == 5  # the canonical.current_* views are commented too: COMMENT ON COLUMN works on views
    assert [f"{s}.{t}.{c}" for s, t, c, comment in columns if not comment] == []
    assert [f"{s}.{t}" for s, t, comment in relations if s in DOCUMENTED_SCHEMAS and not comment] == []
    assert {t.name for t in MARTS} & {t for s, t, _ in relations if s == "marts"} >= {"patient_flags"}


def test_comments_survive_reopening_and_views_recreated(warehouse: Path, tmp_path: Path) -> None:
    """connect() recreates the views (their comments go with them) and writes the dictionary again."""
    path = tmp_path / "wh.duckdb"
    shutil.copy(warehouse, path)
    con = connect(path)
    try:
        assert undocumented(con) == []
        assert write_comments(con) == 0  # nothing left to write: the comments are already right
    finally:
        con.close()


def test_coded_columns_carry_their_code_list(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        comment = con.execute("select comment from duckdb_columns() where schema_name = 'fhir' and "
                              "table_name = 'pain_condition_flat' and column_name = 'pain_location'").fetchone()[0]
        assert comment.endswith("; codes: lower_extremity, upper_extremity, thoracic_abdominal")
        rows = dictionary_rows(con)
        coded = [r for r in rows if r["codes"] and r["schema"] in ("canonical", "fhir", "marts")]
        assert {"diagnosis", "procedure", "status", "measure", "timepoint", "complication", "center"} <= {
            r["column"] for r in coded}
        outside = {}
        for r in coded:  # the code lists are right: every value the warehouse holds is among them
            values = {v for (v,) in con.execute(f'select distinct "{r["column"]}" from {r["schema"]}.{r["table"]} '
                                                f'where "{r["column"]}" is not null').fetchall()}
            if values - set(r["codes"]):
                outside[f"{r['schema']}.{r['table']}.{r['column']}"] = sorted(values - set(r["codes"]))
        assert outside == {}
    finally:
        con.close()


def test_split_comment_reads_back_what_is_written() -> None:
    assert split_comment("the side; codes: left, right") == ("the side", ("left", "right"))
    assert split_comment("no codes here") == ("no codes here", ())
    assert split_comment(None) == ("", ())


def _rows(warehouse: Path) -> list[dict]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return dictionary_rows(con)
    finally:
        con.close()


def test_dictionary_csv(warehouse: Path) -> None:
    result = run_cli("dictionary", "--warehouse", str(warehouse), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    read = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(read[0]) == ["schema", "table", "column", "type", "required", "description", "codes"]
    expected = _rows(warehouse)
    assert [(r["schema"], r["table"], r["column"], r["type"], r["required"] == "Yes", r["description"],
             [c for c in r["codes"].split(", ") if c]) for r in read] == [
        (r["schema"], r["table"], r["column"], r["type"], r["required"], r["description"], r["codes"])
        for r in expected]
    flags = {r["column"]: r for r in read if r["table"] == "patient_flags"}
    assert flags["pain_location"]["codes"] == "lower_extremity, upper_extremity, thoracic_abdominal"


def test_dictionary_json(warehouse: Path) -> None:
    result = run_cli("dictionary", "--warehouse", str(warehouse), "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document["schemas"]) == set(DOCUMENTED_SCHEMAS)
    tables = {f"{t['schema']}.{t['table']}": t for t in document["tables"]}
    expected = _rows(warehouse)
    assert sum(len(t["columns"]) for t in tables.values()) == len(expected)
    for row in expected:
        table = tables[f"{row['schema']}.{row['table']}"]
        assert table["description"] == row["table_description"] and table["kind"] == row["kind"]
        assert {k: row[k] for k in ("column", "type", "required", "description", "codes")} in table["columns"]
    assert tables["canonical.current_patients"]["kind"] == "view"


def test_dictionary_markdown(warehouse: Path) -> None:
    result = run_cli("dictionary", "--warehouse", str(warehouse))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("# Data dictionary")
    sections = {line[3:].split(" (")[0] for line in text.splitlines() if line.startswith("## ")}
    assert sections == {f"{r['schema']}.{r['table']}" for r in _rows(warehouse)}
    assert "## fhir.device_flat (table)" in text and "## quality.deliveries_in_force (view)" in text
    assert "| status | VARCHAR | no |" in text


def test_dictionary_refuses_an_unknown_format_and_a_missing_warehouse(tmp_path: Path, warehouse: Path) -> None:
    wrong = run_cli("dictionary", "--warehouse", str(warehouse), "--format", "xml")
    assert wrong.returncode == 2 and "--format" in wrong.stderr and wrong.stdout == ""
    missing = run_cli("dictionary", "--warehouse", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 2 and "no warehouse" in missing.stderr
