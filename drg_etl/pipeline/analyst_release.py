"""The analysts' release (``drg-etl release``): every mart and FHIR flat table as Parquet, CSV and Stata ``.dta``,
with a Frictionless Data Package (``datapackage.json``) describing them.

The warehouse is pseudonymised (no CPR number anywhere; ``patient_id`` is derived from the keyed pseudonym). What
the release leaves out: free text and the sources' own identifiers (any column the canonical model marks so, such as
a complication's note or a procedure's reason: Statistics Denmark accepts no free text), the pseudonym itself
(``fhir.patient_flat.pseudonym``: ``patient_id`` joins every table, a second key would add a link and nothing else),
and tables with JSON or nested (list, struct) columns, which are not tabular (marts.patient_course): those are
written as a JSON file beside the tables and listed in the package as a JSON resource. A declared mart the warehouse
does not have yet is reported as absent, not an error.

Descriptions and code lists are the data dictionary's (:mod:`drg_etl.core.dictionary`): Stata gets them as variable
labels (at most 80 characters) and value labels (a coded text column becomes integers 1..n in its code list's
order, with the codes as labels; a boolean 0/1 labelled false/true); the package as field descriptions and
``constraints.enum``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from drg_etl import __version__
from drg_etl.core.dictionary import RelationDoc, flat_relations, mart_relations
from drg_etl.core.model import TABLES
from drg_etl.core.tables import MARTS

FORMATS = ("parquet", "csv", "stata")
STATA_LABEL_LENGTH = 80  # Stata's limit for a variable or data label
PSEUDONYM_COLUMNS = frozenset({"pseudonym"})
# Columns of source text the canonical model marks (free text, the sources' own identifiers), wherever they appear.
SOURCE_TEXT_COLUMNS = frozenset(c.name for t in TABLES.values() for c in t.columns
                                if c.text in ("free_text", "identifier"))
# A released column that refers to a row of another released table: (table, column) it refers to.
REFERENCES = {"patient_id": ("patient_flat", "patient_id"), "device_id": ("device_flat", "id"),
              "observation_id": ("observation_flat", "id")}
FRICTIONLESS_TYPES = {"VARCHAR": "string", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "datetime",
                      "TINYINT": "integer", "SMALLINT": "integer", "INTEGER": "integer", "BIGINT": "integer",
                      "HUGEINT": "integer", "FLOAT": "number", "DOUBLE": "number", "JSON": "object"}
BOOLEAN_LABELS = {0: "false", 1: "true"}


@dataclass
class ReleasedTable:
    """One table of the release: where it came from, its rows, its files, the columns left out and why."""

    name: str
    source: str
    rows: int
    files: dict[str, str]
    left_out: dict[str, str] = field(default_factory=dict)


@dataclass
class Release:
    """What ``drg-etl release`` wrote: the tables, the tables declared but absent, the package's path."""

    out: Path
    tables: list[ReleasedTable]
    absent: list[str]
    package: Path


@dataclass(frozen=True)
class _Column:
    name: str
    duckdb_type: str
    description: str
    codes: tuple[str, ...]


def released_relations() -> tuple[RelationDoc, ...]:
    """Every table the release is made of: the FHIR flat tables, then the marts."""
    return (*flat_relations(), *mart_relations())


def primary_key(relation: RelationDoc) -> tuple[str, ...]:
    """A mart's declared key; a flat table's first column (its resource's id; patient_flat: the Patient's)."""
    declared = {t.qualified: t.primary_key for t in MARTS}
    return declared.get(relation.qualified, ()) if relation.schema == "marts" else (relation.columns[0].name,)


def nested(duckdb_type: str) -> bool:
    """Whether a column of this DuckDB type is not one value per cell: JSON, a list, a struct, a map, a union."""
    return duckdb_type == "JSON" or duckdb_type.endswith("]") or duckdb_type.startswith(("STRUCT", "MAP", "UNION"))


def left_out_reason(column: str, duckdb_type: str) -> str | None:
    """Why a column stays out of the release (None: it is released)."""
    if column in SOURCE_TEXT_COLUMNS:
        return "free text or a source's own identifier (Statistics Denmark accepts no free text)"
    if column in PSEUDONYM_COLUMNS:
        return "the pseudonym: patient_id is the key of the release"
    if duckdb_type == "JSON":
        return "JSON, not tabular"
    return None


def _columns(con: duckdb.DuckDBPyConnection, relation: RelationDoc) -> list[_Column]:
    docs = {c.name: c for c in relation.columns}
    rows = con.execute("select column_name, data_type from duckdb_columns() where schema_name = ? and "
                       "table_name = ? order by column_index", [relation.schema, relation.name]).fetchall()
    return [_Column(name, data_type, docs[name].description if name in docs else "",
                    docs[name].codes if name in docs else ()) for name, data_type in rows]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _stata_label(text: str) -> str:
    return text if len(text) <= STATA_LABEL_LENGTH else text[:STATA_LABEL_LENGTH - 3] + "..."


def code_labels(codes: tuple[str, ...], values: pd.Series) -> dict[int, str]:
    """A coded column's Stata value labels: its code list numbered from 1, then any other value it holds."""
    extra = sorted(set(values.dropna()) - set(codes))
    return dict(enumerate((*codes, *extra), start=1))


def _stata_frame(frame: pd.DataFrame, columns: list[_Column]) -> tuple[pd.DataFrame, dict[str, dict[int, str]],
                                                                        dict[str, str]]:
    """The frame as Stata takes it, its value labels, and the dates to write as Stata dates."""
    out = frame.copy()
    value_labels: dict[str, dict[int, str]] = {}
    dates: dict[str, str] = {}
    for column in columns:
        series = frame[column.name]
        if column.codes and column.duckdb_type == "VARCHAR":
            labels = code_labels(column.codes, series)
            numbers = {label: number for number, label in labels.items()}
            out[column.name] = pd.array([numbers.get(v) if isinstance(v, str) else None for v in series],
                                        dtype="Int16")
            value_labels[column.name] = labels
        elif column.duckdb_type == "BOOLEAN":
            out[column.name] = pd.array([None if pd.isna(v) else int(v) for v in series], dtype="Int8")
            value_labels[column.name] = BOOLEAN_LABELS
        elif column.duckdb_type == "DATE":
            out[column.name] = pd.to_datetime(series)
            dates[column.name] = "td"
        elif column.duckdb_type == "TIMESTAMP":
            dates[column.name] = "tc"
        elif column.duckdb_type == "VARCHAR":
            out[column.name] = series.astype(object).where(series.notna(), "")
    return out, value_labels, dates


def _write_stata(con: duckdb.DuckDBPyConnection, select: str, columns: list[_Column], relation: RelationDoc,
                 path: Path) -> None:
    frame, value_labels, dates = _stata_frame(con.execute(select).df(), columns)
    frame.to_stata(path, write_index=False, version=118, convert_dates=dates, value_labels=value_labels,
                   variable_labels={c.name: _stata_label(c.description) for c in columns},
                   data_label=_stata_label(relation.description))


def _field(column: _Column, required: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": column.name, "type": FRICTIONLESS_TYPES.get(column.duckdb_type, "any"),
                            "description": column.description}
    constraints: dict[str, Any] = {}
    if column.codes:
        constraints["enum"] = list(column.codes)
    if required:
        constraints["required"] = True
    if constraints:
        spec["constraints"] = constraints
    return spec


def _resource(relation: RelationDoc, columns: list[_Column], released: set[str], table: ReleasedTable,
              required: set[str]) -> dict[str, Any]:
    key = [c for c in primary_key(relation) if c in {col.name for col in columns}]
    foreign = [{"fields": c.name, "reference": {"resource": REFERENCES[c.name][0], "fields": REFERENCES[c.name][1]}}
               for c in columns if c.name in REFERENCES and REFERENCES[c.name][0] in released
               and (relation.name, c.name) != REFERENCES[c.name]]
    schema: dict[str, Any] = {"fields": [_field(c, c.name in required) for c in columns], "missingValues": [""]}
    if key:
        schema["primaryKey"] = key
    if foreign:
        schema["foreignKeys"] = foreign
    return {"name": relation.name, "title": relation.qualified, "description": relation.description,
            "path": table.files["csv"], "profile": "tabular-data-resource", "format": "csv",
            "mediatype": "text/csv", "encoding": "utf-8", "schema": schema,
            "formats": {"parquet": table.files["parquet"], "stata": table.files["stata"]},
            "leftOut": table.left_out}


def _json_resource(relation: RelationDoc, path: str) -> dict[str, Any]:
    return {"name": relation.name, "title": relation.qualified, "description": relation.description, "path": path,
            "format": "json", "mediatype": "application/json", "encoding": "utf-8"}


def _write_json_table(con: duckdb.DuckDBPyConnection, relation: RelationDoc, columns: list[_Column],
                      path: Path) -> int:
    """A table with JSON or nested columns as one JSON array of its rows in the order of its key (the JSON as JSON,
    lists and structs as arrays and objects, dates as ISO text), written by DuckDB as it reads the rows (at 100,000
    patients marts.patient_course's rows as Python objects took half a GiB)."""
    names = ", ".join(_quoted(c.name) for c in columns)
    order = ", ".join(_quoted(c) for c in primary_key(relation) if c in {k.name for k in columns}) or "all"
    con.execute(f"copy (select {names} from {relation.qualified} order by {order}) to {_literal(path)} "
                "(format json, array true)")
    return con.execute(f"select count(*) from {relation.qualified}").fetchone()[0]


def write_release(con: duckdb.DuckDBPyConnection, out: Path) -> Release:
    """Write the release into ``out``: ``parquet/``, ``csv/``, ``stata/`` (one file per table each), ``json/`` (the
    tables that are not tabular) and ``datapackage.json``."""
    present = {(s, n) for s, n in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
    relations = [r for r in released_relations() if (r.schema, r.name) in present]
    absent = [r.qualified for r in released_relations() if (r.schema, r.name) not in present]
    tabular = {r.name for r in relations if not any(nested(c.duckdb_type) for c in _columns(con, r))}
    for folder in (*FORMATS, *(("json",) if len(tabular) < len(relations) else ())):
        (out / folder).mkdir(parents=True, exist_ok=True)
    tables: list[ReleasedTable] = []
    resources: list[dict[str, Any]] = []
    for relation in relations:
        columns = _columns(con, relation)
        if relation.name not in tabular:
            rows = _write_json_table(con, relation, columns, out / "json" / f"{relation.name}.json")
            table = ReleasedTable(relation.name, relation.qualified, rows, {"json": f"json/{relation.name}.json"})
            tables.append(table)
            resources.append(_json_resource(relation, table.files["json"]))
            continue
        left_out = {c.name: reason for c in columns if (reason := left_out_reason(c.name, c.duckdb_type))}
        kept = [c for c in columns if c.name not in left_out]
        order = ", ".join(_quoted(c) for c in primary_key(relation) if c in {k.name for k in kept}) or "all"
        select = f"select {', '.join(_quoted(c.name) for c in kept)} from {relation.qualified} order by {order}"
        files = {fmt: f"{fmt}/{relation.name}.{ext}" for fmt, ext in (("parquet", "parquet"), ("csv", "csv"),
                                                                        ("stata", "dta"))}
        con.execute(f"copy ({select}) to {_literal(out / files['parquet'])} (format parquet)")
        con.execute(f"copy ({select}) to {_literal(out / files['csv'])} (format csv, header true)")
        _write_stata(con, select, kept, relation, out / files["stata"])
        rows = con.execute(f"select count(*) from {relation.qualified}").fetchone()[0]
        required = {n for n, nullable in con.execute(
            "select column_name, is_nullable from duckdb_columns() where schema_name = ? and table_name = ?",
            [relation.schema, relation.name]).fetchall() if not nullable}
        table = ReleasedTable(relation.name, relation.qualified, rows, files, left_out)
        tables.append(table)
        resources.append(_resource(relation, kept, tabular, table, required))
    package = out / "datapackage.json"
    package.write_text(json.dumps({
        "name": "drg-etl-release", "title": "The Danish DRG-stimulation registry: the analysts' release",
        "description": "The marts and the FHIR flat tables of the national warehouse, pseudonymised (no CPR "
                       "number; patient_id derives from a keyed pseudonym), without free text. Each table as CSV "
                       "(the resource's path), Parquet and Stata .dta (under formats).",
        "profile": "tabular-data-package", "version": __version__,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "resources": resources}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Release(out, tables, absent, package)
