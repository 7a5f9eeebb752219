"""What the test modules share, apart from fixtures (those are in conftest.py, built from these).

Generated inboxes and loaded warehouses, the test key, the CLI in a subprocess, warehouse snapshots,
new deliveries and the whole-file faults planted in them, every CPR of an inbox, a hand-built warehouse,
a hand-written delivery read with the library's entry point (the reader unit tests), and the state of the
checkout (tests must not write into it). ``[tool.pytest.ini_options] pythonpath`` puts this folder
on ``sys.path``: test modules ``import helpers`` under ``pytest`` and ``python -m pytest``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from drg_etl.core.cpr import parse_cpr
from drg_etl.core.delivery import Delivery, DeliveryRejected, Issue
from drg_etl.core.model import TABLES
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.sources.base import FileCount, StagedDelivery
from drg_etl.sources.deliveries import read_delivery
from drg_etl.synth.generate import GenerateResult, generate

if TYPE_CHECKING:
    from drg_etl.pipeline.load import LoadReport

ROOT = Path(__file__).resolve().parents[1]  # the checkout
CUTOFF = "2019-12-31"  # the cutoff of every generated delivery
CUTOFF_DATE = dt.date.fromisoformat(CUTOFF)  # the same, as a date: the default cutoff of a hand-written delivery
TEST_KEY = b"5f0c3e9a7d1b42c8e6a09f3b71d4c2e85a6f1039bd7e24c6f8a5b3d0e19c7a42"  # hex, as cli.md asks


# -- generated inboxes and loaded warehouses -------------------------------------------------------------


@dataclass
class Generated:
    """An inbox the generator wrote, with its truth."""

    inbox: Path
    truth: dict[str, Any]
    result: GenerateResult

    def folder(self, center: str) -> Path:
        """The center's delivery folder."""
        return self.inbox / center / CUTOFF

    def persons_at(self, center: str) -> list[dict[str, Any]]:
        """Truth persons with records at a center."""
        return [p for p in self.truth["patients"] if center in p["centers"]]

    def defects_in(self, file: str) -> list[dict[str, Any]]:
        """Injected defects listed for a file (or sheet)."""
        return [d for d in self.truth["defects"] if d["file"] == file]

    def defect_rows(self, file: str) -> set[int]:
        """Row numbers of the injected defects of a file."""
        return {d["row"] for d in self.defects_in(file)}


@dataclass
class Loaded:
    """A generated inbox loaded into a warehouse."""

    gen: Generated
    warehouse: Path
    report: LoadReport


def generate_inbox(base: Path, **options: Any) -> Generated:
    """Generate an inbox in ``base/inbox`` and its truth in ``base/truth.json`` (options as ``generate``'s)."""
    inbox, truth = base / "inbox", base / "truth.json"
    result = generate(inbox, truth=truth, **options)
    return Generated(inbox, json.loads(truth.read_text(encoding="utf-8")), result)


def copy_of(loaded: Loaded, folder: Path) -> Path:
    """A copy of a loaded warehouse (its marts included: the load builds them) in ``folder``, to change freely."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(loaded.warehouse, folder / "wh.duckdb"))


def load_generated(gen: Generated, base: Path) -> Loaded:
    """Load a generated inbox into a new warehouse, ``base/warehouse.duckdb``, under the test key."""
    from drg_etl.pipeline.load import load_inbox

    path = base / "warehouse.duckdb"
    return Loaded(gen, path, load_inbox(gen.inbox, path, TEST_KEY))


# -- the CLI in a subprocess --------------------------------------------------------------------------------


def run_cli(*args: str, key: str | None = TEST_KEY.decode(), **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m drg_etl.cli ARGS`` in a subprocess, its output captured as text.

    The pseudonym key is ``key`` (``None``: DRG_ETL_PSEUDONYM_KEY unset, even when the caller's environment
    sets it); the terminal is 250 columns wide, so that a message is one line; ``env`` adds variables.
    """
    environment = {k: v for k, v in os.environ.items() if k != "DRG_ETL_PSEUDONYM_KEY"} | {"COLUMNS": "250"} | env
    if key is not None:
        environment["DRG_ETL_PSEUDONYM_KEY"] = key
    return subprocess.run([sys.executable, "-m", "drg_etl.cli", *args], capture_output=True, text=True,
                          env=environment)


# -- warehouse snapshots ------------------------------------------------------------------------------------

SNAPSHOT_TABLES = ["canonical.patients", "canonical.procedures", "canonical.devices", "canonical.measurements",
                   "canonical.complications", "quality.quarantine", "staging.source_records", "quality.deliveries",
                   "quality.delivery_files"]


@contextmanager
def reading(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a warehouse, closed after use."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of the warehouse's data and audit tables (SNAPSHOT_TABLES), sorted; load times left out."""
    with reading(path) as con:
        return {t: sorted(con.execute(f"select * exclude (loaded_at) from {t}" if t == "quality.deliveries"
                                      else f"select * from {t}").fetchall(), key=repr) for t in SNAPSHOT_TABLES}


def digest(path: Path) -> dict[str, list[tuple]]:
    """The snapshot without the load ids (a uuid per load): equal for equal content however it was loaded."""
    out = snapshot(path)
    out["quality.deliveries"] = sorted((r[:4] + r[5:] for r in out["quality.deliveries"]), key=repr)
    return out


def current_rows(path: Path, center: str | None = None) -> dict[str, list[tuple]]:
    """The rows in force of each canonical table (of one center, or all), without their delivery id, sorted."""
    from drg_etl.core.model import TABLES

    where = "" if center is None else "where center = ? "
    with reading(path) as con:
        return {t: con.execute(f"select * exclude (delivery_id) from canonical.current_{t} {where}order by all",
                               [] if center is None else [center]).fetchall() for t in TABLES}


# -- new deliveries and the whole-file faults planted in them --------------------------------------------------


def new_delivery(inbox: Path, center: str, cutoff: str = "2020-03-31") -> Path:
    """A new delivery of a center, a copy of its current one (rh's file renamed to the new cutoff)."""
    source = inbox / center / CUTOFF
    target = inbox / center / cutoff
    shutil.copytree(source, target)
    if center == "rh":
        (target / f"DRGDK_DATA_{CUTOFF}.csv").rename(target / f"DRGDK_DATA_{cutoff}.csv")
    return target


def utf8_instead_of_cp1252(folder: Path) -> None:
    """auh's demographics re-encoded as UTF-8."""
    path = folder / "patienter.csv"
    path.write_bytes(path.read_bytes().decode("cp1252").encode("utf-8"))


def comma_delimiter(folder: Path) -> None:
    """auh's PROM file separated by commas."""
    path = folder / "prom.csv"
    path.write_bytes(path.read_bytes().replace(b",", b".").replace(b";", b","))


def missing_column(folder: Path) -> None:
    """auh's PROM file without its last column."""
    path = folder / "prom.csv"
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    path.write_bytes("\r\n".join(line.rsplit(";", 1)[0] for line in lines if line).encode("cp1252") + b"\r\n")


def truncated(folder: Path) -> None:
    """auh's device file cut in the middle of a record."""
    path = folder / "udstyr.csv"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2 + 7])


def empty_file(folder: Path) -> None:
    """auh's complications file empty."""
    (folder / "komplikationer.csv").write_bytes(b"")


def missing_file(folder: Path) -> None:
    """auh's procedures file missing."""
    (folder / "procedurer.csv").unlink()


def broken_workbook(folder: Path) -> None:
    """ouh's workbook cut short."""
    path = folder / "DRG_registrering.xlsx"
    path.write_bytes(path.read_bytes()[:3000])


def non_json_line(folder: Path) -> None:
    """aauh's observations ending in a line that is not JSON."""
    with (folder / "Observation.ndjson").open("a", encoding="utf-8") as handle:
        handle.write('{"resourceType": "Observation", "id": "x1", \n')


def not_fhir_line(folder: Path) -> None:
    """aauh's devices ending in a line that is JSON, not FHIR R4."""
    with (folder / "Device.ndjson").open("a", encoding="utf-8") as handle:
        handle.write('{"resourceType": "Device", "id": "d1", "status": 17, "bogusElement": true}\n')


def rh_semicolons(folder: Path) -> None:
    """rh's REDCap export separated by semicolons."""
    path = folder / "DRGDK_DATA_2020-03-31.csv"
    path.write_bytes(path.read_bytes().replace(b",", b";"))


# (center, fault, the file rejected, its rule, words of the reason)
FAULTS: list[tuple[str, Callable[[Path], None], str, str, str]] = [
    ("auh", utf8_instead_of_cp1252, "patienter.csv", "file.encoding", "UTF-8"),
    ("auh", comma_delimiter, "prom.csv", "file.delimiter", "separated by ','"),
    ("auh", missing_column, "prom.csv", "file.columns", "missing column(s) ['PCS']"),
    ("auh", truncated, "udstyr.csv", "file.empty", "truncated"),
    ("auh", empty_file, "komplikationer.csv", "file.empty", "empty"),
    ("auh", missing_file, "procedurer.csv", "file.missing", "missing"),
    ("ouh", broken_workbook, "DRG_registrering.xlsx", "file.unreadable", "cannot be opened"),
    ("aauh", non_json_line, "Observation.ndjson", "file.ndjson", "is not JSON"),
    ("aauh", not_fhir_line, "Device.ndjson", "file.ndjson", "not valid FHIR R4"),
    ("rh", rh_semicolons, "DRGDK_DATA_2020-03-31.csv", "file.delimiter", "';'"),
]


# -- every CPR of an inbox ------------------------------------------------------------------------------------

CPR_SHAPE = re.compile(r"(?<![\w-])(\d{6})-?(\d{4})(?![\w-])")


def all_cprs(gen: Generated) -> set[str]:
    """Every CPR in the inbox, with and without hyphen: the truth's and any CPR-shaped value in the files."""
    import openpyxl

    out = set()
    for p in gen.truth["patients"]:
        out |= {p["cpr"], f"{p['cpr'][:6]}-{p['cpr'][6:]}"}
    texts = [p.read_bytes().decode("cp1252" if p.parent.parent.name == "auh" else "utf-8", errors="replace")
             for p in gen.inbox.rglob("*") if p.is_file() and p.suffix in (".csv", ".ndjson")]
    workbook = openpyxl.load_workbook(next(gen.inbox.rglob("*.xlsx")), read_only=True)
    texts += [str(row[0]) for sheet in workbook for row in sheet.iter_rows(values_only=True)]
    for text in texts:
        for head, tail in CPR_SHAPE.findall(text):
            out |= {head + tail, f"{head}-{tail}"}
    return out


# -- a warehouse built by hand --------------------------------------------------------------------------------

KEY = "a" * 64  # the patient key of a Tiny warehouse's patient
LINEAGE = {"cutoff": dt.date(2019, 12, 31), "source_file": "hand", "source_row": 2}


class Tiny:
    """A warehouse built from a few hand-written canonical facts, read through the FHIR layer."""

    def __init__(self, path: Path) -> None:
        from drg_etl.pipeline.warehouse import connect

        self.con = connect(path)
        self.deliveries: set[str] = set()

    def _delivery(self, center: str) -> str:
        if center not in self.deliveries:
            self.con.execute("insert into quality.deliveries values (?, ?, date '2019-12-31', 'in_force', 'l', "
                             "now(), 'test', null)", [f"d-{center}", center])
            self.deliveries.add(center)
        return f"d-{center}"

    def add(self, table: str, center: str, **values: Any) -> Tiny:
        """A fact of ``canonical.<table>`` at a center (its delivery made on first use)."""
        row = {"delivery_id": self._delivery(center), "center": center, **LINEAGE, "patient_key": KEY, **values}
        columns = ", ".join(row)
        self.con.execute(f"insert into canonical.{table} ({columns}) values ({', '.join('?' * len(row))})",
                         list(row.values()))
        return self

    def patient(self, center: str, key: str = KEY) -> Tiny:
        """A patient's demographics at a center."""
        return self.add("patients", center, patient_key=key, sex="female", birth_year=1960,
                        pain_location="lower_extremity", diagnosis="crps_1", recorded_sex="female")

    def procedure(self, center: str, kind: str, day: str, **extra: Any) -> Tiny:
        """A procedure on a day."""
        return self.add("procedures", center, procedure=kind, date=dt.date.fromisoformat(day), **extra)

    def trial(self, center: str, day: str) -> Tiny:
        """A successful ten-day trial starting on a day."""
        start = dt.date.fromisoformat(day)
        return self.procedure(center, "trial", day, end_date=start + dt.timedelta(days=10), trial_success=True)

    def lead(self, center: str, ref: str, placed: str, status: str = "active", status_date: str | None = None,
             level: str = "L5", side: str = "left") -> Tiny:
        """A lead placed on a day, with its status (as of ``status_date``)."""
        return self.add("devices", center, device_ref=ref, device_type="lead", serial=ref,
                        placed_date=dt.date.fromisoformat(placed), level=level, side=side, status=status,
                        status_date=dt.date.fromisoformat(status_date or placed))

    def measure(self, center: str, day: str, value: float, timepoint: str | None, measure: str = "nrs_average",
                ) -> Tiny:
        """A score on a day."""
        return self.add("measurements", center, date=dt.date.fromisoformat(day), timepoint=timepoint,
                        measure=measure, value=value)

    def analyze(self, end: str = "2019-12-31") -> dict[str, Any]:
        """Rebuild the FHIR layer and the marts and compute the national analysis as of ``end``."""
        from drg_etl.analysis.national import national_analysis
        from drg_etl.fhir.store import refresh_fhir
        from drg_etl.pipeline.marts import refresh_marts

        refresh_fhir(self.con, full=True)
        refresh_marts(self.con)
        return national_analysis(self.con, dt.date.fromisoformat(end))


# -- a hand-written delivery read with the library's entry point (the reader unit tests) ------------------


@dataclass
class ReadOutcome:
    """What the reader streamed to its sink: facts per table (as dicts, lineage file and row kept) and issues.

    ``resource_ids``: the findings name the FHIR resource of each issue too (aauh's NDJSON lines).
    """

    facts: dict[str, list[dict[str, Any]]]
    issues: list[Issue]
    counts: dict[str, FileCount]
    resource_ids: bool = False

    def findings(self) -> list[tuple[Any, ...]]:
        """Every issue as (file, row, column, rule id), or (file, line, column, rule id, resource id)."""
        if self.resource_ids:
            return [(i.file, i.row, i.column, i.rule_id, i.resource_id) for i in self.issues]
        return [(i.file, i.row, i.column, i.rule_id) for i in self.issues]

    def rows(self, table: str) -> list[int]:
        """The source rows (an NDJSON file's lines) that gave a fact of ``table``."""
        return [f["source_row"] for f in self.facts[table]]

    def kinds(self, table: str, column: str) -> list[Any]:
        """One column of a table's facts, in reading order."""
        return [f[column] for f in self.facts[table]]


def fact_rows(batch: StagedDelivery) -> dict[str, list[dict[str, Any]]]:
    """A batch's facts by table, each a row of its staging table's columns (but the delivery's id and cutoff), in
    the order the reader gave them: those read record by record, then those read as a set (Arrow frames)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for table, facts in batch.facts.items():
        columns = ["center", "source_file", "source_row", *TABLES[table].fact_columns, "fact_seq"]
        rows[table] = [dict(zip(columns, fact, strict=True)) for fact in facts]
    for kind, frame in batch.frames:
        if kind in TABLES:
            rows[kind] += frame.to_pylist()
    for table in rows:
        rows[table].sort(key=lambda row: row["fact_seq"])
    return rows


def read_delivery_facts(center: str, folder: Path, key: bytes, cutoff: dt.date = CUTOFF_DATE, *,
                        resource_ids: bool = False) -> ReadOutcome:
    """Read a center's delivery in ``folder`` under the pseudonym ``key`` with the library's entry point,
    :func:`drg_etl.sources.deliveries.read_delivery`, collecting every batch the sink receives
    (``resource_ids``: see :class:`ReadOutcome`)."""
    facts: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    issues: list[Issue] = []

    def sink(batch: StagedDelivery) -> None:
        for table, rows in fact_rows(batch).items():
            facts[table] += [{k: v for k, v in row.items() if k not in ("center", "fact_seq")} for row in rows]
        issues.extend(batch.issues)

    staged = read_delivery(Delivery(center, cutoff, folder), Pseudonymizer(key), sink)
    return ReadOutcome(facts, issues, staged.counts, resource_ids)


def rejected_by(center: str, folder: Path, key: bytes,
                cutoff: dt.date = CUTOFF_DATE) -> list[tuple[str, str]]:
    """The (file, rule id) pairs of a center's delivery that the reader must reject (the test fails if it does not)."""
    with pytest.raises(DeliveryRejected) as caught:
        read_delivery_facts(center, folder, key, cutoff)
    return [(r.file, r.rule_id) for r in caught.value.rejections]


def pseudonym_of(cpr: str, key: bytes) -> str:
    """The patient key the reader must give a CPR number under the pseudonym ``key``."""
    return Pseudonymizer(key)(parse_cpr(cpr))


# -- the checkout: tests write nowhere in it ----------------------------------------------------------------


CheckoutState = dict[str, tuple[str, int, int]]  # path -> (git's two status letters, size, mtime in ns)


SCREENSHOT = ROOT / "docs" / "report.png"  # the README's picture of the report, taken by test_report.py


def updating_screenshot() -> bool:
    """Whether test_report.py is to refresh SCREENSHOT (DRG_ETL_UPDATE_SCREENSHOT=1); it writes under tmp otherwise."""
    return os.environ.get("DRG_ETL_UPDATE_SCREENSHOT") == "1"


def checkout_state(root: Path = ROOT) -> CheckoutState | None:
    """What ``git status`` reports of the checkout: every changed or untracked file with its status, size and
    modification time (files git ignores left out); ``None`` when git cannot say (no git, no repository at the
    checkout's root)."""
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return None
    top = subprocess.run([git, "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        return None
    done = subprocess.run([git, "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all",
                           "--no-renames"], cwd=root, capture_output=True)
    if done.returncode != 0:
        return None
    state: CheckoutState = {}
    for entry in done.stdout.decode("utf-8", errors="surrogateescape").split("\0"):
        if entry:
            path = root / entry[3:]
            stat = path.stat() if path.is_file() else None
            state[entry[3:]] = (entry[:2], stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1)
    return state
