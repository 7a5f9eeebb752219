"""Run the asset graph in process for `drg-etl load`: the same assets, checks and library calls as Dagster."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from dagster_project.assets import canonical_tables, delivery_files, fhir_resources, quarantine, staged_rows
from dagster_project.checks import NATIONAL_CHECKS, STAGING_CHECKS, WRITING_CHECKS
from dagster_project.resources import (
    ExportResource,
    InboxResource,
    LoadRunResource,
    PseudonymKeyResource,
    WarehouseResource,
)
from drg_etl.errors import DrgEtlError
from drg_etl.load import LoadReport, finish_load, load_report
from drg_etl.vocabulary import CENTERS
from drg_etl.warehouse import connect


class PipelineError(DrgEtlError):
    """A step of the asset graph failed (not a data-quality finding: a defect or an environment problem)."""


def _raise_on_step_failure(result: dg.ExecuteInProcessResult, what: str) -> None:
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            if error is not None and error.cls_name == "DagsterAssetCheckFailedError":
                continue  # a blocking check did its job: the finding is in the warehouse and the report
            raise PipelineError(f"{what}: step {event.step_key} failed: {error.message.strip() if error else ''}")


def run_load(inbox: Path, warehouse: Path, key: bytes, progress: Callable[[str], None] | None = None) -> LoadReport:
    """Stage every center, then write every center, then rebuild the FHIR layer; report from the warehouse."""
    load_id = str(uuid.uuid4())
    resources = {
        "inbox": InboxResource(path=str(inbox)),
        "warehouse": WarehouseResource(path=str(warehouse)),
        "pseudonym_key": PseudonymKeyResource(key=key.decode("utf-8")),
        "export": ExportResource(path=str(warehouse.parent / "fhir-export")),
        "load_run": LoadRunResource(load_id=load_id),
    }
    instance = dg.DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    store = resources["warehouse"].store()
    skipped: list[str] = []
    rejected: list[dict[str, str]] = []
    for phase, assets, checks in (("staging", [delivery_files, staged_rows], STAGING_CHECKS),
                                  ("writing", [canonical_tables, quarantine], WRITING_CHECKS)):
        for center in CENTERS:
            if progress:
                progress(f"{phase} {center}")
            result = dg.materialize([*assets, *checks], partition_key=center, resources=resources,
                                    instance=instance, raise_on_error=False, run_config=quiet)
            _raise_on_step_failure(result, f"{phase} {center}")
            if phase == "staging" and (staged := store.load(center)) is not None:
                skipped += staged.skipped
                rejected += staged.rejected
    if progress:
        progress("building the FHIR layer")
    result = dg.materialize([fhir_resources, *NATIONAL_CHECKS], resources=resources, instance=instance,
                            raise_on_error=False, run_config=quiet)
    _raise_on_step_failure(result, "FHIR layer")
    con = connect(warehouse)
    try:
        finish_load(con, load_id)
        con.execute("update quality.loads set skipped = ? where load_id = ?", [len(skipped), load_id])
        return load_report(con, load_id, skipped, rejected)
    finally:
        con.close()
