"""The FHIR layer: fast and strict validation give the same bytes; incremental equals full; invalid is refused."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import TEST_KEY, Generated, Loaded
from pydantic import ValidationError

from drg_etl.fhir import sql_build, store
from drg_etl.fhir.export import export_fhir
from drg_etl.fhir.store import refresh_fhir
from drg_etl.fhir.validate import InvalidResource
from drg_etl.pipeline.load import load_inbox
from drg_etl.pipeline.warehouse import connect


def _export(warehouse: Path, out: Path) -> dict[str, bytes]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        export_fhir(con, out)
    finally:
        con.close()
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.ndjson"))}


def _rebuilt(source: Path, tmp_path: Path, name: str, **options: bool) -> Path:
    copy = tmp_path / f"{name}.duckdb"
    shutil.copy(source, copy)
    con = connect(copy)
    try:
        refresh_fhir(con, **options)
    finally:
        con.close()
    return copy


def _aauh_delivered_again(demo_clean: Generated, tmp_path: Path) -> Path:
    """The clean demo loaded, then aauh delivered again with a later cutoff (its patients change, their lineage;
    nobody else's), loaded incrementally; the warehouse."""
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    warehouse = tmp_path / "w.duckdb"
    load_inbox(inbox, warehouse, TEST_KEY)
    shutil.copytree(inbox / "aauh" / "2019-12-31", inbox / "aauh" / "2020-03-31")
    original = store.INCREMENTAL_SHARE
    store.INCREMENTAL_SHARE = 1.0
    try:
        load_inbox(inbox, warehouse, TEST_KEY)
    finally:
        store.INCREMENTAL_SHARE = original
    return warehouse


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_2000"])
def test_strict_validation_gives_byte_identical_ndjson(fixture: str, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    fast = _export(loaded.warehouse, tmp_path / "fast")
    strict = _export(_rebuilt(loaded.warehouse, tmp_path, "strict", full=True, strict=True), tmp_path / "strict")
    assert fast == strict
    assert sum(len(b.splitlines()) for b in fast.values()) > (800 if fixture == "loaded_demo" else 30_000)
    con = duckdb.connect(str(tmp_path / "strict.duckdb"), read_only=True)
    assert con.execute("select mode, validation, invalid from quality.fhir_builds order by built_at desc limit 1"
                       ).fetchone() == ("full", "strict", 0)
    con.close()


def test_a_new_delivery_rebuilds_only_its_patients_and_equals_a_full_rebuild(demo_clean: Generated,
                                                                              tmp_path: Path) -> None:
    warehouse = _aauh_delivered_again(demo_clean, tmp_path)
    con = duckdb.connect(str(warehouse), read_only=True)
    mode, patients = con.execute("select mode, patients from quality.fhir_builds order by built_at desc limit 1"
                                 ).fetchone()
    aauh = con.execute("select count(distinct patient_key) from canonical.patients where center = 'aauh'").fetchone()[0]
    total = con.execute("select count(*) from fhir.resources where resource_type = 'Patient'").fetchone()[0]
    sources = con.execute("select count(*) from fhir.resources where resource->>'$.meta.source' like "
                          "'%aauh:2020-03-31'").fetchone()[0]
    con.close()
    assert mode == "incremental" and patients == aauh < total
    assert sources > 0
    assert _export(warehouse, tmp_path / "incremental") == \
        _export(_rebuilt(warehouse, tmp_path, "full", full=True), tmp_path / "full")


def _observations_changed(monkeypatch: pytest.MonkeyPatch, change: Callable[[str], str]) -> None:
    """Every Observation the SQL builder builds passes through ``change`` (its JSON text) before validation."""
    real = sql_build.build_sql_rows

    def changed(*args: Any, **kwargs: Any) -> list:
        return [(*row[:4], change(row[4])) if row[0] == "Observation" else row for row in real(*args, **kwargs)]

    monkeypatch.setattr(sql_build, "build_sql_rows", changed)


def test_the_resources_json_is_stored_zstd_compressed_after_a_load_and_a_full_rebuild(loaded_demo: Loaded,
                                                                                      tmp_path: Path) -> None:
    """DuckDB's default (dictionary + FSST) keeps the compact JSON at ~40% of its size, zstd at ~8%: the column is
    declared zstd, so a load's table and a full rebuild's successor both store it so (and the checkpoint is short)."""
    copy = tmp_path / "w.duckdb"
    shutil.copy(loaded_demo.warehouse, copy)

    def compressions(con: duckdb.DuckDBPyConnection) -> set[str]:
        con.execute("checkpoint")
        return {c for (c,) in con.execute("select distinct compression from pragma_storage_info('fhir.resources') "
                                          "where column_name = 'resource' and segment_type <> 'VALIDITY'").fetchall()}

    con = connect(copy)
    assert compressions(con) == {"ZSTD"}
    refresh_fhir(con, full=True)
    assert compressions(con) == {"ZSTD"}
    con.close()


def _first_observation_renamed(monkeypatch: pytest.MonkeyPatch, new_id: str) -> None:
    """The first Observation row the SQL builder builds gets ``new_id`` as its id (a defect of the mapping)."""
    real = sql_build.build_sql_rows

    def renamed(*args: Any, **kwargs: Any) -> list:
        rows = real(*args, **kwargs)
        first = next(i for i, row in enumerate(rows) if row[0] == "Observation")
        rows[first] = (rows[first][0], new_id, *rows[first][2:])
        return rows

    monkeypatch.setattr(sql_build, "build_sql_rows", renamed)


def test_a_resource_built_twice_stops_a_full_build_and_the_layer_stays(loaded_demo: Loaded, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "w.duckdb"
    shutil.copy(loaded_demo.warehouse, copy)
    before = _export(copy, tmp_path / "before")
    with duckdb.connect(str(copy), read_only=True) as con:
        (taken,) = con.execute("select id from fhir.resources where resource_type = 'Observation' "
                               "order by id desc limit 1").fetchone()
    _first_observation_renamed(monkeypatch, taken)
    con = connect(copy)
    with pytest.raises(store.DuplicateResource, match=f"Observation/{taken}"):
        refresh_fhir(con, full=True)
    con.close()
    assert _export(copy, tmp_path / "after") == before


def test_an_incremental_build_that_rebuilds_another_patients_resource_stops(demo_clean: Generated, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The incremental build checks just the ids it wrote, but against every resource: a rebuilt resource that takes
    the id of a patient's resource the build did not touch is caught, and the load leaves the layer as it was."""
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    warehouse = tmp_path / "w.duckdb"
    load_inbox(inbox, warehouse, TEST_KEY)
    before = _export(warehouse, tmp_path / "before")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (untouched,) = con.execute("select id from fhir.resources where resource_type = 'Observation' and "
                                   "center = 'auh' order by id limit 1").fetchone()
    shutil.copytree(inbox / "aauh" / "2019-12-31", inbox / "aauh" / "2020-03-31")
    monkeypatch.setattr(store, "INCREMENTAL_SHARE", 1.0)
    _first_observation_renamed(monkeypatch, untouched)
    with pytest.raises(store.DuplicateResource, match=f"Observation/{untouched}"):
        load_inbox(inbox, warehouse, TEST_KEY)
    assert _export(warehouse, tmp_path / "after") == before


def test_a_schema_invalid_resource_stops_the_build_and_the_layer_stays(loaded_demo: Loaded, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "w.duckdb"
    shutil.copy(loaded_demo.warehouse, copy)
    before = _export(copy, tmp_path / "before")
    _observations_changed(monkeypatch, lambda text: text.replace('"status":"final"', '"status":"bogus"'))
    con = connect(copy)
    with pytest.raises(InvalidResource, match=r"Observation/.*status"):
        refresh_fhir(con, full=True)
    con.close()
    assert _export(copy, tmp_path / "after") == before


def test_a_shape_the_schema_misses_is_caught_by_fhir_resources(loaded_demo: Loaded, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The R4 JSON Schema does not require primitive elements (Observation.status); fhir.resources does."""
    _observations_changed(monkeypatch, lambda text: text.replace('"status":"final",', ""))
    con = connect(_rebuilt(loaded_demo.warehouse, tmp_path, "copy"))
    with pytest.raises(ValidationError, match="status"):
        refresh_fhir(con, full=True)
    con.close()


def test_a_build_on_every_core_gives_the_same_layer_as_one_in_process(loaded_2000: Loaded, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers (drg_etl.fhir.worker) build the same bytes, in batches taken back in order."""
    monkeypatch.setattr(store, "PARALLEL_PATIENTS", 0)
    monkeypatch.setenv("DRG_ETL_FHIR_WORKERS", "2")
    parallel = _rebuilt(loaded_2000.warehouse, tmp_path, "parallel", full=True, batch_patients=300)
    con = duckdb.connect(str(parallel), read_only=True)
    table = "select resource_type, id, patient_id, center, resource::varchar from fhir.resources order by all"
    with duckdb.connect(str(loaded_2000.warehouse), read_only=True) as serial:
        assert con.execute(table).fetchall() == serial.execute(table).fetchall()
    assert con.execute("select mode, patients from quality.fhir_builds order by built_at desc limit 1").fetchone() == (
        "full", con.execute("select count(*) from fhir.resources where resource_type = 'Patient'").fetchone()[0])
    con.close()
    assert not list(Path(tempfile.gettempdir()).glob(f"drg-etl-read-{os.getpid()}-fhir-*"))  # the folder is gone


def test_a_failing_fhir_worker_stops_the_build_with_its_reason(tmp_path: Path) -> None:
    from drg_etl.core.model import TABLES
    from drg_etl.fhir.pool import FhirWorkerFailed, built_batches

    sources = tmp_path / "sources.duckdb"
    with duckdb.connect(str(sources)) as con:
        con.execute("create table src_targets as select 'k1' as patient_key")
        for name, table in TABLES.items():
            columns = ", ".join(f'null::{c.sql_type} as "{c.name}"' for c in table.all_columns
                                if c.name != "patient_key")
            con.execute(f"create table src_{name} as select 'k1' as patient_key, {columns} limit 0")
        con.execute("insert into src_measurements (patient_key, center, measure) values ('k1', 'auh', 'no-such')")
    with pytest.raises(FhirWorkerFailed, match=r"a FHIR worker failed: .*no code for measure: no-such"):
        list(built_batches(sources, tmp_path, [("k1", "k1")], 1, False))


def test_an_incremental_build_updates_the_flat_tables_row_by_row_as_a_full_build_would(demo_clean: Generated,
                                                                                      tmp_path: Path) -> None:
    from drg_etl.core.dictionary import flat_relations

    warehouse = _aauh_delivered_again(demo_clean, tmp_path)
    full = _rebuilt(warehouse, tmp_path, "full", full=True)
    with duckdb.connect(str(warehouse), read_only=True) as incremental, duckdb.connect(str(full)) as whole:
        assert incremental.execute("select mode from quality.fhir_builds order by built_at desc limit 1"
                                   ).fetchone() == ("incremental",)
        for relation in flat_relations():
            query = f"select * from fhir.{relation.name} order by all"
            rows = incremental.execute(query).fetchall()
            assert rows == whole.execute(query).fetchall(), relation.name
            assert rows or relation.name == "pain_condition_flat"
        sources = incremental.execute("select count(*) from fhir.observation_flat o join fhir.resources r using (id) "
                                      "where r.resource->>'$.meta.source' like '%aauh:2020-03-31'").fetchone()[0]
        assert sources > 0  # the rebuilt patients' rows are the new delivery's
