"""The Dagster code location: definitions, jobs = `drg-etl load`, the sensor, blocking checks, `dagster dev`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import duckdb
from helpers import TEST_KEY, Generated

from dagster_project.definitions import build_defs, defs
from dagster_project.resources import (
    ExportResource,
    InboxResource,
    LoadRunResource,
    PseudonymKeyResource,
    WarehouseResource,
)
from dagster_project.sensors import new_deliveries
from drg_etl.core.vocabulary import CENTERS
from drg_etl.pipeline.load import load_inbox

ASSETS = {"delivery_files", "staged_rows", "canonical_tables", "quarantine", "fhir_resources", "warehouse_marts",
          "national_analysis", "fhir_export", "national_report"}
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def resources(inbox: Path, warehouse: Path) -> dict:
    return {"inbox": InboxResource(path=str(inbox)), "warehouse": WarehouseResource(path=str(warehouse)),
            "pseudonym_key": PseudonymKeyResource(key=TEST_KEY.decode()),
            "export": ExportResource(path=str(warehouse.parent / "export")), "load_run": LoadRunResource()}


def test_definitions_load_with_assets_partitions_checks_jobs_sensor_schedule() -> None:
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} == ASSETS
    partitioned = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()
                   if repo.asset_graph.get(k).partitions_def is not None}
    assert partitioned == {"delivery_files", "staged_rows", "canonical_tables", "quarantine"}
    assert repo.asset_graph.get(dg.AssetKey("staged_rows")).partitions_def.get_partition_keys() == list(CENTERS)
    checks = {c.name for c in repo.asset_graph.asset_check_keys}
    assert checks >= {"file_contracts", "reconciliation", "quarantine_findings", "fhir_validity",
                      "cross_center_linkage", "schema_patients", "schema_measurements"}
    assert defs.resolve_job_def("load_one_center") and defs.resolve_job_def("refresh_national")
    assert defs.resolve_sensor_def("new_deliveries") and defs.resolve_sensor_def("refresh_after_load")
    assert defs.resolve_schedule_def("nightly_national_refresh").cron_schedule == "0 3 * * *"


def test_dagster_cli_validates_the_code_location(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m", "dagster_project"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def _counts(path: Path) -> dict[str, object]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out: dict[str, object] = {}
        for table in ("canonical.current_patients", "canonical.current_procedures", "canonical.current_devices",
                      "canonical.current_measurements", "canonical.current_complications", "quality.quarantine",
                      "staging.source_records", "fhir.resources"):
            out[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        out["files"] = sorted(con.execute("""select d.center, f.file, f.rows_read, f.rows_loaded, f.rows_quarantined
            from quality.delivery_files f join quality.deliveries d using (delivery_id)""").fetchall())
        out["rules"] = sorted(con.execute("select rule_id, count(*) from quality.quarantine group by 1").fetchall())
        out["fhir ids"] = sorted(r[0] for r in con.execute("select id from fhir.resources").fetchall())
        return out
    finally:
        con.close()


def test_materialising_all_partitions_gives_the_same_warehouse_as_load(demo: Generated, tmp_path: Path) -> None:
    by_cli = tmp_path / "cli.duckdb"
    load_inbox(demo.inbox, by_cli, TEST_KEY)
    by_jobs = tmp_path / "jobs" / "w.duckdb"
    location = build_defs(resources(demo.inbox, by_jobs))
    instance = dg.DagsterInstance.ephemeral()
    load_job = location.resolve_job_def("load_one_center")
    for selection in (["delivery_files", "staged_rows"], ["canonical_tables", "quarantine"]):
        for center in CENTERS:
            result = load_job.execute_in_process(partition_key=center, instance=instance, run_config=QUIET,
                                                 asset_selection=[dg.AssetKey(a) for a in selection])
            assert result.success, center
    national = location.resolve_job_def("refresh_national").execute_in_process(instance=instance, run_config=QUIET)
    assert national.success
    assert _counts(by_jobs) == _counts(by_cli)
    figures = national.asset_materializations_for_node("national_analysis")[0].metadata["figures"].value
    assert figures["cohort"]["trial_patients"] == 43
    assert (by_jobs.parent / "export" / "manifest.json").exists()
    report = national.asset_materializations_for_node("national_report")[0].metadata["report"].value
    assert Path(report).exists() and "Cohort flow" in Path(report).read_text("utf-8")


def test_sensor_requests_one_run_per_new_delivery_and_none_on_a_second_tick(demo_clean: Generated,
                                                                           tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, resources={"inbox": InboxResource(path=str(inbox))})
    first = new_deliveries(context)
    assert sorted(r.partition_key for r in first.run_requests) == sorted(CENTERS)
    assert len({r.run_key for r in first.run_requests}) == 4
    again = new_deliveries(dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                                   resources={"inbox": InboxResource(path=str(inbox))}))
    assert again.run_requests == []
    shutil.copytree(inbox / "auh" / "2019-12-31", inbox / "auh" / "2020-06-30")
    (inbox / "auh" / "2020-06-30" / "komplikationer.csv").write_bytes(b"CPR;Dato;Type;Permanent;Note\r\n")
    third = new_deliveries(dg.build_sensor_context(instance=instance, cursor=again.cursor,
                                                   resources={"inbox": InboxResource(path=str(inbox))}))
    assert [(r.partition_key, r.tags["drg-etl/delivery"]) for r in third.run_requests] == [("auh",
                                                                                           "auh/2020-06-30")]


def test_a_blocking_failure_stops_the_centers_downstream_assets(demo_clean: Generated, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox / "rh", inbox / "rh")
    folder = inbox / "auh" / "2019-12-31"
    shutil.copytree(demo_clean.inbox / "auh" / "2019-12-31", folder)
    prom = folder / "prom.csv"
    prom.write_bytes(prom.read_bytes().replace(b",", b".").replace(b";", b","))
    location = build_defs(resources(inbox, tmp_path / "w.duckdb"))
    result = location.resolve_job_def("load_one_center").execute_in_process(
        partition_key="auh", instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET)
    assert not result.success
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    contracts = next(e for e in evaluations if e.check_name == "file_contracts")
    assert contracts.passed is False
    assert contracts.metadata["rules"].value == ["file.delimiter"]
    assert "prom.csv" in json.dumps(contracts.metadata["rejections"].value)
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
                    for m in [m.event_specific_data.materialization]}
    assert materialized == {"delivery_files", "staged_rows"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def test_dagster_dev_serves_the_assets_checks_sensor_and_schedule(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster_project" / "dagster.yaml", home)
    (tmp_path / "inbox").mkdir()
    port = _free_port()
    # every path the code location would write to under tmp_path, whatever the caller's environment says
    env = dict(os.environ, DAGSTER_HOME=str(home), DRG_ETL_INBOX=str(tmp_path / "inbox"),
               DRG_ETL_WAREHOUSE=str(tmp_path / "w.duckdb"), DRG_ETL_EXPORT=str(tmp_path / "fhir-export"))
    server = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-m", "dagster_project", "-h", "127.0.0.1",
                               "-p", str(port)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        nodes: list = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not nodes:
            try:
                nodes = _graphql(port, "{ assetNodes { assetKey { path } isPartitioned partitionKeys "
                                       "assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"
                                 )["assetNodes"]
            except OSError:
                pass
            time.sleep(1)
        assert {n["assetKey"]["path"][0] for n in nodes} == ASSETS
        staged = next(n for n in nodes if n["assetKey"]["path"] == ["staged_rows"])
        assert staged["isPartitioned"] and staged["partitionKeys"] == list(CENTERS)
        assert {"name": "file_contracts", "blocking": True} in staged["assetChecksOrError"]["checks"]
        repo = _graphql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name } "
                              "schedules { name } jobs { name } } } } }")["repositoriesOrError"]["nodes"][0]
        assert {s["name"] for s in repo["sensors"]} == {"new_deliveries", "refresh_after_load"}
        assert [s["name"] for s in repo["schedules"]] == ["nightly_national_refresh"]
        assert {"load_one_center", "refresh_national"} <= {j["name"] for j in repo["jobs"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)



def test_centers_loaded_one_run_each_keep_the_cross_center_patients(demo_clean: Generated, tmp_path: Path) -> None:
    """The sensor's flow: one full run per center. auh (an explant of an ouh implant) loads before ouh."""
    location = build_defs(resources(demo_clean.inbox, tmp_path / "w.duckdb"))
    instance = dg.DagsterInstance.ephemeral()
    for center in ("auh", "ouh", "rh", "aauh"):
        result = location.resolve_job_def("load_one_center").execute_in_process(
            partition_key=center, instance=instance, run_config=QUIET)
        assert result.success, center
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from quality.quarantine").fetchone()[0] == 0
    con.close()

