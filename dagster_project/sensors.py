"""Jobs, the sensor for new deliveries, the refresh after a load, and the nightly schedule."""


import json
from pathlib import Path

import dagster as dg

from dagster_project.assets import CENTER_ASSETS, NATIONAL_ASSETS
from dagster_project.resources import InboxResource
from drg_etl.sources.deliveries import survey

load_one_center = dg.define_asset_job(
    "load_one_center", selection=dg.AssetSelection.assets(*CENTER_ASSETS),
    description="Stage, check and write one center's new deliveries (a partition per center).")
refresh_national = dg.define_asset_job(
    "refresh_national", selection=dg.AssetSelection.assets(*NATIONAL_ASSETS),
    description="Rebuild the FHIR layer, the marts, the national analysis and the FHIR export.")


@dg.sensor(job=load_one_center, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def new_deliveries(context: dg.SensorEvaluationContext, inbox: InboxResource) -> dg.SensorResult:
    """One run of the center's partition per new delivery folder; the cursor holds the content hashes seen."""
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    requests = []
    deliveries, problems = survey(Path(inbox.path))
    for problem in problems:
        context.log.warning(f"inbox: {problem.path} is not read: {problem.reason}")
    for delivery in deliveries:
        content_id = delivery.content_id()
        if content_id in seen:
            continue
        seen.add(content_id)
        requests.append(dg.RunRequest(run_key=content_id, partition_key=delivery.center,
                                      tags={"drg-etl/delivery": delivery.label}))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(seen)))


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[load_one_center],
                      request_job=refresh_national, default_status=dg.DefaultSensorStatus.RUNNING)
def refresh_after_load(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    """After a center loads, refresh the national assets."""
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")


nightly_national_refresh = dg.ScheduleDefinition(
    name="nightly_national_refresh", job=refresh_national, cron_schedule="0 3 * * *",
    execution_timezone="Europe/Copenhagen", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh the national assets every night.")
