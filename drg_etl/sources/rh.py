"""rh reader: the REDCap raw export and its data dictionary (extracts.md "rh", declared in drg_etl.core.formats)
onto the canonical model.

Every coded field is decoded with the delivered dictionary's choices, then the choice
label is mapped to a canonical value through mappings/rh.yaml; nothing is hard-coded.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from drg_etl.core.cpr import CprError, holds_cpr, parse_cpr
from drg_etl.core.delivery import Delivery, FileRejected, Issue
from drg_etl.core.formats import FORMATS
from drg_etl.core.mappings import SourceMap, source_map
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.sources.auh import add_measurements
from drg_etl.sources.base import RowContext, StagedDelivery
from drg_etl.sources.columnar import ColumnarFile, Probe, RolePlan, Verdicts, optional
from drg_etl.sources.csvfile import (
    ABSORBED,
    QUOTING,
    _record,
    check_columns,
    first_line,
    leading_columns,
    read_fields,
    read_text,
)
from drg_etl.sources.values import ValueProblem, check_score, parse_decimal, parse_integer, parse_iso_date

FORMAT = FORMATS["rh"]
EXPORT, DICTIONARY = FORMAT.file("export"), FORMAT.file("dictionary")
PROJECT = FORMAT.redcap
KEYS = list(EXPORT.columns)
DAG = PROJECT.data_access_group  # exported after the keys when the project has data access groups
# REDCap's field types with choices it implies whatever the dictionary's choices column says
IMPLICIT_CHOICES = {"yesno": {"1": "Yes", "0": "No"}, "truefalse": {"1": "True", "0": "False"}}
CHOICE_TYPES = ("radio", "dropdown", "checkbox")
NOT_EXPORTED = ("descriptive",)  # display-only fields: no column in an export
# Every field type REDCap's data dictionary knows (REDCap's Data Dictionary documentation); another is a finding.
FIELD_TYPES = ("text", "notes", "dropdown", "radio", "checkbox", "file", "calc", "sql", "descriptive", "slider",
               "yesno", "truefalse")
REDCAP_CODE = re.compile(r"-?[A-Za-z0-9_.]+")  # a choice's raw code: letters, digits, underscores (a number)
PCS_ITEMS = [f"pcs_{i:02d}" for i in range(1, 14)]
SCREENING = "screening_arm_1"  # the event whose row holds the CPR number (every other row names its record)


def data_file(delivery: Delivery) -> str:
    """The export's name for the delivery's cutoff."""
    return EXPORT.file_name(delivery.cutoff)


class Dictionary:
    """The project's data dictionary: fields, forms, choices, and the export columns they imply."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.fields = rows
        self._columns: list[str] | None = None
        self._form_columns: dict[str, list[str]] = {}
        self.form_of = {r["Variable / Field Name"]: r["Form Name"] for r in rows}
        self.choices: dict[str, dict[str, str]] = {}
        for r in rows:
            kind, cell = r["Field Type"], r["Choices, Calculations, OR Slider Labels"]
            if kind in IMPLICIT_CHOICES:
                self.choices[r["Variable / Field Name"]] = IMPLICIT_CHOICES[kind]
            elif kind in CHOICE_TYPES and cell:
                self.choices[r["Variable / Field Name"]] = _parse_choices(r["Variable / Field Name"], cell)

    def export_columns(self) -> list[str]:
        """The raw export's columns in REDCap's order."""
        if self._columns is None:
            self._columns = self._export_columns()
        return self._columns

    def _export_columns(self) -> list[str]:
        columns = list(KEYS)
        forms = list(dict.fromkeys(r["Form Name"] for r in self.fields))
        for form in forms:
            for r in self.fields:
                name = r["Variable / Field Name"]
                if r["Form Name"] != form or name == "record_id" or r["Field Type"] in NOT_EXPORTED:
                    continue
                if r["Field Type"] == "checkbox":
                    columns += [checkbox_column(name, code) for code in self.choices.get(name, {})]
                else:
                    columns.append(name)
            columns.append(f"{form}_complete")
        return columns

    def form_columns(self, form: str) -> list[str]:
        """The export columns holding a form's data (not its ``_complete``)."""
        if form not in self._form_columns:
            self._form_columns[form] = [c for c in self.export_columns()[len(KEYS):]
                                        if self.form_of.get(c.split("___")[0]) == form and c != "record_id"]
        return self._form_columns[form]


def _parse_choices(field: str, cell: str) -> dict[str, str]:
    """REDCap's ``code, label | code, label`` (a label may itself hold commas).

    ValueError when the cell is not in that form: a choice without a comma (``1 Female | 2 Male``) or
    without a code, or a code given twice (REDCap refuses both; a dictionary that has them would relabel
    patients silently).
    """
    out: dict[str, str] = {}
    for item in cell.split("|"):
        code, comma, label = item.partition(",")
        code, label = code.strip(), label.strip()
        if not comma or not code or not REDCAP_CODE.fullmatch(code):
            raise ValueError(f"field {field}: choice {item.strip()!r} is not 'code, label'")
        if code in out:
            raise ValueError(f"field {field}: choice code {code!r} is given twice ({out[code]!r}, {label!r})")
        out[code] = label
    return out


def checkbox_column(field: str, code: str) -> str:
    """REDCap's export column of one checkbox choice: the code lower-cased, other characters as ``_``."""
    return f"{field}___{re.sub(r'[^a-z0-9_]', '_', code.lower())}"


def read_dictionary(delivery: Delivery) -> Dictionary:
    """Read and check the data dictionary; reject it when it breaks REDCap's column set."""
    name, columns = DICTIONARY.file_name(delivery.cutoff), list(DICTIONARY.columns)
    text = read_text(delivery.folder / name, name, DICTIONARY.dialect.encoding)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=DICTIONARY.dialect.delimiter))
    if not rows:
        raise FileRejected(name, "file.empty", "the data dictionary is empty")
    check_columns(name, rows[0], columns)
    try:
        return Dictionary([dict(zip(columns, r, strict=False)) for r in rows[1:] if r])
    except ValueError as exc:
        raise FileRejected(name, "file.dictionary", f"the data dictionary is not in REDCap's form: {exc}") from exc


def unknown_field_types(dictionary: Dictionary, name: str) -> list[tuple[int, str, str]]:
    """``(row, field, type)`` of every field whose type REDCap does not have (its values are read as text)."""
    return [(row, r["Variable / Field Name"], r["Field Type"]) for row, r in enumerate(dictionary.fields, start=2)
            if r["Field Type"] not in FIELD_TYPES]


class _Record:
    """Reads one REDCap row's coded values through the dictionary."""

    def __init__(self, ctx: RowContext, row: dict[str, str], dictionary: Dictionary) -> None:
        self.ctx, self.row, self.dictionary = ctx, row, dictionary

    def code(self, field: str, concept: str | None, *, required: bool = True) -> Any:
        raw = self.row.get(field, "").strip()
        if not raw:
            if required:
                self.ctx.fail(field, "value.missing_required", f"{field} is missing")
            return None
        label = self.dictionary.choices.get(field, {}).get(raw)
        if label is None:
            self.ctx.fail(field, "code.unknown", f"{raw!r} is not a choice of {field} in the data dictionary")
            return None
        return label if concept is None else self.ctx.label(field, concept, label)

    def date(self, field: str, *, required: bool = True) -> Any:
        return self.ctx.date(field, self.row.get(field, ""), parse_iso_date, required=required)


@functools.cache  # one parser per score: a wide export asks for each in every row
def _score(name: str, low: float, high: float, integer: bool):
    def parse(text: str) -> float:
        value = parse_integer(text) if integer else parse_decimal(text, comma=False)
        return check_score(value, low, high, name)

    return parse


def read_rh(delivery: Delivery, staged: StagedDelivery, pseudonymize: Pseudonymizer) -> None:
    """Read the export into ``staged``: demographics first, so every row knows its patient."""
    dictionary = read_dictionary(delivery)
    name = DICTIONARY.file_name(delivery.cutoff)
    for row, field, kind in unknown_field_types(dictionary, name):
        staged.issues.append(Issue(delivery.center, delivery.cutoff.isoformat(), name, row, "Field Type",
                                   "redcap.field_type", f"field {field} has the type {kind!r}, which REDCap does "
                                   "not have; its values are read as text"))
    smap = source_map("rh")
    file = data_file(delivery)
    columns = _found_columns(delivery, file, dictionary)

    keys: dict[str, str | None] = {}  # REDCap record id -> pseudonym, from the screening rows (a first pass)
    first_pass = ("record_id", "redcap_event_name", "cpr")  # the columns it reads, leading the export's
    leading = (max(i for i, c in enumerate(columns) if c in first_pass) + 1  # past their last place (a name given
               if set(first_pass) <= set(columns) else len(columns))         # twice: the last one's value counts)
    for _row, values in read_fields(delivery.folder / file, file, encoding=EXPORT.dialect.python_encoding,
                                    delimiter=EXPORT.dialect.delimiter, columns=columns,
                                    line_end=EXPORT.dialect.line_end):
        record = leading_columns(columns, values, EXPORT.dialect.delimiter, leading)
        if any(column not in record for column in first_pass):  # a row cut short: row.shape in the second pass
            continue
        if record["redcap_event_name"] == SCREENING and record["record_id"] not in keys:
            try:
                keys[record["record_id"]] = pseudonymize(parse_cpr(record["cpr"]))
            except CprError:
                keys[record["record_id"]] = None
    def read_row(into: StagedDelivery, row: int, values: Sequence[str]) -> None:
        read_record(into, pseudonymize, smap, dictionary, keys, file, columns, row,
                    _record(columns, values, EXPORT.dialect.delimiter))

    fields = read_fields(delivery.folder / file, file, encoding=EXPORT.dialect.python_encoding,
                         delimiter=EXPORT.dialect.delimiter, columns=columns, line_end=EXPORT.dialect.line_end)
    verdicts = Verdicts(delivery, pseudonymize, smap)
    plan = set_plan(dictionary, columns, verdicts, file)
    if plan is None:  # an export without a column the SQL reads: every record by the row reader
        for row, values in fields:
            read_row(staged, row, values)
        return
    ColumnarFile(staged, file, columns, "cpr", plan, verdicts, read_row,
                 patients=lambda texts: _patients(verdicts, file, keys, texts),
                 derive=lambda texts: _derived(dictionary, texts)).read(fields)


def read_record(staged: StagedDelivery, pseudonymize: Pseudonymizer, smap: SourceMap, dictionary: Dictionary,
                keys: dict[str, str | None], file: str, columns: list[str], row: int, record: dict[str, str]) -> None:
    """Read one record of the export by the row reader (the definition of its facts and findings)."""
    fields = int(record.pop("__fields__"))
    if absorbed := record.pop(ABSORBED):
        ctx = staged.context(file, row, pseudonymize, smap)
        ctx.keep_source(record, ("cpr",))
        ctx.fail(absorbed, "row.quoting", QUOTING)
        return
    if fields != len(columns):  # a field too many or too few: the record's values cannot be placed
        ctx = staged.context(file, row, pseudonymize, smap)
        ctx.fail(None, "row.shape", f"{fields} fields, the header has {len(columns)}")
        return
    event = record["redcap_event_name"]
    form = record["redcap_repeat_instrument"] or None
    event_forms = PROJECT.instruments_at(event)
    forms = (form,) if form else event_forms or ()
    if not form and event_forms is None:
        ctx = staged.context(file, row, pseudonymize, smap)
        ctx.fail("redcap_event_name", "code.unknown", f"{event!r} is not an event of the project")
        return
    if _empty(record, forms, dictionary):
        staged.count(file).rows_ignored += 1
        return
    ctx = staged.context(file, row, pseudonymize, smap)
    if event == SCREENING:
        ctx.cpr("cpr", record["cpr"])
    else:
        ctx.patient_key = keys.get(record["record_id"])
        if ctx.patient_key is None:
            ctx.fail("record_id", "patient.no_demographics",
                     f"record {record['record_id']} has no valid demographics (screening) row")
    ctx.keep_source(record, ("cpr",))
    if holds_cpr(record["record_id"]):
        ctx.fail("record_id", "cpr.in_identifier", "the REDCap record id holds a CPR number; the record is not "
                                                   "kept (number records with REDCap's auto-numbering)")
        return
    if ctx.patient_key is None:
        return
    reader = _Record(ctx, record, dictionary)
    for name in forms:
        ctx.guarded(FORM_READERS[name], reader, event)


def _found_columns(delivery: Delivery, file: str, dictionary: Dictionary) -> list[str]:
    """The export's header, checked against the columns the dictionary implies (with or without the DAG column)."""
    text = first_line(delivery.folder / file, file, EXPORT.dialect.encoding)
    if EXPORT.dialect.byte_order_mark == "required" and not text.startswith("\ufeff"):
        raise FileRejected(file, "file.encoding", "the export lacks REDCap's UTF-8 byte order mark")
    first = next(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=EXPORT.dialect.delimiter), [])
    expected = dictionary.export_columns()
    if DAG in first:
        expected = [*KEYS, DAG, *expected[len(KEYS):]]
    if len(first) == 1 and ";" in first[0] and first[0].split(";") == expected:
        raise FileRejected(file, "file.delimiter", f"fields are separated by ';', not {EXPORT.dialect.delimiter!r}")
    check_columns(file, first, expected)
    return expected


def _empty(record: dict[str, str], forms: tuple[str, ...], dictionary: Dictionary) -> bool:
    """An instrument saved empty: marked 0 (Incomplete) and no data (not a record)."""
    for form in forms:
        if record.get(f"{form}_complete", "") not in ("", "0"):
            return False
        if any(record.get(c, "").strip() for c in dictionary.form_columns(form)):
            return False
    return True


def _demographics(r: _Record, event: str) -> None:
    ctx = r.ctx
    mark = ctx.mark()
    sex = r.code("sex", "sex")
    location = r.code("pain_location", "pain_location")
    diagnosis = r.code("diagnosis", "diagnosis")
    ctx.check_sex("sex", sex)
    if ctx.ok_since(mark) and ctx.patient_key and ctx.cpr_sex():
        ctx.add("patients", sex=ctx.cpr_sex(), birth_year=ctx.birth_year(), pain_location=location,
                diagnosis=diagnosis, recorded_sex=sex)


def _prom(r: _Record, event: str) -> None:
    ctx, row = r.ctx, r.row
    if not any(row.get(c, "").strip() for c in r.dictionary.form_columns("prom")):
        return
    mark = ctx.mark()
    day = r.date("prom_date")
    values = {
        "nrs_average": ctx.value("nrs_avg", _score("nrs_avg", 0, 10, False), row.get("nrs_avg")),
        "nrs_worst": ctx.value("nrs_worst", _score("nrs_worst", 0, 10, True), row.get("nrs_worst")),
        "pcs_total": ctx.value("pcs_total", _score("pcs_total", 0, 52, True), row.get("pcs_total")),
    }
    items = [ctx.value(c, _score(c, 0, 4, True), row.get(c)) for c in PCS_ITEMS]
    if all(i is not None for i in items) and values["pcs_total"] is not None and ctx.ok_since(mark):
        if sum(items) != values["pcs_total"]:
            ctx.fail("pcs_total", "pcs.total_mismatch",
                     f"pcs_total {values['pcs_total']:g} is not the sum of the 13 items ({sum(items):g})")
    if ctx.ok_since(mark):
        timepoint = source_map("rh").spec["events"][event]
        add_measurements(ctx, day, timepoint, values)


def _trial(r: _Record, event: str) -> None:
    ctx = r.ctx
    mark = ctx.mark()
    start, end = r.date("trial_start"), r.date("trial_end")
    success = r.code("trial_success", "trial_success")
    if ctx.ok_since(mark):
        ctx.add("procedures", procedure="trial", date=start, end_date=end, trial_success=success, device_ref=None,
                reason=None)


def _implant(r: _Record, event: str) -> None:
    ctx = r.ctx
    mark = ctx.mark()
    day = r.date("implant_date")
    model = r.code("ipg_model", "ipg_model")
    serial = ctx.required("ipg_serial", r.row.get("ipg_serial"))
    if ctx.ok_since(mark):
        ctx.add("procedures", procedure="implant", date=day, end_date=None, trial_success=None, device_ref=None,
                reason=None)
        ctx.add("devices", device_ref=FORMAT.device_ref.generator(record_id=r.row["record_id"]),
                device_type="generator", model=model,
                serial=serial, placed_date=day, level=None, side=None, status="active", status_date=day)


def _lead(r: _Record, event: str) -> None:
    ctx = r.ctx
    placed = r.date("lead_date")
    level = ctx.level("lead_level", r.code("lead_level", None))
    side = r.code("lead_side", "side")
    serial = ctx.required("lead_serial", r.row.get("lead_serial"))
    status = r.code("lead_status", "lead_status")
    status_date = r.date("lead_status_date")
    if ctx.ok:
        ctx.add("devices", device_ref=FORMAT.device_ref.lead(r.row["redcap_repeat_instance"],
                                                             record_id=r.row["record_id"]),
                device_type="lead", model=None, serial=serial, placed_date=placed, level=level, side=side,
                status=status, status_date=status_date)


def _surgery(r: _Record, event: str) -> None:
    ctx = r.ctx
    day = r.date("surg_date")
    kind = r.code("surg_type", "surgery_type")
    if ctx.ok:
        ctx.add("procedures", procedure=kind, date=day, end_date=None, trial_success=None, device_ref=None,
                reason=r.row.get("surg_reason") or None)


def _complication(r: _Record, event: str) -> None:
    ctx = r.ctx
    day = r.date("comp_date")
    kinds = []
    for code, label in r.dictionary.choices.get("comp_type", {}).items():
        column = checkbox_column("comp_type", code)
        value = r.row.get(column, "").strip()
        if value not in ("", "0", "1"):
            ctx.fail(column, "code.unknown", f"checkbox value {value!r} is not 0 or 1")
        elif value == "1":
            kinds.append(ctx.label(column, "complication", label))
    if not kinds:
        ctx.fail("comp_type", "value.missing_required", "no complication type is checked")
    permanent = r.code("comp_permanent", "permanent", required=False)
    if ctx.ok:
        for kind in kinds:
            ctx.add("complications", date=day, complication=kind, permanent=permanent, device_ref=None,
                    note=r.row.get("comp_note") or None)


FORM_READERS = {"demographics": _demographics, "prom": _prom, "trial": _trial, "implant": _implant,
                "lead": _lead, "surgery": _surgery, "complication": _complication}
__all__ = ["ValueProblem", "read_rh"]


# -- the export read as a set (drg_etl.sources.columnar) ----------------------------------------------------------

SET_COLUMNS = (*KEYS, "cpr", "sex", "pain_location", "diagnosis", "prom_date", "nrs_avg", "nrs_worst", *PCS_ITEMS,
               "pcs_total", "trial_start", "trial_end", "trial_success", "implant_date", "ipg_model", "ipg_serial",
               "lead_date", "lead_level", "lead_side", "lead_serial", "lead_status", "lead_status_date", "surg_date",
               "surg_type", "surg_reason", "comp_date", "comp_permanent", "comp_note")  # what rh_clean.sql reads
CODED = {"sex": "sex", "pain_location": "pain_location", "diagnosis": "diagnosis", "trial_success": "trial_success",
         "ipg_model": "ipg_model", "lead_side": "side", "lead_status": "lead_status", "surg_type": "surgery_type",
         "comp_permanent": "permanent"}  # coded field -> its concept in mappings/rh.yaml, as the form readers read it
DATES = ("prom_date", "trial_start", "trial_end", "implant_date", "lead_date", "lead_status_date", "surg_date",
         "comp_date")


def set_plan(dictionary: Dictionary, columns: list[str], verdicts: Verdicts, file: str) -> RolePlan | None:
    """How the export is read as a set, its value steps the form readers' own; None when the export lacks a column
    the SQL reads (every record is then read by the row reader)."""
    if not set(SET_COLUMNS) <= set(columns):
        return None

    def code(field: str, concept: str | None) -> Callable[[RowContext, str, str], Any]:
        return lambda ctx, column, raw: _Record(ctx, {field: raw}, dictionary).code(field, concept, required=False)

    def level(ctx: RowContext, column: str, raw: str) -> str | None:
        return ctx.level(column, _Record(ctx, {column: raw}, dictionary).code(column, None, required=False))

    def score(name: str, low: float, high: float, integer: bool) -> Callable[[RowContext, str, str], Any]:
        return lambda ctx, column, raw: ctx.value(column, _score(name, low, high, integer), raw)

    probes = (
        *(Probe(f"code_{f}", f, "BOOLEAN" if concept in ("trial_success", "permanent") else "VARCHAR",
                code(f, concept)) for f, concept in CODED.items()),
        Probe("day", DATES[0], "DATE", lambda ctx, column, raw: ctx.date(column, raw, parse_iso_date, required=False),
              also=DATES[1:]),
        Probe("nrs_avg", "nrs_avg", "DOUBLE", score("nrs_avg", 0, 10, False)),
        Probe("nrs_worst", "nrs_worst", "DOUBLE", score("nrs_worst", 0, 10, True)),
        Probe("pcs_total", "pcs_total", "DOUBLE", score("pcs_total", 0, 52, True)),
        Probe("item", PCS_ITEMS[0], "DOUBLE", score(PCS_ITEMS[0], 0, 4, True), also=tuple(PCS_ITEMS[1:])),
        Probe("serial", "ipg_serial", "VARCHAR", optional(lambda ctx, column, raw: ctx.required(column, raw)),
              also=("lead_serial",)),
        Probe("lead_level", "lead_level", "VARCHAR", level),
    )
    choices = list(dictionary.choices.get("comp_type", {}).items())
    checked = []
    for code_, label in choices:
        ctx = verdicts.context(file)
        value = ctx.label(checkbox_column("comp_type", code_), "complication", label)
        checked.append((not ctx.issues, value))
    events = source_map("rh").spec["events"]
    relations = {
        "event_forms": pa.table({"event": [e.name for e in PROJECT.events],
                                 "forms": pa.array([list(e.instruments) for e in PROJECT.events],
                                                   pa.list_(pa.string()))}),
        "timepoints": pa.table({"event": list(events), "timepoint": list(events.values())}),
        "checkbox": pa.table({"position": pa.array(range(len(choices)), pa.int64()),
                              "ok": pa.array([ok for ok, _ in checked], pa.bool_()),
                              "value": pa.array([value for _, value in checked], pa.string())}),
    }
    pattern = r"[01]?(\|[01]?)" + f"{{{len(choices) - 1}}}" if choices else ".+"  # as many checkboxes, each 0/1/empty
    device = FORMAT.device_ref
    return RolePlan(
        facts={table: f"readers/rh_{table}.sql"
               for table in ("patients", "measurements", "procedures", "devices", "complications")},
        probes=probes, clean="readers/rh_clean.sql", relations=relations,
        params={"checks_pattern": pattern, "template": device.template, "generator_slot": device.generator_slot,
                "lead_slot": device.lead_slot})


def _patients(verdicts: Verdicts, file: str, keys: dict[str, str | None], texts: dict[str, pa.Array]) -> pa.Table:
    """Each row's patient: a screening row's own CPR number, any other row's record's (its screening row's)."""
    screening = pc.equal(texts["redcap_event_name"], SCREENING)
    own = verdicts.patients_by_cpr(file, "cpr", texts["cpr"])
    named = pa.array([keys.get(record_id) for record_id in texts["record_id"].to_pylist()], pa.string())
    return pa.table({"patient_key": pc.if_else(screening, own.column("patient_key"), named),
                     "patient_sex": pc.if_else(screening, own.column("patient_sex"), pa.scalar(None, pa.string())),
                     "birth_year": pc.if_else(screening, own.column("birth_year"), pa.scalar(None, pa.int32()))})


def _derived(dictionary: Dictionary, texts: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """``prom_filled`` (a prom column holds a value, as rh._prom asks; spaces stripped, the only white space a
    screened record holds) and ``checks`` (comp_type's checkboxes in the dictionary's order, joined by '|')."""
    rows = len(texts["record_id"])
    filled = pa.array([False] * rows, pa.bool_())
    for column in dictionary.form_columns("prom"):
        if column in texts:
            filled = pc.or_(filled, pc.not_equal(pc.utf8_trim(texts[column], " "), ""))
    empty = pa.array([""] * rows, pa.string())
    boxes = [texts.get(checkbox_column("comp_type", c), empty) for c in dictionary.choices.get("comp_type", {})]
    checks = pc.binary_join_element_wise(*boxes, "|") if len(boxes) > 1 else (boxes[0] if boxes else empty)
    return {"prom_filled": filled, "checks": checks}
