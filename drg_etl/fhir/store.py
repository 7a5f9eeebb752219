"""Store the FHIR layer in the warehouse: rebuild fhir.resources for the patients that changed.

A write marks the patients it touches (``staging.fhir_dirty``); :func:`refresh_fhir` rebuilds
just their resources (or every patient's), in batches of patients read from key-sorted copies
of the canonical tables, so memory is bounded by the batch. The resources are built in SQL
(:mod:`drg_etl.fhir.sql_build`) as the compact JSON the export writes. Every resource
is validated against the official FHIR R4 JSON Schema (:mod:`drg_etl.fhir.validate`); each
distinct resource shape, and every coded concept, is also validated once with fhir.resources;
``strict`` validates every resource with fhir.resources too.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from drg_etl.core.dictionary import flat_relations, missing_relations, write_comments
from drg_etl.core.errors import DrgEtlError
from drg_etl.core.model import TABLES
from drg_etl.core.process import FOLDER_PREFIX
from drg_etl.core.sql import read_sql
from drg_etl.core.tables import FHIR_BUILDS, FHIR_RESOURCES, fhir_resources_ddl, insert_row
from drg_etl.core.transaction import rollback_quietly
from drg_etl.fhir.batch import READ_ROWS, Row, Validator, row_of, rows_frame
from drg_etl.fhir.build import organizations, resource_id
from drg_etl.fhir.pool import built_batches, worker_count
from drg_etl.fhir.sql_build import built_rows
from drg_etl.fhir.terminology import canonical_base, with_canonical_base
from drg_etl.fhir.worker import SOURCE_PREFIX

BATCH_PATIENTS = 5_000  # patients a batch builds: its SQL is planned once (~80 ms), its rows held in memory
# A rebuild of at least this many patients runs on every core (drg_etl.fhir.pool); fewer are built in process,
# where starting the workers would cost more than it saves.
PARALLEL_PATIENTS = int(os.environ.get("DRG_ETL_FHIR_PARALLEL_PATIENTS", 4_000))
TARGETS = "fhir_src_targets"  # the patients a build is for (a temp table of the load's connection)


def _source_select(table: str, targets: str | None) -> str:
    """A key-sorted copy of the canonical table's facts of the target patients (``None``: every patient, as a full
    rebuild's targets are, so no join with them). Sorted by the key alone, so that a batch's range of keys reads
    few row groups: where the order of a patient's facts decides a resource, the SQL ranks them itself."""
    mine = "" if targets is None else f" semi join {targets} k using (patient_key)"
    return f"select t.* from canonical.current_{table} t{mine} order by patient_key"


def _batch_bounds(con: duckdb.DuckDBPyConnection, targets: str, size: int) -> list[tuple[str, str]]:
    """The first and last key of each batch of ``size`` target patients, in key order."""
    return con.execute(f"""
        select min(patient_key), max(patient_key) from (
            select patient_key, (row_number() over (order by patient_key) - 1) // $size as batch from {targets})
        group by batch order by batch""", {"size": size}).fetchall()


def _insert(con: duckdb.DuckDBPyConnection, relation: str, rows: list[Row]) -> None:
    if rows:
        con.register("incoming", rows_frame(rows))
        con.execute(f"insert into {relation} select resource_type, id, patient_id, center, resource::json "
                    "from incoming")
        con.unregister("incoming")


INCREMENTAL_SHARE = 0.05  # beyond this share of patients changed, a full rebuild (bounded memory) is cheaper


def _stale_ids(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    keys = [k for (k,) in con.execute("select patient_key from staging.fhir_dirty").fetchall()]
    return pd.DataFrame({"patient_id": [resource_id("Patient", k) for k in keys]}, dtype=object)


def _every_patient() -> str:
    """Every patient with a fact in force."""
    keys = " union ".join(f"select patient_key from canonical.current_{t}" for t in TABLES)
    return f"select distinct patient_key from ({keys})"


def _choose_mode(con: duckdb.DuckDBPyConnection, full: bool) -> str:
    """``full`` (every patient, into a new table) or ``incremental`` (the patients marked dirty)."""
    if full or not con.execute("select count(*) from fhir.resources").fetchone()[0]:
        return "full"
    dirty = con.execute("select count(*) from staging.fhir_dirty").fetchone()[0]
    patients = con.execute("select count(*) from fhir.resources where resource_type = 'Patient'").fetchone()[0]
    return "full" if dirty > INCREMENTAL_SHARE * max(patients, 1) else "incremental"


def _build_into(con: duckdb.DuckDBPyConnection, table: str, validate: Validator, batch_patients: int,
                commit_each_batch: bool) -> tuple[int, int]:
    """Build the target patients' resources into ``fhir.<table>``; return (patients, resources).

    ``commit_each_batch`` (a full rebuild into a new table): each batch is committed, and a large rebuild runs
    on every core. Otherwise (an incremental build, one transaction) the batches are built here.
    """
    orgs = list(organizations())
    validate(orgs)
    con.execute(f"delete from fhir.{table} where resource_type = 'Organization'")
    _insert(con, f"fhir.{table}", [row_of(r) for r in orgs])
    bounds = _batch_bounds(con, TARGETS, batch_patients)
    patients = con.execute(f"select count(*) from {TARGETS}").fetchone()[0]
    if commit_each_batch and patients >= PARALLEL_PATIENTS and worker_count() > 1:
        return patients, len(orgs) + _build_on_every_core(con, table, bounds, validate.strict)
    for name in TABLES:
        con.execute(f"create or replace temp table fhir_src_{name} as {_source_select(name, TARGETS)}")
    # An incremental build keeps the patients' resources it built in a temp table too: the flat rows and the check
    # for a resource built twice read them there, instead of finding them among every resource's JSON.
    into = f"fhir.{table}" if commit_each_batch else BUILT
    if not commit_each_batch:
        con.execute(f"create or replace temp table {BUILT} as select * from fhir.{table} limit 0")
    built = len(orgs)
    for first, last in bounds:
        rows = built_rows(con, "fhir_src", first, last, validate)
        _insert(con, into, rows)
        if commit_each_batch:
            con.execute("commit")
            con.execute("begin transaction")
        built += len(rows)
    if not commit_each_batch:
        con.execute(f"insert into fhir.{table} select * from {BUILT}")
    for name in TABLES:
        con.execute(f"drop table if exists fhir_src_{name}")
    return patients, built


def _build_on_every_core(con: duckdb.DuckDBPyConnection, table: str, bounds: list[tuple[str, str]],
                         strict: bool) -> int:
    """Build the batches in worker processes, taking their results in batch order; return the resources built.

    The workers read a scratch copy of the target patients' facts (written by a second connection: the load's
    own transaction writes the FHIR layer, and a transaction writes one database) and each answers with a file
    of its batch's resources, inserted here and committed batch by batch.
    """
    prefix = f"{FOLDER_PREFIX}{os.getpid()}-fhir-"  # the pid tells a later load whether this one still lives
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        sources = Path(folder) / "sources.duckdb"
        scratch = con.cursor()
        try:
            scratch.execute("attach $path as fhir_scratch", {"path": str(sources)})  # a path is never in the text
            for name in TABLES:
                scratch.execute(f"create table fhir_scratch.{SOURCE_PREFIX}_{name} as {_source_select(name, None)}")
            scratch.execute("detach fhir_scratch")
        finally:
            scratch.close()
        built = 0
        for result, resources in built_batches(sources, Path(folder), bounds, worker_count(), strict):
            con.execute(f"insert into fhir.{table} {READ_ROWS}", {"path": str(result)})
            con.execute("commit")
            con.execute("begin transaction")
            result.unlink()
            built += resources
    return built


class DuplicateResource(DrgEtlError):
    """Two resources with one type and id: a defect of the mapping, never stored."""


def _finish(con: duckdb.DuckDBPyConnection, mode: str, strict: bool, patients: int, built: int,
            started: float) -> dict[str, int]:
    # A resource can only be built twice among those this build wrote: an incremental build checks just their ids
    # (against every resource), not every id of the layer again.
    written = "" if mode == "full" else (
        f" where resource_type = 'Organization' or (resource_type, id) in (select resource_type, id from {BUILT})")
    twice = con.execute(f"select resource_type || '/' || id from fhir.resources{written} group by resource_type, id "
                        "having count(*) > 1 limit 5").fetchall()
    if twice:
        raise DuplicateResource(f"resources built twice: {[t for (t,) in twice]}")
    con.execute("delete from staging.fhir_dirty")
    for (view,) in con.execute("select view_name from duckdb_views() where schema_name = 'fhir'").fetchall():
        con.execute(f"drop view fhir.{view}")  # warehouses of 0.1 had the flat tables as views
    if mode == "incremental" and not missing_relations(con, flat_relations()):
        _refresh_flat_rows(con)
    else:
        con.execute(with_canonical_base(read_sql("fhir_flat.sql")))
        # fhir.resources (after a full rebuild) and the flat tables are new tables: their data dictionary with them
        write_comments(con, (FHIR_RESOURCES, *flat_relations()))
    insert_row(con, FHIR_BUILDS, {"built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "mode": mode,
                                  "validation": "strict" if strict else "schema", "patients": patients,
                                  "resources": built, "invalid": 0, "seconds": time.perf_counter() - started})
    return dict(con.execute("select resource_type, count(*) from fhir.resources group by 1 order by 1").fetchall())


_FLAT_TABLE = re.compile(r"create or replace table (fhir\.\w+) as\s+(select\b.*?);", re.S)
STALE = "fhir_stale"  # the Patient ids an incremental build rebuilt (a temp table, kept for the marts)
BUILT = "fhir_built"  # the resources an incremental build built, but the Organizations (a temp table)


def rebuilt_patients(con: duckdb.DuckDBPyConnection) -> str | None:
    """The relation of the Patient ids the last build on this connection rebuilt, if it was incremental (the marts
    then update just their rows); None after a full build."""
    found = con.execute("select count(*) from duckdb_tables() where temporary and table_name = ?",
                        [STALE]).fetchone()[0]
    return STALE if found else None


def _refresh_flat_rows(con: duckdb.DuckDBPyConnection) -> None:
    """The flat tables' rows of the patients an incremental build rebuilt: deleted, then flattened again from
    their resources alone (the build's temp table of them), by the same statements that build the tables whole
    (``warehouse/fhir_flat.sql``)."""
    sql = with_canonical_base(read_sql("fhir_flat.sql"))
    tables = _FLAT_TABLE.findall(sql)
    con.execute(sql[:sql.index("create or replace table")])  # the macros
    for table, select in tables:
        con.execute(f"delete from {table} where patient_id in (select patient_id from {STALE})")
        con.execute(f"insert into {table} by name {select.replace('from fhir.resources', f'from {BUILT}')}")


def refresh_fhir(con: duckdb.DuckDBPyConnection, *, full: bool = False, strict: bool = False,
                 batch_patients: int = BATCH_PATIENTS) -> dict[str, int]:
    """Bring the FHIR layer up to date with the deliveries in force; return the count per resource type.

    Incremental (the patients marked dirty, in one transaction) unless ``full``, the layer is
    empty, or many patients changed. A full rebuild fills ``fhir.resources_next`` batch by batch
    (each batch committed, so memory stays bounded) and then swaps it in, in one transaction:
    readers see the old layer or the new one, never half of one; a crash leaves the old layer.
    """
    started = time.perf_counter()
    validate = Validator(strict)
    base = canonical_base()
    built_under = con.execute("select value from quality.settings where name = 'canonical_base'").fetchone()
    # every project URL changes with the canonical base: a layer built under another is rebuilt whole
    mode = _choose_mode(con, full or (built_under is not None and built_under[0] != base))
    con.execute("begin transaction")
    try:
        if mode == "full":
            con.execute(f"create or replace temp table {TARGETS} as {_every_patient()}")
            con.execute("drop table if exists fhir.resources_next")
            con.execute(fhir_resources_ddl("resources_next"))
            con.execute("commit")
            con.execute("begin transaction")
            patients, built = _build_into(con, "resources_next", validate, batch_patients, commit_each_batch=True)
            con.execute("drop table fhir.resources")
            con.execute("alter table fhir.resources_next rename to resources")
        else:
            con.execute(f"create or replace temp table {TARGETS} as select patient_key from staging.fhir_dirty")
            con.register("stale", _stale_ids(con))
            con.execute(f"create or replace temp table {STALE} as select patient_id from stale")
            con.unregister("stale")
            con.execute(f"delete from fhir.resources where patient_id in (select patient_id from {STALE})")
            patients, built = _build_into(con, "resources", validate, batch_patients, commit_each_batch=False)
        counts = _finish(con, mode, strict, patients, built, started)
        con.execute("insert or replace into quality.settings values ('canonical_base', ?)", [base])
        con.execute(f"drop table if exists {TARGETS}")
        con.execute(f"drop table if exists {BUILT}")
        if mode == "full":
            con.execute(f"drop table if exists {STALE}")
        con.execute("commit")
    except BaseException:
        rollback_quietly(con)
        raise
    return counts
