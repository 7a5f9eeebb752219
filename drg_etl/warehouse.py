"""The DuckDB warehouse: opening it (and creating its schema), and what it already knows."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from drg_etl import __version__
from drg_etl.errors import UsageError
from drg_etl.model import canonical_ddl
from drg_etl.paths import SQL_DIR
from drg_etl.quality.rules import RULES

CODE_VERSION = f"drg-etl {__version__}"
MEMORY_VARIABLE = "DRG_ETL_DUCKDB_MEMORY"
DEFAULT_MEMORY_LIMIT = "512MB"  # DuckDB spills to <warehouse>.tmp beyond this
CHECKPOINT_THRESHOLD = "1GB"


def fhir_resources_ddl(table: str = "resources") -> str:
    """The table of the FHIR layer (``fhir.resources``, or its successor during a full rebuild)."""
    return f"""create table if not exists fhir.{table} (
        resource_type  varchar not null,
        id             varchar not null,
        patient_id     varchar,        -- the Patient resource's id (the patient's own, for a Patient)
        center         varchar,
        resource       json not null)  -- compact JSON, as the export writes it
        -- no primary key: an index would be rewritten at every checkpoint of a rebuild; the rebuild
        -- checks (resource_type, id) unique itself (drg_etl/fhir/store.py)"""


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and on first use create) the warehouse."""
    if read_only and not path.exists():
        raise UsageError(f"no warehouse at {path}; run `drg-etl load INBOX --warehouse {path}` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only,
                         config={"memory_limit": os.environ.get(MEMORY_VARIABLE, DEFAULT_MEMORY_LIMIT)})
    con.execute("set enable_progress_bar = false")  # never on stdout, which --json owns
    if not read_only:
        # checkpoint at the end of a load, not after every batch of a rebuild (see drg_etl/load.py)
        con.execute(f"set checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    if not read_only:
        con.execute((SQL_DIR / "ddl.sql").read_text(encoding="utf-8"))
        con.execute(canonical_ddl())
        con.execute(fhir_resources_ddl())
        con.execute("delete from quality.rules")
        con.executemany("insert into quality.rules values (?, ?, ?, ?)",
                        [(r.rule_id, r.severity, r.kahn_category, r.description) for r in RULES.values()])
    return con


def known_delivery(con: duckdb.DuckDBPyConnection, delivery_id: str) -> bool:
    """Whether this exact delivery (by content) is already loaded."""
    return con.execute("select count(*) from quality.deliveries where delivery_id = ?", [delivery_id]).fetchone()[0] > 0


def known_rejection(con: duckdb.DuckDBPyConnection, delivery_id: str) -> bool:
    """Whether this exact delivery was already rejected."""
    return con.execute("select count(*) from quality.rejections where delivery_id = ?", [delivery_id]).fetchone()[0] > 0
