"""The Dagster pull assets: ``redcap_extract`` and ``fhir_bulk_extract`` materialised against their peers, then the
``new_deliveries`` sensor loads what they wrote, and the warehouse is the one loading the generated files gives."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pytest
from helpers import TEST_KEY, Generated, reading
from peers.pull_peers import REDCAP_TOKEN, pull_definitions, redcap_peer, seeded_bulk_peer

from dagster_project.definitions import build_defs
from dagster_project.resources import InboxResource
from dagster_project.sensors import new_deliveries
from drg_etl.analysis.national import national_analysis
from drg_etl.core.vocabulary import CENTERS
from drg_etl.pipeline.load import load_inbox

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
END = dt.date(2019, 12, 31)


def outcome(warehouse: Path) -> dict:
    """What must agree: the figures at the generated cutoff, the per-file counts, the quarantine by rule."""
    with reading(warehouse) as con:
        return {
            "analysis": national_analysis(con, observation_end=END),
            "files": sorted(con.execute("""select d.center, regexp_replace(f.file, '\\d{4}-\\d{2}-\\d{2}', 'D'),
                f.rows_read, f.rows_loaded, f.rows_quarantined from quality.delivery_files f
                join quality.deliveries d using (delivery_id)""").fetchall()),
            "rules": sorted(con.execute("select rule_id, count(*) from quality.quarantine group by 1").fetchall()),
            "resources": con.execute("select resource_type, count(*) from fhir.resources group by 1 order by 1")
            .fetchall(),
        }


def test_the_pull_assets_write_deliveries_the_sensor_loads_into_the_generated_warehouse(
        demo_clean: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox, ignore=shutil.ignore_patterns("rh", "aauh"))
    warehouse = tmp_path / "jobs" / "w.duckdb"
    with redcap_peer(demo_clean.folder("rh")) as redcap, seeded_bulk_peer(tmp_path / "bulk",
                                                                           demo_clean.folder("aauh")) as bulk:
        for name, value in {"DRG_ETL_REDCAP_TOKEN": REDCAP_TOKEN, **bulk.env("system/*.rs system/*.d")}.items():
            monkeypatch.setenv(name, value)
        location = pull_definitions(inbox, warehouse, redcap.url, bulk, TEST_KEY.decode())
        instance = dg.DagsterInstance.ephemeral()
        for job, center, asset in (("pull_rh", "rh", "redcap_extract"), ("pull_aauh", "aauh", "fhir_bulk_extract")):
            result = location.resolve_job_def(job).execute_in_process(partition_key=center, instance=instance,
                                                                       run_config=QUIET)
            assert result.success, center
            (materialization,) = result.asset_materializations_for_node(asset)
            metadata = materialization.metadata
            assert metadata["written"].value is True and metadata["mode"].value == "full"
            assert metadata["watermark"].value and sum(metadata["records"].value.values()) > 0
            assert set(metadata["sha256"].value) == set(metadata["records"].value)
    context = dg.build_sensor_context(instance=instance, resources={"inbox": InboxResource(path=str(inbox))})
    requested = new_deliveries(context).run_requests
    assert sorted(r.partition_key for r in requested) == sorted(CENTERS)
    load_job = location.resolve_job_def("load_one_center")
    for selection in (["delivery_files", "staged_rows"], ["canonical_tables", "quarantine"]):
        for request in requested:
            ran = load_job.execute_in_process(partition_key=request.partition_key, instance=instance,
                                              run_config=QUIET, asset_selection=[dg.AssetKey(a) for a in selection])
            assert ran.success, request.partition_key
    assert location.resolve_job_def("refresh_national").execute_in_process(instance=instance,
                                                                           run_config=QUIET).success
    by_files = tmp_path / "files.duckdb"
    load_inbox(demo_clean.inbox, by_files, TEST_KEY)
    assert outcome(warehouse) == outcome(by_files)


def test_the_pull_schedules_freshness_checks_and_retries_are_defined_per_center() -> None:
    location = build_defs()
    repository = location.get_repository_def()
    schedules = {s.name: s for s in location.schedules}
    for center, asset in (("rh", "redcap_extract"), ("aauh", "fhir_bulk_extract")):
        context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 12, 1, 1, 0),
                                            repository_def=repository)
        (request,) = schedules[f"nightly_pull_{center}"].evaluate_tick(context).run_requests
        assert request.partition_key == center
        definition = location.get_assets_def(dg.AssetKey(asset))
        assert definition.partitions_def.get_partition_keys() == [center]
        assert definition.op.retry_policy is not None and definition.op.retry_policy.max_retries >= 1
    checked = {key.asset_key.to_user_string() for checks in location.asset_checks for key in checks.check_keys}
    assert {"redcap_extract", "fhir_bulk_extract"} <= checked
