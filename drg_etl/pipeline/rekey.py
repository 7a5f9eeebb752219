"""Rotate the pseudonym key: re-pseudonymise the whole warehouse, written to a fresh file swapped in at once.

A pseudonym is a keyed hash of a CPR number, and the warehouse keeps no CPR number, so the
new pseudonyms can only come from the deliveries themselves: every delivery the warehouse
holds is read again from the inbox (matched by its content hash) under both keys, which maps
each old pseudonym to its new one. If any pseudonym of the warehouse is not found that way,
nothing changes. Afterwards the FHIR layer is rebuilt (its ids derive from the pseudonyms).

The work happens on a copy; the re-keyed copy is then copied once more into a fresh file, which
holds only live rows, and that file replaces the warehouse in one rename. So no freed block of the
warehouse file keeps an old pseudonym (whoever has the old key and the file cannot link), and a
rekey killed at any moment leaves the warehouse as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

from drg_etl.core.cpr import Cpr
from drg_etl.core.delivery import DeliveryRejected
from drg_etl.core.errors import WarehouseError
from drg_etl.core.formats import FORMATS
from drg_etl.core.model import TABLES
from drg_etl.core.pseudonym import Pseudonymizer, fingerprint
from drg_etl.core.transaction import transaction
from drg_etl.fhir.store import refresh_fhir
from drg_etl.pipeline.marts import refresh_marts
from drg_etl.pipeline.staging import discard, discard_unfinished
from drg_etl.pipeline.warehouse import STORAGE_VERSION, connect
from drg_etl.sources.deliveries import read_delivery, survey

PSEUDONYM = re.compile(r"x-[0-9a-f]{32}|[0-9a-f]{64}")
KEYED = [f"canonical.{t}" for t in TABLES] + [f"quality.held_{t}" for t in TABLES] + \
    [f"staging.pending_{t}" for t in TABLES] + [f"staging.pending_held_{t}" for t in TABLES] + \
    ["quality.quarantine", "staging.pending_issues", "staging.fhir_dirty"]
RECORDS = ["staging.source_records", "staging.pending_source_records", "quality.quarantine"]


class _Both(Pseudonymizer):
    """Pseudonymises under the old key (so the readers behave as in the load) and records the new pseudonym."""

    def __init__(self, old: bytes, new: bytes) -> None:
        super().__init__(old)
        self.new = Pseudonymizer(new)
        self.mapping: dict[str, str] = {}

    def __call__(self, cpr: Cpr) -> str:
        old = super().__call__(cpr)
        self.mapping[old] = self.new(cpr)
        return old

    def of_text(self, text: str) -> str:
        old = super().of_text(text)
        self.mapping[old] = self.new.of_text(text)
        return old


def _mapping(con: duckdb.DuckDBPyConnection, inbox: Path, both: _Both) -> None:
    held = {d for (d,) in con.execute("select delivery_id from quality.deliveries").fetchall()}
    found = {d.content_id(): d for d in survey(inbox)[0]}
    missing = held - set(found)
    if missing:
        raise WarehouseError(f"{len(missing)} of the warehouse's deliveries are not in {inbox} (matched by content); "
                             "rotation needs every delivery's CPR numbers: put them back, or keep the old key")
    for delivery_id in sorted(held):
        try:
            read_delivery(found[delivery_id], both)
        except DeliveryRejected as exc:
            raise WarehouseError(f"{found[delivery_id].label} cannot be read again: {exc}") from exc


def _rewrite_device_refs(con: duckdb.DuckDBPyConnection, mapping: dict[str, str]) -> None:
    """Device references that carry a prefix of the pseudonym, as the center's format declares (ouh's: its
    workbook has no device ids)."""
    tables = [t for t in KEYED if t.split("_")[-1].split(".")[-1] in ("procedures", "devices", "complications")]
    for center, fmt in FORMATS.items():
        if (span := fmt.device_ref.pseudonym_span()) is None:
            continue
        head, start, length = span
        prefixes = pd.DataFrame({"old": [k[:length] for k in mapping], "new": [v[:length] for v in mapping.values()]})
        con.register("prefixes", prefixes.drop_duplicates("old"))
        for table in tables:
            con.execute(f"""update {table} t set device_ref = $head || p.new || substr(t.device_ref, $rest)
                            from prefixes p where t.center = $center and starts_with(t.device_ref, $head)
                              and substr(t.device_ref, $start, $length) = p.old""",
                        {"head": head, "center": center, "rest": start + length, "start": start, "length": length})
        con.unregister("prefixes")


def _rewrite_records(con: duckdb.DuckDBPyConnection, table: str, mapping: dict[str, str]) -> None:
    """Replace the pseudonyms inside a table's source records (JSON text), batch by batch."""
    rows = con.execute(f"select rowid, record::varchar from {table} where record is not null").fetchall()
    for start in range(0, len(rows), 50_000):
        chunk = [(rowid, PSEUDONYM.sub(lambda m: mapping.get(m.group(0), m.group(0)), text))
                 for rowid, text in rows[start:start + 50_000]]
        con.register("rewritten", pd.DataFrame(chunk, columns=["rid", "record"]))
        con.execute(f"update {table} t set record = r.record::json from rewritten r where t.rowid = r.rid")
        con.unregister("rewritten")


def rekey(warehouse: Path, inbox: Path, old_key: bytes, new_key: bytes) -> int:
    """Re-pseudonymise ``warehouse`` from ``old_key`` to ``new_key``; return how many pseudonyms changed."""
    work, fresh = _sibling(warehouse, "rekey-work"), _sibling(warehouse, "rekey-fresh")
    con = connect(warehouse)  # held to the end: no load may write while the key rotates
    try:
        stored = con.execute("select value from quality.settings where name = 'pseudonym_key_fingerprint'"
                             ).fetchone()
        if stored is None or stored[0] != fingerprint(old_key):
            raise WarehouseError(f"the old key is not the key {warehouse} was built with; nothing changed")
        if fingerprint(new_key) == fingerprint(old_key):
            raise WarehouseError("the new key is the old key; nothing to do")
        both = _Both(old_key, new_key)
        _mapping(con, inbox, both)
        _remove(work, fresh)
        _copy_database(con, work)
        changed = _rekey_copy(work, both, new_key)
        with duckdb.connect(str(work)) as copy:
            _copy_database(copy, fresh)  # live rows only: the old pseudonyms stay behind in the work file
        _remove(work)  # before the swap: an interrupt after it must not leave the old pseudonyms behind
    except BaseException:
        con.close()
        _remove(work, fresh)
        raise
    con.close()
    fresh.replace(warehouse)  # one rename: the warehouse is the old file or the re-keyed one, never a mix
    _remove(_sibling(warehouse, "wal"), _sibling(fresh, "wal"))
    return changed


def _sibling(warehouse: Path, suffix: str) -> Path:
    return warehouse.with_name(f"{warehouse.name}.{suffix}")


def _remove(*paths: Path) -> None:
    for path in paths:
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)


def _copy_database(con: duckdb.DuckDBPyConnection, target: Path) -> None:
    """Copy the connection's database, live rows only, into a new file ``target``."""
    name = con.execute("select current_database()").fetchone()[0]
    con.execute(f"attach $path as rekey_target (storage_version '{STORAGE_VERSION}')",  # a declared constant
                {"path": str(target)})
    try:
        quoted = '"' + name.replace('"', '""') + '"'  # the catalog name DuckDB gave the file, as an identifier
        con.execute(f"copy from database {quoted} to rekey_target")
        con.execute("checkpoint rekey_target")
    finally:
        con.execute("detach rekey_target")


def _rekey_copy(work: Path, both: _Both, new_key: bytes) -> int:
    """Re-pseudonymise the work copy in one transaction and rebuild its FHIR layer; return the pseudonyms changed."""
    con = connect(work)
    try:
        for (delivery_id,) in con.execute("select delivery_id from staging.pending_deliveries").fetchall():
            discard(con, delivery_id)  # staged, never written (an interrupted load): restaged by the next load
        discard_unfinished(con)
        keys = " union ".join(f"select patient_key from {t} where patient_key is not null" for t in KEYED)
        unknown = [k for (k,) in con.execute(f"select distinct patient_key from ({keys})").fetchall()
                   if k not in both.mapping]
        if unknown:
            raise WarehouseError(f"{len(unknown)} pseudonyms of the warehouse come from no delivery of the inbox; "
                                 "nothing changed")
        with transaction(con):
            con.register("mapping", pd.DataFrame(list(both.mapping.items()), columns=["old", "new"]))
            for table in KEYED:
                con.execute(f"update {table} t set patient_key = m.new from mapping m where t.patient_key = m.old")
            _rewrite_device_refs(con, both.mapping)
            for table in RECORDS:
                _rewrite_records(con, table, both.mapping)
            con.execute("update quality.settings set value = ? where name = 'pseudonym_key_fingerprint'",
                        [fingerprint(new_key)])
            # every patient's resources (ids derive from the pseudonyms) are stale until the rebuild below
            con.execute(f"insert or ignore into staging.fhir_dirty select distinct patient_key from ({keys})")
            con.unregister("mapping")
        refresh_fhir(con, full=True)
        if con.execute("select count(*) from duckdb_tables() where schema_name = 'marts'").fetchone()[0]:
            refresh_marts(con)  # the marts carry Patient ids, which derive from the pseudonyms
        con.execute("checkpoint")
        return len(both.mapping)
    finally:
        con.close()
