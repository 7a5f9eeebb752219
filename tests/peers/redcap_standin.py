"""A stand-in for REDCap's API, on 127.0.0.1, for tests of the REDCap pull (pull.md "REDCap").

REDCap is licensed software and not available here, so this speaks the API the way REDCap documents and
implements it, for the calls the pull makes, over a project built from a generated rh delivery
(:meth:`RedcapProject.from_delivery`):

- Only a form-encoded ``POST /api/`` is served. Any other method answers 501 with REDCap's error body
  (REDCap's ``RestUtility::processRequest`` does so; a GET therefore gets
  ``<?xml ...?><hash><error>The requested method is not implemented.</error></hash>``). ``/api`` without
  its slash is redirected (301) as Apache does; any other path is Apache's 404 page.
- ``format`` is json, csv, odm or else xml; errors come back in ``returnFormat``, which defaults to the
  request's ``format`` and else xml (REDCap's ``API/index.php``): ``{"error":"..."}``, ``ERROR: ...`` or
  ``<?xml version="1.0" encoding="UTF-8" ?><hash><error>...</error></hash>``.
- A missing, malformed (not 32 upper-case hex characters) or unknown token is refused with the status the
  API documentation gives for it, 401 ("API token was missing or incorrect"; ``invalid_token_status``
  switches to the 403 REDCap's code actually answers), with the body REDCap's code gives it: "You do
  not have permissions to use the API". A token without API export rights gets 403 "You do not have API
  Export privileges".
- Arrays come as ``fields[0]=a&fields[1]=b`` (PHP's arrays) or as ``fields=a,b``.
- The flat CSV is written as REDCap's PHP writes it (``fputcsv``): ``,`` between values, ``\\n`` after
  every line, a value quoted only when it holds the delimiter, a quote, a space, a tab, a backslash or a
  line break (quotes doubled), no byte order mark.
- ``exportDataAccessGroups=true`` adds ``redcap_data_access_group`` after the keys in a project with
  DAGs; a token without DAG rights gets 400 "Insufficient user privileges: ..." as REDCap 14 answers.
- Served: version, project, metadata, formEventMapping, event, arm, repeatingFormsEvents, instrument,
  record (flat, raw) and log. Anything else REDCap offers (imports, deletions, eav, labels,
  filterLogic, odm) is answered 400 with a message that starts "stand-in:", never silently wrong.

The server's clock is the project's :class:`Clock` (Europe/Copenhagen, REDCap's server-local time): it
stamps every record change, filters ``dateRangeBegin``/``dateRangeEnd`` and the log, and is the answer's
HTTP ``Date``. :class:`Faults` injects what a proxy or an overloaded server does (5xx with an HTML page,
429 with ``Retry-After``, a slow answer, an answer cut off mid-body). Tokens are never stored with the
requests (:attr:`RedcapStandin.requests`) nor logged.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import hashlib
import json
import re
import socket
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from drg_etl.core.formats import FORMATS, REDCAP_DICTIONARY_COLUMNS, REDCAP_KEYS, RedcapEvent

SERVER_ZONE = ZoneInfo("Europe/Copenhagen")  # REDCap's server-local time at Rigshospitalet
DEFAULT_VERSION = "14.5.10"
DEFAULT_TITLE = "DRG-DK Rigshospitalet"
DAG_COLUMN = "redcap_data_access_group"
RECORD_TIME = "%Y-%m-%d %H:%M:%S"  # dateRangeBegin / dateRangeEnd
LOG_TIME = "%Y-%m-%d %H:%M"  # the log's beginTime / endTime and its timestamps

# The API's metadata columns, one to one with the web export's (REDCAP_DICTIONARY_COLUMNS), in order.
METADATA_COLUMNS = (
    "field_name",
    "form_name",
    "section_header",
    "field_type",
    "field_label",
    "select_choices_or_calculations",
    "field_note",
    "text_validation_type_or_show_slider_number",
    "text_validation_min",
    "text_validation_max",
    "identifier",
    "branching_logic",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
)
WEB_TO_API = dict(zip(REDCAP_DICTIONARY_COLUMNS, METADATA_COLUMNS, strict=True))
API_TO_WEB = {api: web for web, api in WEB_TO_API.items()}

PROJECT_INFO_COLUMNS = (
    "project_id",
    "project_title",
    "creation_time",
    "production_time",
    "in_production",
    "project_language",
    "purpose",
    "purpose_other",
    "project_notes",
    "custom_record_label",
    "secondary_unique_field",
    "is_longitudinal",
    "has_repeating_instruments_or_events",
    "surveys_enabled",
    "scheduling_enabled",
    "record_autonumbering_enabled",
    "randomization_enabled",
    "ddp_enabled",
    "project_irb_number",
    "project_grant_number",
    "project_pi_firstname",
    "project_pi_lastname",
    "project_pi_email",
    "display_today_now_button",
    "missing_data_codes",
    "external_modules",
    "bypass_branching_erase_field_prompt",
)
LOG_COLUMNS = ("timestamp", "username", "action", "details", "record")
NOT_EXPORTED = frozenset({"descriptive"})  # field types REDCap never exports
TOKEN_FORMAT = re.compile(r"[0-9A-F]{32}")
CSV_DELIMITERS = {",": ",", "comma": ",", "tab": "\t", ";": ";", "|": "|", "^": "^"}

# REDCap's messages (RestUtility::sendResponse's defaults, API/index.php and the record export).
INVALID_TOKEN = "You do not have permissions to use the API"
NO_EXPORT_RIGHTS = "You do not have API Export privileges"
NO_DAG_RIGHTS = (
    "Insufficient user privileges: You must have 'API Export' privileges and 'Data Access Groups' "
    "privileges in the project."
)
NO_LOGGING_RIGHTS = "You do not have Logging privileges"  # wording not verified
INVALID_CONTENT = 'The value of the parameter "content" is not valid'
NOT_IMPLEMENTED = "The requested method is not implemented."
DEFAULT_MESSAGES = {
    400: "There were errors with your request.",
    401: "The API token was missing or incorrect",
    403: INVALID_TOKEN,
    500: "The server encountered an error processing your request.",
    501: NOT_IMPLEMENTED,
}
APACHE_TEXT = {
    301: 'The document has moved <a href="/api/">here</a>.',
    404: "The requested URL was not found on this server.",
    429: "The user has sent too many requests in a given amount of time.",
    500: "The server encountered an internal error or misconfiguration and was unable to complete your request.",
    502: "The proxy server received an invalid response from an upstream server.",
    503: (
        "The server is temporarily unable to service your request due to maintenance downtime or capacity "
        "problems. Please try again later."
    ),
    504: "The gateway did not receive a timely response from the upstream server or application.",
}


class RedcapError(Exception):
    """An API error: the HTTP status and REDCap's message (written in the request's ``returnFormat``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def make_token(label: str) -> str:
    """A REDCap-shaped token (32 upper-case hex characters) derived from ``label``, for tests."""
    return hashlib.sha256(f"redcap-standin:{label}".encode()).hexdigest()[:32].upper()


def natural_key(value: str) -> tuple[Any, ...]:
    """How REDCap orders record names: numbers as numbers, other names by their text and numbers."""
    if value.isdigit():
        return (0, int(value), "")
    parts = re.split(r"(\d+)", value.lower())
    return (1, 0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts))


def local_text(moment: dt.datetime, pattern: str) -> str:
    """An instant as REDCap's server writes it: server-local wall time."""
    return moment.astimezone(SERVER_ZONE).strftime(pattern)


def parse_local(text: str, pattern: str, name: str) -> dt.datetime:
    """A server-local time parameter; REDCap answers 400 to one it cannot read."""
    try:
        return dt.datetime.strptime(text.strip(), pattern).replace(tzinfo=SERVER_ZONE)
    except ValueError:
        layout = "YYYY-MM-DD HH:MM:SS" if pattern == RECORD_TIME else "YYYY-MM-DD HH:MM"
        raise RedcapError(400, f'The value of the parameter "{name}" is not a valid date/time ({layout})') from None


# -- REDCap's output formats ---------------------------------------------------------------------------------


def php_csv_value(value: str, delimiter: str = ",") -> str:
    """One value as PHP's ``fputcsv`` writes it (REDCap's CSV exports)."""
    if value and any(c in value for c in (delimiter, '"', " ", "\t", "\r", "\n", "\\")):
        return '"' + value.replace('"', '""') + '"'
    return value


def php_csv(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    delimiter: str = ",",
    always_quoted: frozenset[int] = frozenset(),
) -> str:
    """A CSV answer: the header, then the rows, every line ended by ``\\n``; ``always_quoted``: columns
    REDCap quotes whatever they hold (event and arm names)."""
    lines = [delimiter.join(php_csv_value(str(name), delimiter) for name in header)]
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = "" if value is None else str(value)
            quoted = f'"{text.replace(chr(34), chr(34) * 2)}"' if i in always_quoted and text else None
            cells.append(quoted or php_csv_value(text, delimiter))
        lines.append(delimiter.join(cells))
    return "\n".join(lines) + "\n"


def php_json(value: Any) -> str:
    """JSON as PHP's ``json_encode`` writes it: compact, ``/`` escaped, non-ASCII as ``\\uXXXX``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def _cdata(value: Any) -> str:
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def xml_items(rows: Iterable[Mapping[str, Any]], root: str = "records") -> str:
    """REDCap's XML for a list: ``<records><item><name><![CDATA[value]]></name>...</item></records>``."""
    items = ["<item>" + "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in row.items()) + "</item>" for row in rows]
    return '<?xml version="1.0" encoding="UTF-8" ?>\n' + f"<{root}>\n" + "\n".join(items) + f"\n</{root}>\n"


def xml_object(values: Mapping[str, Any], root: str = "project") -> str:
    """REDCap's XML for one object: ``<project><name><![CDATA[value]]></name>...</project>``."""
    inner = "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in values.items())
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n<{root}>{inner}</{root}>\n'


def error_body(message: str, return_format: str) -> tuple[str, str]:
    """REDCap's error body and content type in ``return_format`` (RestUtility::sendResponse)."""
    if return_format == "json":
        return php_json({"error": message}), "application/json; charset=utf-8"
    if return_format == "csv":
        return f"ERROR: {message}", "text/csv; charset=utf-8"
    return f'<?xml version="1.0" encoding="UTF-8" ?><hash><error>{message}</error></hash>', "text/xml; charset=utf-8"


def apache_page(status: int) -> str:
    """The HTML page Apache (or a proxy in front of REDCap) answers an error with."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    text = APACHE_TEXT.get(status, "The server could not answer your request.")
    return (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
        f"<title>{status} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n<p>{text}</p>\n</body></html>\n"
    )


# -- the project ---------------------------------------------------------------------------------------------


class Clock:
    """REDCap's server clock (aware, Europe/Copenhagen), settable and advanced by tests; thread-safe."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=SERVER_ZONE)
        self._now = start.astimezone(SERVER_ZONE)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        """The server's time now."""
        with self._lock:
            return self._now

    def set(self, moment: dt.datetime) -> None:
        """Set the clock (a naive time is server-local)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=SERVER_ZONE)
        with self._lock:
            self._now = moment.astimezone(SERVER_ZONE)

    def advance(self, delta: dt.timedelta | None = None, **parts: float) -> dt.datetime:
        """Move the clock on by ``delta`` or ``timedelta(**parts)``; return the new time."""
        step = delta if delta is not None else dt.timedelta(**parts)
        with self._lock:
            self._now = (self._now + step).astimezone(SERVER_ZONE)
            return self._now


@dataclass(frozen=True)
class LogEntry:
    """One line of the project's logging, as the API's log export gives it."""

    moment: dt.datetime
    username: str
    action: str  # e.g. "Delete record 17"
    details: str
    record: str
    logtype: str  # record_add, record_edit or record_delete

    def as_row(self) -> dict[str, str]:
        """The entry as the log export writes it (timestamp in server-local minutes)."""
        return {
            "timestamp": local_text(self.moment, LOG_TIME),
            "username": self.username,
            "action": self.action,
            "details": self.details,
            "record": self.record,
        }


RowKey = tuple[str, str, str, str]  # record, event, repeat instrument ("" if none), repeat instance ("" if none)


class RedcapProject:
    """A longitudinal REDCap project with repeating instruments: its dictionary, events, records and log.

    Rows are keyed by record, event, repeat instrument and instance and hold the raw export's values
    (strings, as the export CSV has them). Every change stamps the record's last change with
    :attr:`clock`; :meth:`delete_record` logs the deletion. All methods are thread-safe.
    """

    def __init__(
        self,
        metadata: Sequence[Mapping[str, str]],
        events: Sequence[RedcapEvent],
        repeating: Mapping[str, Sequence[str]],
        clock: Clock,
        *,
        title: str = DEFAULT_TITLE,
        project_id: int = 4711,
        username: str = "rh_datamanager",
        data_access_groups: Mapping[str, str] | None = None,
    ) -> None:
        self.metadata = [{c: str(row.get(c, "")) for c in METADATA_COLUMNS} for row in metadata]
        self.events = tuple(events)
        self.repeating = {event: tuple(forms) for event, forms in repeating.items()}
        self.clock = clock
        self.title = title
        self.project_id = project_id
        self.username = username
        self.data_access_groups = dict(data_access_groups or {})  # unique group name -> label
        self.default_group = next(iter(self.data_access_groups), "")
        self.creation_time = "2016-01-04 09:12:44"
        self.production_time = "2016-02-01 10:03:17"
        self.record_field = self.metadata[0]["field_name"]
        self.forms = list(dict.fromkeys(row["form_name"] for row in self.metadata))
        self.form_of = {row["field_name"]: row["form_name"] for row in self.metadata}
        self.field_columns = {row["field_name"]: self._columns_of(row) for row in self.metadata}
        self.form_columns: dict[str, list[str]] = {form: [] for form in self.forms}
        for row in self.metadata:
            if row["field_name"] != self.record_field:
                self.form_columns[row["form_name"]] += self.field_columns[row["field_name"]]
        for form in self.forms:
            self.form_columns[form].append(f"{form}_complete")
        self.columns = [c for form in self.forms for c in self.form_columns[form]]  # after the keys
        self.checkbox_columns = {
            c for row in self.metadata if row["field_type"] == "checkbox" for c in self.field_columns[row["field_name"]]
        }
        self.event_order = {e.name: i for i, e in enumerate(self.events)}
        self.form_order = {form: i for i, form in enumerate(self.forms)}
        self.log: list[LogEntry] = []
        self._rows: dict[RowKey, dict[str, str]] = {}
        self._changed: dict[str, dt.datetime] = {}
        self._group: dict[str, str] = {}
        self._lock = threading.RLock()

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_delivery(
        cls,
        folder: Path,
        *,
        clock: Clock | None = None,
        title: str = DEFAULT_TITLE,
        data_access_group: str | None = "rigshospitalet",
    ) -> RedcapProject:
        """The project a generated rh delivery was exported from: its dictionary (web headers mapped one to
        one onto the API's), the rh format's events (with ``events_arm_1`` holding the repeating
        instruments) and its records, every record last changed at the clock's start (by default the
        cutoff day at 20:00 server time). ``data_access_group``: the one DAG every record is in (None: a
        project without DAGs)."""
        dictionary = folder / "DRGDK_DataDictionary.csv"
        with dictionary.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
        if tuple(rows[0]) != REDCAP_DICTIONARY_COLUMNS:
            raise ValueError(f"{dictionary.name}: not REDCap's data dictionary columns")
        metadata = [dict(zip(METADATA_COLUMNS, row, strict=True)) for row in rows[1:]]
        events, repeating = rh_design(metadata)
        (data,) = folder.glob("DRGDK_DATA_*.csv")
        if clock is None:
            cutoff = dt.date.fromisoformat(data.stem.removeprefix("DRGDK_DATA_"))
            clock = Clock(dt.datetime.combine(cutoff, dt.time(20, 0), tzinfo=SERVER_ZONE))
        groups = {data_access_group: data_access_group.replace("_", " ").title()} if data_access_group else {}
        project = cls(metadata, events, repeating, clock, title=title, data_access_groups=groups)
        with data.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if header != project.export_header():
                raise ValueError(f"{data.name}: the columns are not the export columns of the dictionary")
            for row in reader:
                key = project._key(*row[:4])
                if key in project._rows:
                    raise ValueError(f"{data.name}: a second row for one record, event and instance")
                project._rows[key] = {c: v for c, v in zip(header[4:], row[4:], strict=True) if v != ""}
                project._changed[key[0]] = clock.now()
                project._group[key[0]] = project.default_group
        return project

    def _columns_of(self, row: Mapping[str, str]) -> list[str]:
        name = row["field_name"]
        if row["field_type"] in NOT_EXPORTED:
            return []
        if row["field_type"] == "checkbox":
            codes = [item.partition(",")[0].strip() for item in row["select_choices_or_calculations"].split("|")]
            return [f"{name}___{re.sub(r'[^a-z0-9_]', '_', code.lower())}" for code in codes if code]
        return [name]

    # -- design ----------------------------------------------------------------------------------------------
    def export_header(self, data_access_groups: bool = False) -> list[str]:
        """The flat export's columns: the keys, ``redcap_data_access_group`` when asked, each form's fields."""
        return [*REDCAP_KEYS, *([DAG_COLUMN] if data_access_groups else []), *self.columns]

    def forms_of_row(self, event: str, instrument: str) -> tuple[str, ...]:
        """The forms a row holds: its repeat instrument, or the event's non-repeating forms."""
        if instrument:
            return (instrument,)
        repeating = self.repeating.get(event, ())
        designated = next(e.instruments for e in self.events if e.name == event)
        return tuple(f for f in designated if f not in repeating)

    def _key(self, record_id: object, event_name: object, repeat_instrument: object, repeat_instance: object) -> RowKey:
        """A row's key as stored (RowKey); ValueError for a row the project's design cannot hold."""
        record, event = str(record_id or "").strip(), str(event_name or "").strip()
        instrument = str(repeat_instrument or "").strip()
        instance = "" if repeat_instance in (None, "") else str(int(str(repeat_instance)))
        if not record:
            raise ValueError("a row needs a record id")
        if event not in self.event_order:
            raise ValueError(f"no event {event!r} in the project")
        if bool(instrument) != bool(instance):
            raise ValueError("a repeating row names both its instrument and its instance")
        if instrument and instrument not in self.repeating.get(event, ()):
            raise ValueError(f"{instrument!r} does not repeat in {event!r}")
        if not instrument and not self.forms_of_row(event, ""):
            raise ValueError(f"{event!r} holds only repeating instruments")
        return record, event, instrument, instance

    def _order(self, key: RowKey) -> tuple[Any, ...]:
        record, event, instrument, instance = key
        return (
            natural_key(record),
            self.event_order[event],
            self.form_order.get(instrument, -1),
            int(instance) if instance else 0,
        )

    # -- reading ---------------------------------------------------------------------------------------------
    def records(self) -> list[str]:
        """The project's record ids in REDCap's order."""
        with self._lock:
            return sorted({key[0] for key in self._rows}, key=natural_key)

    def last_change(self, record_id: str) -> dt.datetime:
        """When the record was last changed (server time)."""
        with self._lock:
            return self._changed[str(record_id)]

    def row(
        self, record_id: str, event: str, instrument: str | None = None, instance: int | str | None = None
    ) -> dict[str, str]:
        """One row's values by export column (empty columns as "")."""
        with self._lock:
            values = self._rows[self._key(record_id, event, instrument, instance)]
            return {c: values.get(c, "") for c in self.columns}

    def export(
        self,
        *,
        records: Sequence[str] = (),
        fields: Sequence[str] = (),
        forms: Sequence[str] = (),
        events: Sequence[str] = (),
        begin: dt.datetime | None = None,
        end: dt.datetime | None = None,
        data_access_groups: bool = False,
    ) -> tuple[list[str], list[list[str]]]:
        """The flat export (header and rows, REDCap's order) as ``content=record`` gives it.

        ``fields``/``forms`` narrow the columns (the keys come only with the record id field, as since
        REDCap 6.0); ``records``/``events`` the rows; ``begin``/``end`` keep the records last changed
        after ``begin`` and before ``end`` (all their rows). A narrowed export keeps the rows that hold a
        value in one of its columns. RedcapError (400) for an unknown field, form or event.
        """
        _unknown(
            "fields",
            [f for f in fields if f not in self.field_columns and f.removesuffix("_complete") not in self.form_columns],
        )
        _unknown("forms", [f for f in forms if f not in self.form_columns])
        _unknown("events", [e for e in events if e not in self.event_order])
        chosen = set()
        for name in fields:
            chosen.update([name] if name not in self.field_columns else self.field_columns[name])
        for form in forms:
            chosen.update(self.form_columns[form])
        narrowed = bool(fields or forms)
        with_keys = not narrowed or self.record_field in fields or self.form_of[self.record_field] in forms
        columns = [c for c in self.columns if not narrowed or c in chosen]
        keys = [*REDCAP_KEYS, *([DAG_COLUMN] if data_access_groups else [])] if with_keys else []
        header = [*keys, *columns]
        wanted_records, wanted_events = set(records), set(events)
        out = []
        with self._lock:
            for key in sorted(self._rows, key=self._order):
                record, event = key[0], key[1]
                changed = self._changed[record]
                if (wanted_records and record not in wanted_records) or (wanted_events and event not in wanted_events):
                    continue
                if (begin is not None and changed <= begin) or (end is not None and changed >= end):
                    continue
                values = self._rows[key]
                if columns and not any(values.get(c, "") for c in columns):
                    continue
                leading = [*key, *([self._group.get(record, "")] if data_access_groups else [])] if with_keys else []
                out.append([*leading, *(values.get(c, "") for c in columns)])
        return header, out

    def log_entries(
        self,
        *,
        logtype: str = "",
        begin: dt.datetime | None = None,
        end: dt.datetime | None = None,
        record: str = "",
        user: str = "",
    ) -> list[LogEntry]:
        """The log, newest first, as ``content=log`` filters it (``begin``/``end`` to the minute, both
        included)."""
        types = {"record": {"record_add", "record_edit", "record_delete"}}.get(logtype, {logtype} if logtype else None)
        with self._lock:
            entries = list(reversed(self.log))
        return [
            e
            for e in entries
            if (types is None or e.logtype in types)
            and (begin is None or e.moment >= begin)
            and (end is None or e.moment < end + dt.timedelta(minutes=1))
            and (not record or e.record == record)
            and (not user or e.username == user)
        ]

    # -- changes ---------------------------------------------------------------------------------------------
    def _stamp(self, record: str, logtype: str, details: str) -> None:
        now = self.clock.now()
        self._changed[record] = now
        verb = {"record_add": "Create", "record_edit": "Update", "record_delete": "Delete"}[logtype]
        self.log.append(LogEntry(now, self.username, f"{verb} record {record}", details, record, logtype))

    def _check_columns(self, key: RowKey, values: Mapping[str, object]) -> dict[str, str]:
        allowed = {c for form in self.forms_of_row(key[1], key[2]) for c in self.form_columns[form]}
        wrong = [c for c in values if c not in allowed]
        if wrong:
            raise ValueError(f"columns not in the forms of row {key}: {', '.join(wrong)}")
        return {c: "" if v is None else str(v) for c, v in values.items()}

    def upsert_row(
        self,
        record_id: str,
        event: str,
        instrument: str | None,
        instance: int | str | None,
        values: Mapping[str, object],
    ) -> None:
        """Create or update one row (a new record too); a new row's checkboxes start unchecked (0)."""
        with self._lock:
            key = self._key(record_id, event, instrument, instance)
            new_values = self._check_columns(key, values)
            new_record = key[0] not in self._changed
            row = self._rows.get(key)
            if row is None:
                row = {
                    c: "0"
                    for form in self.forms_of_row(key[1], key[2])
                    for c in self.form_columns[form]
                    if c in self.checkbox_columns
                }
                self._rows[key] = row
            row.update(new_values)
            for column in [c for c, v in row.items() if v == ""]:
                del row[column]
            if new_record:
                self._group[key[0]] = self.default_group
            prefix = f"[instance = {key[3]}], " if key[3] not in ("", "1") else ""
            details = prefix + ", ".join(f"{c} = '{v}'" for c, v in new_values.items())
            self._stamp(key[0], "record_add" if new_record else "record_edit", details)

    def set_value(
        self, record_id: str, event: str, instrument: str | None, instance: int | str | None, column: str, value: object
    ) -> None:
        """Change one value of an existing row (KeyError when there is no such row)."""
        with self._lock:
            key = self._key(record_id, event, instrument, instance)
            if key not in self._rows:
                raise KeyError(f"no row {key}")
            self.upsert_row(record_id, event, instrument, instance, {column: value})

    def delete_record(self, record_id: str) -> None:
        """Delete a record, every row of it, as REDCap does; the log keeps the deletion."""
        record = str(record_id)
        with self._lock:
            if record not in self._changed:
                raise KeyError(f"no record {record}")
            for key in [k for k in self._rows if k[0] == record]:
                del self._rows[key]
            self._stamp(record, "record_delete", f"{self.record_field} = '{record}'")
            del self._changed[record]
            self._group.pop(record, None)

    def add_record(self, rows: Iterable[Mapping[str, object]]) -> str:
        """Add a new record from rows keyed by export column (the four keys included); return its id."""
        rows = list(rows)
        ids = {str(r[REDCAP_KEYS[0]]) for r in rows}
        if len(ids) != 1:
            raise ValueError("add_record takes the rows of one record")
        (record,) = ids
        with self._lock:
            if record in self._changed:
                raise ValueError(f"record {record} exists")
            keys = [self._key(*(r.get(k) for k in REDCAP_KEYS)) for r in rows]
            checked = [
                self._check_columns(k, {c: v for c, v in r.items() if c not in REDCAP_KEYS})
                for k, r in zip(keys, rows, strict=True)
            ]
            if len(set(keys)) != len(keys):
                raise ValueError("two rows for one event and instance")
            for key, values in zip(keys, checked, strict=True):
                self._rows[key] = {c: v for c, v in values.items() if v != ""}
            self._group[record] = self.default_group
            self._stamp(record, "record_add", ", ".join(f"{c} = '{v}'" for vs in checked for c, v in vs.items()))
        return record

    # -- the design as the API exports it --------------------------------------------------------------------
    def project_info(self) -> dict[str, Any]:
        """``content=project``."""
        info: dict[str, Any] = dict.fromkeys(PROJECT_INFO_COLUMNS, "")
        info.update(
            project_id=self.project_id,
            project_title=self.title,
            creation_time=self.creation_time,
            production_time=self.production_time,
            in_production=1,
            project_language="English",
            purpose=2,
            is_longitudinal=1,
            has_repeating_instruments_or_events=int(bool(self.repeating)),
            surveys_enabled=0,
            scheduling_enabled=0,
            record_autonumbering_enabled=1,
            randomization_enabled=0,
            ddp_enabled=0,
            display_today_now_button=1,
            bypass_branching_erase_field_prompt=0,
        )
        return info

    def event_rows(self) -> list[dict[str, Any]]:
        """``content=event``."""
        return [
            {
                "event_name": event_label(e.name),
                "arm_num": 1,
                "unique_event_name": e.name,
                "custom_event_label": "",
                "event_id": 40 + i,
            }
            for i, e in enumerate(self.events)
        ]

    def form_event_rows(self) -> list[dict[str, Any]]:
        """``content=formEventMapping``: each event's forms in the project's form order."""
        return [
            {"arm_num": 1, "unique_event_name": e.name, "form": form}
            for e in self.events
            for form in self.forms
            if form in e.instruments
        ]

    def repeating_rows(self) -> list[dict[str, str]]:
        """``content=repeatingFormsEvents``."""
        return [
            {"event_name": event, "form_name": form, "custom_form_label": ""}
            for event in self.event_order
            for form in self.repeating.get(event, ())
        ]


def _unknown(parameter: str, values: Sequence[str]) -> None:
    if values:
        listed = ", ".join(f"'{v}'" for v in values)
        raise RedcapError(400, f'The following values in the parameter "{parameter}" are not valid: {listed}')


def event_label(unique_name: str) -> str:
    """An event's label from its unique name (``month_3_arm_1`` -> ``Month 3``)."""
    return unique_name.removesuffix("_arm_1").replace("_", " ").capitalize()


def rh_design(metadata: Sequence[Mapping[str, str]]) -> tuple[list[RedcapEvent], dict[str, tuple[str, ...]]]:
    """The rh project's events (drg_etl.core.formats) and ``events_arm_1`` with the forms no event names,
    which repeat there (extracts.md "rh")."""
    design = FORMATS["rh"].redcap
    if design is None:
        raise ValueError("the rh format declares no REDCap design")
    events = list(design.events)
    designated = {form for e in events for form in e.instruments}
    forms = list(dict.fromkeys(row["form_name"] for row in metadata))
    repeating = tuple(f for f in forms if f not in designated)
    if repeating:
        events.append(RedcapEvent("events_arm_1", repeating))
    return events, ({"events_arm_1": repeating} if repeating else {})


# -- faults --------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault switch: its kind (``fail``, ``slow`` or ``cut``), how many answers it has left, the
    ``content`` it is scoped to (None: every request) and its settings."""

    kind: str
    times: int
    content: str | None
    status: int = 503
    html: bool = True
    retry_after: str | None = None
    seconds: float = 0.0
    fraction: float = 0.5


@dataclass(frozen=True)
class Action:
    """What the fault switches do to one request: wait, then fail with a status or cut the answer off."""

    delay: float = 0.0
    fail: Fault | None = None
    cut: float | None = None  # the share of the body sent before the connection is closed


class Faults:
    """Fault switches, each for the next ``times`` requests (of one ``content=`` when ``content`` is given)."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []
        self._lock = threading.Lock()

    def fail_next(
        self,
        status: int = 503,
        *,
        times: int = 1,
        html: bool = True,
        retry_after: int | float | str | None = None,
        content: str | None = None,
    ) -> None:
        """Answer ``status``: with Apache's HTML page (``html``) or REDCap's error body; ``Retry-After`` when given."""
        after = None if retry_after is None else str(retry_after)
        self._add(Fault("fail", times, content, status=status, html=html, retry_after=after))

    def slow_next(self, seconds: float, *, times: int = 1, content: str | None = None) -> None:
        """Wait ``seconds`` before answering."""
        self._add(Fault("slow", times, content, seconds=seconds))

    def cut_off_next(self, *, times: int = 1, content: str | None = None, fraction: float = 0.5) -> None:
        """Send the headers (the whole Content-Length) and ``fraction`` of the body, then close the connection."""
        self._add(Fault("cut", times, content, fraction=fraction))

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()

    def pending(self) -> int:
        """How many faulty answers are still to come."""
        with self._lock:
            return sum(f.times for f in self._pending)

    def _add(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._pending.append(fault)

    def take(self, content: str | None) -> Action:
        """Use up the faults that apply to a request for ``content``: the first slow one and the first
        failing or cutting one."""
        with self._lock:
            slow = self._use(content, slow=True)
            end = self._use(content, slow=False)
        return Action(
            delay=slow.seconds if slow else 0.0,
            fail=end if end and end.kind == "fail" else None,
            cut=end.fraction if end and end.kind == "cut" else None,
        )

    def _use(self, content: str | None, *, slow: bool) -> Fault | None:
        fault = next((f for f in self._pending if (f.kind == "slow") == slow and f.content in (None, content)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times == 0:
                self._pending.remove(fault)
        return fault


# -- the server ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRights:
    """What a token may do: API export, export of data access groups, the logging."""

    export: bool = True
    data_access_groups: bool = False
    logging: bool = True


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered: never its token."""

    method: str
    path: str
    content: str | None
    pairs: tuple[tuple[str, str], ...]  # the form's fields as sent (``fields[0]`` stays ``fields[0]``), no token
    status: int

    @property
    def params(self) -> dict[str, str]:
        """The form's fields by name (a name sent twice: its last value)."""
        return dict(self.pairs)


@dataclass
class Answer:
    """An HTTP answer before faults act on it."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def php_form(body: str) -> dict[str, str | list[str]]:
    """A form body as PHP's ``$_POST`` sees it: ``name[...]`` collects an array, a later value wins."""
    form: dict[str, str | list[str]] = {}
    for name, value in parse_qsl(body, keep_blank_values=True):
        base, bracket, _ = name.partition("[")
        if bracket:
            current = form.get(base)
            if not isinstance(current, list):
                current = form[base] = []
            current.append(value)
        else:
            form[name] = value
    return form


def as_list(value: str | list[str] | None) -> list[str]:
    """An array parameter as REDCap reads it: a PHP array, or a comma-separated string."""
    if value is None:
        return []
    items = value if isinstance(value, list) else value.split(",")
    return [item.strip() for item in items if item.strip()]


def as_flag(value: str | list[str] | None) -> bool:
    """REDCap's boolean parameter: ``1`` or ``true`` (any case)."""
    return isinstance(value, str) and (value == "1" or value.strip().lower() == "true")


def as_text(value: str | list[str] | None) -> str:
    """A single-valued parameter (an array where a value is expected reads as empty)."""
    return value if isinstance(value, str) else ""


class RedcapStandin:
    """REDCap's API for one project on ``http://127.0.0.1:<port>/api/``; a context manager.

    ``tokens``: token -> :class:`TokenRights`. ``invalid_token_status``: the status for a missing,
    malformed or unknown token (401 as the API documentation has it; REDCap's code answers 403).
    """

    def __init__(
        self,
        project: RedcapProject,
        tokens: Mapping[str, TokenRights],
        *,
        version: str = DEFAULT_VERSION,
        invalid_token_status: int = 401,
    ) -> None:
        self.project = project
        self._tokens = dict(tokens)
        self.version = version
        self.invalid_token_status = invalid_token_status
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.errors: list[Exception] = []  # the stand-in's own failures (each answered 500)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"RedcapStandin({self.url if self._httpd else 'stopped'}, {len(self._tokens)} tokens)"

    @property
    def clock(self) -> Clock:
        """The server's clock (the project's)."""
        return self.project.clock

    @property
    def project_title(self) -> str:
        """The project's title."""
        return self.project.title

    @property
    def url(self) -> str:
        """The API's URL."""
        if self._httpd is None:
            raise RuntimeError("the stand-in is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/api/"

    def contents(self) -> list[str | None]:
        """The ``content`` of every request so far, in order."""
        with self._lock:
            return [r.content for r in self.requests]

    # -- life cycle ------------------------------------------------------------------------------------------
    def start(self) -> RedcapStandin:
        """Listen on an ephemeral port of 127.0.0.1 in a daemon thread."""
        handler = type("Handler", (_Handler,), {"standin": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="redcap-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (slow answers still waiting are released)."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RedcapStandin:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- answering -------------------------------------------------------------------------------------------
    def respond(self, method: str, path: str, content_type: str, body: bytes) -> tuple[Answer, Action]:
        """The answer to one request and what the faults do to it; the request is recorded (without token)."""
        urlencoded = content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
        text = body.decode("utf-8", "replace") if method == "POST" and urlencoded else ""
        form = php_form(text)
        raw = form.get("content")
        content = raw if isinstance(raw, str) else None
        action = self.faults.take(content)
        try:
            answer = self._fault_answer(action.fail, form) if action.fail else self._answer(method, path, form)
        except Exception as exc:  # a bug in the stand-in: answered 500 and kept for the test to see
            with self._lock:
                self.errors.append(exc)
            failure, kind = error_body(f"stand-in failure: {type(exc).__name__}", self._formats(form)[1])
            answer = Answer(500, failure.encode(), kind)
        pairs = tuple((k, v) for k, v in parse_qsl(text, keep_blank_values=True) if not k.startswith("token"))
        with self._lock:
            self.requests.append(RequestRecord(method, path, content, pairs, answer.status))
        return answer, action

    @staticmethod
    def _formats(form: Mapping[str, str | list[str]]) -> tuple[str, str]:
        raw = as_text(form.get("format"))
        fmt = raw if raw in ("json", "csv", "odm") else "xml"
        wanted = (as_text(form.get("returnFormat")) or raw).lower()
        return fmt, wanted if wanted in ("json", "csv") else "xml"

    def _fault_answer(self, fault: Fault, form: Mapping[str, str | list[str]]) -> Answer:
        headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
        if fault.html:
            return Answer(
                fault.status, apache_page(fault.status).encode("latin-1"), "text/html; charset=iso-8859-1", headers
            )
        message = DEFAULT_MESSAGES.get(fault.status) or HTTPStatus(fault.status).phrase
        text, kind = error_body(message, self._formats(form)[1])
        return Answer(fault.status, text.encode(), kind, headers)

    def _answer(self, method: str, path: str, form: Mapping[str, str | list[str]]) -> Answer:
        if path == "/api":
            return Answer(
                301, apache_page(301).encode("latin-1"), "text/html; charset=iso-8859-1", {"Location": "/api/"}
            )
        if path != "/api/":
            return Answer(404, apache_page(404).encode("latin-1"), "text/html; charset=iso-8859-1")
        fmt, return_format = self._formats(form)
        try:
            if method != "POST":
                raise RedcapError(501, NOT_IMPLEMENTED)
            rights = self._rights(as_text(form.get("token")))
            body, kind = self._content(form, fmt, rights)
            return Answer(200, body.encode("utf-8"), kind)
        except RedcapError as error:
            text, kind = error_body(error.message, return_format)
            return Answer(error.status, text.encode("utf-8"), kind)

    def _rights(self, token: str) -> TokenRights:
        rights = self._tokens.get(token) if TOKEN_FORMAT.fullmatch(token) else None
        if rights is None:
            raise RedcapError(self.invalid_token_status, INVALID_TOKEN)
        return rights

    def _content(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        content = as_text(form.get("content"))
        handlers = {
            "version": self._version,
            "project": self._project,
            "metadata": self._metadata,
            "formEventMapping": self._form_events,
            "event": self._events,
            "arm": self._arms,
            "repeatingFormsEvents": self._repeating,
            "instrument": self._instruments,
            "record": self._records,
            "log": self._log,
        }
        if content not in handlers:
            raise RedcapError(400, INVALID_CONTENT)
        if "data" in form or as_text(form.get("action")).lower() in ("import", "delete"):
            raise RedcapError(400, "stand-in: imports and deletions through the API are not implemented")
        if not rights.export:
            raise RedcapError(403, NO_EXPORT_RIGHTS)
        if fmt == "odm":
            raise RedcapError(400, "stand-in: format=odm is not implemented")
        return handlers[content](form, fmt, rights)

    @staticmethod
    def _table(
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str],
        fmt: str,
        delimiter: str = ",",
        always_quoted: frozenset[int] = frozenset(),
    ) -> tuple[str, str]:
        if fmt == "json":
            return php_json(list(rows)), "application/json; charset=utf-8"
        if fmt == "csv":
            return (
                php_csv(columns, ([row[c] for c in columns] for row in rows), delimiter, always_quoted),
                "text/csv; charset=utf-8",
            )
        return xml_items(rows), "text/xml; charset=utf-8"

    def _version(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        kind = {"json": "application/json", "csv": "text/csv"}.get(self._formats(form)[1], "text/xml")
        return self.version, f"{kind}; charset=utf-8"

    def _project(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        info = self.project.project_info()
        if fmt == "json":
            return php_json(info), "application/json; charset=utf-8"
        if fmt == "csv":
            return php_csv(PROJECT_INFO_COLUMNS, [[info[c] for c in PROJECT_INFO_COLUMNS]]), "text/csv; charset=utf-8"
        return xml_object(info), "text/xml; charset=utf-8"

    def _metadata(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        project = self.project
        fields, forms = as_list(form.get("fields")), as_list(form.get("forms"))
        _unknown("fields", [f for f in fields if f not in project.field_columns])
        _unknown("forms", [f for f in forms if f not in project.form_columns])
        rows = [
            r
            for r in project.metadata
            if (not fields and not forms) or r["field_name"] in fields or r["form_name"] in forms
        ]
        return self._table(rows, METADATA_COLUMNS, fmt)

    def _form_events(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        arms = as_list(form.get("arms"))
        rows = [r for r in self.project.form_event_rows() if not arms or str(r["arm_num"]) in arms]
        return self._table(rows, ("arm_num", "unique_event_name", "form"), fmt)

    def _events(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        arms = as_list(form.get("arms"))
        rows = [r for r in self.project.event_rows() if not arms or str(r["arm_num"]) in arms]
        columns = ("event_name", "arm_num", "unique_event_name", "custom_event_label", "event_id")
        return self._table(rows, columns, fmt, always_quoted=frozenset({0}))

    def _arms(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        return self._table([{"arm_num": 1, "name": "Arm 1"}], ("arm_num", "name"), fmt, always_quoted=frozenset({1}))

    def _repeating(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        return self._table(self.project.repeating_rows(), ("event_name", "form_name", "custom_form_label"), fmt)

    def _instruments(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        rows = [
            {"instrument_name": f, "instrument_label": f.replace("_", " ").capitalize()} for f in self.project.forms
        ]
        return self._table(rows, ("instrument_name", "instrument_label"), fmt)

    def _records(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        if as_text(form.get("type")).lower() == "eav":
            raise RedcapError(400, "stand-in: type=eav is not implemented")
        if "label" in (as_text(form.get("rawOrLabel")).lower(), as_text(form.get("rawOrLabelHeaders")).lower()):
            raise RedcapError(400, "stand-in: labels (rawOrLabel/rawOrLabelHeaders=label) are not implemented")
        if as_text(form.get("filterLogic")).strip():
            raise RedcapError(400, "stand-in: filterLogic is not implemented")
        dags = as_flag(form.get("exportDataAccessGroups"))
        if dags and not rights.data_access_groups:
            raise RedcapError(400, NO_DAG_RIGHTS)
        begin, end = (as_text(form.get(name)) for name in ("dateRangeBegin", "dateRangeEnd"))
        delimiter = CSV_DELIMITERS.get(as_text(form.get("csvDelimiter")) or ",")
        if delimiter is None:
            raise RedcapError(400, 'The value of the parameter "csvDelimiter" is not valid')
        header, rows = self.project.export(
            records=as_list(form.get("records")),
            fields=as_list(form.get("fields")),
            forms=as_list(form.get("forms")),
            events=as_list(form.get("events")),
            begin=parse_local(begin, RECORD_TIME, "dateRangeBegin") if begin.strip() else None,
            end=parse_local(end, RECORD_TIME, "dateRangeEnd") if end.strip() else None,
            data_access_groups=dags and bool(self.project.data_access_groups),
        )
        if fmt == "csv":
            return php_csv(header, rows, delimiter), "text/csv; charset=utf-8"
        return self._table([dict(zip(header, row, strict=True)) for row in rows], header, fmt)

    def _log(self, form: Mapping[str, str | list[str]], fmt: str, rights: TokenRights) -> tuple[str, str]:
        if not rights.logging:
            raise RedcapError(403, NO_LOGGING_RIGHTS)
        begin, end = (as_text(form.get(name)) for name in ("beginTime", "endTime"))
        entries = self.project.log_entries(
            logtype=as_text(form.get("logtype")),
            record=as_text(form.get("record")),
            user=as_text(form.get("user")),
            begin=parse_local(begin, LOG_TIME, "beginTime") if begin.strip() else None,
            end=parse_local(end, LOG_TIME, "endTime") if end.strip() else None,
        )
        return self._table([e.as_row() for e in entries], LOG_COLUMNS, fmt)

    def http_date(self) -> str:
        """The HTTP ``Date`` of an answer now: the server's clock."""
        return email.utils.formatdate(self.clock.now().timestamp(), usegmt=True)

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` or until the server stops."""
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is no error worth a traceback; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the stand-in and writes its answer, faults included."""

    standin: RedcapStandin
    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Nothing is logged (a request may carry a token)."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the stand-in's clock, not the wall clock."""
        return self.standin.http_date()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        answer, action = self.standin.respond(self.command, path, self.headers.get("Content-Type", ""), body)
        if action.delay:
            self.standin.wait(action.delay)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if action.cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if action.cut is None:
            self.wfile.write(answer.body)
            return
        self.wfile.write(answer.body[: int(len(answer.body) * action.cut)])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve
