"""The marts: the analysts' tables over the FHIR layer's flat tables, one step both doors call.

``drg-etl load`` calls :func:`refresh_marts` after the FHIR layer is current; the Dagster asset
``warehouse_marts`` calls the same. Each mart is created from its declaration (drg_etl/core/tables.py)
and filled by its query (warehouse/marts/*.sql) in one transaction. The study window, the lead-defect
types, the lead statuses and the timepoint windows are the Python constants, bound as parameters.
The analysis reads the marts (:func:`flags_relation`); nothing else computes the patient flags.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import duckdb

from drg_etl.core.dates import BASELINE_LOOKBACK_DAYS, FOLLOW_UP_WINDOWS, STUDY_END, STUDY_START
from drg_etl.core.dictionary import write_comments
from drg_etl.core.sql import read_sql
from drg_etl.core.tables import (
    MART_FOLLOW_UP_TABLE,
    MART_LEAD_HISTORY_TABLE,
    MART_PATIENT_COURSE_TABLE,
    MART_PATIENT_FLAGS,
    MART_PATIENT_FLAGS_TABLE,
    MART_QUALITY_BY_RULE_TABLE,
    MARTS,
    WarehouseTable,
)
from drg_etl.core.vocabulary import FAULTY_LEAD_STATUSES, LEAD_DEFECT_COMPLICATIONS, REMOVED_LEAD_STATUSES

# Each mart and the query that fills it, in the order they are built (follow_up reads patient_flags; patient_course
# reads patient_flags and follow_up).
MART_QUERIES: tuple[tuple[WarehouseTable, str], ...] = (
    (MART_PATIENT_FLAGS_TABLE, "marts/patient_flags.sql"),
    (MART_FOLLOW_UP_TABLE, "marts/follow_up.sql"),
    (MART_LEAD_HISTORY_TABLE, "marts/lead_history.sql"),
    (MART_QUALITY_BY_RULE_TABLE, "marts/quality_by_rule.sql"),
    (MART_PATIENT_COURSE_TABLE, "marts/patient_course.sql"),
)
_PARAMETER = re.compile(r"\$([a-z_]+)")
_COMMENT = re.compile(r"--[^\n]*")
# What a per-patient mart reads of other tables: the flat tables and the follow-up mart, each row a patient's.
_PATIENT_SOURCE = re.compile(r"\b(from|join)\s+(fhir\.\w+_flat|marts\.follow_up)\b")


def of_patients(sql: str, mine: str) -> str:
    """``sql``, a per-patient mart's query, reading only the rows of the flat tables and the follow-up mart whose
    ``patient_id`` meets ``mine`` (an SQL condition). A per-patient mart's row depends on its patient's rows alone,
    so those patients' rows come out the same; DuckDB does not push a patient filter given outside the query below
    its windows, groupings and correlated subqueries, so without this every patient's rows would be computed."""
    return _PATIENT_SOURCE.sub(lambda m: f"{m[1]} (select * from {m[2]} where {mine})", _COMMENT.sub("", sql))


# A whole rebuild of a per-patient mart takes the patients in parts of about this many, by a hash of their id: the
# lists a patient's row aggregates are held in memory, and at a million patients marts.patient_course outgrew
# DuckDB's 512 MiB in one statement.
MART_PART_PATIENTS = 250_000


def _parts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The conditions on ``patient_id`` that split the patients into parts of at most about
    :data:`MART_PART_PATIENTS` (one part, no condition, for a registry that size or smaller)."""
    patients = con.execute("select count(*) from fhir.patient_flat").fetchone()[0]  # a row per Patient: the size
    count = -(-patients // MART_PART_PATIENTS)
    if count <= 1:
        return ["true"]
    return [f"hash(patient_id) % {count} = {part}" for part in range(count)]


def study_parameters(observation_end: dt.date) -> dict[str, Any]:
    """Every constant the marts' and the analysis's SQL may name, by parameter name."""
    return {
        "observation_end": observation_end,
        "study_start": STUDY_START,
        "study_end": STUDY_END,
        "defect_types": list(LEAD_DEFECT_COMPLICATIONS),
        "faulty_statuses": list(FAULTY_LEAD_STATUSES),
        "removed_statuses": list(REMOVED_LEAD_STATUSES),
        "baseline_days": BASELINE_LOOKBACK_DAYS,
        "window_names": list(FOLLOW_UP_WINDOWS),
        "window_low": [low for low, _high in FOLLOW_UP_WINDOWS.values()],
        "window_target": [int(name.removeprefix("month_")) for name in FOLLOW_UP_WINDOWS],
        "window_high": [high for _low, high in FOLLOW_UP_WINDOWS.values()],
    }


def bind(sql: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters a statement names outside its ``--`` comments (DuckDB refuses named parameters a statement
    does not use: a comment that mentions ``$observation_end`` does not use it)."""
    return {name: parameters[name] for name in dict.fromkeys(_PARAMETER.findall(_COMMENT.sub("", sql)))
            if name in parameters}


def warehouse_observation_end(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The latest cutoff among the deliveries in force: the day the marts hold at (None: nothing loaded)."""
    return con.execute("select max(cutoff) from quality.deliveries_in_force").fetchone()[0]


def flags_held(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> bool:
    """Whether the flags mart holds the flags at ``observation_end`` (it was built for that day)."""
    held = con.execute(f"select max(observation_end) from {MART_PATIENT_FLAGS}").fetchone()[0] \
        if _exists(con, MART_PATIENT_FLAGS) else None
    return held == observation_end


def flags_relation(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> tuple[str, dict[str, Any]]:
    """The patient flags at ``observation_end`` as a query and its parameters: the mart itself when it holds
    at that day, else the mart's own query at the other day (one definition, warehouse/marts/patient_flags.sql)."""
    return (f"select * from {MART_PATIENT_FLAGS}", {}) if flags_held(con, observation_end) \
        else flags_query(observation_end)


def flags_query(observation_end: dt.date) -> tuple[str, dict[str, Any]]:
    """The flags mart's own query at ``observation_end``, and its parameters."""
    sql = read_sql("marts/patient_flags.sql")
    return sql, bind(sql, study_parameters(observation_end))


def with_relation(flags_sql: str, flags_parameters: dict[str, Any], sql: str,
                  observation_end: dt.date) -> tuple[str, dict[str, Any]]:
    """``sql`` (which reads the relation ``patient_flags``) with ``flags_sql`` in front as that relation."""
    statement = f"with patient_flags as ({flags_sql}) select * from ({sql})"
    return statement, {**flags_parameters, **bind(sql, study_parameters(observation_end))}


def with_flags(con: duckdb.DuckDBPyConnection, sql: str, observation_end: dt.date) -> tuple[str, dict[str, Any]]:
    """``sql`` (which reads the relation ``patient_flags``) with the flags at ``observation_end`` in front."""
    return with_relation(*flags_relation(con, observation_end), sql, observation_end)


def _exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return bool(con.execute("select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
                            [schema, name]).fetchone()[0])


MARTS_SETTING = "marts_built_for"  # quality.settings: what the marts were last built whole for (a hash)


def _built_for(parameters: dict[str, Any]) -> str:
    """A hash of what every mart row depends on beyond its patient's facts: the parameters and the queries; and of
    the marts' declarations, so that a changed declaration (a key no longer indexed) is built whole."""
    text = (repr(sorted(parameters.items())) + "".join(read_sql(query) for _, query in MART_QUERIES)
            + "".join(table.ddl() for table, _ in MART_QUERIES))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _built_for_the_same(con: duckdb.DuckDBPyConnection, built_for: str) -> bool:
    """Whether every mart exists, last built whole for the same parameters, queries and declarations."""
    stored = con.execute("select value from quality.settings where name = ?", [MARTS_SETTING]).fetchone()
    return stored is not None and stored[0] == built_for and all(_exists(con, t.qualified) for t in MARTS)


def _per_patient(table: WarehouseTable) -> bool:
    return "patient_id" in table.column_names


def _insert_patients(con: duckdb.DuckDBPyConnection, table: WarehouseTable, sql: str, mine: str,
                     parameters: dict[str, Any]) -> None:
    """Insert the rows of the patients whose ``patient_id`` meets ``mine`` into a per-patient mart, computed from
    those patients' rows alone (:func:`of_patients`; the later marts read just their rows of the flags mart). With
    ``mine`` ``true``: every row of any mart."""
    sql = of_patients(sql, mine)
    if table is not MART_PATIENT_FLAGS_TABLE:
        sql = f"with patient_flags as (select * from {MART_PATIENT_FLAGS} where {mine}) select * from ({sql})"
    con.execute(f"insert into {table.qualified} by name select * from ({sql}) where {mine}", bind(sql, parameters))


def refresh_marts(con: duckdb.DuckDBPyConnection, changed_patients: str | None = None) -> dict[str, int]:
    """Bring every mart up to date with the flat tables, in one transaction; return their row counts.

    ``changed_patients``: a relation of the Patient ids (``patient_id``) whose resources an incremental FHIR
    build rebuilt. When the marts were built for the same parameters (the observation end above all, which a
    delivery may move) and queries, only those patients' rows are deleted and computed again; otherwise, and for
    a mart not kept per patient, the mart is rebuilt from its declaration and query (a per-patient mart of a large
    registry in parts of patients, :data:`MART_PART_PATIENTS`).
    """
    end = warehouse_observation_end(con)
    parameters = study_parameters(end) if end is not None else {}
    built_for = _built_for(parameters)
    row_by_row = changed_patients is not None and end is not None and _built_for_the_same(con, built_for)
    # Nobody reads a mart's row order: DuckDB need not keep it, which lets a large insert spill instead of holding
    # its rows in memory (at a million patients a mart outgrew a 1 GiB cap).
    con.execute("set preserve_insertion_order = false")
    con.execute("begin transaction")
    try:
        parts = None if row_by_row or end is None else _parts(con)
        for table, query in MART_QUERIES:
            if row_by_row and _per_patient(table):
                mine = f"patient_id in (select patient_id from {changed_patients})"
                con.execute(f"delete from {table.qualified} where {mine}")
                _insert_patients(con, table, read_sql(query), mine, parameters)
                continue
            con.execute(f"drop table if exists {table.qualified}")
            con.execute(table.ddl())
            if end is None:  # nothing loaded: the marts exist, empty
                continue
            for part in parts if parts is not None and _per_patient(table) else ["true"]:
                _insert_patients(con, table, read_sql(query), part, parameters)
        write_comments(con, MARTS)  # the data dictionary: each mart's and column's description (new tables)
        con.execute("insert or replace into quality.settings values (?, ?)", [MARTS_SETTING, built_for])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.execute("reset preserve_insertion_order")
    return {t.name: con.execute(f"select count(*) from {t.qualified}").fetchone()[0] for t in MARTS}
