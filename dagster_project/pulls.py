"""Pulling the centers' systems: ``redcap_extract`` (rh) and ``fhir_bulk_extract`` (aauh), pull.md.

Each asset calls the library's pull (drg_etl.pull) over a resource per source whose secrets are
``EnvVar`` s (never in Dagster's config, event log or metadata); it writes the center's delivery into
the inbox, where the ``new_deliveries`` sensor picks it up like any file drop. A ``RetryPolicy``
retries a failed pull; a nightly schedule per center asks for it, and a freshness check per center
says when a pull has not landed for more than a day.
"""

import datetime as dt
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from dagster_project.resources import InboxResource
from drg_etl.core.errors import UsageError
from drg_etl.pull.bulk import pull_fhir
from drg_etl.pull.http import CredentialRefused
from drg_etl.pull.redcap import TOKEN, pull_redcap
from drg_etl.pull.result import PullResult
from drg_etl.pull.smart import CLIENT_ID, DEFAULT_SCOPE, KEY_FILE, KEY_ID, BackendCredentials
from drg_etl.pull.state import PullState

REDCAP_CENTERS = dg.StaticPartitionsDefinition(["rh"])
FHIR_CENTERS = dg.StaticPartitionsDefinition(["aauh"])
PULL_RETRIES = dg.RetryPolicy(max_retries=3, delay=300, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
FRESH_FOR = dt.timedelta(hours=26)  # a nightly pull, with two hours' grace


class RedcapSourceResource(dg.ConfigurableResource):
    """rh's REDCap API: its URL and the project's API token (``EnvVar("DRG_ETL_REDCAP_TOKEN")``)."""

    url: str
    token: str


class FhirBulkSourceResource(dg.ConfigurableResource):
    """aauh's FHIR server: base URL, optional Group, and the registered backend client (secrets by ``EnvVar``)."""

    url: str
    group: str | None = None
    client_id: str
    key_file: str
    key_id: str
    scope: str = DEFAULT_SCOPE

    def credentials(self) -> BackendCredentials:
        """The client whose key signs the assertions."""
        return BackendCredentials.from_key_file(self.client_id, Path(self.key_file), self.key_id, self.scope)


@contextmanager
def _no_retry_for_refusals() -> Iterator[None]:
    """A refused credential or a wrong setting fails the run at once: asking again cannot help (the
    ``RetryPolicy`` is for servers that fail for a while). The failure says which setting to check."""
    try:
        yield
    except (CredentialRefused, UsageError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def _metadata(result: PullResult, inbox: Path) -> dict[str, object]:
    """What the asset shows: where the delivery is, the watermark, counts and hashes (never a secret)."""
    state = PullState.load(inbox, result.center)
    return {
        "delivery": str(result.folder),
        "written": result.written,
        "mode": result.mode,
        "watermark": state.watermark or "",
        "records": dg.MetadataValue.json(result.counts),
        "sha256": dg.MetadataValue.json(dict(state.files)),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes) or "_none_"),
    }


@dg.asset(partitions_def=REDCAP_CENTERS, group_name="pull", kinds={"redcap"}, retry_policy=PULL_RETRIES)
def redcap_extract(context: dg.AssetExecutionContext, inbox: InboxResource,
                   redcap: RedcapSourceResource) -> dg.MaterializeResult:
    """rh's REDCap project pulled into ``INBOX/rh/<cutoff>/`` (incremental after the first pull)."""
    with _no_retry_for_refusals():
        result = pull_redcap(Path(inbox.path), redcap.url, redcap.token, center=context.partition_key)
    for note in result.notes:
        context.log.info(note)
    return dg.MaterializeResult(metadata=_metadata(result, Path(inbox.path)))


@dg.asset(partitions_def=FHIR_CENTERS, group_name="pull", kinds={"fhir"}, retry_policy=PULL_RETRIES)
def fhir_bulk_extract(context: dg.AssetExecutionContext, inbox: InboxResource,
                      fhir_bulk: FhirBulkSourceResource) -> dg.MaterializeResult:
    """aauh's FHIR server pulled by Bulk Data ``$export`` into ``INBOX/aauh/<cutoff>/`` (``_since`` after the first)."""
    with _no_retry_for_refusals():
        result = pull_fhir(Path(inbox.path), fhir_bulk.url, fhir_bulk.credentials(), group=fhir_bulk.group,
                           center=context.partition_key)
    for note in result.notes:
        context.log.info(note)
    return dg.MaterializeResult(metadata=_metadata(result, Path(inbox.path)))


PULL_ASSETS = [redcap_extract, fhir_bulk_extract]

pull_rh = dg.define_asset_job("pull_rh", selection=dg.AssetSelection.assets(redcap_extract),
                              description="Pull rh's REDCap project.")
pull_aauh = dg.define_asset_job("pull_aauh", selection=dg.AssetSelection.assets(fhir_bulk_extract),
                                description="Pull aauh's FHIR server ($export).")


def _nightly(job: object, center: str, cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"nightly_pull_{center}", job=job, cron_schedule=cron, execution_timezone="Europe/Copenhagen",
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Pull {center}'s system every night; the new_deliveries sensor loads what it writes.")
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return dg.RunRequest(run_key=None, partition_key=center)

    return nightly


# Schedules start stopped, as the sensors do: turn them on once the sources are configured.
PULL_SCHEDULES = [_nightly(pull_rh, "rh", "0 1 * * *"), _nightly(pull_aauh, "aauh", "15 1 * * *")]
PULL_JOBS = [pull_rh, pull_aauh]
# A freshness check per center, as asset checks a sensor evaluates (Dagster calls these "superseded" by
# FreshnessPolicy, which the daemon evaluates and no test or asset-check view can run; the checks stay).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning if hasattr(dg, "SupersessionWarning") else Warning)
    PULL_FRESHNESS = dg.build_last_update_freshness_checks(assets=PULL_ASSETS, lower_bound_delta=FRESH_FOR,
                                                           timezone="Europe/Copenhagen")
    PULL_FRESHNESS_SENSOR = dg.build_sensor_for_freshness_checks(freshness_checks=PULL_FRESHNESS,
                                                                 name="pull_freshness")

SECRET_SETTINGS = (TOKEN, CLIENT_ID, KEY_FILE, KEY_ID)


def pull_resources_from_environment(environ: dict[str, str]) -> dict[str, dg.ConfigurableResource]:
    """The pull sources from the environment: URLs and secrets as ``EnvVar`` s, read when a pull runs.

    ``DRG_ETL_REDCAP_URL`` and ``DRG_ETL_FHIR_URL`` name the sources; the code location loads without
    them and a pull asset run without its settings fails naming the one missing. Dagster never shows or
    stores an ``EnvVar``'s value.
    """
    return {
        "redcap": RedcapSourceResource(url=dg.EnvVar("DRG_ETL_REDCAP_URL"), token=dg.EnvVar(TOKEN)),
        "fhir_bulk": FhirBulkSourceResource(
            url=dg.EnvVar("DRG_ETL_FHIR_URL"), group=environ.get("DRG_ETL_FHIR_GROUP") or None,
            client_id=dg.EnvVar(CLIENT_ID), key_file=dg.EnvVar(KEY_FILE), key_id=dg.EnvVar(KEY_ID),
            scope=environ.get("DRG_ETL_FHIR_SCOPE") or DEFAULT_SCOPE),
    }
