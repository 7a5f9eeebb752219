"""Resources: the DuckDB warehouse (one writer at a time), the inbox, the pseudonym key, the export folder."""


import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from drg_etl.core.pseudonym import KEY_VARIABLE, Pseudonymizer, WeakKey, check_key
from drg_etl.pipeline.warehouse import connect

DEFAULT_INBOX = "inbox"
DEFAULT_WAREHOUSE = "drg-warehouse.duckdb"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. DuckDB allows one writing process: connections are short-lived."""

    path: str

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, closed after use."""
        con = connect(Path(self.path))
        try:
            yield con
        finally:
            con.close()


class InboxResource(dg.ConfigurableResource):
    """The inbox of center deliveries (``INBOX/<center>/<cutoff>/``)."""

    path: str


class PseudonymKeyResource(dg.ConfigurableResource):
    """The secret key of the CPR pseudonyms (``DRG_ETL_PSEUDONYM_KEY``); never logged."""

    key: str

    def pseudonymizer(self) -> Pseudonymizer:
        """A pseudonymizer under the key."""
        try:
            return Pseudonymizer(check_key(self.key))
        except WeakKey as exc:
            raise dg.Failure(str(exc)) from None


class ExportResource(dg.ConfigurableResource):
    """Where the FHIR bulk export is written."""

    path: str


class LoadRunResource(dg.ConfigurableResource):
    """The load a run belongs to; empty means the run itself is the load (the run id)."""

    load_id: str = ""

    def id_for(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
        """The load id for this run."""
        return self.load_id or context.run.run_id


def resources_from_environment() -> dict[str, dg.ConfigurableResource]:
    """Resources configured from DRG_ETL_INBOX, DRG_ETL_WAREHOUSE and DRG_ETL_PSEUDONYM_KEY."""
    warehouse = os.environ.get("DRG_ETL_WAREHOUSE", DEFAULT_WAREHOUSE)
    return {
        "inbox": InboxResource(path=os.environ.get("DRG_ETL_INBOX", DEFAULT_INBOX)),
        "warehouse": WarehouseResource(path=warehouse),
        "pseudonym_key": PseudonymKeyResource(key=dg.EnvVar(KEY_VARIABLE)),
        "export": ExportResource(path=os.environ.get("DRG_ETL_EXPORT", str(Path(warehouse).parent / "fhir-export"))),
        "load_run": LoadRunResource(),
    }
