"""The data dictionary as a document: Markdown (a section per table), CSV (one row per column, in the manner
of OMOP's field-level CSV) or JSON, from the comments the warehouse holds
(:func:`drg_etl.core.dictionary.dictionary_rows`).
"""

from __future__ import annotations

import csv
import io
import json
from itertools import groupby
from typing import Any

import duckdb

from drg_etl.core.dictionary import SCHEMA_DOCS, dictionary_rows

FORMATS = ("md", "csv", "json")
CSV_COLUMNS = ("schema", "table", "column", "type", "required", "description", "codes")


def _tables(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows grouped per table, in order: schema, table, kind, description, columns."""
    tables = []
    for (schema, table), columns in groupby(rows, key=lambda r: (r["schema"], r["table"])):
        columns = list(columns)
        tables.append({"schema": schema, "table": table, "kind": columns[0]["kind"],
                       "description": columns[0]["table_description"],
                       "columns": [{k: c[k] for k in ("column", "type", "required", "description", "codes")}
                                   for c in columns]})
    return tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown document: the schemas, then a section per table or view with a table of its columns."""
    lines = ["# Data dictionary", "", "| schema | holds |", "|---|---|"]
    lines += [f"| {schema} | {_cell(doc)} |" for schema, doc in sorted(SCHEMA_DOCS.items())]
    for table in _tables(rows):
        lines += ["", f"## {table['schema']}.{table['table']} ({table['kind']})", "", _cell(table["description"]), "",
                  "| column | type | required | description | codes |", "|---|---|---|---|---|"]
        lines += [f"| {c['column']} | {c['type']} | {'yes' if c['required'] else 'no'} | {_cell(c['description'])} "
                  f"| {', '.join(c['codes'])} |" for c in table["columns"]]
    return "\n".join(lines) + "\n"


def as_csv(rows: list[dict[str, Any]]) -> str:
    """One row per column: schema, table, column, type, required (Yes/No), description, codes (comma-separated)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**{k: row[k] for k in ("schema", "table", "column", "type", "description")},
                         "required": "Yes" if row["required"] else "No", "codes": ", ".join(row["codes"])})
    return out.getvalue()


def as_json(rows: list[dict[str, Any]]) -> str:
    """``{"schemas": {name: description}, "tables": [{schema, table, kind, description, columns: [...]}]}``."""
    return json.dumps({"schemas": SCHEMA_DOCS, "tables": _tables(rows)}, indent=2, ensure_ascii=False) + "\n"


def dictionary_document(con: duckdb.DuckDBPyConnection, fmt: str) -> str:
    """The warehouse's data dictionary in ``fmt`` (md, csv or json)."""
    render = {"md": as_markdown, "csv": as_csv, "json": as_json}.get(fmt)
    if render is None:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return render(dictionary_rows(con))
