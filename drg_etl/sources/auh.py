"""auh reader: five Windows-1252 CSV files (extracts.md "auh", declared in drg_etl.core.formats) onto the canonical
model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from drg_etl.core.delivery import Delivery
from drg_etl.core.formats import FORMATS
from drg_etl.core.mappings import SourceMap, source_map
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.sources.base import RowContext, StagedDelivery
from drg_etl.sources.columnar import ColumnarFile, Probe, RolePlan, Verdicts, optional
from drg_etl.sources.csvfile import ABSORBED, QUOTING, _record, read_fields
from drg_etl.sources.values import ValueProblem, check_score, parse_danish_date, parse_decimal, parse_integer

FORMAT = FORMATS["auh"]


def read_level(ctx: RowContext, column: str, raw: str) -> str | None:
    """A spinal level, or an issue."""
    return ctx.level(column, ctx.required(column, raw))


def nrs_average(text: str) -> float:
    """Average NRS, one decimal with a comma."""
    return check_score(parse_decimal(text, comma=True), 0, 10, "NRS_gns")


def nrs_worst(text: str) -> int:
    """Worst NRS, integer."""
    return int(check_score(parse_integer(text), 0, 10, "NRS_max"))


def pcs_total(text: str) -> int:
    """PCS total, integer 0-52."""
    return int(check_score(parse_integer(text), 0, 52, "PCS"))


def read_auh(delivery: Delivery, staged: StagedDelivery, pseudonymize: Pseudonymizer) -> None:
    """Read the five files into ``staged`` (files were checked present by the caller): each as a set
    (:mod:`drg_etl.sources.columnar`), a record the row rules' SQL does not take by its row reader."""
    smap = source_map("auh")
    verdicts = Verdicts(delivery, pseudonymize, smap)
    for source in FORMAT.files:
        file, columns, text = source.file_name(delivery.cutoff), list(source.columns), source.dialect

        def read_row(into: StagedDelivery, row: int, values: Sequence[str], file: str = file, role: str = source.role,
                     columns: list[str] = columns, delimiter: str = text.delimiter) -> None:
            read_record(into, pseudonymize, smap, file, role, row, _record(columns, values, delimiter))

        fields = read_fields(delivery.folder / file, file, encoding=text.python_encoding, delimiter=text.delimiter,
                             columns=columns, line_end=text.line_end)
        ColumnarFile(staged, file, columns, FORMAT.patient_column, PLANS[source.role], verdicts, read_row
                     ).read(fields)


def read_record(staged: StagedDelivery, pseudonymize: Pseudonymizer, smap: SourceMap, file: str, role: str,
                row: int, record: dict[str, str]) -> None:
    """Read one record of a file by its role's row reader (the definition of its facts and findings)."""
    ctx = staged.context(file, row, pseudonymize, smap)
    width = int(record.pop("__fields__"))
    if absorbed := record.pop(ABSORBED):
        ctx.keep_source(record, ("CPR",))
        ctx.fail(absorbed, "row.quoting", QUOTING)
        return
    columns = FORMAT.file(role).columns
    if width != len(columns):
        ctx.fail(None, "row.shape", f"{width} fields, the header has {len(columns)}")
        return
    ctx.cpr("CPR", record["CPR"])
    ctx.keep_source(record, ("CPR",))
    ctx.guarded(ROW_READERS[role], ctx, record)


def _patient(ctx: RowContext, r: dict[str, str]) -> None:
    sex = ctx.label("Køn", "sex", r["Køn"])
    location = ctx.label("Smertelokalisation", "pain_location", r["Smertelokalisation"])
    diagnosis = ctx.label("Diagnose", "diagnosis", r["Diagnose"])
    ctx.check_sex("Køn", sex)
    if ctx.ok:
        ctx.add("patients", sex=ctx.cpr_sex(), birth_year=ctx.birth_year(), pain_location=location,
                diagnosis=diagnosis, recorded_sex=sex)


def _procedure(ctx: RowContext, r: dict[str, str]) -> None:
    kind = ctx.label("Procedurekode", "procedure", r["Procedurekode"])
    day = ctx.date("Dato", r["Dato"], parse_danish_date)
    trial = kind == "trial"
    end = ctx.date("Slutdato", r["Slutdato"], parse_danish_date, required=trial)
    success = ctx.label("Resultat", "trial_success", r["Resultat"], required=trial) if trial else None
    if day and end and end < day:
        ctx.fail("Slutdato", "dates.out_of_order", f"trial ends {end} before it starts {day}")
    if ctx.ok:
        ctx.add("procedures", procedure=kind, date=day, end_date=end if trial else None, trial_success=success,
                device_ref=None, reason=r["Beskrivelse"] or None)


def _device(ctx: RowContext, r: dict[str, str]) -> None:
    kind = ctx.label("Type", "device_type", r["Type"])
    serial = ctx.required("Serienr", r["Serienr"])
    placed = ctx.date("Implantationsdato", r["Implantationsdato"], parse_danish_date)
    status = ctx.label("Status", "lead_status", r["Status"])
    status_date = ctx.date("Statusdato", r["Statusdato"], parse_danish_date)
    level = side = None
    if kind == "lead":
        level = read_level(ctx, "Niveau", r["Niveau"])
        side = ctx.label("Side", "side", r["Side"])
    if placed and status_date and status_date < placed:
        ctx.fail("Statusdato", "dates.out_of_order", f"status date {status_date} before placement {placed}")
    if ctx.ok:
        ctx.add("devices", device_ref=FORMAT.device_ref.make(serial=serial), device_type=kind,
                model=r["Model"] or None, serial=serial, placed_date=placed, level=level, side=side, status=status,
                status_date=status_date)


def _measurement(ctx: RowContext, r: dict[str, str]) -> None:
    day = ctx.date("Dato", r["Dato"], parse_danish_date)
    timepoint = ctx.label("Tidspunkt", "timepoint", r["Tidspunkt"])
    values = {
        "nrs_average": ctx.value("NRS_gns", nrs_average, r["NRS_gns"]),
        "nrs_worst": ctx.value("NRS_max", nrs_worst, r["NRS_max"]),
        "pcs_total": ctx.value("PCS", pcs_total, r["PCS"]),
    }
    if ctx.ok and all(v is None for v in values.values()):
        ctx.fail("NRS_gns", "value.missing_required", "no score in the record")
    if ctx.ok:
        add_measurements(ctx, day, timepoint, values)


def add_measurements(ctx: RowContext, day: object, timepoint: str | None, values: dict[str, float | None]) -> None:
    """One canonical measurement per score present."""
    for measure, value in values.items():
        if value is not None:
            ctx.add("measurements", date=day, timepoint=timepoint, measure=measure, value=float(value))


def _complication(ctx: RowContext, r: dict[str, str]) -> None:
    day = ctx.date("Dato", r["Dato"], parse_danish_date)
    kind = ctx.label("Type", "complication", r["Type"])
    permanent = ctx.label("Permanent", "permanent", r["Permanent"], required=False)
    if ctx.ok:
        ctx.add("complications", date=day, complication=kind, permanent=permanent, device_ref=None,
                note=r["Note"] or None)


ROW_READERS = {  # by the file's role in the format
    "patients": _patient,
    "procedures": _procedure,
    "devices": _device,
    "measurements": _measurement,
    "complications": _complication,
}


def _date(ctx: RowContext, column: str, raw: str) -> object:
    return ctx.date(column, raw, parse_danish_date, required=False)


def _label(concept: str) -> Callable[[RowContext, str, str], object]:
    return lambda ctx, column, raw: ctx.label(column, concept, raw, required=False)


# Each file's records read as a set: the probes (a row reader's steps, once per distinct text) and the SQL of
# the row rules (warehouse/readers/auh_<role>.sql); what the SQL returns is what the row readers above give.
PLANS = {
    "patients": RolePlan({"patients": "readers/auh_patients.sql"}, (
        Probe("sex", "Køn", "VARCHAR", _label("sex")),
        Probe("pain_location", "Smertelokalisation", "VARCHAR", _label("pain_location")),
        Probe("diagnosis", "Diagnose", "VARCHAR", _label("diagnosis")),
    )),
    "procedures": RolePlan({"procedures": "readers/auh_procedures.sql"}, (
        Probe("kind", "Procedurekode", "VARCHAR", _label("procedure")),
        Probe("day", "Dato", "DATE", _date),
        Probe("ends", "Slutdato", "DATE", _date),
        Probe("result", "Resultat", "BOOLEAN", _label("trial_success")),
    )),
    "devices": RolePlan({"devices": "readers/auh_devices.sql"}, (
        Probe("kind", "Type", "VARCHAR", _label("device_type")),
        Probe("serial", "Serienr", "VARCHAR", lambda ctx, column, raw: ctx.required(column, raw)),
        Probe("placed", "Implantationsdato", "DATE", _date),
        Probe("level", "Niveau", "VARCHAR", optional(read_level)),
        Probe("side", "Side", "VARCHAR", _label("side")),
        Probe("status", "Status", "VARCHAR", _label("lead_status")),
        Probe("status_day", "Statusdato", "DATE", _date),
    ), params={"device_ref": FORMAT.device_ref.template}),
    "measurements": RolePlan({"measurements": "readers/auh_measurements.sql"}, (
        Probe("day", "Dato", "DATE", _date),
        Probe("timepoint", "Tidspunkt", "VARCHAR", _label("timepoint")),
        Probe("average", "NRS_gns", "DOUBLE", lambda ctx, column, raw: ctx.value(column, nrs_average, raw)),
        Probe("worst", "NRS_max", "DOUBLE", lambda ctx, column, raw: ctx.value(column, nrs_worst, raw)),
        Probe("pcs", "PCS", "DOUBLE", lambda ctx, column, raw: ctx.value(column, pcs_total, raw)),
    )),
    "complications": RolePlan({"complications": "readers/auh_complications.sql"}, (
        Probe("day", "Dato", "DATE", _date),
        Probe("kind", "Type", "VARCHAR", _label("complication")),
        Probe("permanent", "Permanent", "BOOLEAN", _label("permanent")),
    )),
}
__all__ = ["ValueProblem", "read_auh"]
