"""SQL-on-FHIR v2: the ViewDefinitions of warehouse/views/, run by an independent view runner over the
FHIR Bulk export, give the rows of the DuckDB flat tables (fhir.*_flat, warehouse/fhir_flat.sql).

The runner is ``sqlonfhir`` (a pure-Python SQL-on-FHIR v2 runner over fhirpathpy). It is a test
dependency: if it is missing the tests fail, they do not skip.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import duckdb
import pytest
from helpers import Loaded

from drg_etl.core.mappings import canonical_base, with_canonical_base
from drg_etl.core.paths import SQL_DIR
from drg_etl.fhir.export import export_fhir

try:
    from sqlonfhir import evaluate as _evaluate
except ImportError:  # _engine() fails the tests that need it
    _evaluate = None

VIEWS_DIR = SQL_DIR / "views"
VIEW_FILES = sorted(VIEWS_DIR.glob("ViewDefinition-*.json"))
URL_BASE = f"{canonical_base()}/ViewDefinition/"
PROJECT_SYSTEM = f"{canonical_base()}/CodeSystem/drg-etl"
# Columns that hold a project code. The view keeps the code whole ('diagnosis/crps_1': the portable
# FHIRPath subset has no string function to cut it); the DuckDB table keeps the value after 'concept/'.
PROJECT_CODES = {
    "pain_condition_flat": {"diagnosis": "diagnosis", "pain_location": "pain_location"},
    "procedure_flat": {"procedure": "procedure"},
    "device_flat": {"device_type": "device_type", "status": "lead_status"},
    "observation_flat": {"measure": "measure", "timepoint": "timepoint"},
    "complication_flat": {"complication": "complication"},
}
# What a path may call: the Shareable ViewDefinition subset, the SQL-on-FHIR key functions, and the
# conversions Pathling also implements. No iif/substring/replace: Pathling does not run them.
PORTABLE_FUNCTIONS = {"where", "exists", "empty", "extension", "ofType", "first", "not", "getResourceKey",
                      "getReferenceKey", "toString", "toInteger"}

Row = dict[str, Any]


def _engine() -> Any:
    """The view runner; a missing runner fails the test that needs it (it does not skip)."""
    if _evaluate is None:
        pytest.fail("the SQL-on-FHIR engine is not installed: pip install sqlonfhir==0.0.2")
    return _evaluate


@pytest.fixture(scope="module")
def warehouse(loaded_demo: Loaded, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo warehouse exported as FHIR Bulk NDJSON, and its flat tables (columns and rows)."""
    out = tmp_path_factory.mktemp("sof_export")
    con = duckdb.connect(str(loaded_demo.warehouse), read_only=True)
    try:
        manifest = export_fhir(con, out)
        names = [n for (n,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'fhir' "
            "and table_name like '%\\_flat' escape '\\' order by all").fetchall()]
        tables = {}
        for name in names:
            cursor = con.execute(f"select * from fhir.{name}")
            tables[name] = ([d[0] for d in cursor.description], cursor.fetchall())
    finally:
        con.close()
    return {"dir": out, "manifest": manifest, "tables": tables}


def _load_view(path: Path) -> dict[str, Any]:
    return json.loads(with_canonical_base(path.read_text(encoding="utf-8")))


def _resources(warehouse: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The resources of a type, from the file the Bulk manifest names for it."""
    [entry] = [o for o in warehouse["manifest"]["output"] if o["type"] == resource_type]
    text = Path(url2pathname(urlsplit(entry["url"]).path)).read_text(encoding="utf-8")  # an absolute file:// URL
    return [json.loads(line) for line in text.splitlines() if line]


def _run(engine: Any, view: dict[str, Any], resources: list[dict[str, Any]]) -> list[Row]:
    return engine(copy.deepcopy(resources), copy.deepcopy(view))  # the runner rewrites the view in place


def _selects(node: dict[str, Any]) -> list[dict[str, Any]]:
    return node.get("select", [])


def declared_columns(node: dict[str, Any]) -> list[str]:
    """The view's column names in output order: a node's columns, its selects, then its unionAll."""
    names = [c["name"] for c in node.get("column", [])]
    for child in _selects(node):
        names += declared_columns(child)
    if node.get("unionAll"):
        names += declared_columns(node["unionAll"][0])
    return names


def all_columns(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every column element of the view, unionAll branches included."""
    out = list(node.get("column", []))
    for child in [*_selects(node), *node.get("unionAll", [])]:
        out += all_columns(child)
    return out


def all_paths(node: dict[str, Any]) -> list[str]:
    """Every FHIRPath expression of the view."""
    out = [c["path"] for c in node.get("column", [])] + [w["path"] for w in node.get("where", [])]
    out += [node[k] for k in ("forEach", "forEachOrNull") if k in node]
    for child in [*_selects(node), *node.get("unionAll", [])]:
        out += all_paths(child)
    return out


def _normal(value: Any) -> Any:
    """Comparable across DuckDB and the runner: dates as ISO strings, numbers as float."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _engine_value(table: str, column: str, value: Any) -> Any:
    """The runner's value as the DuckDB table holds it (a project code loses its 'concept/' prefix)."""
    concept = PROJECT_CODES.get(table, {}).get(column)
    if concept is not None and value is not None:
        assert isinstance(value, str) and value.startswith(f"{concept}/"), (table, column, value)
        value = value.removeprefix(f"{concept}/")
    return _normal(value)


def test_one_view_definition_per_flat_table(warehouse: dict[str, Any]) -> None:
    tables = warehouse["tables"]
    assert tables, "the warehouse has no fhir.*_flat table"
    views = {path.name: _load_view(path) for path in VIEW_FILES}
    assert sorted(v["name"] for v in views.values()) == sorted(tables)
    for file_name, view in views.items():
        name = view["name"]
        assert file_name == f"ViewDefinition-{name}.json"
        assert view["resourceType"] == "ViewDefinition"
        assert view["url"] == URL_BASE + name
        assert view["status"] == "active"
        assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", view["id"]), "a FHIR id (no underscore)"
        # the Shareable ViewDefinition profile: url, name, fhirVersion and a type for every column
        assert view["fhirVersion"] == ["4.0.1"]
        for column in all_columns(view):
            assert column.get("type") and column.get("description"), (name, column["name"])
        assert declared_columns(view) == tables[name][0], f"{name}: the DuckDB table's columns, in order"
        assert set(PROJECT_CODES.get(name, {})) <= set(tables[name][0])


@pytest.mark.parametrize("path", VIEW_FILES, ids=lambda p: p.stem.removeprefix("ViewDefinition-"))
def test_view_paths_stay_in_the_portable_subset(path: Path) -> None:
    """Only functions every SQL-on-FHIR runner the project targets (Pathling too) implements."""
    view = _load_view(path)
    called = {m for p in all_paths(view) for m in re.findall(r"([A-Za-z]\w*)\(", p)}
    assert called <= PORTABLE_FUNCTIONS, called - PORTABLE_FUNCTIONS
    for p in all_paths(view):  # project codes by system, never by coding position
        assert not re.search(r"coding\s*\[", p), p
        assert PROJECT_SYSTEM not in p, "use the constant %projectSystem"


@pytest.mark.parametrize("path", VIEW_FILES, ids=lambda p: p.stem.removeprefix("ViewDefinition-"))
def test_view_gives_the_duckdb_rows(path: Path, warehouse: dict[str, Any]) -> None:
    engine = _engine()
    view = _load_view(path)
    table = view["name"]
    assert table in warehouse["tables"], f"no DuckDB table fhir.{table}"
    columns, db_rows = warehouse["tables"][table]
    rows = _run(engine, view, _resources(warehouse, view["resource"]))
    for row in rows:
        assert sorted(row) == sorted(columns), f"{table}: the runner's columns"
    got = Counter(tuple(_engine_value(table, c, row[c]) for c in columns) for row in rows)
    want = Counter(tuple(_normal(v) for v in row) for row in db_rows)
    assert len(rows) == len(db_rows) > 0
    assert got == want, {"only_view": list((got - want).items())[:5], "only_duckdb": list((want - got).items())[:5]}


def _with_foreign_codings(node: Any) -> Any:
    """Every CodeableConcept with another system's coding put first, every meta with another tag first.

    What the terminology revision does (SKS / SNOMED CT codings beside the project's): the rows must not move.
    """
    if isinstance(node, list):
        return [_with_foreign_codings(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _with_foreign_codings(v) for k, v in node.items()}
    if isinstance(out.get("coding"), list):
        out["coding"] = [{"system": "urn:oid:1.2.208.176.2.4", "code": "DZ000", "display": "SKS"},
                         *reversed(out["coding"])]
    if isinstance(out.get("tag"), list):
        out["tag"] = [{"system": "urn:example:another-tag", "code": "x"}, *out["tag"]]
    return out


def test_views_read_codes_by_system_not_by_position(warehouse: dict[str, Any]) -> None:
    engine = _engine()
    for path in VIEW_FILES:
        view = _load_view(path)
        resources = _resources(warehouse, view["resource"])
        before = _run(engine, view, resources)
        after = _run(engine, view, [_with_foreign_codings(r) for r in resources])
        key = lambda row: json.dumps(row, sort_keys=True, default=str)  # noqa: E731
        assert sorted(map(key, after)) == sorted(map(key, before)), view["name"]
