"""``drg-etl pull redcap``: rh's delivery through REDCap's API (pull.md), with plain httpx.

The calls, in order: ``version``, ``project``, ``metadata``, ``formEventMapping``,
``repeatingFormsEvents``, ``record`` (flat CSV, raw codes). Incrementally, ``record`` with
``dateRangeBegin`` (the last pull's export time less an overlap, in the server's local time) and
``log`` of ``record_delete`` since then; the changed records replace theirs in the last delivery, the
deleted go, and the whole is written, so an incremental pull gives a full one's bytes. Every answer's
status and shape are checked here: an HTML error page is never taken for data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from drg_etl import __version__
from drg_etl.core.cpr import scrub_cpr
from drg_etl.core.delivery import REGISTRY_ZONE
from drg_etl.core.errors import UsageError
from drg_etl.core.formats import FORMATS, REDCAP_API_METADATA_COLUMNS, REDCAP_DICTIONARY_COLUMNS
from drg_etl.pull.http import (
    CredentialRefused,
    PullError,
    RetryBudget,
    http_date,
    new_client,
    public_url,
    with_retries,
)
from drg_etl.pull.result import PullResult
from drg_etl.pull.snapshot import Snapshot, describe, land, sha256_text, write_text_file
from drg_etl.pull.state import PullState, pull_lock

CENTER = "rh"
TOKEN = "DRG_ETL_REDCAP_TOKEN"
TOKEN_SHAPE = re.compile(r"^[0-9A-Fa-f]{32}$")
OVERLAP = dt.timedelta(hours=1)  # dateRangeBegin reaches this far behind the last export (clocks, DST)
SERVER_TIME = "%Y-%m-%d %H:%M:%S"  # REDCap's dateRangeBegin/End
LOG_TIME = "%Y-%m-%d %H:%M"  # REDCap's log beginTime/endTime
PART = "export"
DOWNLOAD_ATTEMPTS = 3
BOM = "\ufeff"


def token_from_environment(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The project's API token (32 hex characters) from ``DRG_ETL_REDCAP_TOKEN``; never echoed."""
    value = (os.environ if environ is None else environ).get(TOKEN, "").strip()
    if not value:
        raise UsageError(f"set {TOKEN}: the REDCap project's API token with export rights (pull.md)")
    if not TOKEN_SHAPE.match(value):
        raise UsageError(f"{TOKEN} is not a REDCap API token (32 hexadecimal characters)")
    return value


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix(BOM), newline="")))


def format_row(values: Iterable[str]) -> str:
    """One CSV record as the delivery writes it (``,``, minimal quoting), without its line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="", quoting=csv.QUOTE_MINIMAL).writerow(list(values))
    return buffer.getvalue()


@dataclass
class RedcapApi:
    """REDCap's API at ``url`` with a project token: form-encoded POSTs, every answer checked."""

    url: str
    token: str = field(repr=False)
    budget: RetryBudget = field(default_factory=RetryBudget)
    http: httpx.Client = field(default_factory=new_client)
    last_date: dt.datetime | None = None  # the server's clock (Date header) at the last answer

    def call(self, content: str, expect: str, *, stream: bool = False, **params: str) -> httpx.Response:
        """POST ``content=...``; a refused token is named, any other error says what the server said.

        ``stream``: the body is left unread (the caller streams it to disk and checks it there).
        """
        form = {"token": self.token, "content": content, "returnFormat": "json", **params}

        def send() -> httpx.Response:
            request = self.http.build_request("POST", self.url, data=form,
                                              headers={"Accept": "text/csv, application/json, text/plain"})
            response = self.http.send(request, stream=stream)
            if response.status_code != 200:
                response.read()  # an error's body is read here, where a broken connection is asked again
            return response

        response = with_retries(send, self.budget, f"REDCap's API ({content})")
        if response.status_code in (401, 403):
            raise CredentialRefused(
                f"REDCap refused the token ({content}: HTTP {response.status_code}, {_error_text(response)}): check "
                f"{TOKEN} (the project's API token{' with export rights' if response.status_code == 403 else ''})")
        if response.status_code != 200:
            raise RedcapRefused(f"REDCap's API ({content}) answered HTTP {response.status_code}: "
                                f"{_error_text(response)}; nothing was written", _error_text(response))
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "text/html" or (not stream and response.text.lstrip().lower().startswith(("<!doctype", "<html"))):
            response.close()
            raise PullError(f"REDCap's API ({content}) answered an HTML page, not {expect} (is --url the API's "
                            "address, ending in /api/?); nothing was written")
        self.last_date = http_date(response.headers.get("Date")) or self.last_date
        return response

    def json(self, content: str, **params: str) -> Any:
        """A JSON answer (an ``{"error": ...}`` body is the server's refusal)."""
        response = self.call(content, "JSON", format="json", **params)
        try:
            body = response.json()
        except ValueError as exc:
            raise PullError(f"REDCap's API ({content}) answered something that is not JSON") from exc
        if isinstance(body, dict) and "error" in body:
            raise PullError(f"REDCap's API ({content}): {scrub_cpr(str(body['error']))[:300]}")
        return body

    def csv(self, content: str, first_columns: tuple[str, ...], **params: str) -> list[list[str]]:
        """A CSV answer, its header checked to begin with ``first_columns``."""
        response = self.call(content, "CSV", format="csv", **params)
        text = response.text
        if text.lstrip().startswith("{"):
            try:
                error = orjson.loads(text).get("error")
            except (orjson.JSONDecodeError, AttributeError):
                error = None
            if error:
                raise PullError(f"REDCap's API ({content}): {scrub_cpr(str(error))[:300]}")
        rows = _csv_rows(text)
        if not rows and not first_columns:
            return rows
        if not rows or tuple(rows[0][: len(first_columns)]) != first_columns:
            raise PullError(f"REDCap's API ({content}) answered a CSV without the columns "
                            f"{', '.join(first_columns)}; nothing was written")
        width = len(rows[0])
        if bad := next((n for n, row in enumerate(rows[1:], start=2) if len(row) != width), None):
            raise PullError(f"REDCap's API ({content}): CSV row {bad} has {len(rows[bad - 1])} values for {width} "
                            "columns (a cut-off answer?); nothing was written")
        return rows

    def csv_file(self, content: str, first_columns: tuple[str, ...], path: Path,
                 **params: str) -> tuple[list[str], int]:
        """A CSV answer streamed to ``path`` (memory stays flat) and checked there; its header and row count.

        An answer that breaks off is asked for again (3 times).
        """
        problem = ""
        for _attempt in range(DOWNLOAD_ATTEMPTS):
            response = self.call(content, "CSV", stream=True, format="csv", **params)
            try:
                with path.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            except httpx.TransportError as exc:
                problem = f"the answer broke off ({type(exc).__name__})"
                continue
            finally:
                response.close()
            return check_csv_file(path, content, first_columns)
        raise PullError(f"REDCap's API ({content}): {problem} in {DOWNLOAD_ATTEMPTS} attempts; nothing was written")


def _file_rows(path: Path) -> Iterator[list[str]]:
    """A CSV file's rows (header first), read as a stream."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        yield from csv.reader(handle)


def check_csv_file(path: Path, content: str, first_columns: tuple[str, ...]) -> tuple[list[str], int]:
    """The header and row count of a CSV answer on disk, every row checked to be as wide as the header.

    An ``{"error": ...}`` body or an HTML page is the server's refusal, never data.
    """
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        start = handle.read(2048).lstrip()
    if not start:
        return [], 0  # REDCap may answer an export without records with nothing at all
    if start.startswith("{"):
        try:
            error = orjson.loads(path.read_bytes()).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        raise PullError(f"REDCap's API ({content}): {scrub_cpr(str(error or 'an answer in JSON, not CSV'))[:300]}")
    if start.lower().startswith(("<!doctype", "<html")):
        raise PullError(f"REDCap's API ({content}) answered an HTML page, not CSV; nothing was written")
    rows = _file_rows(path)
    header = next(rows, [])
    if tuple(header[: len(first_columns)]) != first_columns:
        raise PullError(f"REDCap's API ({content}) answered a CSV without the columns "
                        f"{', '.join(first_columns)}; nothing was written")
    count = 0
    for count, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise PullError(f"REDCap's API ({content}): CSV row {count + 1} has {len(row)} values for "
                            f"{len(header)} columns (a cut-off answer?); nothing was written")
    return header, count


class RedcapRefused(PullError):
    """REDCap answered a request with an error (400 and the like); ``error`` is its message."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("error"):
            return scrub_cpr(str(body["error"]))[:300]
    except ValueError:
        pass
    return f"HTTP {response.status_code}"


@dataclass
class Design:
    """What the project's design fixes for the delivery: its dictionary, event order, record id field."""

    dictionary: list[list[str]]
    events: list[str]
    forms: dict[str, int]  # the instruments in the project's order
    record_field: str
    sha256: str


def read_design(api: RedcapApi, project: dict[str, Any]) -> Design:
    """The data dictionary (mapped from the API's headers to the web export's) and the events' order."""
    metadata = api.csv("metadata", REDCAP_API_METADATA_COLUMNS)
    header = metadata[0]
    if tuple(header) != REDCAP_API_METADATA_COLUMNS:
        raise PullError("REDCap's metadata has other columns than REDCap's API documents: "
                        f"{', '.join(c for c in header if c not in REDCAP_API_METADATA_COLUMNS) or 'fewer'}")
    if len(metadata) < 2:
        raise PullError("REDCap's metadata lists no field")
    events: list[str] = []
    if str(project.get("is_longitudinal", "0")) == "1":
        mapping = api.csv("formEventMapping", ("arm_num", "unique_event_name", "form"))
        events = list(dict.fromkeys(row[1] for row in mapping[1:]))
    repeating: list[list[str]] = []
    if str(project.get("has_repeating_instruments_or_events", "0")) == "1":
        repeating = api.csv("repeatingFormsEvents", ("event_name", "form_name"))
    dictionary = [list(REDCAP_DICTIONARY_COLUMNS), *metadata[1:]]
    design_text = "\n".join(format_row(r) for r in [*dictionary, ["events", *events], *repeating])
    forms = {form: n for n, form in enumerate(dict.fromkeys(row[1] for row in metadata[1:]))}
    return Design(dictionary, events, forms, metadata[1][0], sha256_text(design_text))


def _natural(value: str) -> str:
    """A sort key that orders record ids and instances as numbers where they are numbers."""
    return f"0{int(value):020d}" if value.isdigit() else f"1{value}"


def _order(row: list[str], events: dict[str, int], forms: dict[str, int]) -> str:
    """REDCap's order of the flat export: record, event, then the repeating instrument (in the project's form
    order, the plain row first) and its instance."""
    record, event, instrument, instance = ([*row, "", "", "", ""])[:4]
    return "\x1f".join((_natural(record), f"{events.get(event, len(events)):04d}", event,
                        f"{forms.get(instrument, -1) + 1:04d}", instrument, _natural(instance) if instance else ""))


def _rows(rows: Iterable[list[str]], design: Design) -> Iterator[tuple[str, str, str, str]]:
    events = {name: n for n, name in enumerate(design.events)}
    for row in rows:
        yield PART, row[0], _order(row, events, design.forms), format_row(row)


def deleted_records(api: RedcapApi, since_local: str) -> list[str]:
    """Record ids REDCap's log says were deleted since ``since_local`` (server-local time)."""
    entries = api.json("log", logtype="record_delete", beginTime=since_local[:16])
    ids = []
    for entry in entries if isinstance(entries, list) else []:
        record = str(entry.get("record") or "").strip()
        if not record:
            found = re.search(r"record\s+(\S+)", str(entry.get("action", "")), re.IGNORECASE)
            record = found.group(1) if found else ""
        if record:
            ids.append(record)
    return ids


def pull_redcap(inbox: Path, url: str, token: str, *, full: bool = False, center: str = CENTER,
                server_timezone: str = "Europe/Copenhagen", budget: RetryBudget | None = None) -> PullResult:
    """Pull the center's REDCap project into ``INBOX/<center>/<cutoff>/``, whole, incrementally where it can."""
    if center != CENTER:
        raise PullError(f"the REDCap pull writes {CENTER}'s delivery (extracts.md); {center} delivers otherwise")
    server_zone = ZoneInfo(server_timezone)
    with pull_lock(inbox, center) as work, new_client() as http:
        api = RedcapApi(url, token, budget or RetryBudget(), http)
        state = PullState.load(inbox, center)
        version = api.call("version", "text").text.strip()[:40]
        project = api.json("project")
        if not isinstance(project, dict):
            raise PullError("REDCap's project information is not a JSON object")
        design = read_design(api, project)
        source = {"url": public_url(url), "design_sha256": design.sha256,
                  "project_id": str(project.get("project_id", ""))}
        base = None if full or state.source != source else state.base_folder(inbox)
        since_local = None
        params = {"type": "flat", "rawOrLabel": "raw", "rawOrLabelHeaders": "raw", "exportCheckboxLabel": "false",
                  "exportDataAccessGroups": "true"}
        if base is not None and state.watermark:
            since = dt.datetime.fromisoformat(state.watermark) - OVERLAP
            since_local = since.astimezone(server_zone).strftime(SERVER_TIME)
            params["dateRangeBegin"] = since_local
        received = work / "records.csv"
        try:
            header, received_rows = api.csv_file("record", (design.record_field,), received, **params)
        except RedcapRefused as refused:
            if "data access group" not in refused.error.lower():
                raise
            # REDCap 14 refuses exportDataAccessGroups to a token without Data Access Groups rights
            params["exportDataAccessGroups"] = "false"
            header, received_rows = api.csv_file("record", (design.record_field,), received, **params)
        exported = api.last_date or dt.datetime.now(dt.UTC)
        deleted = deleted_records(api, since_local) if since_local else []
        fmt = FORMATS[center]
        data_name = fmt.file("export").file_name(exported.astimezone(REGISTRY_ZONE).date())
        snapshot = Snapshot(work / "snapshot.duckdb")
        try:
            if base is not None:
                old = _file_rows(base / state_data_file(state))
                old_header = next(old, [])
                header = header or old_header  # nothing changed: an empty answer
                if old_header != header:
                    raise PullError("the export's columns differ from the last delivery's with an unchanged "
                                    "design; pull with --full")
                snapshot.add(_rows(old, design))
            if not header:
                raise PullError("REDCap's API (record) answered no records at all; nothing was written")
            snapshot.stage(_rows(islice(_file_rows(received), 1, None), design))
            changes = snapshot.apply((PART, record) for record in deleted)
            if twice := snapshot.duplicates():
                raise PullError(f"REDCap exported one row twice (order key {twice[0][1]!r}); nothing was written")
            staged = work / "delivery"
            staged.mkdir()
            write_text_file(staged / data_name, snapshot.lines(PART), head=BOM + format_row(header) + "\n")
            counts = {data_name: snapshot.count(PART)}
        finally:
            snapshot.close()
        cutoff = exported.astimezone(REGISTRY_ZONE).date()
        dictionary_name = fmt.file("dictionary").file_name(cutoff)
        write_text_file(staged / dictionary_name, (format_row(r) for r in design.dictionary), head=BOM)
        counts[dictionary_name] = len(design.dictionary) - 1
        mode = "incremental" if since_local else "full"
        written = describe(staged, counts, counts)
        record = {
            "center": center, "kind": "redcap-api", "drg_etl": __version__,
            "source": {"url": public_url(url), "server": {"software": "REDCap", "version": version},
                       "project_id": project.get("project_id"), "project_title": scrub_cpr(str(
                           project.get("project_title", "")))[:200]},
            "request": {"calls": ["version", "project", "metadata", "formEventMapping", "repeatingFormsEvents",
                                  "record", *(["log"] if since_local else [])],
                        **{k: v for k, v in params.items()}, "logtype": "record_delete" if since_local else None},
            "mode": mode, "export_time": exported.isoformat(timespec="seconds"),
            "pulled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "received": {"rows": received_rows, "records_deleted": len(deleted),
                         "design_sha256": design.sha256},
            "changes": changes if mode == "incremental" else None,
            "files": {w.name: {"records": w.records, "sha256": w.sha256} for w in written},
            "retry_waits": len(api.budget.waits),
        }
        landed = land(staged, inbox, center, cutoff, record, list(counts))
        notes = [] if landed.written else [f"nothing changed since the delivery of {cutoff}: nothing was written"]
        state.watermark = exported.isoformat()
        state.cutoff = landed.folder.name
        state.files = {w.name: w.sha256 for w in describe(landed.folder, counts, counts)}
        state.source = source
        state.save(inbox)
        return PullResult(center, landed.folder, landed.written, landed.replaced, mode, counts, record, notes)


def state_data_file(state: PullState) -> str:
    """The export file of the delivery the state names."""
    return next(name for name in state.files if name.startswith("DRGDK_DATA_"))
