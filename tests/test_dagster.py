"""The Dagster code location: definitions, jobs = `drg-etl load`, the sensor, blocking checks, `dagster dev`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from helpers import TEST_KEY, Generated, Loaded, new_delivery

from dagster_project.assets import NATIONAL_ASSETS
from dagster_project.checks import cross_center_linkage, fhir_validity
from dagster_project.definitions import build_defs, defs
from dagster_project.resources import (
    ExportResource,
    InboxResource,
    LoadRunResource,
    PseudonymKeyResource,
    WarehouseResource,
)
from dagster_project.sensors import new_deliveries
from drg_etl.core.model import CANONICAL_TABLES
from drg_etl.core.tables import MARTS
from drg_etl.core.vocabulary import CENTERS
from drg_etl.pipeline.load import load_inbox

ASSETS = {"redcap_extract", "fhir_bulk_extract", "delivery_files", "staged_rows", "canonical_tables", "quarantine",
          "fhir_resources", "warehouse_marts",
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
    assert partitioned == {"delivery_files", "staged_rows", "canonical_tables", "quarantine", "redcap_extract",
                           "fhir_bulk_extract"}
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
        for mart in MARTS:  # the marts, row for row: both doors build them
            out[mart.qualified] = sorted(con.execute(f"select * from {mart.qualified}").fetchall(), key=repr)
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
        assert {s["name"] for s in repo["sensors"]} == {"new_deliveries", "refresh_after_load", "pull_freshness"}
        assert sorted(s["name"] for s in repo["schedules"]) == ["nightly_national_refresh", "nightly_pull_aauh",
                                                               "nightly_pull_rh"]
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


# -- every asset check's failure path: a real warehouse broken the way the check guards against ------------------

# One row of auh's in each canonical table, broken as its pandera schema forbids:
# (which rows, the change, the check that fails, the column it checks: None for a check of the row).
SCHEMA_BREAKS = {
    "patients": ("true", "birth_year = 1700", "greater_than_or_equal_to(1850)", "birth_year"),
    "procedures": ("procedure = 'trial'", "end_date = null", "trial.has_end_and_verdict", None),
    "devices": ("device_type = 'lead'", "side = null", "lead.has_level_and_side", None),
    "measurements": ("measure = 'nrs_average'", "value = 11", "nrs.range", None),
    "complications": ("true", "complication = 'headache'", "isin", "complication"),
}


def _copy(loaded: Loaded, folder: Path) -> Path:
    """A copy of a loaded warehouse, to break."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(loaded.warehouse, folder / "w.duckdb"))


def _execute(path: Path, *statements: str) -> None:
    """Run SQL statements on a warehouse, as a bug or a hand would."""
    with duckdb.connect(str(path)) as con:
        for statement in statements:
            con.execute(statement)


def _run_center(inbox: Path, warehouse: Path, center: str, *assets: str) -> dg.ExecuteInProcessResult:
    """The load_one_center job for a center's partition: every asset, or only ``assets``, with their checks."""
    location = build_defs(resources(inbox, warehouse))
    return location.resolve_job_def("load_one_center").execute_in_process(
        partition_key=center, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET,
        asset_selection=[dg.AssetKey(a) for a in assets] or None)


def _run_national_checks(warehouse: Path) -> dg.ExecuteInProcessResult:
    """The national checks alone, as Dagster runs them between refreshes (the FHIR layer is not rebuilt first)."""
    return dg.materialize([*NATIONAL_ASSETS, fhir_validity, cross_center_linkage], resources=resources(
        warehouse.parent / "inbox", warehouse), selection=dg.AssetSelection.checks(fhir_validity, cross_center_linkage),
        raise_on_error=False, run_config=QUIET)


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """The run's check evaluations by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    """The assets the run materialized."""
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_every_check_passes_on_a_clean_warehouse(loaded_clean: Loaded, tmp_path: Path) -> None:
    """The control for the failures below (and file_contracts' above): each breaks one thing of this warehouse."""
    warehouse = _copy(loaded_clean, tmp_path)
    center = _run_center(loaded_clean.gen.inbox, warehouse, "auh")
    national = _run_national_checks(warehouse)
    assert center.success and national.success
    evaluations = _evaluations(center) | _evaluations(national)
    load_checks = {k.name for k in defs.get_repository_def().asset_graph.asset_check_keys
                   if k.asset_key.to_user_string() not in ("redcap_extract", "fhir_bulk_extract")}
    assert set(evaluations) == load_checks  # the pulls' freshness checks: tests/test_pull_dagster.py
    assert {name for name, e in evaluations.items() if not e.passed} == set()


@pytest.fixture(scope="module")
def schema_broken(loaded_clean: Loaded, tmp_path_factory: pytest.TempPathFactory) -> dg.ExecuteInProcessResult:
    """auh's canonical tables with one row of each broken (SCHEMA_BREAKS), then auh's canonical_tables and
    quarantine run: the schema checks evaluate what is in force."""
    assert set(SCHEMA_BREAKS) == set(CANONICAL_TABLES)
    warehouse = _copy(loaded_clean, tmp_path_factory.mktemp("schema_broken"))
    _execute(warehouse, *(f"update canonical.{t} set {change} where center = 'auh' and {where} and source_row = "
                          f"(select min(source_row) from canonical.{t} where center = 'auh' and {where})"
                          for t, (where, change, _, _) in SCHEMA_BREAKS.items()))
    return _run_center(loaded_clean.gen.inbox, warehouse, "auh", "canonical_tables", "quarantine")


@pytest.mark.parametrize("table", list(SCHEMA_BREAKS))
def test_a_schema_check_fails_on_a_row_in_force_its_pandera_schema_forbids_and_blocks(
        schema_broken: dg.ExecuteInProcessResult, table: str) -> None:
    _, _, check, column = SCHEMA_BREAKS[table]
    evaluation = _evaluations(schema_broken)[f"schema_{table}"]
    assert evaluation.passed is False and evaluation.blocking is True
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    examples = evaluation.metadata["examples"].value
    assert evaluation.metadata["failure cases"].value >= len(examples) > 0
    assert len({e["index"] for e in examples}) == 1, "one row fails"
    assert all(check in e["check"] for e in examples), examples
    if column is not None:  # a column's check names the column; a row's check, each column of the row
        assert [e["column"] for e in examples] == [column]
    assert not schema_broken.success and "quarantine" not in _materialized(schema_broken)


def test_reconciliation_fails_on_a_file_with_a_record_neither_loaded_nor_quarantined_and_blocks(
        loaded_clean: Loaded, tmp_path: Path) -> None:
    warehouse = _copy(loaded_clean, tmp_path)
    _execute(warehouse, "update quality.delivery_files set rows_read = rows_read + 1 where file = 'prom.csv'")
    result = _run_center(loaded_clean.gen.inbox, warehouse, "auh", "canonical_tables", "quarantine")
    evaluation = _evaluations(result)["reconciliation"]
    assert evaluation.passed is False and evaluation.blocking is True
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert metadata["out of balance"] == ["prom.csv"]
    assert metadata["rows read"] == metadata["rows loaded"] + metadata["rows quarantined"] + 1
    assert not result.success and "quarantine" not in _materialized(result)


@pytest.fixture(scope="module")
def demo_auh(loaded_demo: Loaded, tmp_path_factory: pytest.TempPathFactory) -> dg.ExecuteInProcessResult:
    """The demo's warehouse, its injected defects quarantined, and auh's load_one_center run on it."""
    warehouse = _copy(loaded_demo, tmp_path_factory.mktemp("demo_auh"))
    return _run_center(loaded_demo.gen.inbox, warehouse, "auh")


def test_dq_thresholds_fails_as_an_error_on_a_rule_failing_more_rows_than_its_threshold_without_blocking(
        demo_auh: dg.ExecuteInProcessResult, loaded_demo: Loaded) -> None:
    evaluation = _evaluations(demo_auh)["dq_thresholds"]
    assert evaluation.passed is False and evaluation.blocking is False
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    failed = {e["rule_id"]: e for e in evaluation.metadata["failed errors"].value}
    assert failed["cpr.invalid"]["threshold"] == 0 and failed["cpr.invalid"]["rows_failed"] == 1  # one injected
    assert all(e["share_failed"] > e["threshold"] for e in failed.values())
    injected = {d["rule_id"] for d in loaded_demo.gen.truth["defects"] if d["center"] == "auh"}
    assert set(failed) <= injected
    assert demo_auh.success and "quarantine" in _materialized(demo_auh), "the load goes on"


def test_quarantine_findings_warns_with_the_quarantined_records_by_rule_and_examples(
        demo_auh: dg.ExecuteInProcessResult, loaded_demo: Loaded) -> None:
    evaluation = _evaluations(demo_auh)["quarantine_findings"]
    assert evaluation.passed is False and evaluation.blocking is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    defects = [d for d in loaded_demo.gen.truth["defects"] if d["center"] == "auh"]
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert metadata["quarantined"] == sum(d["severity"] == "error" for d in defects) > 0
    assert metadata["flagged"] == sum(d["severity"] == "warning" for d in defects)
    assert metadata["by rule"] == dict(Counter(d["rule_id"] for d in defects))
    assert metadata["examples"] and all(re.fullmatch(r"\S+ row \d+: .+ \[[a-z_.]+\]", e) for e in metadata["examples"])


def test_fhir_validity_fails_before_the_fhir_layer_is_first_built(demo_clean: Generated, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    assert _run_center(demo_clean.inbox, warehouse, "rh").success  # a center loaded, no national refresh yet
    evaluation = _evaluations(_run_national_checks(warehouse))["fhir_validity"]
    assert evaluation.passed is False and evaluation.blocking is True
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["reason"].value == "the FHIR layer was never built"


def test_fhir_validity_fails_while_a_written_delivery_awaits_the_fhir_layer(loaded_clean: Loaded,
                                                                           tmp_path: Path) -> None:
    warehouse = _copy(loaded_clean, tmp_path)
    inbox = tmp_path / "inbox"
    shutil.copytree(loaded_clean.gen.inbox, inbox)
    new_delivery(inbox, "ouh")
    assert _run_center(inbox, warehouse, "ouh").success  # ouh's new delivery written, the FHIR layer not rebuilt
    evaluation = _evaluations(_run_national_checks(warehouse))["fhir_validity"]
    assert evaluation.passed is False and evaluation.blocking is True
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    ouh = len({p["cpr"] for p in loaded_clean.gen.persons_at("ouh")})
    assert metadata["patients awaiting a rebuild"] == ouh and metadata["invalid"] == 0


LINKAGE_BREAKS = {
    "a resource whose Patient is gone": (
        "delete from fhir.resources where resource_type = 'Patient' and id = (select min(patient_id) from "
        "fhir.resources where resource_type = 'Observation')",),
    "a person split into two Patients": (
        "insert into fhir.resources select * replace (id || '-twin' as id, id || '-twin' as patient_id) "
        "from fhir.resources where resource_type = 'Patient' order by id limit 1",
        "insert into fhir.patient_flat select * replace (patient_id || '-twin' as patient_id) "
        "from fhir.patient_flat order by patient_id limit 1"),
}


@pytest.mark.parametrize("why", list(LINKAGE_BREAKS))
def test_cross_center_linkage_fails_on_a_dangling_reference_or_a_split_person(loaded_clean: Loaded, tmp_path: Path,
                                                                             why: str) -> None:
    warehouse = _copy(loaded_clean, tmp_path)
    _execute(warehouse, *LINKAGE_BREAKS[why])
    evaluation = _evaluations(_run_national_checks(warehouse))["cross_center_linkage"]
    assert evaluation.passed is False and evaluation.blocking is True
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    if why == "a resource whose Patient is gone":
        assert metadata["resources with a dangling patient"] > 0
        assert metadata["Patient resources"] == metadata["persons"]
    else:
        assert metadata["Patient resources"] == metadata["persons"] + 1
        assert metadata["resources with a dangling patient"] == 0


def test_a_burst_of_center_loads_gets_one_national_refresh_after_it_ends(demo_clean: Generated, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project import sensors

    location = build_defs(resources(demo_clean.inbox, tmp_path / "w.duckdb"))
    instance = dg.DagsterInstance.ephemeral()
    assert sensors.refresh_after_load.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensors.new_deliveries.default_status == dg.DefaultSensorStatus.STOPPED
    assert isinstance(sensors.refresh_after_load(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    load_job = location.resolve_job_def("load_one_center")
    for center in ("auh", "ouh", "rh"):  # a burst of loads
        assert load_job.execute_in_process(partition_key=center, instance=instance, run_config=QUIET).success
    quiet = sensors.refresh_after_load(dg.build_sensor_context(instance=instance))
    assert isinstance(quiet, dg.SkipReason) and "waiting" in str(quiet.skip_message)  # the burst may go on
    monkeypatch.setattr(sensors, "QUIET_SECONDS", 0)
    context = dg.build_sensor_context(instance=instance)
    first = sensors.refresh_after_load(context)
    assert isinstance(first, dg.RunRequest)
    again = sensors.refresh_after_load(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    assert isinstance(again, dg.SkipReason)  # one refresh for the three loads
    assert load_job.execute_in_process(partition_key="aauh", instance=instance, run_config=QUIET).success
    later = sensors.refresh_after_load(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    assert isinstance(later, dg.RunRequest) and later.run_key != first.run_key
