"""Load an inbox: read every new delivery, check it, reconcile its counts, write it to the warehouse.

This is the one pipeline: the CLI's ``load`` and the Dagster assets call these functions.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from drg_etl import warehouse
from drg_etl.errors import EXIT_OK, EXIT_REJECTED, DrgEtlError, UsageError
from drg_etl.fhir.store import refresh_fhir
from drg_etl.pseudonym import Pseudonymizer
from drg_etl.quality.checks import check_national
from drg_etl.schemas import validate_canonical
from drg_etl.sources.base import Delivery, Issue, StagedDelivery
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


def reconcile(staged: StagedDelivery) -> list[dict[str, Any]]:
    """Per file: rows read = loaded + quarantined, or ReconciliationError naming the lost rows."""
    out = []
    for file, count in sorted(staged.counts.items()):
        quarantined = staged.error_rows(file)
        loaded = {row for f, row in staged.contributed if f == file} - quarantined
        if count.rows_read != len(loaded) + len(quarantined):
            seen = loaded | quarantined
            lost = sorted({row for f, row, _ in staged.source_rows if f == file} - seen)
            raise ReconciliationError(
                f"{staged.delivery.label} {file}: {count.rows_read} rows read but {len(loaded)} loaded and "
                f"{len(quarantined)} quarantined; rows neither loaded nor quarantined: {lost[:10]}")
        out.append({"file": file, "sha256": staged.file_hashes.get(file.split("#")[0]),
                    "rows_read": count.rows_read, "rows_loaded": len(loaded), "rows_quarantined": len(quarantined),
                    "rows_ignored": count.rows_ignored})
    return out


def _record_rejection(con: duckdb.DuckDBPyConnection, load_id: str, rejection: DeliveryRejected,
                      delivery_id: str) -> None:
    if warehouse.known_rejection(con, delivery_id):
        return
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for r in rejection.rejections:
        con.execute("insert into quality.rejections values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [load_id, delivery_id, rejection.delivery.center, rejection.delivery.cutoff, r.file, r.rule_id,
                     r.reason, now])


def load_inbox(inbox: Path, warehouse_path: Path, key: bytes,
               progress: Callable[[str], None] | None = None) -> LoadReport:
    """Load every delivery under ``inbox`` that the warehouse has not seen."""
    if not inbox.is_dir():
        raise UsageError(f"inbox {inbox} is not a folder")
    pseudonymize = Pseudonymizer(key)
    report = LoadReport(load_id=str(uuid.uuid4()))
    started, clock = dt.datetime.now(dt.UTC).replace(tzinfo=None), time.perf_counter()
    con = warehouse.connect(warehouse_path)
    try:
        con.execute("insert into quality.loads values (?, ?, null, null, ?, ?, null, null, null)",
                    [report.load_id, started, warehouse.CODE_VERSION, str(inbox)])
        staged_list = _stage(con, discover(inbox), pseudonymize, report, progress)
        replaced = {s.delivery.center for s in staged_list}
        check_national(staged_list, {"procedures": warehouse.in_force_facts(con, "procedures", replaced)})
        for staged in staged_list:
            if progress:
                progress(f"writing {staged.delivery.label}")
            validate_canonical(staged)
            counts = reconcile(staged)
            warehouse.write_delivery(con, staged, counts, report.load_id)
            report.loaded.append(staged.delivery.label)
            report.issues += staged.issues
            report.files += [FileReport(staged.delivery.center, staged.delivery.cutoff.isoformat(), **c)
                             for c in ({k: v for k, v in c.items() if k != "sha256"} for c in counts)]
        if report.loaded or not con.execute("select count(*) from fhir.resources").fetchone()[0]:
            if progress:
                progress("building the FHIR layer")
            report.fhir_counts = refresh_fhir(con)
        con.execute("update quality.loads set finished_at = ?, seconds = ?, loaded = ?, skipped = ?, rejected = ? "
                    "where load_id = ?", [dt.datetime.now(dt.UTC).replace(tzinfo=None), time.perf_counter() - clock,
                                          len(report.loaded), len(report.skipped), len(report.rejected),
                                          report.load_id])
    finally:
        con.close()
    return report


def _stage(con: duckdb.DuckDBPyConnection, deliveries: list[Delivery], pseudonymize: Pseudonymizer,
           report: LoadReport, progress: Callable[[str], None] | None) -> list[StagedDelivery]:
    staged_list = []
    for delivery in deliveries:
        delivery_id = delivery.content_id()
        if warehouse.known_delivery(con, delivery_id):
            report.skipped.append(delivery.label)
            continue
        if progress:
            progress(f"reading {delivery.label}")
        try:
            staged_list.append(read_delivery(delivery, pseudonymize))
        except DeliveryRejected as rejection:
            _record_rejection(con, report.load_id, rejection, delivery_id)
            report.rejected.append(delivery.label)
            for r in rejection.rejections:
                report.files.append(FileReport(delivery.center, delivery.cutoff.isoformat(), r.file, rejected=True,
                                               reason=r.reason, rule_id=r.rule_id))
    return staged_list
