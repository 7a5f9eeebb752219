"""The data dictionary: every analyst-facing table, view and column of the warehouse, described in the database.

The descriptions are declared once, beside what they describe: the quality, staging, FHIR and mart tables and the
views in :mod:`drg_etl.core.tables` (``WarehouseTable.description``, ``Column.doc``), the canonical tables and their
copies in :mod:`drg_etl.core.model`, the FHIR flat tables in their SQL-on-FHIR ViewDefinitions
(``warehouse/views/ViewDefinition-*.json``, each column's ``description``). A coded column's description ends with
its code list (``; codes: a, b, c``): the column's ``isin``, else, in the FHIR flat tables and the marts, the
vocabulary's list for a column of that name (:data:`drg_etl.core.vocabulary.CODES_BY_COLUMN`).

:func:`write_comments` writes them into the warehouse as ``COMMENT``s (DuckDB keeps them in the catalog, where every
client sees them: ``duckdb_tables()``, ``duckdb_views()``, ``duckdb_columns()``). ``create or replace`` drops a
table's comments, so whatever (re)creates a table calls it afterwards. :func:`dictionary_rows` reads them back.
DuckDB cannot comment a schema ("not implemented" in 2.0): a schema's description is :data:`SCHEMA_DOCS`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

from drg_etl.core.mappings import with_canonical_base
from drg_etl.core.model import CANONICAL_COPIES, CURRENT_VIEW, TABLES, Column
from drg_etl.core.paths import SQL_DIR
from drg_etl.core.tables import MARTS, WAREHOUSE_TABLES, WAREHOUSE_VIEWS, WarehouseTable
from drg_etl.core.vocabulary import CODES_BY_COLUMN

SCHEMA_DOCS: dict[str, str] = {
    "canonical": "The national data set in the canonical model: every written delivery's facts (canonical.*) and "
                 "the facts in force (canonical.current_*).",
    "fhir": "The FHIR R4 layer (fhir.resources) and its flat tables (fhir.*_flat, SQL-on-FHIR ViewDefinitions).",
    "marts": "The analysts' tables, rebuilt after every FHIR build.",
    "quality": "Loads, deliveries, the rule catalogue, the quarantine and the data-quality checks.",
    "staging": "Deliveries read and checked but not yet written, and the source records as delivered.",
}
DOCUMENTED_SCHEMAS: tuple[str, ...] = ("canonical", "fhir", "marts", "quality", "staging")
# Schemas where a column's name alone says which code list it takes (their tables are built from the FHIR layer).
CODED_BY_NAME_SCHEMAS = ("fhir", "marts")
CODES_SEPARATOR = "; codes: "
FLAT_TABLES: tuple[str, ...] = ("patient_flat", "pain_condition_flat", "procedure_flat", "device_flat",
                                "observation_flat", "complication_flat")


@dataclass(frozen=True)
class ColumnDoc:
    """A column's description and, for a coded column, its code list."""

    name: str
    description: str
    codes: tuple[str, ...] = ()

    @property
    def comment(self) -> str:
        """The text of the column's ``COMMENT``: the description, then the codes."""
        return comment_text(self.description, self.codes)


@dataclass(frozen=True)
class RelationDoc:
    """A table or view of the warehouse as the dictionary describes it."""

    schema: str
    name: str
    description: str
    columns: tuple[ColumnDoc, ...]

    @property
    def qualified(self) -> str:
        """``schema.name``."""
        return f"{self.schema}.{self.name}"


def comment_text(description: str, codes: Iterable[str] = ()) -> str:
    """A description with its code list appended (``...; codes: a, b``), as the warehouse holds it."""
    codes = tuple(codes)
    return f"{description}{CODES_SEPARATOR}{', '.join(codes)}" if codes else description


def split_comment(comment: str | None) -> tuple[str, tuple[str, ...]]:
    """The description and the codes of a comment written by :func:`comment_text`."""
    if not comment:
        return "", ()
    description, separator, codes = comment.rpartition(CODES_SEPARATOR)
    if not separator:
        return comment, ()
    return description, tuple(code.strip() for code in codes.split(","))


def _codes(schema: str, column: Column) -> tuple[str, ...]:
    if column.isin is not None:
        return tuple(column.isin)
    return CODES_BY_COLUMN.get(column.name, ()) if schema in CODED_BY_NAME_SCHEMAS else ()


def _columns(schema: str, columns: Iterable[Column]) -> tuple[ColumnDoc, ...]:
    return tuple(ColumnDoc(c.name, c.doc, _codes(schema, c)) for c in columns)


def declared_relation(table: WarehouseTable) -> RelationDoc:
    """A table (or view) of :mod:`drg_etl.core.tables` as the dictionary describes it."""
    return RelationDoc(table.schema, table.name, table.description, _columns(table.schema, table.columns))


def canonical_relations() -> tuple[RelationDoc, ...]:
    """The canonical tables, their staging and held copies, and the ``canonical.current_*`` views."""
    relations = [RelationDoc(copy.schema, f"{copy.prefix}{name}",
                             copy.description.format(name=name, description=table.description),
                             _columns(copy.schema, (*table.all_columns, *copy.extra)))
                 for copy in CANONICAL_COPIES for name, table in TABLES.items()]
    relations += [RelationDoc("canonical", f"current_{name}", CURRENT_VIEW.format(name=name,
                                                                                  description=table.description),
                              _columns("canonical", table.all_columns)) for name, table in TABLES.items()]
    return tuple(relations)


def _view_columns(selects: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every column of a ViewDefinition's selects, nested selects and unions included, in order."""
    for select in selects:
        yield from select.get("column", [])
        yield from _view_columns(select.get("select", []))
        yield from _view_columns(select.get("unionAll", []))


@functools.cache
def flat_relations() -> tuple[RelationDoc, ...]:
    """The FHIR flat tables (``fhir.*_flat``), described by their ViewDefinitions."""
    relations = []
    for name in FLAT_TABLES:
        view = json.loads(with_canonical_base(
            (SQL_DIR / "views" / f"ViewDefinition-{name}.json").read_text(encoding="utf-8")))
        columns: dict[str, ColumnDoc] = {}
        for column in _view_columns(view["select"]):
            columns.setdefault(column["name"], ColumnDoc(column["name"], column["description"],
                                                         CODES_BY_COLUMN.get(column["name"], ())))
        description = (f"{view['title']}: one row per {view['resource']} resource of fhir.resources "
                       f"(SQL-on-FHIR ViewDefinition {view['url']}).")
        relations.append(RelationDoc("fhir", name, description, tuple(columns.values())))
    return tuple(relations)


def mart_relations(tables: Iterable[WarehouseTable] = MARTS) -> tuple[RelationDoc, ...]:
    """The marts (or the given declared tables) as the dictionary describes them."""
    return tuple(declared_relation(t) for t in tables)


def all_relations() -> tuple[RelationDoc, ...]:
    """Every table and view the dictionary describes."""
    return (*(declared_relation(t) for t in (*WAREHOUSE_TABLES, *WAREHOUSE_VIEWS)), *canonical_relations(),
            *flat_relations(), *mart_relations())


def missing_relations(con: duckdb.DuckDBPyConnection, relations: Iterable[RelationDoc]) -> list[str]:
    """The relations (``schema.name``) the warehouse lacks, or that lack a column this version gives them."""
    relations = tuple(relations)
    schemas = sorted({r.schema for r in relations})
    present: dict[str, set[str]] = {}
    if schemas:
        marks = ", ".join("?" for _ in schemas)
        for schema, table, column in con.execute("select schema_name, table_name, column_name from duckdb_columns() "
                                                 f"where schema_name in ({marks})", schemas).fetchall():
            present.setdefault(f"{schema}.{table}", set()).add(column)
    return [r.qualified for r in relations if not {c.name for c in r.columns} <= present.get(r.qualified, set())]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_comments(con: duckdb.DuckDBPyConnection,
                   tables: Iterable[WarehouseTable | RelationDoc] | None = None) -> int:
    """Write the descriptions as ``COMMENT``s onto the tables and views the warehouse has (every one the dictionary
    describes, or just ``tables``: declared tables such as :data:`~drg_etl.core.tables.MARTS`, or relation docs).

    Tables and columns the warehouse lacks are passed over; a comment already right is not written again.
    Returns how many comments were written.
    """
    relations = all_relations() if tables is None else tuple(
        t if isinstance(t, RelationDoc) else declared_relation(t) for t in tables)
    schemas = sorted({r.schema for r in relations})
    if not schemas:
        return 0
    marks = ", ".join("?" for _ in schemas)
    kinds = {(s, n): (kind, comment) for s, n, kind, comment in con.execute(
        f"select schema_name, table_name, 'table', comment from duckdb_tables() where schema_name in ({marks}) "
        f"union all select schema_name, view_name, 'view', comment from duckdb_views() "
        f"where not internal and schema_name in ({marks})", [*schemas, *schemas]).fetchall()}
    existing = {(s, t, c): comment for s, t, c, comment in con.execute(
        f"select schema_name, table_name, column_name, comment from duckdb_columns() where schema_name in ({marks})",
        schemas).fetchall()}
    statements = []
    for relation in relations:
        if (relation.schema, relation.name) not in kinds:
            continue
        kind, comment = kinds[(relation.schema, relation.name)]
        target = f"{_quoted(relation.schema)}.{_quoted(relation.name)}"
        if comment != relation.description:
            statements.append(f"comment on {kind} {target} is {_literal(relation.description)};")
        for column in relation.columns:
            key = (relation.schema, relation.name, column.name)
            if key in existing and existing[key] != column.comment:
                statements.append(f"comment on column {target}.{_quoted(column.name)} is {_literal(column.comment)};")
    if statements:
        con.execute("\n".join(statements))
    return len(statements)


def dictionary_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per column of every table and view in the documented schemas, read from the warehouse's comments:
    schema, table, kind (table or view), table_description, column, type, required, description, codes."""
    marks = ", ".join("?" for _ in DOCUMENTED_SCHEMAS)
    rows = con.execute(f"""
        with relations as (
            select schema_name, table_name, 'table' as kind, comment from duckdb_tables()
            union all select schema_name, view_name, 'view', comment from duckdb_views() where not internal)
        select c.schema_name, c.table_name, r.kind, r.comment, c.column_name, c.data_type, not c.is_nullable,
               c.comment
        from duckdb_columns() c join relations r using (schema_name, table_name)
        where c.schema_name in ({marks})
        order by c.schema_name, c.table_name, c.column_index""", list(DOCUMENTED_SCHEMAS)).fetchall()
    result = []
    for schema, table, kind, table_comment, column, data_type, required, comment in rows:
        description, codes = split_comment(comment)
        result.append({"schema": schema, "table": table, "kind": kind, "table_description": table_comment or "",
                       "column": column, "type": data_type, "required": bool(required), "description": description,
                       "codes": list(codes)})
    return result


def undocumented(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every table, view and column of the documented schemas without a comment (``schema.table[.column]``)."""
    missing = []
    seen: set[str] = set()
    for row in dictionary_rows(con):
        qualified = f"{row['schema']}.{row['table']}"
        if qualified not in seen and not row["table_description"]:
            missing.append(qualified)
        seen.add(qualified)
        if not row["description"]:
            missing.append(f"{qualified}.{row['column']}")
    return missing
