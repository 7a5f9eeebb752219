"""The load: plain library functions, called by `drg-etl load` and wrapped by the Dagster assets.

Stages: ``stage_center`` reads each new delivery of a center (file contracts, row rules,
within-delivery rules, the canonical schemas) into the warehouse's staging schema;
``write_pending`` (drg_etl.pipeline.write) runs the national rules as SQL, reconciles the counts and
writes the staged deliveries in one transaction; ``refresh_fhir`` rebuilds the FHIR
resources of the patients the write touched. ``load_inbox`` runs them in that order. Data
passes between stages only through the warehouse.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from drg_etl.core import file_hashes
from drg_etl.core.cpr import scrub_cpr
from drg_etl.core.delivery import Delivery, DeliveryRejected, InboxProblem, Issue
from drg_etl.core.errors import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, DrgEtlError, UsageError, stop_if_interrupted
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.tables import FILE_HASHES, LOADS, REJECTIONS, insert_row, insert_rows
from drg_etl.core.vocabulary import CENTERS
from drg_etl.pipeline import warehouse
from drg_etl.pipeline.reconcile import ReconciliationError
from drg_etl.sources.deliveries import survey

if TYPE_CHECKING:
    from drg_etl.pipeline.staging import StageReader

# The stages' modules (staging and its readers, the FHIR layer, the marts: pandas, pandera, openpyxl,
# fhir.resources) are imported where a stage runs, so a load that finds nothing new imports none of them.

FOLDER = "(folder)"  # what a report names as the file of an inbox entry that is not a delivery
SAMPLE_PER_RULE = 20  # findings of each rule the load's report carries; the warehouse holds them all

__all__ = ["LoadReport", "ReconciliationError", "load_inbox", "stage_center", "write_center"]


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
    issues: list[Issue] = field(default_factory=list)  # a sample: up to SAMPLE_PER_RULE findings of each rule
    issue_counts: dict[str, int] = field(default_factory=dict)  # every finding of the load, per rule
    fhir_counts: dict[str, int] = field(default_factory=dict)

    @property
    def issue_total(self) -> int:
        """How many findings the load made (the sample in ``issues`` shows some of each rule)."""
        return sum(self.issue_counts.values())

    @property
    def exit_code(self) -> int:
        """0 done; 1 done, but a delivery or file was rejected whole (cli.md)."""
        return EXIT_REJECTED if self.rejected else EXIT_OK


@dataclass
class StageResult:
    """What staging one center's new deliveries did: staged (into the warehouse), skipped, rejected."""

    center: str
    staged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def begin_load(con: duckdb.DuckDBPyConnection, load_id: str, inbox: Path) -> None:
    """Record a load (once per load id)."""
    if not con.execute("select count(*) from quality.loads where load_id = ?", [load_id]).fetchone()[0]:
        insert_row(con, LOADS, {"load_id": load_id, "started_at": _now(), "code_version": warehouse.CODE_VERSION,
                                "inbox": str(inbox)})


def stage_center(inbox: Path, center: str, con: duckdb.DuckDBPyConnection, pseudonymize: Pseudonymizer,
                 load_id: str, read: StageReader | None = None, *, deliveries: list[Delivery] | None = None,
                 accept_quarantine: bool = False) -> StageResult:
    """Read every new delivery of one center into the staging schema; record rejected deliveries.

    A reader streams each delivery into the staging schema in bounded batches; the rules of
    the delivery then run there as SQL. ``deliveries``: the inbox's deliveries as a survey already
    found them (each is listed and hashed once per load); by default the inbox is surveyed here.
    """
    from drg_etl.pipeline.staging import discard_unfinished, read_into, stage_delivery

    if not inbox.is_dir():
        raise UsageError(f"inbox {inbox} is not a folder")
    read = read or read_into
    warehouse.bind_key(con, pseudonymize.fingerprint)
    begin_load(con, load_id, inbox)
    discard_unfinished(con)
    result = StageResult(center)
    for delivery in (d for d in (survey(inbox)[0] if deliveries is None else deliveries) if d.center == center):
        if (delivery_id := _content_id(delivery)) is None:
            result.rejected.append({"delivery": delivery.label, "file": FOLDER, "rule_id": "file.missing",
                                    "reason": "the delivery's folder or a file of it disappeared during the load "
                                              "(moved or deleted?); it was not read"})
            continue
        if warehouse.known_delivery(con, delivery_id):
            result.skipped.append(delivery.label)
            continue
        try:
            stage_delivery(con, delivery, pseudonymize, load_id, read, accept_quarantine=accept_quarantine)
        except DeliveryRejected as rejection:
            if not warehouse.known_rejection(con, delivery_id):
                insert_rows(con, REJECTIONS, [
                    {"load_id": load_id, "delivery_id": delivery_id, "center": center, "cutoff": delivery.cutoff,
                     "file": r.file, "rule_id": r.rule_id, "reason": r.reason, "rejected_at": _now()}
                    for r in rejection.rejections])
            result.rejected += [{"delivery": delivery.label, "file": r.file, "rule_id": r.rule_id, "reason": r.reason}
                                for r in rejection.rejections]
            continue
        result.staged.append(delivery.label)
    return result


def _keep_file_hashes(con: duckdb.DuckDBPyConnection) -> None:
    """Keep the hashes of the files this process read, by their fingerprints, for the next load (not a file whose
    path holds a CPR number: a file a center named so is read for its hash at every load instead)."""
    known = [entry for entry in file_hashes.remembered() if scrub_cpr(entry[0]) == entry[0]]  # a few per delivery
    if known:
        con.executemany(f"insert or replace into {FILE_HASHES.qualified} values (?, ?, ?, ?, ?, ?, ?)", known)


def _content_id(delivery: Delivery) -> str | None:
    """The delivery's content id, or None when its folder or a file vanished since the survey."""
    try:
        return delivery.content_id()
    except OSError:
        return None


def write_center(con: duckdb.DuckDBPyConnection, center: str, load_id: str) -> list[str]:
    """Check a center's staged deliveries nationally, reconcile and write them; return their labels."""
    from drg_etl.pipeline.write import write_pending

    written = write_pending(con, load_id, [center])
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
        center, _, cutoff = r["delivery"].partition("/")
        report.files.append(FileReport(center, cutoff, r["file"], rejected=True, reason=r["reason"],
                                       rule_id=r["rule_id"]))
        if r["delivery"] not in report.rejected:
            report.rejected.append(r["delivery"])
    # Counts per rule and a bounded sample: memory does not grow with the findings (1M junk rows are 1M rows
    # in quality.quarantine, never 1M Python objects).
    report.issue_counts = dict(con.execute("""
        select rule_id, count(*) from quality.quarantine
        where delivery_id in (select delivery_id from quality.deliveries where load_id = ?)
        group by rule_id order by rule_id""", [load_id]).fetchall())
    cursor = con.execute("""
        select q.center, strftime(q.cutoff, '%Y-%m-%d') as delivery, q.file, q."row", q.column_name as "column",
               q.rule_id, q.message, q.patient_key, q.resource_id
        from quality.quarantine q
        where q.delivery_id in (select delivery_id from quality.deliveries where load_id = $load)
        qualify row_number() over (partition by q.rule_id order by q.center, q.file, q."row") <= $per_rule
        order by q.center, q.file, q."row" """, {"load": load_id, "per_rule": SAMPLE_PER_RULE})
    names = [c[0] for c in cursor.description]
    report.issues = [Issue(**dict(zip(names, row, strict=True))) for row in cursor.fetchall()]
    report.fhir_counts = dict(con.execute("select resource_type, count(*) from fhir.resources group by 1").fetchall())
    return report


class NothingToLoad(DrgEtlError):
    """An inbox that holds no delivery, with a hint (the path may be one level off). cli.md: exit 1 when its
    entries were all rejected (each named), exit 2 when it holds nothing at all (nothing was done)."""

    def __init__(self, message: str, rejected_entries: bool) -> None:
        super().__init__(message)
        self.exit_code = EXIT_REJECTED if rejected_entries else EXIT_USAGE


def _nothing_to_load(inbox: Path, problems: list[InboxProblem]) -> str:
    """Why nothing loads, and where the deliveries may be."""
    if inbox.name in CENTERS:
        hint = f"{inbox} looks like a center's folder: give the inbox, {inbox.parent}"
    elif inbox.parent.name in CENTERS:
        hint = f"{inbox} looks like a delivery's folder: give the inbox, {inbox.parent.parent}"
    elif any(child.name in CENTERS for sub in _subfolders(inbox) for child in _subfolders(sub)):
        hint = "the center folders are one level deeper: give the folder that holds them"
    else:
        hint = f"expected {inbox}/<center>/<YYYY-MM-DD>/ with a center among {', '.join(CENTERS)}"
    seen = "; ".join(f"{p.path}: {p.reason}" for p in problems[:3]) + ("; ..." if len(problems) > 3 else "")
    return f"nothing to load under {inbox}: no delivery found ({hint})" + (f"; not read: {seen}" if seen else "")


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []


def load_inbox(inbox: Path, warehouse_path: Path, key: bytes, progress: Callable[[str], None] | None = None,
               *, strict: bool = False, accept_quarantine: bool = False) -> LoadReport:
    """Load every delivery under ``inbox`` the warehouse has not seen: stage, write, rebuild the FHIR layer.

    Every center is staged before any is written, so the national rules see the whole batch
    (an implant whose trial is in another center's delivery of the same load). ``strict``
    validates every FHIR resource with fhir.resources as well as the R4 JSON Schema.
    """
    if not inbox.is_dir():
        raise UsageError(f"inbox {inbox} is not a folder")
    found, problems = survey(inbox)  # the one listing of the inbox this load makes
    if not found:  # before the warehouse is opened: a refused call leaves no empty warehouse file behind
        raise NothingToLoad(_nothing_to_load(inbox, problems), rejected_entries=bool(problems))
    load_id = str(uuid.uuid4())
    pseudonymize = Pseudonymizer(key)
    con = warehouse.connect(warehouse_path)
    try:
        skipped: list[str] = []
        rejected: list[dict[str, Any]] = [{"delivery": p.path, "file": FOLDER, "rule_id": p.rule_id,
                                           "reason": p.reason} for p in problems]
        warehouse.bind_key(con, pseudonymize.fingerprint)  # before any reading: a wrong key costs nothing
        file_hashes.remember(con.execute(f"select * from {FILE_HASHES.qualified}").fetchall())  # unchanged: unread
        new = [d for d in found if (i := _content_id(d)) is not None and not warehouse.known_delivery(con, i)]
        if not new and warehouse.up_to_date(con):  # nothing new: nothing is written, not even the audit's row
            return load_report(con, load_id, [d.label for d in found], rejected)
        from drg_etl.fhir.store import rebuilt_patients, refresh_fhir
        from drg_etl.pipeline.marts import refresh_marts
        from drg_etl.pipeline.parallel import prefetched
        from drg_etl.pipeline.write import write_pending

        if progress:
            progress(f"reading {len(new)} new deliveries")
        staged: dict[str, StageResult] = {}
        with prefetched(new, key) as reader:
            for center in CENTERS if reader is None else reader.ready_centers(CENTERS):  # as the workers finish
                stop_if_interrupted()
                if progress:
                    progress(f"staging {center}")
                staged[center] = stage_center(inbox, center, con, pseudonymize, load_id, reader,
                                              deliveries=found, accept_quarantine=accept_quarantine)
        for center in CENTERS:
            skipped += staged[center].skipped
            rejected += staged[center].rejected
        stop_if_interrupted()  # a signal a library swallowed while the last center was staged: nothing is written
        if progress:
            progress("writing")
        write_pending(con, load_id)
        if progress:
            progress("building the FHIR layer")
        refresh_fhir(con, strict=strict)
        if progress:
            progress("building the marts")
        refresh_marts(con, rebuilt_patients(con))
        if progress:
            progress("checkpointing")
        finish_load(con, load_id)
        _keep_file_hashes(con)
        con.execute("checkpoint")
        con.execute("update quality.loads set skipped = ? where load_id = ?", [len(skipped), load_id])
        return load_report(con, load_id, skipped, rejected)
    finally:
        con.close()
