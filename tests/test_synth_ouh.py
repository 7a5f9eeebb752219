"""ouh delivery: a real workbook with the sheets, headers and vocabulary of extracts.md, agreeing with the truth."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import openpyxl
import pytest
from helpers import CUTOFF, Generated

from drg_etl.core.formats import FORMATS

WORKBOOK = "DRG_registrering.xlsx"
PAIN_AREAS = {"Foot": "lower_extremity", "Leg": "lower_extremity", "Knee": "lower_extremity",
              "Hip/groin": "lower_extremity", "Hand": "upper_extremity", "Arm": "upper_extremity",
              "Shoulder": "upper_extremity", "Chest wall": "thoracic_abdominal", "Abdomen": "thoracic_abdominal",
              "Flank": "thoracic_abdominal"}
DIAGNOSIS = {"crps_1": "CRPS I", "crps_2": "CRPS II", "postsurgical": "Post-surgical",
             "posttraumatic": "Post-traumatic", "postherpetic": "Post-herpetic", "other": "Other"}
LEAD_STATUS = {"active": "OK", "fractured": "Fractured", "malfunction": "Defect", "removed": "Removed",
               "removed_fragment_retained": "Removed - fragment left"}
COMPLICATIONS = {"Lead fracture", "Lead defect", "Lead migration", "Infection", "CSF leak", "Pocket pain",
                 "Fragment retained", "Nerve injury", "Other"}
TIMEPOINTS = {"baseline": "baseline", "3m": "month_3", "6m": "month_6", "12m": "month_12", "24m": "month_24",
              "36m": "month_36"}
TEXT_DATE = re.compile(r"^\d{2}\.\d{2}\.\d{4}$")


@pytest.fixture(scope="module")
def sheets(demo: Generated) -> dict[str, list[dict[str, Any]]]:
    """Each sheet's records as dicts, with their Excel row number; notes and error-defect rows left out."""
    workbook = openpyxl.load_workbook(demo.folder("ouh") / WORKBOOK, read_only=True)
    out = {}
    for name in workbook.sheetnames:
        rows = list(workbook[name].iter_rows(values_only=True))
        header = rows[0]
        # A Treatment row with a bad revision still holds valid facts; other error rows are left out.
        errors = set() if name == "Treatment" else {
            d["row"] for d in demo.defects_in(f"{WORKBOOK}#{name}") if d["severity"] == "error"}
        padded = [tuple(row) + (None,) * (len(header) - len(row)) for row in rows[1:]]
        out[name] = [dict(zip(header, row, strict=True), _row=i) for i, row in enumerate(padded, start=2)
                     if i not in errors and not str(row[0]).startswith("Note:")]
    return out


def as_date(value: Any) -> dt.date:
    """An Excel date cell or a ``dd.mm.yyyy`` text cell as a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    assert isinstance(value, str) and TEXT_DATE.match(value), value
    return dt.datetime.strptime(value, "%d.%m.%Y").date()


def test_sheets_and_headers(demo: Generated) -> None:
    workbook = openpyxl.load_workbook(demo.folder("ouh") / WORKBOOK, read_only=True)
    assert workbook.sheetnames == ["Patients", "Treatment", "Follow-up", "Complications"]
    header = {name: next(workbook[name].iter_rows(max_row=1, values_only=True)) for name in workbook.sheetnames}
    assert header["Patients"] == ("CPR-nr", "Gender", "Pain area", "Diagnosis")
    assert header["Complications"] == ("CPR-nr", "Date", "Complication", "Permanent harm", "Comment")
    treatment = header["Treatment"]
    assert treatment[:7] == ("CPR-nr", "Trial start", "Trial end", "Trial outcome", "Implant date", "IPG model",
                             "IPG serial")
    assert treatment[7:10] == ("Lead 1 level", "Lead 1 serial", "Lead 1 status")
    assert treatment[16:19] == ("Lead 4 level", "Lead 4 serial", "Lead 4 status")
    assert treatment[19:22] == ("Revision 1 date", "Revision 1 type", "Revision 1 lead")
    assert treatment[-2:] == ("Explant date", "Explant reason") and len(treatment) == 30
    assert header["Follow-up"][:5] == ("CPR-nr", "Date baseline", "NRS avg baseline", "NRS worst baseline",
                                       "PCS baseline")
    assert header["Follow-up"][-4:] == ("Date 36m", "NRS avg 36m", "NRS worst 36m", "PCS 36m")


def test_the_generator_writes_exactly_the_declared_workbook_sheets_and_columns(demo: Generated) -> None:
    declared = FORMATS["ouh"]
    folder = demo.folder("ouh")
    assert sorted(p.name for p in folder.iterdir()) == declared.file_names(dt.date.fromisoformat(CUTOFF))
    (book,) = declared.files
    workbook = openpyxl.load_workbook(folder / book.name, read_only=True)
    assert workbook.sheetnames == [sheet.name for sheet in book.sheets]
    for sheet in book.sheets:
        assert next(workbook[sheet.name].iter_rows(max_row=1, values_only=True)) == sheet.columns, sheet.name


def test_note_rows_below_the_records(demo: Generated) -> None:
    workbook = openpyxl.load_workbook(demo.folder("ouh") / WORKBOOK, read_only=True)
    for name in ("Treatment", "Complications"):
        first_cells = [row[0] for row in workbook[name].iter_rows(min_row=2, values_only=True)]
        assert str(first_cells[-1]).startswith("Note:")
        assert not any(str(c).startswith("Note:") for c in first_cells[:-1])


def test_vocabulary_and_dates(sheets: dict[str, list[dict[str, Any]]]) -> None:
    assert {r["Gender"] for r in sheets["Patients"]} <= {"F", "M"}
    assert {r["Pain area"] for r in sheets["Patients"]} <= set(PAIN_AREAS)
    assert {r["Diagnosis"] for r in sheets["Patients"]} <= set(DIAGNOSIS.values())
    assert all(re.match(r"^\d{6}-\d{4}$", r["CPR-nr"]) for r in sheets["Patients"])
    kinds = {"text": 0, "excel": 0}
    for row in sheets["Treatment"]:
        assert row["Trial outcome"] in ("Success", "Failure", None)
        for n in range(1, 5):
            level = row[f"Lead {n} level"]
            assert level is None or re.match(r"^[CTLS]\d{1,2} (sin|dx)$", level)
            assert row[f"Lead {n} status"] in (*LEAD_STATUS.values(), None)
        for n in range(1, 4):
            assert row[f"Revision {n} type"] in ("Lead replacement", "Lead repositioning", "IPG replacement",
                                                 "Lead removal", None)
        for column in ("Trial start", "Trial end", "Implant date", "Explant date"):
            if row[column] is not None:
                as_date(row[column])
                kinds["text" if isinstance(row[column], str) else "excel"] += 1
    assert kinds["excel"] > kinds["text"] > 0, "mostly Excel dates, some typed as text"
    assert {r["Complication"] for r in sheets["Complications"]} <= COMPLICATIONS
    assert {r["Permanent harm"] for r in sheets["Complications"]} <= {"Yes", "No"}


def test_ouh_workbook_cells_agree_with_the_truth(demo: Generated, sheets: dict[str, list[dict[str, Any]]]) -> None:
    persons = [p for p in demo.persons_at("ouh") if p["profile"] != "screened_only"]
    assert len(persons) >= 8
    for person in persons:
        cpr = f"{person['cpr'][:6]}-{person['cpr'][6:]}"
        patient = [r for r in sheets["Patients"] if r["CPR-nr"] == cpr]
        assert {PAIN_AREAS[r["Pain area"]] for r in patient} == {person["pain_location"]}
        assert {r["Diagnosis"] for r in patient} == {DIAGNOSIS[person["diagnosis"]]}
        treatment = [r for r in sheets["Treatment"] if r["CPR-nr"] == cpr]
        trials = sorted(p for p in person["procedures"] if p["kind"] == "trial" and p["center"] == "ouh")
        assert len(treatment) == max(1, len(trials))
        last = treatment[-1]
        leads = [lead for lead in person["leads"] if lead["center"] == "ouh"]
        for n, lead in enumerate(leads, start=1):
            side = "sin" if lead["side"] == "left" else "dx"
            assert last[f"Lead {n} level"] == f"{lead['level']} {side}"
            assert last[f"Lead {n} serial"] == lead["serial"]
            assert last[f"Lead {n} status"] == LEAD_STATUS[lead["status"]]
        implant = next((p for p in person["procedures"] if p["kind"] == "implant" and p["center"] == "ouh"), None)
        if implant is not None:
            assert as_date(last["Implant date"]).isoformat() == implant["date"]
        follow = [r for r in sheets["Follow-up"] if r["CPR-nr"] == cpr]
        measured = [m for m in person["measurements"] if m["center"] == "ouh"]
        assert len(follow) == (1 if measured else 0)
        for m in measured:
            tp = next(k for k, v in TIMEPOINTS.items() if v == m["timepoint"])
            row = follow[0]
            assert as_date(row[f"Date {tp}"]).isoformat() == m["date"]
            assert row[f"NRS avg {tp}"] == m["nrs_average"]
            assert row[f"NRS worst {tp}"] == m["nrs_worst"]
            assert row[f"PCS {tp}"] == m["pcs_total"]
