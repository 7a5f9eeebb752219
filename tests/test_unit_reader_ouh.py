"""Unit tests of the ouh reader: a few hand-written workbook rows in, canonical facts and findings out.

Each test writes a tiny ``DRG_registrering.xlsx`` in the exact ouh layout (extracts.md "ouh":
four sheets, header in row 1, Excel dates or text ``dd.mm.yyyy``, notes rows below the records),
reads it with :func:`drg_etl.sources.deliveries.read_delivery` and asserts facts and findings
(file ``DRG_registrering.xlsx#<sheet>``, row, column, rule) exactly. A Treatment or Follow-up row
is a wide record: each fact in it is checked on its own, and the facts that pass still load.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import pytest
from helpers import pseudonym_of, read_delivery_facts, rejected_by

from drg_etl.pipeline.load import load_inbox

KEY = bytes.fromhex("f332972c40647a25ba6d87cf969d4471374411a56a5c9c0e13f97ef0fde63683")
D = dt.date
X = dt.datetime  # an Excel date cell
BOOK = "DRG_registrering.xlsx"
PATIENTS, TREATMENT, FOLLOW_UP, COMPLICATIONS = (f"{BOOK}#{s}" for s in ("Patients", "Treatment", "Follow-up",
                                                                          "Complications"))
TIMEPOINTS = ["baseline", "3m", "6m", "12m", "24m", "36m"]
# The sheets' columns as extracts.md fixes them.
COLUMNS = {
    "Patients": ["CPR-nr", "Gender", "Pain area", "Diagnosis"],
    "Treatment": ["CPR-nr", "Trial start", "Trial end", "Trial outcome", "Implant date", "IPG model", "IPG serial",
                  *(f"Lead {n} {c}" for n in range(1, 5) for c in ("level", "serial", "status")),
                  *(f"Revision {n} {c}" for n in range(1, 4) for c in ("date", "type", "lead")),
                  "Explant date", "Explant reason"],
    "Follow-up": ["CPR-nr", *(f"{m} {tp}" for tp in TIMEPOINTS for m in ("Date", "NRS avg", "NRS worst", "PCS"))],
    "Complications": ["CPR-nr", "Date", "Complication", "Permanent harm", "Comment"],
}
ANNA = "010180-1234"  # synthetic: born 1 Jan 1980, female
BO = "020275-3457"  # synthetic: born 2 Feb 1975, male


def treatment(**cells: Any) -> dict[str, Any]:
    """A Treatment row by column name (``Trial_start`` for ``Trial start``)."""
    return {k.replace("_", " "): v for k, v in cells.items()}


def follow_up(cpr: str, **timepoints: tuple[Any, Any, Any, Any]) -> dict[str, Any]:
    """A Follow-up row: for each timepoint given (``m3`` for ``3m``) its date, NRS avg, NRS worst and PCS."""
    row: dict[str, Any] = {"CPR-nr": cpr}
    for name, cells in timepoints.items():
        tp = name if name == "baseline" else name[1:] + "m"
        row.update(zip((f"{m} {tp}" for m in ("Date", "NRS avg", "NRS worst", "PCS")), cells, strict=True))
    return row


# One patient with a full treatment: trial, implant with two leads, lead 1 replaced by lead 3, the
# generator replaced, the system explanted; follow-up at baseline and 3 months; notes below the records.
CLEAN: dict[str, list[Any]] = {
    "Patients": [{"CPR-nr": ANNA, "Gender": "F", "Pain area": "Knee", "Diagnosis": "CRPS I"},
                 {}, "Note: checked against the journal 2019-12-30"],
    "Treatment": [treatment(**{"CPR-nr": ANNA}, Trial_start=X(2016, 3, 10), Trial_end="17.03.2016",
                            Trial_outcome="Success", Implant_date=X(2016, 4, 7), IPG_model="Proclaim DRG",
                            IPG_serial="IPG-0001",
                            Lead_1_level="L5 sin", Lead_1_serial="LD-0001", Lead_1_status="Removed - fragment left",
                            Lead_2_level="L4 sin", Lead_2_serial="LD-0002", Lead_2_status="Removed",
                            Lead_3_level="L5 sin", Lead_3_serial="LD-0003", Lead_3_status="Removed",
                            Revision_1_date=X(2017, 1, 5), Revision_1_type="Lead replacement", Revision_1_lead=1,
                            Revision_2_date="01.02.2018", Revision_2_type="IPG replacement",
                            Explant_date=X(2019, 2, 1), Explant_reason="No lasting effect"),
                  "Note: IPG serial of the replacement not recorded"],
    "Follow-up": [follow_up(ANNA, baseline=(X(2016, 3, 1), 6.8, 9, 30), m3=("07.07.2016", 3.1, 5, 12))],
    "Complications": [{"CPR-nr": ANNA, "Date": X(2016, 12, 20), "Complication": "Lead fracture",
                       "Permanent harm": "No", "Comment": "lead 1, replaced"}],
}


def write_ouh(inbox: Path, sheets: dict[str, list[Any]] | None = None, cutoff: str = "2019-12-31",
              columns: dict[str, list[str]] | None = None) -> Path:
    """Write the workbook: the clean rows, with ``sheets`` replacing a sheet's rows.

    A row is a dict by column name, or a string for a notes row (its first cell).
    """
    folder = inbox / "ouh" / cutoff
    folder.mkdir(parents=True)
    book = openpyxl.Workbook()
    book.remove(book.active)
    for sheet, header in (columns or COLUMNS).items():
        ws = book.create_sheet(sheet)
        ws.append(header)
        for row in (sheets or {}).get(sheet, CLEAN[sheet]):
            ws.append([row] if isinstance(row, str) else [row.get(c) for c in header])
    book.save(folder / BOOK)
    return folder


# The reading harness (helpers.py) for ouh under this module's test key.
read = partial(read_delivery_facts, "ouh", key=KEY)  # read(folder) -> ReadOutcome
rejection = partial(rejected_by, "ouh", key=KEY)  # rejection(folder) -> [(file, rule id)]
pseudonym = partial(pseudonym_of, key=KEY)  # pseudonym(cpr) -> the patient key the reader must give


def with_treatment(**cells: Any) -> dict[str, list[Any]]:
    """The clean workbook with one Treatment row of Anna's replaced by these cells."""
    return {"Treatment": [treatment(**{"CPR-nr": ANNA}, **cells)]}


TRIAL = {"Trial_start": X(2016, 3, 10), "Trial_end": X(2016, 3, 17), "Trial_outcome": "Success"}
IMPLANT = {"Implant_date": X(2016, 4, 7), "IPG_model": "Axium", "IPG_serial": "IPG-0001"}


# -- a clean patient -------------------------------------------------------------------------------


def test_ouh_clean_patient_with_full_treatment_gives_every_canonical_fact(tmp_path: Path) -> None:
    """Every sheet's record of a clean patient becomes its canonical facts, with no finding."""
    out = read(write_ouh(tmp_path))
    key = pseudonym(ANNA)
    ref = f"ouh:{key[:16]}:"
    assert out.issues == []
    assert out.facts["patients"] == [
        {"source_file": PATIENTS, "source_row": 2, "patient_key": key, "sex": "female", "birth_year": 1980,
         "pain_location": "lower_extremity", "diagnosis": "crps_1", "recorded_sex": "female"}]
    assert {(f["source_file"], f["source_row"], f["patient_key"]) for f in out.facts["procedures"]} == {
        (TREATMENT, 2, key)}
    assert sorted((f["date"], f["procedure"], f["end_date"], f["trial_success"], f["device_ref"], f["reason"])
                  for f in out.facts["procedures"]) == [
        (D(2016, 3, 10), "trial", D(2016, 3, 17), True, None, None),
        (D(2016, 4, 7), "implant", None, None, None, None),
        (D(2017, 1, 5), "lead_replacement", None, None, f"{ref}lead1", None),
        (D(2018, 2, 1), "ipg_replacement", None, None, None, None),
        (D(2019, 2, 1), "explant", None, None, None, "No lasting effect"),
    ]
    assert [(f["source_row"], f["patient_key"]) for f in out.facts["devices"]] == [(2, key)] * 4
    assert [(f["device_ref"], f["device_type"], f["model"], f["serial"], f["placed_date"], f["level"], f["side"],
             f["status"], f["status_date"]) for f in out.facts["devices"]] == [
        (f"{ref}ipg", "generator", "Proclaim DRG", "IPG-0001", D(2016, 4, 7), None, None, "removed", D(2019, 2, 1)),
        (f"{ref}lead1", "lead", None, "LD-0001", D(2016, 4, 7), "L5", "left", "removed_fragment_retained",
         D(2017, 1, 5)),
        (f"{ref}lead2", "lead", None, "LD-0002", D(2016, 4, 7), "L4", "left", "removed", D(2019, 2, 1)),
        # the replacement lead takes the next free number and is placed on the replacement's date
        (f"{ref}lead3", "lead", None, "LD-0003", D(2017, 1, 5), "L5", "left", "removed", D(2019, 2, 1)),
    ]
    assert [(f["source_file"], f["source_row"], f["patient_key"]) for f in out.facts["measurements"]] == [
        (FOLLOW_UP, 2, key)] * 6
    assert [(f["date"], f["timepoint"], f["measure"], f["value"]) for f in out.facts["measurements"]] == [
        (D(2016, 3, 1), "baseline", "nrs_average", 6.8),
        (D(2016, 3, 1), "baseline", "nrs_worst", 9.0),
        (D(2016, 3, 1), "baseline", "pcs_total", 30.0),
        (D(2016, 7, 7), "month_3", "nrs_average", 3.1),
        (D(2016, 7, 7), "month_3", "nrs_worst", 5.0),
        (D(2016, 7, 7), "month_3", "pcs_total", 12.0),
    ]
    assert out.facts["complications"] == [
        {"source_file": COMPLICATIONS, "source_row": 2, "patient_key": key, "date": D(2016, 12, 20),
         "complication": "lead_fracture", "permanent": False, "device_ref": None, "note": "lead 1, replaced"}]


def test_ouh_notes_and_blank_rows_below_the_records_are_not_records(tmp_path: Path) -> None:
    """A row whose first cell starts with 'Note:' and an empty row are neither read nor reported."""
    out = read(write_ouh(tmp_path, {"Complications": [*CLEAN["Complications"], {}, "Note: list checked by MK",
                                                      "Note: 2 patients pending"]}))
    assert out.issues == []
    assert {f: c.rows_read for f, c in out.counts.items()} == {PATIENTS: 1, TREATMENT: 1, FOLLOW_UP: 1,
                                                               COMPLICATIONS: 1}


@pytest.mark.parametrize(
    ("area", "location"),
    [("Foot", "lower_extremity"), ("Leg", "lower_extremity"), ("Hip/groin", "lower_extremity"),
     ("Hand", "upper_extremity"), ("Shoulder", "upper_extremity"), ("Chest wall", "thoracic_abdominal"),
     ("Abdomen", "thoracic_abdominal"), ("Flank", "thoracic_abdominal")],
)
def test_ouh_pain_area_body_part_maps_onto_pain_location(tmp_path: Path, area: str, location: str) -> None:
    """The Pain area names a body part; it maps onto one of the three pain locations."""
    out = read(write_ouh(tmp_path, {"Patients": [{"CPR-nr": ANNA, "Gender": "F", "Pain area": area,
                                                  "Diagnosis": "Post-herpetic"}]}))
    assert out.issues == []
    assert out.kinds("patients", "pain_location") == [location]
    assert out.kinds("patients", "diagnosis") == ["postherpetic"]


def test_ouh_second_trial_is_a_second_row(tmp_path: Path) -> None:
    """A failed trial and a later successful one are two Treatment rows, two trial facts."""
    out = read(write_ouh(tmp_path, {"Treatment": [
        treatment(**{"CPR-nr": ANNA}, Trial_start=X(2015, 5, 1), Trial_end=X(2015, 5, 8), Trial_outcome="Failure"),
        treatment(**{"CPR-nr": ANNA}, **TRIAL, **IMPLANT)]}))
    assert out.issues == []
    assert [(f["source_row"], f["procedure"], f["trial_success"]) for f in out.facts["procedures"]] == [
        (2, "trial", False), (3, "trial", True), (3, "implant", None)]


# -- row rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cpr", ["010180-123", "0101801234X", "310280-1234", 101801234])
def test_ouh_invalid_cpr_is_quarantined_without_a_fact(tmp_path: Path, cpr: Any) -> None:
    """A CPR of wrong length or characters, an impossible date, or a number cell: cpr.invalid in CPR-nr."""
    out = read(write_ouh(tmp_path, {"Patients": [
        *CLEAN["Patients"][:1], {"CPR-nr": cpr, "Gender": "M", "Pain area": "Leg", "Diagnosis": "Other"}]}))
    assert out.findings() == [(PATIENTS, 3, "CPR-nr", "cpr.invalid")]
    assert [f["source_row"] for f in out.facts["patients"]] == [2]


def test_ouh_cpr_without_hyphen_is_the_same_patient(tmp_path: Path) -> None:
    """The hyphen is optional: ``0101801234`` in one sheet and ``010180-1234`` in another are one patient."""
    out = read(write_ouh(tmp_path, {"Complications": [{**CLEAN["Complications"][0], "CPR-nr": "0101801234"}]}))
    assert out.issues == []
    assert out.kinds("complications", "patient_key") == out.kinds("patients", "patient_key") == [pseudonym(ANNA)]


def test_ouh_gender_contradicting_the_cpr_is_a_warning_and_the_patient_loads(tmp_path: Path) -> None:
    """Gender M for a woman's CPR: cpr.sex_mismatch (warning); sex from the CPR, the recorded sex kept."""
    out = read(write_ouh(tmp_path, {"Patients": [{**CLEAN["Patients"][0], "Gender": "M"}]}))
    assert out.findings() == [(PATIENTS, 2, "Gender", "cpr.sex_mismatch")]
    assert out.issues[0].severity == "warning"
    assert (out.kinds("patients", "sex"), out.kinds("patients", "recorded_sex")) == (["female"], ["male"])


@pytest.mark.parametrize("value", ["31.02.2016", "2016-12-20", "20-12-2016", 42724])
def test_ouh_impossible_or_misspelt_date_breaks_date_invalid(tmp_path: Path, value: Any) -> None:
    """A text date that does not exist or is not dd.mm.yyyy, or a bare number, is date.invalid."""
    out = read(write_ouh(tmp_path, {"Complications": [{**CLEAN["Complications"][0], "Date": value}]}))
    assert out.findings() == [(COMPLICATIONS, 2, "Date", "date.invalid")]
    assert out.facts["complications"] == []


@pytest.mark.parametrize("value", [X(2020, 1, 1), "01.01.2020", X(2009, 12, 31)])
def test_ouh_date_after_cutoff_or_before_2010_is_out_of_range(tmp_path: Path, value: Any) -> None:
    """An Excel or text date after the cutoff or before 2010 breaks date.out_of_range."""
    out = read(write_ouh(tmp_path, {"Complications": [{**CLEAN["Complications"][0], "Date": value}]}))
    assert out.findings() == [(COMPLICATIONS, 2, "Date", "date.out_of_range")]


def test_ouh_bad_fact_in_a_treatment_row_does_not_take_the_others(tmp_path: Path) -> None:
    """An impossible implant date: the implant and its devices fail, the trial of the same row still loads."""
    out = read(write_ouh(tmp_path, with_treatment(**TRIAL, Implant_date="31.04.2016", IPG_serial="IPG-0001",
                                                  Lead_1_level="L5 sin", Lead_1_serial="LD-0001",
                                                  Lead_1_status="OK")))
    assert out.findings() == [(TREATMENT, 2, "Implant date", "date.invalid"),
                              (TREATMENT, 2, "Lead 1 level", "lead.never_placed")]
    assert out.kinds("procedures", "procedure") == ["trial"]
    assert out.facts["devices"] == []


def test_ouh_score_out_of_range_fails_its_timepoint_only(tmp_path: Path) -> None:
    """NRS avg 11 at 3 months: score.out_of_range in 'NRS avg 3m'; baseline of the same row loads."""
    out = read(write_ouh(tmp_path, {"Follow-up": [
        follow_up(ANNA, baseline=(X(2016, 3, 1), 6.8, 9, 30), m3=(X(2016, 7, 7), 11, 5, 53))]}))
    assert out.findings() == [(FOLLOW_UP, 2, "NRS avg 3m", "score.out_of_range"),
                              (FOLLOW_UP, 2, "PCS 3m", "score.out_of_range")]
    assert set(out.kinds("measurements", "timepoint")) == {"baseline"}


@pytest.mark.parametrize(("cells", "column"), [((5.5, 30), "NRS worst baseline"), ((5, "high"), "PCS baseline")])
def test_ouh_score_that_is_not_a_whole_number_breaks_code_unknown(tmp_path: Path, cells: tuple[Any, Any],
                                                                  column: str) -> None:
    """NRS worst and PCS are whole numbers: 5.5 or a word is code.unknown."""
    out = read(write_ouh(tmp_path, {"Follow-up": [follow_up(ANNA, baseline=(X(2016, 3, 1), 6.8, *cells))]}))
    assert out.findings() == [(FOLLOW_UP, 2, column, "code.unknown")]
    assert out.facts["measurements"] == []


@pytest.mark.parametrize(
    ("sheet", "row", "column"),
    [
        ("Patients", {"CPR-nr": ANNA, "Gender": "F", "Pain area": "Toe", "Diagnosis": "CRPS I"}, "Pain area"),
        ("Patients", {"CPR-nr": ANNA, "Gender": "F", "Pain area": "Leg", "Diagnosis": "CRPS III"}, "Diagnosis"),
        ("Patients", {"CPR-nr": ANNA, "Gender": "K", "Pain area": "Leg", "Diagnosis": "CRPS I"}, "Gender"),
        ("Treatment", treatment(**{"CPR-nr": ANNA}, **{**TRIAL, "Trial_outcome": "Partial"}), "Trial outcome"),
        ("Treatment", treatment(**{"CPR-nr": ANNA}, **TRIAL, **IMPLANT, Lead_1_level="L5 left",
                                Lead_1_serial="LD-1", Lead_1_status="OK"), "Lead 1 level"),
        ("Treatment", treatment(**{"CPR-nr": ANNA}, **TRIAL, **IMPLANT, Lead_1_level="L9 sin",
                                Lead_1_serial="LD-1", Lead_1_status="OK"), "Lead 1 level"),
        ("Treatment", treatment(**{"CPR-nr": ANNA}, **TRIAL, **IMPLANT, Lead_1_level="L5",
                                Lead_1_serial="LD-1", Lead_1_status="OK"), "Lead 1 level"),
        ("Treatment", treatment(**{"CPR-nr": ANNA}, **TRIAL, **IMPLANT, Lead_1_level="L5 dx",
                                Lead_1_serial="LD-1", Lead_1_status="Broken"), "Lead 1 status"),
        ("Treatment", treatment(**{"CPR-nr": ANNA}, **TRIAL, **IMPLANT, Revision_1_date=X(2017, 1, 5),
                                Revision_1_type="Battery change"), "Revision 1 type"),
        ("Treatment", treatment(**{"CPR-nr": ANNA}, **TRIAL, **IMPLANT, Lead_1_level="L5 dx", Lead_1_serial="LD-1",
                                Lead_1_status="OK", Revision_1_date=X(2017, 1, 5),
                                Revision_1_type="Lead repositioning", Revision_1_lead="first"), "Revision 1 lead"),
        ("Complications", {**CLEAN["Complications"][0], "Complication": "Headache"}, "Complication"),
        ("Complications", {**CLEAN["Complications"][0], "Permanent harm": "Maybe"}, "Permanent harm"),
    ],
)
def test_ouh_unknown_label_breaks_code_unknown(tmp_path: Path, sheet: str, row: dict[str, Any], column: str) -> None:
    """A label outside the format's list (a side other than sin/dx, a level past S5) is code.unknown."""
    out = read(write_ouh(tmp_path, {sheet: [row]}))
    assert out.findings() == [(f"{BOOK}#{sheet}", 2, column, "code.unknown")]


@pytest.mark.parametrize(
    ("cells", "column"),
    [
        ({"Trial_start": X(2016, 3, 10), "Trial_end": X(2016, 3, 17)}, "Trial outcome"),
        ({"Trial_start": X(2016, 3, 10), "Trial_outcome": "Success"}, "Trial end"),
        ({"Trial_outcome": "Success", "Trial_end": X(2016, 3, 17)}, "Trial start"),
        ({**TRIAL, **IMPLANT, "IPG_serial": None}, "IPG serial"),
        ({**TRIAL, **IMPLANT, "Lead_1_level": "L5 sin", "Lead_1_status": "OK"}, "Lead 1 serial"),
        ({**TRIAL, **IMPLANT, "Revision_1_date": X(2017, 1, 5), "Revision_1_type": "Lead removal"},
         "Revision 1 lead"),
        ({**TRIAL, **IMPLANT, "Revision_1_date": X(2017, 1, 5)}, "Revision 1 type"),
    ],
)
def test_ouh_missing_required_value_in_a_treatment_row(tmp_path: Path, cells: dict[str, Any], column: str) -> None:
    """A trial needs start, end and outcome; an implant an IPG serial; a lead its serial; a lead revision its lead."""
    out = read(write_ouh(tmp_path, with_treatment(**cells)))
    assert out.findings() == [(TREATMENT, 2, column, "value.missing_required")]


@pytest.mark.parametrize(
    ("cells", "column"),
    [
        ({**TRIAL, **IMPLANT, "Revision_1_date": X(2017, 1, 5), "Revision_1_type": "Lead repositioning",
          "Revision_1_lead": 3}, "Revision 1 lead"),  # lead 3 is nowhere in the row
        ({**TRIAL, "Lead_1_level": "L5 sin", "Lead_1_serial": "LD-1", "Lead_1_status": "OK"}, "Lead 1 level"),
    ],
)
def test_ouh_lead_never_placed(tmp_path: Path, cells: dict[str, Any], column: str) -> None:
    """A revision of a lead the row never places, or a lead with no implant placing it: lead.never_placed."""
    out = read(write_ouh(tmp_path, with_treatment(**cells)))
    assert out.findings() == [(TREATMENT, 2, column, "lead.never_placed")]
    assert "trial" in out.kinds("procedures", "procedure")


def test_ouh_fault_status_has_no_date_and_removal_takes_the_revision_date(tmp_path: Path) -> None:
    """The workbook does not date a fault; a removed lead takes its removal's date."""
    out = read(write_ouh(tmp_path, with_treatment(
        **TRIAL, **IMPLANT, Lead_1_level="T12 dx", Lead_1_serial="LD-1", Lead_1_status="Fractured",
        Lead_2_level="L1 dx", Lead_2_serial="LD-2", Lead_2_status="Removed", Revision_1_date="03.03.2018",
        Revision_1_type="Lead removal", Revision_1_lead=2)))
    assert out.issues == []
    assert [(f["level"], f["side"], f["status"], f["status_date"]) for f in out.facts["devices"][1:]] == [
        ("T12", "right", "fractured", None), ("L1", "right", "removed", D(2018, 3, 3))]


def test_ouh_exact_duplicate_row_is_quarantined_at_load_and_the_first_loads(tmp_path: Path) -> None:
    """An exact repeat of a Complications row breaks row.duplicate; the first copy loads."""
    inbox = tmp_path / "inbox"
    write_ouh(inbox, {"Complications": CLEAN["Complications"] * 2, "Follow-up": []})
    load_inbox(inbox, tmp_path / "wh.duckdb", KEY)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute('select file, "row", rule_id from quality.quarantine').fetchall() == [
            (COMPLICATIONS, 3, "row.duplicate")]
        assert con.execute("select source_row from canonical.complications").fetchall() == [(2,)]


def test_ouh_invalid_cpr_in_a_treatment_row_loads_nothing_of_it(tmp_path: Path) -> None:
    """A Treatment row with an impossible CPR is quarantined under cpr.invalid and none of its facts load."""
    inbox = tmp_path / "inbox"
    write_ouh(inbox, {"Treatment": [*CLEAN["Treatment"][:1], treatment(**{"CPR-nr": "310280-1234"}, **TRIAL)],
                      "Follow-up": []})
    load_inbox(inbox, tmp_path / "wh.duckdb", KEY)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert ("cpr.invalid", "CPR-nr") in con.execute(
            "select rule_id, column_name from quality.quarantine where \"row\" = 3").fetchall()
        assert con.execute("select count(*) from canonical.procedures where source_row = 3").fetchone() == (0,)


def test_ouh_record_of_a_patient_without_demographics_names_the_sheets_cpr_column(tmp_path: Path) -> None:
    """A complication of a patient missing from the Patients sheet is patient.no_demographics in column CPR-nr."""
    inbox = tmp_path / "inbox"
    write_ouh(inbox, {"Complications": [*CLEAN["Complications"], {**CLEAN["Complications"][0], "CPR-nr": BO}],
                      "Follow-up": []})
    load_inbox(inbox, tmp_path / "wh.duckdb", KEY)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute('select file, "row", column_name, rule_id from quality.quarantine').fetchall() == [
            (COMPLICATIONS, 3, "CPR-nr", "patient.no_demographics")]


# -- file-level rejections -------------------------------------------------------------------------


def test_ouh_file_that_is_not_a_workbook_is_rejected_as_unreadable(tmp_path: Path) -> None:
    """A workbook that will not open (here: CSV text under the .xlsx name) breaks file.unreadable."""
    folder = write_ouh(tmp_path)
    (folder / BOOK).write_text("CPR-nr;Gender\n010180-1234;F\n", encoding="utf-8")
    assert rejection(folder) == [(BOOK, "file.unreadable")]


def test_ouh_missing_workbook_rejects_the_delivery(tmp_path: Path) -> None:
    """A delivery folder without the workbook breaks file.missing."""
    folder = write_ouh(tmp_path)
    (folder / BOOK).unlink()
    (folder / "DRG_registrering_old.xlsx").write_bytes(b"")
    assert rejection(folder) == [(BOOK, "file.missing")]


def test_ouh_missing_sheet_rejects_the_workbook(tmp_path: Path) -> None:
    """A workbook without the Complications sheet breaks file.columns."""
    columns = {k: v for k, v in COLUMNS.items() if k != "Complications"}
    assert rejection(write_ouh(tmp_path, columns=columns)) == [(BOOK, "file.columns")]


def test_ouh_renamed_column_rejects_its_sheet(tmp_path: Path) -> None:
    """A renamed column ('Pain site' for 'Pain area') breaks file.columns, naming the sheet."""
    columns = {**COLUMNS, "Patients": ["CPR-nr", "Gender", "Pain site", "Diagnosis"]}
    assert rejection(write_ouh(tmp_path, columns=columns)) == [(PATIENTS, "file.columns")]


@pytest.mark.parametrize("sheet", ["Patients", "Treatment"])
def test_ouh_sheet_without_records_is_rejected_as_empty(tmp_path: Path, sheet: str) -> None:
    """Patients and Treatment must hold records: a header (and notes) alone breaks file.empty."""
    folder = write_ouh(tmp_path, {sheet: ["Note: nothing yet"]})
    assert rejection(folder) == [(f"{BOOK}#{sheet}", "file.empty")]
