"""pandera schemas of the canonical tables, built from the one declaration in :mod:`drg_etl.core.model`.

The readers' row rules should already have caught every bad value; these schemas are the
contract of the canonical layer. They validate lazily, and each failing fact goes to
quarantine under ``canonical.schema`` with the check that failed, never silently dropped.
Tables are validated in bounded batches (:func:`frames`), never whole.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterable, Iterator

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandas.errors import OutOfBoundsDatetime
from pandera.errors import SchemaErrors

from drg_etl.core.delivery import Delivery
from drg_etl.core.model import TABLES, Column

FAILURE_COLUMNS = ["index", "column", "check", "failure_case"]
SET_BY_WRITER = {"delivery_id", "cutoff"}  # lineage the warehouse adds when it writes a delivery
_DTYPES = {"varchar": None, "integer": "Int64", "double": "Float64", "boolean": "boolean", "date": "datetime64[ns]"}


def _checks(column: Column) -> list[pa.Check]:
    checks = []
    if column.isin is not None:
        checks.append(pa.Check.isin(list(column.isin)))
    if column.low is not None:
        checks.append(pa.Check.ge(column.low))
    if column.high is not None:
        checks.append(pa.Check.le(column.high))
    if column.length is not None:
        checks.append(pa.Check.str_length(column.length, column.length))
    return checks


@functools.cache
def schema(table: str, *, dates_typed: bool = False) -> pa.DataFrameSchema:
    """The pandera schema of a canonical table (lineage and facts), from the model. ``dates_typed``: for a frame
    whose date columns already have the schema's type (:func:`_dates_typed`), which it then need not coerce."""
    model = TABLES[table]
    columns = {c.name: pa.Column(_DTYPES[c.sql_type], _checks(c), nullable=c.nullable,
                                 coerce=_DTYPES[c.sql_type] is not None and not (dates_typed and c.sql_type == "date"),
                                 required=c.name not in SET_BY_WRITER)
               for c in model.all_columns}
    checks = [pa.Check(check, name=name) for name, check in model.row_checks.items()]
    return pa.DataFrameSchema(columns, checks=checks, strict=False, name=table, description=model.description)


def _dates_typed(table: str, frame: pd.DataFrame) -> bool:
    """Give the frame's date columns the schema's type where that cannot fail (DuckDB's dates come as microseconds,
    the schema's type is nanoseconds); True when every one then has it. pandera coerces a date column even when it
    has the type already, at more cost than the column's checks; a value it cannot coerce (a text, a date out of
    the type's range) is left for it to report."""
    for column in TABLES[table].all_columns:
        if column.sql_type != "date" or column.name not in frame or frame[column.name].dtype == _DTYPES["date"]:
            continue
        if not pd.api.types.is_datetime64_dtype(frame[column.name]):
            return False
        try:
            frame[column.name] = frame[column.name].astype(_DTYPES["date"])
        except (OutOfBoundsDatetime, OverflowError):
            return False
    return True


def schema_failures(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The failure cases of a canonical table against its schema (empty when it passes). The frame's date columns
    may be given the schema's type (:func:`_dates_typed`)."""
    if frame.empty:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    try:
        schema(table, dates_typed=_dates_typed(table, frame)).validate(frame, lazy=True)
    except SchemaErrors as exc:
        return exc.failure_cases
    return pd.DataFrame(columns=FAILURE_COLUMNS)


FRAME_ROWS = 131_072  # pandera's cost is mostly per column and check: a third less time than frames of 32,768 rows
_ARROW_STRINGS = {pyarrow.string(): pd.StringDtype("pyarrow")}.get  # texts stay Arrow's, never Python objects


def frames(relation: duckdb.DuckDBPyRelation, rows: int = FRAME_ROWS) -> Iterator[pd.DataFrame]:
    """A query's result as pandas frames of at most ``rows`` rows, read as Arrow batches: texts are pandas'
    Arrow-backed strings (not a Python object a value: fetching and checking a delivery took 2.7 times as long
    with them), dates ``datetime64`` as DuckDB's pandas frames give them.

    Before each further frame the cyclic garbage the last one left is collected: checking a frame leaves objects of
    pandera's and pandas' that refer to each other and hold its columns, which Python's generational collector
    frees only now and then. Without this the load's process grew by about 80 MiB a frame over a delivery's 2.5
    million measurements at a million patients (to 1.9 GiB). A collection costs some 40 ms, so a result of one
    frame (a small delivery's table) makes none."""
    first = True
    for batch in relation.to_arrow_reader(rows):
        if not len(batch):
            continue
        if not first:
            gc.collect()
        first = False
        yield batch.to_pandas(types_mapper=_ARROW_STRINGS, date_as_object=False)
    pyarrow.default_memory_pool().release_unused()  # the frames' buffers back to the system, not kept by Arrow's pool


def batch_failures(table: str, batches: Iterable[pd.DataFrame]) -> tuple[int, pd.DataFrame]:
    """Validate a table batch by batch (memory bounded by the batch); return rows seen and failure cases."""
    rows, failures = 0, []
    for frame in batches:
        rows += len(frame)
        cases = schema_failures(table, frame)
        if len(cases):
            failures.append(cases)
    return rows, (pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=FAILURE_COLUMNS))


def validate_pending(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str) -> int:
    """Validate a staged delivery's facts batch by batch; quarantine the failing facts; return how many."""
    failed: list[tuple] = []
    for table in TABLES:
        relation = con.sql(f"select * from staging.pending_{table} where delivery_id = ? order by fact_seq",
                           params=[delivery_id])
        for frame in frames(relation):
            cases = schema_failures(table, frame)
            if not len(cases):
                continue
            # each failing row's (column, check) pairs, grouped once (not a scan of the cases for every row)
            named = {int(i): list(zip(group["column"], group["check"], strict=True))
                     for i, group in cases.dropna(subset=["index"]).groupby("index", sort=False)}
            bad = range(len(frame)) if cases["index"].isna().any() else sorted(named)
            for i in bad:
                what = "; ".join(f"{c}: {k}" for c, k in named.get(i, [])) or "schema failure"
                fact = frame.iloc[i]
                key = None if pd.isna(fact["patient_key"]) else str(fact["patient_key"])
                failed.append((table, int(fact["fact_seq"]), str(fact["source_file"]), int(fact["source_row"]), key,
                               f"{table} fact breaks the canonical schema ({what})"))
    for table, seq, file, row, key, message in failed:
        con.execute("""
            insert into staging.pending_issues by name
            select $delivery_id as delivery_id, $center as center, $cutoff as cutoff, $file as file, $row as "row",
                   rule_id, severity, kahn_category, $message as message, $patient_key as patient_key
            from quality.rules where rule_id = 'canonical.schema'""",
                    {"delivery_id": delivery_id, "center": delivery.center, "cutoff": delivery.cutoff, "file": file,
                     "row": row, "message": message, "patient_key": key})
        con.execute(f"delete from staging.pending_{table} where delivery_id = ? and fact_seq = ?", [delivery_id, seq])
    return len(failed)
