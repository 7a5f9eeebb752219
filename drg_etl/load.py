"""The load, as the stage functions the Dagster assets call, and the report read back from the warehouse.

Stages, per center: ``stage_center`` reads each new delivery of the center (file contracts, row
rules, within-delivery rules) into the staged store; ``write_center`` runs the national rules
(against the deliveries in force and every center's staged deliveries), validates the canonical
tables, reconciles the counts and writes each delivery in one transaction. Then, nationally,
the FHIR layer is rebuilt. ``load_inbox`` runs these as the Dagster asset graph in process
(dagster_project), so the CLI and Dagster share one pipeline.
"""

from __future__ import annotations

import datetime as dt
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from drg_etl import warehouse
from drg_etl.errors import EXIT_OK, EXIT_REJECTED, DrgEtlError, UsageError
from drg_etl.pseudonym import Pseudonymizer
from drg_etl.quality.checks import check_national
from drg_etl.schemas import validate_canonical
from drg_etl.sources.base import Issue, StagedDelivery
from drg_etl.sources.deliveries import DeliveryRejected, discover, read_delivery


class ReconciliationError(DrgEtlError):
    """Records that neither loaded nor went to quarantine: a defect of the pipeline, never silent."""


@dataclass
class FileReport:
    """What happened to one file (or sheet) of a delivery."""

    center: str
    delivery: str
    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_ignored: int = 0
    rejected: bool = False
    reason: str | None = None
    rule_id: str | None = None


@dataclass
class LoadReport:
    """The outcome of one load."""

    load_id: str
    files: list[FileReport] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    fhir_counts: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 done; 1 done, but a delivery or file was rejected whole (cli.md)."""
        return EXIT_REJECTED if self.rejected else EXIT_OK


@dataclass
class StageResult:
    """One center's new deliveries, read and checked, waiting to be written."""

    center: str
    staged: list[StagedDelivery] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


class StagedStore:
    """Staged deliveries on disk between the staging and writing stages (pseudonymised; never a CPR)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def beside(cls, warehouse_path: Path) -> StagedStore:
        """The store next to a warehouse file."""
        return cls(warehouse_path.parent / f"{warehouse_path.name}.staged")

    def save(self, result: StageResult) -> None:
        """Keep a center's stage result (replacing an earlier one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{result.center}.pickle.tmp"
        with tmp.open("wb") as handle:
            pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(self.folder / f"{result.center}.pickle")

    def load(self, center: str) -> StageResult | None:
        """A center's stage result, if staged."""
        path = self.folder / f"{center}.pickle"
        if not path.exists():
            return None
        with path.open("rb") as handle:
            return pickle.load(handle)

    def pending(self) -> list[StageResult]:
        """Every staged result not yet written."""
        return [r for p in sorted(self.folder.glob("*.pickle")) if (r := self.load(p.stem)) is not None]

    def discard(self, center: str) -> None:
        """Forget a center's stage result once written."""
        (self.folder / f"{center}.pickle").unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove the store."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def begin_load(con: duckdb.DuckDBPyConnection, load_id: str, inbox: Path) -> None:
    """Record a load (once per load id)."""
    if not con.execute("select count(*) from quality.loads where load_id = ?", [load_id]).fetchone()[0]:
        con.execute("insert into quality.loads values (?, ?, null, null, ?, ?, null, null, null)",
                    [load_id, _now(), warehouse.CODE_VERSION, str(inbox)])


def stage_center(inbox: Path, center: str, con: duckdb.DuckDBPyConnection, pseudonymize: Pseudonymizer,
                 load_id: str) -> StageResult:
    """Read every new delivery of one center; record rejected deliveries with their reasons."""
    if not inbox.is_dir():
        raise UsageError(f"inbox {inbox} is not a folder")
    begin_load(con, load_id, inbox)
    result = StageResult(center)
    for delivery in (d for d in discover(inbox) if d.center == center):
        delivery_id = delivery.content_id()
        if warehouse.known_delivery(con, delivery_id):
            result.skipped.append(delivery.label)
            continue
        try:
            result.staged.append(read_delivery(delivery, pseudonymize))
        except DeliveryRejected as rejection:
            if not warehouse.known_rejection(con, delivery_id):
                for r in rejection.rejections:
                    con.execute("insert into quality.rejections values (?, ?, ?, ?, ?, ?, ?, ?)",
                                [load_id, delivery_id, center, delivery.cutoff, r.file, r.rule_id, r.reason, _now()])
            result.rejected += [{"delivery": delivery.label, "file": r.file, "rule_id": r.rule_id, "reason": r.reason}
                                for r in rejection.rejections]
    return result


def reconcile(staged: StagedDelivery) -> list[dict[str, Any]]:
    """Per file: rows read = loaded + quarantined, or ReconciliationError naming the lost rows."""
    out = []
    for file, count in sorted(staged.counts.items()):
        quarantined = staged.error_rows(file)
        loaded = {row for f, row in staged.contributed if f == file} - quarantined
        if count.rows_read != len(loaded) + len(quarantined):
            lost = sorted({row for f, row, _ in staged.source_rows if f == file} - loaded - quarantined)
            raise ReconciliationError(
                f"{staged.delivery.label} {file}: {count.rows_read} rows read but {len(loaded)} loaded and "
                f"{len(quarantined)} quarantined; rows neither loaded nor quarantined: {lost[:10]}")
        out.append({"file": file, "sha256": staged.file_hashes.get(file.split("#")[0]),
                    "rows_read": count.rows_read, "rows_loaded": len(loaded), "rows_quarantined": len(quarantined),
                    "rows_ignored": count.rows_ignored})
    return out


def write_center(con: duckdb.DuckDBPyConnection, result: StageResult, pending: list[StageResult],
                 load_id: str) -> list[str]:
    """Check a center's staged deliveries nationally, then reconcile and write each; return their labels."""
    others = [s for r in pending if r.center != result.center for s in r.staged]
    context = warehouse.in_force_facts(con, "procedures", {result.center}) + \
        [p for s in others for p in s.facts["procedures"]]
    check_national(result.staged, {"procedures": context})
    written = []
    for staged in sorted(result.staged, key=lambda s: s.delivery.cutoff):
        validate_canonical(staged)
        warehouse.write_delivery(con, staged, reconcile(staged), load_id)
        written.append(staged.delivery.label)
    finish_load(con, load_id)
    return written


def finish_load(con: duckdb.DuckDBPyConnection, load_id: str) -> None:
    """Stamp the load's end, duration and counts in the audit (quality.loads)."""
    con.execute("""
        update quality.loads set finished_at = $now,
            seconds = epoch($now) - epoch(started_at),
            loaded = (select count(*) from quality.deliveries where load_id = $id),
            rejected = (select count(distinct delivery_id) from quality.rejections where load_id = $id)
        where load_id = $id""", {"now": _now(), "id": load_id})


def load_report(con: duckdb.DuckDBPyConnection, load_id: str, skipped: list[str],
                rejected: list[dict[str, str]]) -> LoadReport:
    """What a load did: files and findings read back from the warehouse, and the rejections of its stages."""
    report = LoadReport(load_id, skipped=sorted(skipped))
    rows = con.execute("""
        select d.center, strftime(d.cutoff, '%Y-%m-%d'), f.file, f.rows_read, f.rows_loaded, f.rows_quarantined,
               f.rows_ignored
        from quality.delivery_files f join quality.deliveries d using (delivery_id)
        where d.load_id = ? order by d.cutoff, d.center, f.file""", [load_id]).fetchall()
    report.files = [FileReport(*row) for row in rows]
    report.loaded = sorted({f"{c}/{d}" for c, d, *_ in rows})
    for r in rejected:
        center, cutoff = r["delivery"].split("/")
        report.files.append(FileReport(center, cutoff, r["file"], rejected=True, reason=r["reason"],
                                       rule_id=r["rule_id"]))
        if r["delivery"] not in report.rejected:
            report.rejected.append(r["delivery"])
    issues = con.execute("""
        select q.center, strftime(q.cutoff, '%Y-%m-%d'), q.file, q."row", q.column_name, q.rule_id, q.message,
               q.patient_key, q.resource_id
        from quality.quarantine q join quality.deliveries d using (delivery_id)
        where d.load_id = ? order by q.center, q.file, q."row" """, [load_id]).fetchall()
    report.issues = [Issue(*row) for row in issues]
    report.fhir_counts = dict(con.execute("select resource_type, count(*) from fhir.resources group by 1").fetchall())
    return report


def load_inbox(inbox: Path, warehouse_path: Path, key: bytes,
               progress: Callable[[str], None] | None = None) -> LoadReport:
    """Load every delivery under ``inbox`` the warehouse has not seen, by running the asset graph in process."""
    if not inbox.is_dir():
        raise UsageError(f"inbox {inbox} is not a folder")
    from dagster_project.runner import run_load

    return run_load(inbox, warehouse_path, key, progress)
