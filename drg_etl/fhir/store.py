"""Store the FHIR layer in the warehouse: rebuild fhir.resources for the patients that changed.

A write marks the patients it touches (``staging.fhir_dirty``); :func:`refresh_fhir` rebuilds
just their resources (or every patient's), in batches of patients read from key-sorted copies
of the canonical tables, so memory is bounded by the batch. Every resource
is validated against the official FHIR R4 JSON Schema (:mod:`drg_etl.fhir.validate`); each
distinct resource shape, and every coded concept, is also validated once with fhir.resources;
``strict`` validates every resource with fhir.resources too. Resources are stored as the
compact JSON the export writes, serialised once with orjson.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import orjson
import pandas as pd
from fhir.resources.R4B import get_fhir_model_class

from drg_etl.core.dictionary import flat_relations, write_comments
from drg_etl.core.errors import DrgEtlError
from drg_etl.core.model import TABLES
from drg_etl.core.sql import read_sql
from drg_etl.core.tables import FHIR_BUILDS, FHIR_RESOURCES, fhir_resources_ddl, insert_row
from drg_etl.core.transaction import rollback_quietly
from drg_etl.fhir.build import build_patient, organizations, resource_id
from drg_etl.fhir.terminology import all_codeables, canonical_base, with_canonical_base
from drg_etl.fhir.validate import check_resources

BATCH_PATIENTS = 2_000
Row = tuple[str, str, str | None, str | None, str]


def _source_sql(table: str) -> str:
    order = ", ".join(f'"{c.name}"' for c in TABLES[table].all_columns)
    return (f"create or replace temp table fhir_src_{table} as select t.* from canonical.current_{table} t "
            f"semi join fhir_targets k using (patient_key) order by patient_key, {order}")


def _batches(con: duckdb.DuckDBPyConnection, size: int) -> Iterator[tuple[list[str], dict[str, dict[str, list]]]]:
    """Target patients in key order, ``size`` at a time, with their facts per table."""
    keys = [k for (k,) in con.execute("select patient_key from fhir_targets order by patient_key").fetchall()]
    for start in range(0, len(keys), size):
        chunk = keys[start:start + size]
        facts: dict[str, dict[str, list]] = {k: {t: [] for t in TABLES} for k in chunk}
        for table in TABLES:
            cursor = con.execute(f"select * from fhir_src_{table} where patient_key between ? and ?",
                                 [chunk[0], chunk[-1]])
            names = [d[0] for d in cursor.description]
            for row in cursor.fetchall():
                fact = dict(zip(names, row, strict=True))
                facts[fact["patient_key"]][table].append(fact)
        yield chunk, facts


def _shape(resource: dict[str, Any]) -> tuple:
    return resource["resourceType"], tuple(resource), tuple(e["url"] for e in resource.get("extension", ()))


@functools.cache
def _codeables_validated() -> int:
    """Validate every coded concept of the terminology map once with fhir.resources."""
    model = get_fhir_model_class("CodeableConcept")
    for concept in all_codeables():
        model.model_validate(concept)
    return len(all_codeables())


class _Validator:
    """Every resource against the R4 JSON Schema; fhir.resources per shape (or per resource if strict)."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.shapes: set[tuple] = set()

    def __call__(self, resources: list[dict[str, Any]]) -> None:
        check_resources(resources)
        _codeables_validated()
        for resource in resources:
            if self.strict or (shape := _shape(resource)) not in self.shapes:
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                if not self.strict:
                    self.shapes.add(shape)


def _row(resource: dict[str, Any]) -> Row:
    reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    patient = resource["id"] if resource["resourceType"] == "Patient" else (
        reference.split("/")[1] if reference else None)
    tags = resource.get("meta", {}).get("tag", [])
    return (resource["resourceType"], resource["id"], patient, tags[0]["code"] if tags else None,
            orjson.dumps(resource).decode())


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[Row]) -> None:
    if rows:
        frame = pd.DataFrame.from_records(rows, columns=["resource_type", "id", "patient_id", "center", "resource"])
        con.register("incoming", frame)
        con.execute(f"insert into fhir.{table} select resource_type, id, patient_id, center, resource::json "
                    "from incoming")
        con.unregister("incoming")


INCREMENTAL_SHARE = 0.05  # beyond this share of patients changed, a full rebuild (bounded memory) is cheaper


def _stale_ids(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    keys = [k for (k,) in con.execute("select patient_key from staging.fhir_dirty").fetchall()]
    return pd.DataFrame({"patient_id": [resource_id("Patient", k) for k in keys]}, dtype=object)


def _choose_mode(con: duckdb.DuckDBPyConnection, full: bool) -> str:
    """``full`` (every patient, into a new table) or ``incremental`` (the patients marked dirty)."""
    if full or not con.execute("select count(*) from fhir.resources").fetchone()[0]:
        return "full"
    dirty = con.execute("select count(*) from staging.fhir_dirty").fetchone()[0]
    patients = con.execute("select count(*) from fhir.resources where resource_type = 'Patient'").fetchone()[0]
    return "full" if dirty > INCREMENTAL_SHARE * max(patients, 1) else "incremental"


def _build_into(con: duckdb.DuckDBPyConnection, table: str, validate: _Validator, batch_patients: int,
                commit_each_batch: bool) -> tuple[int, int]:
    """Build the target patients' resources into ``fhir.<table>``; return (patients, resources)."""
    for name in TABLES:
        con.execute(_source_sql(name))
    orgs = list(organizations())
    validate(orgs)
    con.execute(f"delete from fhir.{table} where resource_type = 'Organization'")
    _insert(con, table, [_row(r) for r in orgs])
    built, patients = len(orgs), 0
    for chunk, facts in _batches(con, batch_patients):
        rows: list[Row] = []
        for key in chunk:
            resources = list(build_patient(key, facts.pop(key)))
            validate(resources)
            rows += [_row(r) for r in resources]
        _insert(con, table, rows)
        if commit_each_batch:
            con.execute("commit")
            con.execute("begin transaction")
        built += len(rows)
        patients += len(chunk)
    for name in TABLES:
        con.execute(f"drop table if exists fhir_src_{name}")
    return patients, built


class DuplicateResource(DrgEtlError):
    """Two resources with one type and id: a defect of the mapping, never stored."""


def _finish(con: duckdb.DuckDBPyConnection, mode: str, strict: bool, patients: int, built: int,
            started: float) -> dict[str, int]:
    twice = con.execute("select resource_type || '/' || id from fhir.resources group by resource_type, id "
                        "having count(*) > 1 limit 5").fetchall()
    if twice:
        raise DuplicateResource(f"resources built twice: {[t for (t,) in twice]}")
    con.execute("delete from staging.fhir_dirty")
    for (view,) in con.execute("select view_name from duckdb_views() where schema_name = 'fhir'").fetchall():
        con.execute(f"drop view fhir.{view}")  # warehouses of 0.1 had the flat tables as views
    con.execute(with_canonical_base(read_sql("fhir_flat.sql")))
    # fhir.resources (after a full rebuild) and the flat tables are new tables: their data dictionary with them
    write_comments(con, (FHIR_RESOURCES, *flat_relations()))
    insert_row(con, FHIR_BUILDS, {"built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "mode": mode,
                                  "validation": "strict" if strict else "schema", "patients": patients,
                                  "resources": built, "invalid": 0, "seconds": time.perf_counter() - started})
    return dict(con.execute("select resource_type, count(*) from fhir.resources group by 1 order by 1").fetchall())


def refresh_fhir(con: duckdb.DuckDBPyConnection, *, full: bool = False, strict: bool = False,
                 batch_patients: int = BATCH_PATIENTS) -> dict[str, int]:
    """Bring the FHIR layer up to date with the deliveries in force; return the count per resource type.

    Incremental (the patients marked dirty, in one transaction) unless ``full``, the layer is
    empty, or many patients changed. A full rebuild fills ``fhir.resources_next`` batch by batch
    (each batch committed, so memory stays bounded) and then swaps it in, in one transaction:
    readers see the old layer or the new one, never half of one; a crash leaves the old layer.
    """
    started = time.perf_counter()
    validate = _Validator(strict)
    base = canonical_base()
    built_under = con.execute("select value from quality.settings where name = 'canonical_base'").fetchone()
    # every project URL changes with the canonical base: a layer built under another is rebuilt whole
    mode = _choose_mode(con, full or (built_under is not None and built_under[0] != base))
    con.execute("begin transaction")
    try:
        if mode == "full":
            keys = " union ".join(f"select patient_key from canonical.current_{t}" for t in TABLES)
            con.execute(f"create or replace temp table fhir_targets as select distinct patient_key from ({keys})")
            con.execute("drop table if exists fhir.resources_next")
            con.execute(fhir_resources_ddl("resources_next"))
            con.execute("commit")
            con.execute("begin transaction")
            patients, built = _build_into(con, "resources_next", validate, batch_patients, commit_each_batch=True)
            con.execute("drop table fhir.resources")
            con.execute("alter table fhir.resources_next rename to resources")
        else:
            con.execute("create or replace temp table fhir_targets as select patient_key from staging.fhir_dirty")
            con.register("stale", _stale_ids(con))
            con.execute("delete from fhir.resources where patient_id in (select patient_id from stale)")
            con.unregister("stale")
            patients, built = _build_into(con, "resources", validate, batch_patients, commit_each_batch=False)
        counts = _finish(con, mode, strict, patients, built, started)
        con.execute("insert or replace into quality.settings values ('canonical_base', ?)", [base])
        con.execute("drop table if exists fhir_targets")
        con.execute("commit")
    except BaseException:
        rollback_quietly(con)
        raise
    return counts
