"""The DuckDB warehouse: opening it (and creating its schema), and what it already knows."""

from __future__ import annotations

import functools
import hashlib
import os
import time
from pathlib import Path

import duckdb

from drg_etl import __version__
from drg_etl.core import tables
from drg_etl.core.dictionary import (
    all_relations,
    flat_relations,
    mart_relations,
    missing_relations,
    write_comments,
)
from drg_etl.core.errors import UsageError, WarehouseError
from drg_etl.core.rules import RULES
from drg_etl.core.tables import insert_row, insert_rows, warehouse_ddl
from drg_etl.fhir.terminology import canonical_base

CODE_VERSION = f"drg-etl {__version__}"
MEMORY_VARIABLE = "DRG_ETL_DUCKDB_MEMORY"
DEFAULT_MEMORY_LIMIT = "512MB"  # DuckDB spills to <warehouse>.tmp beyond this
CHECKPOINT_THRESHOLD = "16GB"  # one checkpoint per load (load.py), not one per batch of a rebuild
# The storage format a new warehouse file is written in: DuckDB 1.4's (the LTS line R's duckdb package, the ODBC
# driver used from Stata and SAS, and DBeaver ship), so every current DuckDB client opens the file, not only the
# pinned 2.0. An existing file keeps the format it has; `drg-etl rekey` writes a fresh file in this one.
STORAGE_VERSION = "v1.4.0"
LOCK_WAIT_VARIABLE = "DRG_ETL_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 60.0


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """DuckDB's connection; while another process holds the file (a load), retry for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only,
                                  config={"memory_limit": os.environ.get(MEMORY_VARIABLE, DEFAULT_MEMORY_LIMIT),
                                          "storage_compatibility_version": STORAGE_VERSION})
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise WarehouseError(f"cannot open the warehouse {path}: {str(exc).splitlines()[0]}") from exc
            if time.monotonic() >= deadline:
                raise WarehouseError(f"the warehouse {path} is in use by another process (a load holds it for its "
                                     f"whole run); waited {wait:.0f} s; try again when it has finished") from exc
            time.sleep(0.5)
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open the warehouse {path} (damaged or not a DuckDB file?): "
                                 f"{str(exc).splitlines()[0]}") from exc


def connect(path: Path, *, read_only: bool = False, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open (and on first use create) the warehouse.

    A writer waits up to ``DRG_ETL_LOCK_WAIT`` seconds (default 60) for another process to let go
    of the file; a reader waits ``wait`` seconds (default 0: it reports the load and returns).
    """
    if read_only and not path.exists():
        raise UsageError(f"no warehouse at {path}; run `drg-etl load INBOX --warehouse {path}` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    if wait is None:
        wait = 0.0 if read_only else float(os.environ.get(LOCK_WAIT_VARIABLE, DEFAULT_LOCK_WAIT))
    con = _open(path, read_only, wait)
    con.execute("set enable_progress_bar = false")  # never on stdout, which --json owns
    if not read_only:
        # checkpoint at the end of a load, not after every batch of a rebuild (see drg_etl/pipeline/load.py)
        con.execute(f"set checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    if not read_only and not _schema_current(con):
        con.execute(warehouse_ddl())
        con.execute("delete from quality.rules")
        insert_rows(con, tables.RULES, [{"rule_id": r.rule_id, "severity": r.severity, "kahn_category": r.kahn_category,
                                         "description": r.description} for r in RULES.values()])
        write_comments(con)  # the data dictionary, onto every table and view the warehouse has (DDL drops some)
        con.execute("insert or replace into quality.settings values (?, ?)", [SCHEMA_SETTING, schema_fingerprint()])
    return con


SCHEMA_SETTING = "schema_fingerprint"


@functools.cache
def schema_fingerprint() -> str:
    """A hash of everything ``connect`` writes into a warehouse: the DDL, the rules and the data dictionary."""
    rules = sorted((r.rule_id, r.severity, r.kahn_category, r.description) for r in RULES.values())
    text = "\n".join([CODE_VERSION, warehouse_ddl(), repr(rules), repr(all_relations())])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _schema_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse already has this code's schema, rules and dictionary (then opening writes nothing)."""
    try:
        # read to the end (fetchall): the connection is handed over with no result left open, which a relation's
        # query (con.sql) would find in its way
        rows = con.execute("select value from quality.settings where name = ?", [SCHEMA_SETTING]).fetchall()
    except duckdb.CatalogException:  # a new file, or one an early drg-etl wrote
        return False
    return rows == [(schema_fingerprint(),)]


def known_delivery(con: duckdb.DuckDBPyConnection, delivery_id: str) -> bool:
    """Whether this exact delivery (by content) is already loaded."""
    return con.execute("select count(*) from quality.deliveries where delivery_id = ?", [delivery_id]).fetchone()[0] > 0


def known_rejection(con: duckdb.DuckDBPyConnection, delivery_id: str) -> bool:
    """Whether this exact delivery was already rejected."""
    return con.execute("select count(*) from quality.rejections where delivery_id = ?", [delivery_id]).fetchone()[0] > 0


def require_current(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a warehouse that holds no load, or whose FHIR layer is older than its deliveries."""
    try:
        loaded = con.execute("select count(*) from quality.deliveries_in_force").fetchone()[0]
        stale = con.execute("select count(*) from staging.fhir_dirty").fetchone()[0]
        built = con.execute("select count(*) from quality.fhir_builds").fetchone()[0]
    except duckdb.CatalogException as exc:
        raise WarehouseError(f"{path} is not a drg-etl warehouse, or was never loaded: "
                             f"run `drg-etl load INBOX --warehouse {path}`") from exc
    if not loaded or not built:
        raise WarehouseError(f"the warehouse {path} holds no load yet: run `drg-etl load INBOX --warehouse {path}`")
    if stale:
        raise WarehouseError(f"the FHIR layer of {path} is older than its deliveries ({stale} patients changed "
                             "since it was built: a load was interrupted); run `drg-etl load` again to finish it")
    if outdated := outdated_layers(con):
        raise WarehouseError(f"the warehouse {path} was built by an earlier drg-etl ({', '.join(outdated[:3])}"
                             f"{', ...' if len(outdated) > 3 else ''} not as this version builds them): run "
                             f"`drg-etl load INBOX --warehouse {path}` once; it rebuilds the flat tables and the "
                             "marts even when nothing new is to be loaded")


def up_to_date(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a load with nothing new has nothing to do: nothing staged or changed since the last build, the FHIR
    layer built by this code under the canonical base in force, every flat table and mart as this version builds it."""
    try:
        pending = con.execute("select (select count(*) from staging.pending_deliveries) "
                              "+ (select count(*) from staging.fhir_dirty)").fetchone()[0]
        built = con.execute("select code_version from quality.loads where finished_at is not null "
                            "order by finished_at desc limit 1").fetchone()
        base = con.execute("select value from quality.settings where name = 'canonical_base'").fetchone()
        resources = con.execute("select count(*) from fhir.resources").fetchone()[0]
    except duckdb.CatalogException:
        return False
    return (not pending and built is not None and built[0] == CODE_VERSION and base is not None
            and base[0] == canonical_base() and resources > 0 and not outdated_layers(con))


def outdated_layers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The flat tables and marts that are missing, or lack a column this version gives them."""
    return missing_relations(con, (*flat_relations(), *mart_relations()))


class KeyMismatch(UsageError):
    """A load under another pseudonym key than the warehouse's: it would split every patient in two."""


def bind_key(con: duckdb.DuckDBPyConnection, fingerprint: str) -> None:
    """Record the key's fingerprint on first use; refuse (exit 2, nothing written) any other key."""
    stored = con.execute("select value from quality.settings where name = 'pseudonym_key_fingerprint'").fetchone()
    if stored is None:
        insert_row(con, tables.SETTINGS, {"name": "pseudonym_key_fingerprint", "value": fingerprint})
    elif stored[0] != fingerprint:
        raise KeyMismatch(
            f"the warehouse was built under another pseudonym key (fingerprint {stored[0][:12]}…, this key "
            f"{fingerprint[:12]}…): loading would give every patient a second pseudonym. Set the key the "
            "warehouse was built with, or rotate it first with `drg-etl rekey`")
