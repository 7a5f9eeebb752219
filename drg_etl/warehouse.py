"""The DuckDB warehouse: schema, and writing one staged delivery in one transaction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from drg_etl import __version__
from drg_etl.errors import UsageError
from drg_etl.paths import SQL_DIR
from drg_etl.quality.rules import RULES
from drg_etl.sources.base import CANONICAL_TABLES, StagedDelivery

CODE_VERSION = f"drg-etl {__version__}"
CANONICAL_COLUMNS = {
    "patients": ["patient_key", "sex", "birth_year", "pain_location", "diagnosis", "recorded_sex"],
    "procedures": ["patient_key", "procedure", "date", "end_date", "trial_success", "device_ref", "reason"],
    "devices": ["patient_key", "device_ref", "device_type", "model", "serial", "placed_date", "level", "side",
                "status", "status_date"],
    "measurements": ["patient_key", "date", "timepoint", "measure", "value"],
    "complications": ["patient_key", "date", "complication", "permanent", "device_ref", "note"],
}
LINEAGE = ["delivery_id", "center", "cutoff", "source_file", "source_row"]


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and on first use create) the warehouse."""
    if read_only and not path.exists():
        raise UsageError(f"no warehouse at {path}; run `drg-etl load INBOX --warehouse {path}` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    if not read_only:
        con.execute((SQL_DIR / "ddl.sql").read_text(encoding="utf-8"))
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


def in_force_facts(con: duckdb.DuckDBPyConnection, table: str, except_centers: set[str]) -> list[dict[str, Any]]:
    """Facts of the deliveries in force, leaving out the centers being replaced."""
    frame = con.execute(f"select * from canonical.current_{table}").df()
    frame = frame[~frame["center"].isin(except_centers)]
    records = frame.to_dict("records")
    for r in records:
        for key, value in r.items():
            if isinstance(value, pd.Timestamp):
                r[key] = value.date()
            elif value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
                r[key] = None
    return records


def _frame(staged: StagedDelivery, table: str) -> pd.DataFrame:
    rows = [{"delivery_id": staged.delivery_id, "center": f["center"], "cutoff": staged.delivery.cutoff,
             "source_file": f["source_file"], "source_row": f["source_row"],
             **{c: f.get(c) for c in CANONICAL_COLUMNS[table]}} for f in staged.facts[table]]
    return pd.DataFrame(rows, columns=LINEAGE + CANONICAL_COLUMNS[table])


def write_delivery(con: duckdb.DuckDBPyConnection, staged: StagedDelivery, counts: list[dict[str, Any]],
                   load_id: str) -> str:
    """Write one delivery in one transaction; return its status (in_force or superseded)."""
    delivery = staged.delivery
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute("begin transaction")
    try:
        newest = con.execute("select max(cutoff) from quality.deliveries where center = ? and status = 'in_force'",
                             [delivery.center]).fetchone()[0]
        status = "in_force" if newest is None or delivery.cutoff >= newest else "superseded"
        if status == "in_force":
            con.execute("update quality.deliveries set status = 'superseded', superseded_by = ? "
                        "where center = ? and status = 'in_force'", [staged.delivery_id, delivery.center])
        con.execute("insert into quality.deliveries values (?, ?, ?, ?, ?, ?, ?, null)",
                    [staged.delivery_id, delivery.center, delivery.cutoff, status, load_id, now, CODE_VERSION])
        for table in CANONICAL_TABLES:
            frame = _frame(staged, table)
            if len(frame):
                con.register("incoming", frame)
                con.execute(f"insert into canonical.{table} by name select * from incoming")
                con.unregister("incoming")
        files = pd.DataFrame(counts)
        files.insert(0, "delivery_id", staged.delivery_id)
        con.register("incoming", files)
        con.execute("insert into quality.delivery_files by name select * from incoming")
        con.unregister("incoming")
        records = {(file, row): record for file, row, record in staged.source_rows}
        quarantine = pd.DataFrame([{
            "delivery_id": staged.delivery_id, "center": i.center, "cutoff": delivery.cutoff, "file": i.file,
            "row": i.row, "resource_id": i.resource_id, "column_name": i.column, "rule_id": i.rule_id,
            "severity": i.severity, "kahn_category": RULES[i.rule_id].kahn_category, "message": i.message,
            "patient_key": i.patient_key, "record": records.get((i.file, i.row))} for i in staged.issues],
            columns=["delivery_id", "center", "cutoff", "file", "row", "resource_id", "column_name", "rule_id",
                     "severity", "kahn_category", "message", "patient_key", "record"])
        if len(quarantine):
            con.register("incoming", quarantine)
            con.execute("insert into quality.quarantine by name select * from incoming")
            con.unregister("incoming")
            results = quarantine.groupby(["rule_id", "severity", "kahn_category"]).size().reset_index(name="failures")
            results.insert(0, "delivery_id", staged.delivery_id)
            results.insert(0, "load_id", load_id)
            con.register("incoming", results)
            con.execute("insert into quality.rule_results by name select * from incoming")
            con.unregister("incoming")
        source = pd.DataFrame(staged.source_rows, columns=["file", "row", "record"])
        source.insert(0, "delivery_id", staged.delivery_id)
        con.register("incoming", source)
        con.execute("insert into staging.source_records by name select * from incoming")
        con.unregister("incoming")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return status
