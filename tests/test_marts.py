"""The marts (issue 16): built by ``drg-etl load`` itself, declared once, read by the analysis, and answering an
analyst's plain query with the official figures."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pytest
from helpers import TEST_KEY, Generated, Loaded, copy_of, reading, run_cli

from drg_etl.analysis.national import national_analysis
from drg_etl.core.paths import SQL_DIR
from drg_etl.core.tables import MART_FOLLOW_UP_TABLE, MARTS

ROOT = Path(__file__).resolve().parents[1]


def test_load_alone_builds_every_declared_mart_with_its_declared_columns(loaded_demo: Loaded) -> None:
    with reading(loaded_demo.warehouse) as con:
        for mart in MARTS:
            columns = con.execute("select column_name, data_type, is_nullable from information_schema.columns "
                                  "where table_schema = ? and table_name = ? order by ordinal_position",
                                  [mart.schema, mart.name]).fetchall()
            assert [c[0] for c in columns] == list(mart.column_names), mart.qualified
            assert [c[2] == "YES" for c in columns] == [c.nullable for c in mart.columns], mart.qualified
            assert con.execute(f"select count(*) from {mart.qualified}").fetchone()[0] > 0, mart.qualified


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_other_seed"])
def test_a_plain_query_of_the_follow_up_mart_gives_the_official_pairs(fixture: str,
                                                                      request: pytest.FixtureRequest) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    with reading(loaded.warehouse) as con:
        figures = national_analysis(con)
        for measure, outcome in figures["outcomes_12m"].items():
            n, baseline, month12 = con.execute("""
                select count(*), round(avg(b.value), 1), round(avg(m.value), 1)
                from marts.follow_up b join marts.follow_up m using (patient_id, measure)
                join marts.patient_flags f using (patient_id)
                where f.fully_functional and b.measure = ? and b.official and b.timepoint = 'baseline'
                  and m.official and m.timepoint = 'month_12'""", [measure]).fetchone()
            assert (n, baseline, month12) == (outcome["n"], outcome["baseline_mean"], outcome["month12_mean"]), \
                measure
        unlabelled = con.execute("select count(*) from marts.follow_up where timepoint_label is null "
                                 "and resolved_by = 'date_window'").fetchone()[0]
        assert unlabelled > 0, "aauh's dated assessments are placed by the windows"


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_other_seed"])
def test_every_marts_key_holds_with_or_without_an_index(fixture: str, request: pytest.FixtureRequest) -> None:
    """Each mart's declared key is unique, also where DuckDB keeps no index of it (marts.follow_up: one row per
    Observation, by construction), and the DDL has the index exactly where it is declared kept."""
    loaded: Loaded = request.getfixturevalue(fixture)
    with reading(loaded.warehouse) as con:
        for mart in MARTS:
            if mart.primary_key:
                key = ", ".join(mart.primary_key)
                repeated = con.execute(f"select {key} from {mart.qualified} group by {key} "
                                       "having count(*) > 1").fetchall()
                assert repeated == [], mart.qualified
            assert ("primary key" in mart.ddl()) == (bool(mart.primary_key) and mart.key_indexed), mart.qualified
    assert not MART_FOLLOW_UP_TABLE.key_indexed


def test_the_flags_mart_is_the_analysis_and_another_day_runs_its_query(loaded_demo: Loaded) -> None:
    with reading(loaded_demo.warehouse) as con:
        figures = national_analysis(con)
        trial, implanted, functional, defect = con.execute("""
            select count(*), count(*) filter (where implanted), count(*) filter (where fully_functional),
                   count(*) filter (where lead_defect) from marts.patient_flags""").fetchone()
        cohort = figures["cohort"]
        assert (trial, implanted, functional) == (cohort["trial_patients"], cohort["implanted_patients"],
                                                  cohort["fully_functional"])
        assert defect == figures["complications"]["lead_defect_patients"]
        earlier = national_analysis(con, dt.date(2016, 12, 31))
        assert earlier["observation_end"] == "2016-12-31"
        assert earlier["cohort"]["trial_patients"] <= trial


def test_lead_history_links_the_complications_the_source_names(loaded_demo: Loaded) -> None:
    with reading(loaded_demo.warehouse) as con:
        linked = con.execute("""select count(*) from fhir.complication_flat
            where device_id is not null and complication in ('lead_fracture', 'lead_malfunction')""").fetchone()[0]
        in_mart = con.execute("select sum(defect_complications) from marts.lead_history").fetchone()[0]
        assert linked == in_mart > 0
        per_center = dict(con.execute("select center, sum(defect_complications) from marts.lead_history "
                                      "group by 1").fetchall())
        assert sum(1 for v in per_center.values() if v) >= 3, "lead defects per lead beyond aauh"
        faulty = con.execute("select count(*) from marts.lead_history where state_at_end = 'faulty'").fetchone()[0]
        assert faulty == national_analysis(con)["survival"]["leads"]["faulty_at_end"]


def test_nothing_rebuilds_flags_and_the_study_constants_are_not_typed_into_sql() -> None:
    python = "\n".join(p.read_text() for p in (ROOT / "drg_etl").rglob("*.py"))
    assert "temp table flags" not in python
    sql = {p.name: p.read_text() for folder in ("marts", "analysis") for p in (SQL_DIR / folder).glob("*.sql")}
    for name, text in sql.items():
        code = "\n".join(line.split("--")[0] for line in text.splitlines())
        assert not re.search(r"date '\d{4}-\d{2}-\d{2}'", code), name
        assert "'lead_fracture', 'lead_malfunction'" not in code, name
        assert "interval 12 month" not in code and "interval 90 day" not in code, name


def test_a_warehouse_built_by_an_earlier_version_is_named_and_one_load_brings_it_up_to_date(
        loaded_clean: Loaded, tmp_path: Path) -> None:
    path = copy_of(loaded_clean, tmp_path)
    with duckdb.connect(str(path)) as con:  # as an earlier drg-etl left it: no follow-up mart, no device model
        con.execute("drop table marts.follow_up")
        con.execute("alter table fhir.device_flat drop column model")
    refused = run_cli("analyze", "--warehouse", str(path), "--json")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "built by an earlier drg-etl" in refused.stderr and "marts.follow_up" in refused.stderr
    assert f"drg-etl load INBOX --warehouse {path}" in refused.stderr
    reloaded = run_cli("load", str(loaded_clean.gen.inbox), "--warehouse", str(path))
    assert reloaded.returncode == 0, reloaded.stderr
    done = run_cli("analyze", "--warehouse", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert "follow_up" in json.loads(done.stdout)


def _rows(path: Path, sql: str) -> list[tuple]:
    with reading(path) as con:
        return con.execute(sql).fetchall()


def test_a_one_center_delivery_updates_the_marts_row_by_row_as_a_whole_rebuild_would(
        demo: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rh arrives after the other centers (the observation end stays): the marts change only its patients' rows,
    and equal marts built whole; the marts that are not per patient are rebuilt."""
    import shutil

    from drg_etl.fhir import store
    from drg_etl.pipeline import marts
    from drg_etl.pipeline.load import load_inbox
    from drg_etl.pipeline.marts import refresh_marts

    inbox, held = tmp_path / "inbox", tmp_path / "held"
    shutil.copytree(demo.inbox, inbox)
    held.mkdir()
    shutil.move(inbox / "rh", held / "rh")
    warehouse = tmp_path / "w.duckdb"
    load_inbox(inbox, warehouse, TEST_KEY)
    shutil.move(held / "rh", inbox / "rh")
    decided = []
    real = marts._built_for_the_same
    monkeypatch.setattr(marts, "_built_for_the_same", lambda *a: decided.append(real(*a)) or decided[-1])
    monkeypatch.setattr(store, "INCREMENTAL_SHARE", 1.0)
    load_inbox(inbox, warehouse, TEST_KEY)
    assert decided == [True]  # the marts were updated row by row
    assert _rows(warehouse, "select mode from quality.fhir_builds order by built_at desc limit 1") == [
        ("incremental",)]
    whole = tmp_path / "whole.duckdb"
    shutil.copy(warehouse, whole)
    with duckdb.connect(str(whole)) as con:
        refresh_marts(con)  # whole
    for table in MARTS:
        query = f"select * from {table.qualified} order by all"
        rows = _rows(warehouse, query)
        assert rows == _rows(whole, query), table.name
    assert _rows(warehouse, "select count(*) from marts.patient_flags f join fhir.resources r "
                              "on r.id = f.patient_id and r.center = 'rh'")[0][0] > 0


def test_a_whole_rebuild_in_parts_of_patients_gives_the_marts_one_statement_gives(
        loaded_demo: Loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large registry's per-patient marts are built whole in parts of patients (by a hash of the patient's id),
    each part from its patients' rows alone, so that memory is bounded by the part: the same rows as one statement
    over every patient (the demo in parts of a few patients)."""
    from drg_etl.pipeline import marts

    whole = copy_of(loaded_demo, tmp_path)
    monkeypatch.setattr(marts, "MART_PART_PATIENTS", 7)
    with duckdb.connect(str(whole)) as con:
        parts = marts._parts(con)
        marts.refresh_marts(con)
    assert len(parts) > 3
    for table in MARTS:
        query = f"select * from {table.qualified} order by all"
        rows = _rows(whole, query)
        assert rows and rows == _rows(loaded_demo.warehouse, query), table.name
