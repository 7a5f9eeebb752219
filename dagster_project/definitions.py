"""The Definitions of the drg-etl code location."""

import os

import dagster as dg

from dagster_project.assets import CENTER_ASSETS, NATIONAL_ASSETS
from dagster_project.checks import ALL_CHECKS
from dagster_project.pulls import (
    PULL_ASSETS,
    PULL_FRESHNESS,
    PULL_FRESHNESS_SENSOR,
    PULL_JOBS,
    PULL_SCHEDULES,
    pull_resources_from_environment,
)
from dagster_project.resources import resources_from_environment
from dagster_project.sensors import (
    load_one_center,
    new_deliveries,
    nightly_national_refresh,
    refresh_after_load,
    refresh_national,
)


def build_defs(resources: dict[str, dg.ConfigurableResource] | None = None) -> dg.Definitions:
    """The code location's Definitions; resources from the environment unless given."""
    return dg.Definitions(
        assets=[*PULL_ASSETS, *CENTER_ASSETS, *NATIONAL_ASSETS],
        asset_checks=[*ALL_CHECKS, *PULL_FRESHNESS],
        jobs=[load_one_center, refresh_national, *PULL_JOBS],
        sensors=[new_deliveries, refresh_after_load, PULL_FRESHNESS_SENSOR],
        schedules=[nightly_national_refresh, *PULL_SCHEDULES],
        # the pull sources are EnvVars read when a pull runs: present whatever else is given
        resources={**pull_resources_from_environment(dict(os.environ)), **(resources or resources_from_environment())},
        # One step at a time inside a run; across runs, one run at a time (dagster.yaml).
        executor=dg.in_process_executor,
    )


defs = build_defs()
