"""ouh reader: the hand-kept workbook (extracts.md "ouh", declared in drg_etl.core.formats) onto the canonical model.

Each sheet counts as a file of its own (``DRG_registrering.xlsx#Treatment``). A Treatment
row holds a whole treatment: each fact in it (trial, implant, lead, revision, explant) is
checked on its own, and the facts that pass load even when another fact of the row fails.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from typing import Any

from drg_etl.core.delivery import Delivery, FileRejected, Issue
from drg_etl.core.formats import (
    FORMATS,
    OUH_FOLLOW_UP,
    OUH_FOLLOW_UP_MEASURES,
    OUH_LEAD_SLOTS,
    OUH_REVISION_SLOTS,
    sheet_file,
)
from drg_etl.core.mappings import source_map
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.sources.auh import add_measurements
from drg_etl.sources.base import RowContext, StagedDelivery
from drg_etl.sources.csvfile import check_columns
from drg_etl.sources.values import ValueProblem, check_score, parse_dotted_date
from drg_etl.sources.workbook import UNREADABLE, Workbook

FORMAT = FORMATS["ouh"]
WORKBOOK = FORMAT.file("workbook")
_LEAD_CELL = re.compile(r"^\s*([A-Za-z]\d{1,2})\s+(\w+)\s*$")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


@functools.cache  # one parser per measure: each follow-up row asks for them
def _number(name: str, low: float, high: float, integer: bool):
    def parse(text: str) -> float:
        try:
            value = float(text.replace(",", "."))
        except ValueError as exc:
            raise ValueProblem("code.unknown", f"{text!r} is not a number") from exc
        if not math.isfinite(value):
            raise ValueProblem("score.out_of_range", f"{name} {text} is not a finite number")
        if integer and value != int(value):
            raise ValueProblem("code.unknown", f"{name} {text} is not a whole number")
        return check_score(value, low, high, name)

    return parse


def open_workbook(delivery: Delivery) -> Workbook:
    """Open the workbook; reject it whole when it cannot be opened or lacks a sheet."""
    name = WORKBOOK.file_name(delivery.cutoff)
    try:
        workbook = Workbook(delivery.folder / name)
    except UNREADABLE as exc:
        raise FileRejected(name, "file.unreadable", f"the workbook cannot be opened: {exc}") from exc
    missing = [s.name for s in WORKBOOK.sheets if s.name not in workbook.sheetnames]
    if missing:
        raise FileRejected(name, "file.columns", f"sheet(s) {missing} missing")
    return workbook


def read_ouh(delivery: Delivery, staged: StagedDelivery, pseudonymize: Pseudonymizer) -> None:
    """Read the four sheets into ``staged``."""
    workbook = open_workbook(delivery)
    smap = source_map("ouh")
    name, declared = WORKBOOK.file_name(delivery.cutoff), {s.name for s in WORKBOOK.sheets}
    for extra in workbook.sheetnames:  # reported like an extra file: the export changed, or holds more than it should
        state = workbook.states[extra]
        why = (f"a {state} sheet the format does not define; it was not read" if extra not in declared else
               f"the sheet is {state}: a hidden sheet may hold what the center did not mean to send" if
               state != "visible" else None)
        if why:
            staged.issues.append(Issue(delivery.center, delivery.cutoff.isoformat(), sheet_file(name, extra), 0,
                                       None, "file.unexpected", why))
    for sheet in WORKBOOK.sheets:
        file = sheet_file(WORKBOOK.file_name(delivery.cutoff), sheet.name)
        reader = ROW_READERS[sheet.role]
        rows = workbook.rows(sheet.name)
        header = [_text(c) for c in next(rows, ())]
        while header and header[-1] == "":
            header.pop()
        check_columns(file, header, list(sheet.columns))
        for number, values in enumerate(rows, start=2):
            cells = list(values) + [None] * (len(header) - len(values))
            if all(c is None or _text(c) == "" for c in cells) or _text(cells[0]).startswith("Note:"):
                continue
            record = dict(zip(header, cells, strict=False))
            ctx = staged.context(file, number, pseudonymize, smap)
            ctx.cpr("CPR-nr", record["CPR-nr"])
            ctx.keep_source(record, ("CPR-nr",))
            ctx.guarded(reader, ctx, record)
    workbook.close()


def _date(ctx: RowContext, column: str, value: Any, required: bool = True) -> dt.date | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        ctx.fail(column, "date.invalid", f"{value!r} is a number, not a date")
        return None
    return ctx.date(column, value, parse_dotted_date, required=required)


def _patient(ctx: RowContext, r: dict[str, Any]) -> None:
    sex = ctx.label("Gender", "sex", r["Gender"])
    location = ctx.label("Pain area", "pain_location", r["Pain area"])
    diagnosis = ctx.label("Diagnosis", "diagnosis", r["Diagnosis"])
    ctx.check_sex("Gender", sex)
    if ctx.ok:
        ctx.add("patients", sex=ctx.cpr_sex(), birth_year=ctx.birth_year(), pain_location=location,
                diagnosis=diagnosis, recorded_sex=sex)


def _lead(ctx: RowContext, column: str, text: str) -> tuple[str | None, str | None]:
    match = _LEAD_CELL.match(text)
    if not match:
        ctx.fail(column, "code.unknown", f"{text!r} is not a lead level and side like 'L5 sin'")
        return None, None
    level = ctx.level(column, match.group(1))
    if level is None:
        return None, None
    return level, ctx.label(column, "side", match.group(2))


def _treatment(ctx: RowContext, r: dict[str, Any]) -> None:
    if ctx.patient_key is None:
        return
    key = ctx.patient_key
    if _text(r["Trial start"]) or _text(r["Trial outcome"]):
        mark = ctx.mark()
        start = _date(ctx, "Trial start", r["Trial start"])
        end = _date(ctx, "Trial end", r["Trial end"])
        success = ctx.label("Trial outcome", "trial_success", r["Trial outcome"])
        if ctx.ok_since(mark):
            ctx.add("procedures", procedure="trial", date=start, end_date=end, trial_success=success,
                    device_ref=None, reason=None)
    explant_date = None
    if _text(r["Explant date"]):
        mark = ctx.mark()
        explant_date = _date(ctx, "Explant date", r["Explant date"])
        if ctx.ok_since(mark):
            ctx.add("procedures", procedure="explant", date=explant_date, end_date=None, trial_success=None,
                    device_ref=None, reason=_text(r["Explant reason"]) or None)
    implant_date = None
    if _text(r["Implant date"]):
        mark = ctx.mark()
        implant_date = _date(ctx, "Implant date", r["Implant date"])
        serial = ctx.required("IPG serial", r["IPG serial"])
        if ctx.ok_since(mark):
            ctx.add("procedures", procedure="implant", date=implant_date, end_date=None, trial_success=None,
                    device_ref=None, reason=None)
            ctx.add("devices", device_ref=FORMAT.device_ref.generator(patient=key), device_type="generator",
                    model=_text(r["IPG model"]) or None, serial=serial, placed_date=implant_date, level=None,
                    side=None, status="removed" if explant_date else "active",
                    status_date=explant_date or implant_date)
    revisions = []
    for n in range(1, OUH_REVISION_SLOTS + 1):
        if not (_text(r[f"Revision {n} date"]) or _text(r[f"Revision {n} type"])):
            continue
        mark = ctx.mark()
        day = _date(ctx, f"Revision {n} date", r[f"Revision {n} date"])
        kind = ctx.label(f"Revision {n} type", "revision_type", r[f"Revision {n} type"])
        lead_no = None
        if _text(r[f"Revision {n} lead"]):
            try:
                lead_no = int(float(_text(r[f"Revision {n} lead"])))
            except ValueError:
                ctx.fail(f"Revision {n} lead", "code.unknown", f"{r[f'Revision {n} lead']!r} is not a lead number")
            else:
                if not (_text(r.get(f"Lead {lead_no} level")) or _text(r.get(f"Lead {lead_no} serial"))):
                    ctx.fail(f"Revision {n} lead", "lead.never_placed",
                             f"revision {n} ({_text(r[f'Revision {n} type'])}) concerns lead {lead_no}, "
                             f"which the row never places")
        elif kind in ("lead_replacement", "lead_repositioning", "lead_removal"):
            ctx.fail(f"Revision {n} lead", "value.missing_required", f"revision {n} names no lead")
        if ctx.ok_since(mark):
            revisions.append((day, kind, lead_no))
            ctx.add("procedures", procedure=kind, date=day, end_date=None, trial_success=None,
                    device_ref=None if lead_no is None else FORMAT.device_ref.lead(lead_no, patient=key),
                    reason=None)
    leads = [n for n in range(1, OUH_LEAD_SLOTS + 1)
             if _text(r[f"Lead {n} level"]) or _text(r[f"Lead {n} serial"]) or _text(r[f"Lead {n} status"])]
    replacements = [day for day, kind, _ in revisions if kind == "lead_replacement"]
    initial = len(leads) - len(replacements)
    for index, n in enumerate(leads):
        mark = ctx.mark()
        level, side = _lead(ctx, f"Lead {n} level", _text(r[f"Lead {n} level"]))
        serial = ctx.required(f"Lead {n} serial", r[f"Lead {n} serial"])
        status = ctx.label(f"Lead {n} status", "lead_status", r[f"Lead {n} status"])
        placed = implant_date if index < initial else replacements[index - initial]
        if placed is None:
            ctx.fail(f"Lead {n} level", "lead.never_placed", f"lead {n} has no implant or replacement placing it")
        if not ctx.ok_since(mark):
            continue
        removed_on = [day for day, kind, lead_no in revisions
                      if lead_no == n and kind in ("lead_replacement", "lead_removal")]
        status_date = placed
        if status in ("removed", "removed_fragment_retained"):
            status_date = removed_on[0] if removed_on else explant_date
        elif status in ("fractured", "malfunction"):
            status_date = None  # the workbook does not date a fault; the complication does
        ctx.add("devices", device_ref=FORMAT.device_ref.lead(n, patient=key), device_type="lead", model=None,
                serial=serial, placed_date=placed, level=level, side=side, status=status, status_date=status_date)


def _follow_up(ctx: RowContext, r: dict[str, Any]) -> None:
    smap = source_map("ouh")
    timepoints = smap.spec["follow_up_columns"]
    for tp in OUH_FOLLOW_UP:
        cells = [r[f"{m} {tp}"] for m in OUH_FOLLOW_UP_MEASURES]
        if all(_text(c) == "" for c in cells):
            continue
        mark = ctx.mark()
        day = _date(ctx, f"Date {tp}", cells[0])
        values = {
            "nrs_average": ctx.value(f"NRS avg {tp}", _number("NRS avg", 0, 10, False), cells[1]),
            "nrs_worst": ctx.value(f"NRS worst {tp}", _number("NRS worst", 0, 10, True), cells[2]),
            "pcs_total": ctx.value(f"PCS {tp}", _number("PCS", 0, 52, True), cells[3]),
        }
        if ctx.ok_since(mark):
            add_measurements(ctx, day, timepoints[tp], values)


def _complication(ctx: RowContext, r: dict[str, Any]) -> None:
    day = _date(ctx, "Date", r["Date"])
    kind = ctx.label("Complication", "complication", r["Complication"])
    permanent = ctx.label("Permanent harm", "permanent", r["Permanent harm"], required=False)
    if ctx.ok:
        ctx.add("complications", date=day, complication=kind, permanent=permanent, device_ref=None,
                note=_text(r["Comment"]) or None)


ROW_READERS = {"patients": _patient, "treatments": _treatment, "follow_up": _follow_up,  # by the sheet's role
           "complications": _complication}
