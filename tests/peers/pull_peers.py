"""The pulls' peers as the tests use them: a seeded Bulk Data server behind the fault proxy, the REDCap stand-in.

Each is started on 127.0.0.1 by the test that needs it and stopped after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from dagster_project.definitions import build_defs
from dagster_project.pulls import FhirBulkSourceResource, RedcapSourceResource
from dagster_project.resources import (
    ExportResource,
    InboxResource,
    LoadRunResource,
    PseudonymKeyResource,
    WarehouseResource,
)
from drg_etl.pull.bulk import pull_fhir
from drg_etl.pull.http import RetryBudget
from drg_etl.pull.result import PullResult
from drg_etl.pull.smart import BackendCredentials
from peers.bulk_peer import FaultProxy, SekmetServer, make_client_key, running_proxied_sekmet, seed_resources
from peers.redcap_standin import RedcapProject, RedcapStandin, TokenRights, make_token

CLIENT_ID = "drg-etl-registry"
GROUP = "drg-registry"
REDCAP_TOKEN = make_token("plain")  # export rights, no data access groups
REDCAP_TOKENS = {REDCAP_TOKEN: TokenRights(export=True)}


@dataclass
class BulkPeer:
    """A seeded sekmet behind the proxy, the client's key, an admin token for changes, the recorded waits."""

    server: SekmetServer
    proxy: FaultProxy
    pem: Path
    kid: str
    admin: str
    lines: dict[str, str]
    waits: list[float] = field(default_factory=list)

    def credentials(self, scope: str = "system/*.rs") -> BackendCredentials:
        """The registered client."""
        return BackendCredentials.from_key_file(CLIENT_ID, self.pem, self.kid, scope)

    def budget(self, attempts: int = 6) -> RetryBudget:
        """Retries that record each wait and sleep at most 50 ms of it."""
        return RetryBudget(attempts=attempts, sleep=lambda s: time.sleep(min(s, 0.05)), waits=self.waits)

    def pull(self, inbox: Path, *, full: bool = False, scope: str = "system/*.rs", group: str | None = GROUP,
             attempts: int = 6) -> PullResult:
        """One pull through the library."""
        return pull_fhir(inbox, self.server.base_url, self.credentials(scope), group=group, full=full,
                         budget=self.budget(attempts))

    def env(self, scope: str = "system/*.rs") -> dict[str, str]:
        """The pull's settings as the CLI reads them."""
        return {"DRG_ETL_FHIR_CLIENT_ID": CLIENT_ID, "DRG_ETL_FHIR_KEY_FILE": str(self.pem),
                "DRG_ETL_FHIR_KEY_ID": self.kid, "DRG_ETL_FHIR_SCOPE": scope}


@contextmanager
def seeded_bulk_peer(workdir: Path, aauh: Path, alg: str = "ES384") -> Iterator[BulkPeer]:
    """sekmet behind the fault proxy, seeded with an aauh delivery and a Group of its patients; a client key."""
    pem, kid, jwks = make_client_key(workdir / "keys", alg)  # type: ignore[arg-type]
    with running_proxied_sekmet(workdir / "sekmet", client_id=CLIENT_ID, jwks=jwks, scopes="system/*.*") as (
            server, proxy):
        admin = server.token(pem, kid)
        seeded = seed_resources(server, aauh, group_id=GROUP, token=admin)
        yield BulkPeer(server, proxy, pem, kid, admin, seeded.lines)


@contextmanager
def redcap_peer(rh: Path, tokens: dict[str, TokenRights] | None = None) -> Iterator[RedcapStandin]:
    """The REDCap stand-in serving the project an rh delivery was exported from."""
    with RedcapStandin(RedcapProject.from_delivery(rh), tokens or REDCAP_TOKENS) as server:
        yield server


def pull_definitions(inbox: Path, warehouse: Path, redcap_url: str, bulk: BulkPeer, key: str,
                     scope: str = "system/*.rs system/*.d") -> dg.Definitions:
    """The code location with the pull sources at the peers; secrets are EnvVars the test sets."""
    return build_defs({
        "inbox": InboxResource(path=str(inbox)), "warehouse": WarehouseResource(path=str(warehouse)),
        "pseudonym_key": PseudonymKeyResource(key=key),
        "export": ExportResource(path=str(warehouse.parent / "export")), "load_run": LoadRunResource(),
        "redcap": RedcapSourceResource(url=redcap_url, token=dg.EnvVar("DRG_ETL_REDCAP_TOKEN")),
        "fhir_bulk": FhirBulkSourceResource(
            url=bulk.server.base_url, group=GROUP, client_id=dg.EnvVar("DRG_ETL_FHIR_CLIENT_ID"),
            key_file=dg.EnvVar("DRG_ETL_FHIR_KEY_FILE"), key_id=dg.EnvVar("DRG_ETL_FHIR_KEY_ID"), scope=scope),
    })
