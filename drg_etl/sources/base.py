"""What every reader shares: deliveries, issues, the per-row context, and the staged result.

A reader turns one delivery folder into a :class:`StagedDelivery`: canonical facts with
their lineage (delivery, file, row), and the issues found (rule id, column, message),
streamed in bounded batches to the warehouse's staging schema.
A record with an error-severity issue is quarantined; a wide record (a workbook row of a
whole treatment, a REDCap screening row) may still load the facts that pass.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from drg_etl.core.cpr import (
    CPR_PLACEHOLDER,
    SHORTEST_CPR_TEXT,
    CprError,
    cpr_candidates,
    holds_cpr,
    is_machine_identifier,
    parse_cpr,
    scrub_cpr,
)
from drg_etl.core.delivery import Delivery, Issue
from drg_etl.core.levels import LevelError, parse_level
from drg_etl.core.mappings import SourceMap
from drg_etl.core.model import CANONICAL_TABLES, TABLES
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.sources.values import ValueProblem, check_date_range


@dataclass
class FileCount:
    """Records read from one file (or sheet / instrument) of a delivery."""

    file: str
    rows_read: int = 0
    rows_ignored: int = 0


BATCH_RECORDS = 20_000
UNREADABLE = (ValueError, TypeError, ArithmeticError)  # what a value can make a reader raise
Sink = Callable[["StagedDelivery"], None]


@dataclass
class StagedDelivery:
    """A delivery being read: canonical facts and issues, streamed to the staging schema in bounded batches.

    The reader fills the current batch (``facts`` as tuples in the model's column order,
    ``issues``, ``source_rows``, ``contributed``); every ``batch_records`` records the batch goes
    to ``sink`` and is cleared, so memory does not grow with the delivery. Only the per-file
    counts live for the whole delivery.
    """

    delivery: Delivery
    delivery_id: str
    file_hashes: dict[str, str]
    sink: Sink | None = None
    batch_records: int = field(default_factory=lambda: BATCH_RECORDS)
    facts: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in CANONICAL_TABLES})
    issues: list[Issue] = field(default_factory=list)
    # Facts, kept records and the records that gave a fact, read as a set (drg_etl.sources.columnar): Arrow tables
    # of a staging table's columns (but the delivery's id and cutoff), by kind: a fact table's name,
    # "source_records" or "contributed"
    frames: list[tuple[str, Any]] = field(default_factory=list)
    counts: dict[str, FileCount] = field(default_factory=dict)
    source_rows: list[tuple[str, int, str]] = field(default_factory=list)
    contributed: set[tuple[str, int]] = field(default_factory=set)
    fact_seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CANONICAL_TABLES, 0))
    buffered: int = 0
    position: tuple[str | None, int] = (None, 0)  # the record being read, for an error that names it

    def count(self, file: str) -> FileCount:
        """The counter of a file, created on first use."""
        counter = self.counts.get(file)
        if counter is None:
            counter = self.counts[file] = FileCount(file)
        return counter

    def context(self, file: str, row: int, pseudonymize: Pseudonymizer, source_map: SourceMap,
                resource_id: str | None = None) -> RowContext:
        """A context for reading one record (the batch is handed on first when it is full)."""
        if self.buffered >= self.batch_records:
            self.flush()
        self.buffered += 1
        self.position = (file, row)
        self.count(file).rows_read += 1
        return RowContext(self, file, row, pseudonymize, source_map, resource_id)

    def add_fact(self, table: str, file: str, row: int, patient_key: str | None, values: dict[str, Any]) -> None:
        """Append a fact (lineage, the model's fact columns, its position in the delivery) to the batch."""
        model = TABLES[table]
        model.check_fact(values)
        seq = self.fact_seq[table]
        self.fact_seq[table] = seq + 1
        self.facts[table].append((self.delivery.center, file, row, patient_key, *model.fact_values(values), seq))

    def flush(self) -> None:
        """Hand the current batch to the sink and start a new one."""
        if self.sink is not None:
            self.sink(self)
        for table in self.facts:
            self.facts[table] = []
        self.issues, self.source_rows, self.contributed, self.frames, self.buffered = [], [], set(), [], 0


class RowContext:
    """Reads one record's values, collecting issues; facts are added with the record's lineage."""

    def __init__(self, staged: StagedDelivery, file: str, row: int, pseudonymize: Pseudonymizer,
                 source_map: SourceMap, resource_id: str | None = None) -> None:
        self.staged = staged
        self.file, self.row, self.resource_id = file, row, resource_id
        self.pseudonymize = pseudonymize
        self.map = source_map
        self.cutoff = staged.delivery.cutoff
        self.patient_key: str | None = None
        self.issues: list[Issue] = []
        self.record: dict[str, Any] = {}  # the source record, once kept (to name a column in a finding)

    # -- issues --------------------------------------------------------------------------
    def fail(self, column: str | None, rule_id: str, message: str) -> None:
        """Record a broken rule."""
        issue = Issue(self.staged.delivery.center, self.cutoff.isoformat(), self.file, self.row, column, rule_id,
                      message, self.patient_key, self.resource_id)
        self.issues.append(issue)
        self.staged.issues.append(issue)

    @property
    def ok(self) -> bool:
        """No error-severity issue so far."""
        return not any(i.severity == "error" for i in self.issues)

    def mark(self) -> int:
        """A position in this record's issues, to ask later whether a fact added any."""
        return len(self.issues)

    def ok_since(self, mark: int) -> bool:
        """No error-severity issue since ``mark`` (for the facts of a wide record)."""
        return not any(i.severity == "error" for i in self.issues[mark:])

    # -- values --------------------------------------------------------------------------
    def cpr(self, column: str, raw: object) -> str | None:
        """The pseudonym of the CPR in ``column``; on an invalid CPR, a keyed stand-in and an issue."""
        text = "" if raw is None else str(raw)
        try:
            cpr = parse_cpr(text)
        except CprError as exc:
            self.patient_key = self.pseudonymize.of_text(text) if text.strip() else None
            rule_id = "value.missing_required" if not text.strip() else "cpr.invalid"
            self.fail(column, rule_id, str(exc))
            return None
        self.patient_key = self.pseudonymize(cpr)
        self._cpr = cpr
        return self.patient_key

    def cpr_sex(self) -> str | None:
        """Sex as the last parsed CPR gives it."""
        return self._cpr.sex if getattr(self, "_cpr", None) else None

    def birth_year(self) -> int | None:
        """Birth year from the last parsed CPR."""
        return self._cpr.birth_date.year if getattr(self, "_cpr", None) else None

    def _text(self, column: str, raw: object, required: bool) -> str | None:
        """The value as stripped text; None when empty, with an issue when it is required."""
        text = "" if raw is None else str(raw).strip()
        if text:
            return text
        if required:
            self.fail(column, "value.missing_required", f"{column} is missing")
        return None

    def required(self, column: str, raw: object) -> str | None:
        """A required value as stripped text; an issue when missing."""
        return self._text(column, raw, True)

    def date(self, column: str, raw: object, parser: Callable[[str], dt.date], *, required: bool = True,
             ) -> dt.date | None:
        """A date (parsed, then checked against 2010 and the cutoff)."""
        if isinstance(raw, dt.datetime):
            day: dt.date | None = raw.date()
        elif isinstance(raw, dt.date):
            day = raw
        else:
            text = self._text(column, raw, required)
            if text is None:
                return None
            try:
                day = parser(text)
            except ValueProblem as exc:
                self.fail(column, exc.rule_id, str(exc))
                return None
        try:
            return check_date_range(day, self.cutoff)
        except ValueProblem as exc:
            self.fail(column, exc.rule_id, str(exc))
            return None

    def label(self, column: str, concept: str, raw: object, *, required: bool = True) -> Any:
        """The canonical value of a source label, through the center's map."""
        text = self._text(column, raw, required)
        if text is None:
            return None
        try:
            return self.map.to_canonical(concept, text)
        except KeyError:
            self.fail(column, "code.unknown", f"{text!r} is not a known {concept.replace('_', ' ')} label")
            return None

    def value(self, column: str, parse: Callable[[str], Any], raw: object, *, required: bool = False) -> Any:
        """Any value through a parser that raises ValueProblem."""
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            raw = repr(raw) if isinstance(raw, float) else str(raw)
        text = self._text(column, raw, required)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueProblem as exc:
            self.fail(column, exc.rule_id, str(exc))
            return None

    def level(self, column: str, text: str | None) -> str | None:
        """A spinal level (:func:`drg_etl.core.levels.parse_level`) or, when ``text`` names none, None with a
        ``code.unknown`` issue; None when there is no text."""
        if text is None:
            return None
        try:
            return parse_level(text)
        except LevelError as exc:
            self.fail(column, "code.unknown", str(exc))
            return None

    def check_sex(self, column: str, recorded: str | None) -> None:
        """Warn when the recorded sex contradicts the CPR number."""
        expected = self.cpr_sex()
        if recorded is not None and expected is not None and recorded != expected:
            self.fail(column, "cpr.sex_mismatch", f"recorded sex {recorded} contradicts the CPR number ({expected})")

    def guarded(self, read: Callable[..., object], *args: Any) -> None:
        """Run a reader's step for this record: a value error it raises (a NaN, an overflow, a merged cell read as
        nothing) quarantines this record with a finding, never the delivery."""
        try:
            read(*args)
        except UNREADABLE as exc:
            self.fail(None, "value.unreadable", f"a value the reader cannot handle ({type(exc).__name__}: {exc})")

    # -- facts ---------------------------------------------------------------------------
    def contributes(self) -> None:
        """Mark this record as loaded although its values went into another record's fact."""
        self.staged.contributed.add((self.file, self.row))

    def add(self, table: str, **values: Any) -> None:
        """Add a canonical fact with this record's lineage.

        No CPR number is ever kept: a fact whose identifier (serial, model, device reference) holds
        one is not added and the record is quarantined; one in free text is replaced, with a warning.
        """
        if self.patient_key is None:  # an empty or merged CPR cell: the fact would belong to nobody
            self.fail(None, "value.missing_required", f"the record names no patient; its {table[:-1]} is not kept")
            return
        model = TABLES[table]
        for column in model.text_columns:
            value = values.get(column)
            if isinstance(value, str) and value != (clean := value.strip()):  # Unicode spaces too (a lone NBSP)
                values[column] = clean or None
                if not clean and not next(c for c in model.columns if c.name == column).nullable:
                    self.fail(column, "value.missing_required", f"{column} is missing")
                    return
        for column in model.identifier_columns:
            value = values.get(column)
            if isinstance(value, str) and holds_cpr(value):
                self.fail(self._source_column(value, column), "cpr.in_identifier",
                          f"the {table[:-1]}'s {column.replace('_', ' ')} holds a CPR number; the record is not kept")
                return
        for column in model.free_text_columns:
            value = values.get(column)
            if isinstance(value, str) and (clean := scrub_cpr(value)) != value:
                self.fail(self._source_column(value, column), "cpr.in_free_text",
                          f"the {column.replace('_', ' ')} holds a CPR number; it is kept without it")
                values[column] = clean
        self.contributes()
        self.staged.add_fact(table, self.file, self.row, self.patient_key, values)

    def _source_column(self, value: str, canonical: str) -> str:
        """The source column a value came from (for the finding), else the canonical column's name."""
        for name, raw in self.record.items():
            if isinstance(raw, str) and raw.strip() and raw.strip() in value and scrub_cpr(raw) != raw:
                return name
        return canonical

    def keep_source(self, record: dict[str, Any], cpr_columns: tuple[str, ...] = (), *,
                    parsed_json: bool = False) -> None:
        """Keep the source record for staging, its CPR replaced by the pseudonym, every other CPR scrubbed (a
        pseudonym's hex digits are never taken for one: :func:`drg_etl.core.cpr.scrub_cpr`).

        ``parsed_json``: the record holds only what a JSON parser gives (dicts, lists, texts, numbers, true, false,
        null: a FHIR resource), so :func:`parsed_json_kept` may read it from its JSON text.
        """
        self.record = record
        text = parsed_json_kept(record) if parsed_json and not cpr_columns else None
        if text is None:
            text = kept_json(record, cpr_columns, self.patient_key)
        self.staged.source_rows.append((self.file, self.row, text))


def kept_json(record: dict[str, Any], cpr_columns: tuple[str, ...], patient_key: str | None) -> str:
    """A source record as kept: JSON text, its CPR columns' values the pseudonym, every other CPR scrubbed.

    Keys are asked of the scrubber once for all records that have the same (a file's columns); a record of
    texts only (a CSV row) is searched as one text (:func:`_texts_kept_json`); any other, value by value.
    """
    if not _keys_kept_as_they_are(tuple(record)):
        clean = {scrub_cpr(k): (patient_key if k in cpr_columns else _scrubbed(v)) for k, v in record.items()}
        return orjson.dumps(clean).decode()
    text = _texts_kept_json(record, cpr_columns, patient_key)
    if text is not None:
        return text
    clean = {k: (patient_key if k in cpr_columns
                 else v if type(v) is str and len(v) < SHORTEST_CPR_TEXT else _scrubbed(v))
             for k, v in record.items()}  # a short text (most values of a wide export are empty) holds none
    return orjson.dumps(clean).decode()


@functools.lru_cache(maxsize=256)  # a file's records share their keys (its columns), a FHIR resource's parts a few
def _keys_kept_as_they_are(keys: tuple[Any, ...]) -> bool:
    """Whether a record's keys are texts the scrubber leaves as they are."""
    return all(type(key) is str and scrub_cpr(key) == key for key in keys)


_APART = "\x00"  # joins a record's texts: no CPR pattern holds it or reads across it (it borders one as an end does)


def _texts_kept_json(record: dict[str, Any], cpr_columns: tuple[str, ...], patient_key: str | None) -> str | None:
    """The kept text of a record whose values are all texts and need no scrubbing, at C speed; else None.

    The texts (the CPR columns' left out) are joined by :data:`_APART` and searched once for what every match
    of the scrubber's patterns holds (:func:`drg_etl.core.cpr.cpr_candidates`); each text that holds a
    candidate is asked of the scrubber itself. A match never holds or crosses ``_APART``, so a text's
    matches are those of its pieces between two of them: the answer is the full scrub's.
    """
    texts = dict(record)
    for column in cpr_columns:
        if column in texts:
            texts[column] = ""
    try:
        joined = _APART.join(texts.values())
    except TypeError:  # a value that is not a text (a number, a date, a list): value by value
        return None
    checked_to = -1
    for at in cpr_candidates(joined):
        if at < checked_to:
            continue
        start = joined.rfind(_APART, 0, at) + 1
        end = joined.find(_APART, at)
        end = len(joined) if end < 0 else end
        if scrub_cpr(text := joined[start:end]) != text:
            return None  # something to scrub: value by value
        checked_to = end
    for column in cpr_columns:
        if column in texts:
            texts[column] = patient_key
    return orjson.dumps(texts).decode()


# Only what a JSON parser gives: orjson hands anything else over (a subclass, a date, a dataclass) and fails
_JSON_TYPES_ONLY = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_JSON_NUMBER = re.compile(r"-?[0-9][0-9.eE+-]*")  # in a JSON text's parts outside its quotes
_JSON_ESCAPE = "\\"  # what every escape in a JSON text starts with
_CLEAN_TEXTS: set[str] = set()  # texts met before that the scrubber leaves as they are (codes, systems, references)
_CLEAN_TEXTS_HELD = 1 << 16


def parsed_json_kept(record: dict[str, Any]) -> str | None:
    """:func:`kept_json`'s text of a record that holds only what a JSON parser gives, when nothing in it needs
    scrubbing: its JSON text itself; None when something may, or when it holds anything else (then the full
    scrub runs).

    The full scrub asks the scrubber every key, every text and every number as Python spells it. In orjson's
    text, every key and text stands between quotes, verbatim unless it needs an escape (a quote, a backslash,
    a control character such as a line break): a text with a backslash goes to the full scrub, so splitting at
    the quotes gives the keys and texts, and between them the numbers. Integers orjson spells as Python does;
    a float is read back and asked in Python's spelling (orjson writes 1e-05 as 0.00001). Each distinct text
    is asked once (:data:`_CLEAN_TEXTS` remembers those it leaves, a machine identifier aside). Only for what a
    parser gave: orjson writes an enum as its value, where the full scrub keeps its name.
    """
    try:
        text = orjson.dumps(record, option=_JSON_TYPES_ONLY).decode()
    except orjson.JSONEncodeError:
        return None
    if _JSON_ESCAPE in text:
        return None
    parts = text.split('"')
    for unseen in set(parts[1::2]).difference(_CLEAN_TEXTS):  # the keys and texts
        if scrub_cpr(unseen) != unseen:
            return None
        if not is_machine_identifier(unseen):  # one of a kind (a resource id): not worth remembering
            if len(_CLEAN_TEXTS) >= _CLEAN_TEXTS_HELD:
                _CLEAN_TEXTS.clear()
            _CLEAN_TEXTS.add(unseen)
    for number in _JSON_NUMBER.findall("\x00".join(parts[0::2])):
        try:
            spelled = repr(float(number)) if "." in number or "e" in number or "E" in number else number
        except ValueError:  # not a number after all: orjson never writes one, but then the full scrub decides
            return None
        if scrub_cpr(spelled) != spelled:
            return None
    return text


def _scrubbed(value: Any) -> Any:
    """A source value as kept: JSON-ready, and anything shaped like a CPR number replaced (a number too)."""
    kind = type(value)  # the types of JSON first, exactly (a FHIR resource is nested dicts and lists of them)
    if kind is str:
        return value if len(value) < SHORTEST_CPR_TEXT else scrub_cpr(value)
    if kind is dict:
        if _keys_kept_as_they_are(tuple(value)):
            return {k: v if type(v) is str and len(v) < SHORTEST_CPR_TEXT else _scrubbed(v) for k, v in value.items()}
        return {scrub_cpr(str(k)): _scrubbed(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) is str and len(v) < SHORTEST_CPR_TEXT else _scrubbed(v) for v in value]
    if isinstance(value, str):
        return scrub_cpr(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return CPR_PLACEHOLDER if scrub_cpr(str(value)) != str(value) else value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {scrub_cpr(str(k)): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return scrub_cpr(str(value))
