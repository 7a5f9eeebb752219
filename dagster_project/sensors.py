"""Jobs, the sensor for new deliveries, the refresh after a load, and the nightly schedule."""


import json
import time
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


# Sensors start stopped: a code location that loads the inbox the moment it is opened surprises whoever opens it.
# Turn them on in the UI (Automation) or with `dagster sensor start new_deliveries refresh_after_load`.
@dg.sensor(job=load_one_center, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
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


QUIET_SECONDS = 60  # how long after the last center load of a burst the national refresh waits
LOADING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
           dg.DagsterRunStatus.STARTED]


@dg.sensor(job=refresh_national, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def refresh_after_load(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """One national refresh for a burst of center loads: once loads have succeeded since the last refresh, none
    is queued or running, and the last finished a quiet minute ago. The cursor holds the last load covered."""
    instance = context.instance
    if instance.get_runs(filters=dg.RunsFilter(job_name=load_one_center.name, statuses=LOADING), limit=1):
        return dg.SkipReason("center loads are still queued or running")
    done = instance.get_run_records(filters=dg.RunsFilter(job_name=load_one_center.name,
                                                          statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
    if not done:
        return dg.SkipReason("no center load has succeeded yet")
    last = done[0]
    if last.dagster_run.run_id == context.cursor:
        return dg.SkipReason("no center load since the last refresh")
    ended = last.end_time or 0.0
    if time.time() - ended < QUIET_SECONDS:
        return dg.SkipReason(f"waiting {QUIET_SECONDS} s after the last center load for the burst to end")
    context.update_cursor(last.dagster_run.run_id)
    return dg.RunRequest(run_key=f"after-{last.dagster_run.run_id}")


nightly_national_refresh = dg.ScheduleDefinition(
    name="nightly_national_refresh", job=refresh_national, cron_schedule="0 3 * * *",
    execution_timezone="Europe/Copenhagen", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh the national assets every night.")
