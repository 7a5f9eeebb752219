"""The analysts' release (issue 16, item 3): every mart and flat table the warehouse has, as Parquet, CSV and Stata
with labels, and datapackage.json; read back, every file equals the warehouse, every label its data dictionary;
no free text, no pseudonym. Passes whichever of the declared marts the warehouse has."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from helpers import Loaded, copy_of, run_cli

from drg_etl.core.dictionary import dictionary_rows
from drg_etl.core.model import TABLES
from drg_etl.pipeline.analyst_release import STATA_LABEL_LENGTH, primary_key, released_relations

CPR = re.compile(r"\b\d{6}-?\d{4}\b")


@pytest.fixture(scope="module")
def warehouse(loaded_clean: Loaded, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the loaded clean demo warehouse, with its marts."""
    return copy_of(loaded_clean, tmp_path_factory.mktemp("release_wh"))


@pytest.fixture(scope="module")
def release(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``drg-etl release`` of it."""
    out = tmp_path_factory.mktemp("release")
    result = run_cli("release", "--warehouse", str(warehouse), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _value(value: Any, kind: str) -> Any:
    """A cell as plain Python, whatever read it: None for missing, ISO text for dates."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)) \
            or (isinstance(value, str) and value == ""):
        return None
    if kind == "date":
        return value.date().isoformat() if isinstance(value, dt.datetime) else (
            value.isoformat() if isinstance(value, dt.date) else str(value)[:10])
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else bool(value)
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    return str(value)


def _plain(value: Any) -> Any:
    """A cell of a nested table as JSON gives it back: dates as ISO text, lists and structs as lists and dicts."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _rows(frame: pd.DataFrame, kinds: dict[str, str]) -> list[tuple]:
    return [tuple(_value(v, kinds[c]) for c, v in zip(frame.columns, row, strict=True))
            for row in frame.astype(object).itertuples(index=False)]


def test_every_file_reads_back_as_the_warehouse(warehouse: Path, release: Path) -> None:
    package = json.loads((release / "datapackage.json").read_text(encoding="utf-8"))
    resources = {r["name"]: r for r in package["resources"]}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        present = {f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
        declared = {r.qualified: r for r in released_relations()}
        assert {r["title"] for r in package["resources"]} == set(declared) & present  # every one the warehouse has
        dictionary = {(r["schema"], r["table"], r["column"]): r for r in dictionary_rows(con)}
        for name, resource in resources.items():
            relation = declared[resource["title"]]
            if resource["format"] == "json":  # a table with JSON or nested columns: one JSON array of its rows
                records = json.loads((release / resource["path"]).read_text(encoding="utf-8"))
                key = ", ".join(primary_key(relation)) or "all"
                table = con.execute(f"select * from {relation.qualified} order by {key}")
                names = [d[0] for d in table.description]
                assert records == [{n: _plain(v) for n, v in zip(names, row, strict=True)}
                                   for row in table.fetchall()], name
                assert records, name
                continue
            fields = resource["schema"]["fields"]
            kinds = {f["name"]: f["type"] for f in fields}
            columns = ", ".join(f'"{f["name"]}"' for f in fields)
            key = ", ".join(f'"{c}"' for c in resource["schema"].get("primaryKey", [])) or "all"
            expected = _rows(con.execute(f"select {columns} from {relation.qualified} order by {key}").df(), kinds)
            assert expected or relation.name == "quality_by_rule", name  # the clean cohort has no findings
            # pandas reads Parquet only through pyarrow or fastparquet, neither a dependency: a fresh DuckDB reads it
            parquet = duckdb.connect().execute("select * from read_parquet(?)",
                                               [str(release / resource["formats"]["parquet"])]).df()
            assert _rows(parquet, kinds) == expected, name
            read = pd.read_csv(release / resource["path"], dtype=str, keep_default_na=False)
            assert list(read.columns) == list(kinds), name
            assert _rows(read, kinds) == expected, name
            with pd.io.stata.StataReader(release / resource["formats"]["stata"]) as stata:
                frame = stata.read(convert_categoricals=True)  # coded columns back through their value labels
                variable_labels, value_labels = stata.variable_labels(), stata.value_labels()
            assert _rows(frame, kinds) == expected, name
            for field in fields:
                entry = dictionary[(relation.schema, relation.name, field["name"])]
                # the package and the labels say what the warehouse's comments say
                assert field["description"] == entry["description"]
                assert field.get("constraints", {}).get("enum", []) == entry["codes"]
                label = variable_labels[field["name"]]
                assert len(label) <= STATA_LABEL_LENGTH
                assert label == entry["description"] or (label.endswith("...") and
                                                         entry["description"].startswith(label[:-3]))
                if entry["codes"]:
                    assert list(value_labels[field["name"]].values())[:len(entry["codes"])] == entry["codes"]
                if field["type"] == "boolean":
                    assert set(value_labels[field["name"]].values()) == {"false", "true"}
            if "primaryKey" in resource["schema"]:
                keys = [tuple(r) for r in read[resource["schema"]["primaryKey"]].itertuples(index=False)]
                assert len(keys) == len(set(keys)), name
            for foreign in resource["schema"].get("foreignKeys", []):
                target = resources[foreign["reference"]["resource"]]
                targets = set(pd.read_csv(release / target["path"], dtype=str)[foreign["reference"]["fields"]])
                assert set(read[foreign["fields"]]) - {""} <= targets, (name, foreign)
    finally:
        con.close()
    assert "patient_flags" in resources and "patient_flat" in resources
    assert resources["patient_flags"]["schema"]["primaryKey"] == ["patient_id"]
    assert resources["patient_course"]["format"] == "json"  # lists of structs: not tabular
    enum = next(f for f in resources["pain_condition_flat"]["schema"]["fields"] if f["name"] == "pain_location")
    assert enum["constraints"]["enum"] == ["lower_extremity", "upper_extremity", "thoracic_abdominal"]


def test_no_free_text_and_no_pseudonym(warehouse: Path, release: Path) -> None:
    """No column of free text (or a source's own identifiers), no pseudonym, no CPR number in any released file."""
    package = json.loads((release / "datapackage.json").read_text(encoding="utf-8"))
    source_text = {c.name for t in TABLES.values() for c in t.columns if c.text is not None}
    released = {f["name"] for r in package["resources"] if "schema" in r for f in r["schema"]["fields"]}
    assert released.isdisjoint(source_text | {"pseudonym"})
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        notes = {v for (v,) in con.execute("select note from canonical.complications where note is not null union "
                                           "select reason from canonical.procedures where reason is not null "
                                           "union select pseudonym from fhir.patient_flat").fetchall()}
    finally:
        con.close()
    assert notes  # the warehouse has free text and pseudonyms to leave out
    for path in release.rglob("*.csv"):
        text = path.read_text(encoding="utf-8")
        cells = set(pd.read_csv(path, dtype=str, keep_default_na=False).to_numpy().ravel())
        assert cells.isdisjoint(notes), path.name
        assert not CPR.search(text), path.name
    left_out = next(r for r in package["resources"] if r["name"] == "patient_flat")["leftOut"]
    assert "pseudonym" in left_out


def test_a_warehouse_without_a_declared_mart_is_refused_with_the_fix(warehouse: Path, tmp_path: Path) -> None:
    """A warehouse an earlier drg-etl built (a declared mart missing) is not released half: one load brings its
    marts up to date, and the release says so."""
    path = tmp_path / "wh.duckdb"
    shutil.copy(warehouse, path)
    con = duckdb.connect(str(path))
    try:
        con.execute("drop table if exists marts.quality_by_rule")
    finally:
        con.close()
    out = tmp_path / "release"
    result = run_cli("release", "--warehouse", str(path), "--out", str(out))
    assert result.returncode == 2 and "marts.quality_by_rule" in result.stderr
    assert "drg-etl load INBOX" in result.stderr and not (out / "datapackage.json").exists()


def test_release_refuses_a_warehouse_never_loaded(tmp_path: Path) -> None:
    result = run_cli("release", "--warehouse", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "no warehouse" in result.stderr
