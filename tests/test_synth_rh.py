"""rh delivery: REDCap's raw export and data dictionary, coded as the dictionary says, agreeing with the truth."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from helpers import CUTOFF, Generated

from drg_etl.core.formats import FORMATS

DATA = "DRGDK_DATA_2019-12-31.csv"
REDCAP_COLUMNS = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
]
EVENTS = {"screening_arm_1", "trial_arm_1", "implant_arm_1", "month_3_arm_1", "month_6_arm_1", "month_12_arm_1",
          "month_24_arm_1", "month_36_arm_1", "events_arm_1"}
# extracts.md "rh": the codes the dictionary must give.
EXPECTED_CHOICES = {
    "sex": {"1": "Female", "2": "Male"},
    "pain_location": {"1": "Lower extremity", "2": "Upper extremity", "3": "Thoracic/abdominal"},
    "trial_success": {"0": "No", "1": "Yes"},
    "ipg_model": {"1": "Axium", "2": "Proclaim DRG"},
    "lead_side": {"1": "Left", "2": "Right"},
    "surg_type": {"1": "Lead replacement", "2": "Lead repositioning", "3": "IPG replacement", "4": "Lead removal",
                  "5": "Explantation of complete system"},
    "comp_permanent": {"0": "No", "1": "Yes"},
}
LOCATION = {"lower_extremity": "Lower extremity", "upper_extremity": "Upper extremity",
            "thoracic_abdominal": "Thoracic/abdominal"}


@pytest.fixture(scope="module")
def dictionary(demo: Generated) -> dict[str, dict[str, str]]:
    """Field name -> dictionary row."""
    text = (demo.folder("rh") / "DRGDK_DataDictionary.csv").read_text("utf-8-sig")
    return {row["Variable / Field Name"]: row for row in csv.DictReader(io.StringIO(text))}


def choices(row: dict[str, str]) -> dict[str, str]:
    """Parse a ``1, Label | 2, Label`` choices cell."""
    cell = row["Choices, Calculations, OR Slider Labels"]
    return dict(tuple(part.strip() for part in item.split(",", 1)) for item in cell.split("|"))


@pytest.fixture(scope="module")
def records(demo: Generated) -> list[dict[str, Any]]:
    """Export rows (with row numbers), error-defect rows left out."""
    raw = (demo.folder("rh") / DATA).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    errors = {d["row"] for d in demo.defects_in(DATA) if d["severity"] == "error"}
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    return [dict(r, _row=i) for i, r in enumerate(rows, start=2) if i not in errors]


def test_dictionary_has_redcaps_column_set_and_the_spec_codes(demo: Generated,
                                                              dictionary: dict[str, dict[str, str]]) -> None:
    text = (demo.folder("rh") / "DRGDK_DataDictionary.csv").read_text("utf-8-sig")
    assert next(csv.reader(io.StringIO(text))) == REDCAP_COLUMNS
    for field, expected in EXPECTED_CHOICES.items():
        assert choices(dictionary[field]) == expected, field
    assert list(choices(dictionary["lead_level"]).values())[:2] == ["C1", "C2"]
    assert choices(dictionary["lead_level"])["30"] == "S5" and choices(dictionary["lead_level"])["21"] == "L1"
    assert dictionary["comp_type"]["Field Type"] == "checkbox" and len(choices(dictionary["comp_type"])) == 9
    assert dictionary["pcs_total"]["Field Type"] == "calc"


def test_export_columns_events_and_codes(demo: Generated, records: list[dict[str, Any]],
                                         dictionary: dict[str, dict[str, str]]) -> None:
    header = next(csv.reader(io.StringIO((demo.folder("rh") / DATA).read_text("utf-8-sig"))))
    assert header[:4] == ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    assert [c for c in header if c.startswith("comp_type___")] == [f"comp_type___{i}" for i in range(1, 10)]
    for form in ("demographics", "prom", "trial", "implant", "lead", "surgery", "complication"):
        assert f"{form}_complete" in header
    assert {r["redcap_event_name"] for r in records} == EVENTS
    coded = [f for f, row in dictionary.items() if row["Field Type"] in ("radio", "dropdown")]
    for record in records:
        for field in coded:
            value = record.get(field, "")
            assert value == "" or value in choices(dictionary[field]), (field, value, record["_row"])
        if record["redcap_repeat_instrument"]:
            assert record["redcap_event_name"] == "events_arm_1" and record["redcap_repeat_instance"].isdigit()
        items = [record[f"pcs_{i:02d}"] for i in range(1, 14)]
        if all(items):
            assert int(record["pcs_total"]) == sum(int(v) for v in items)
        for column in ("prom_date", "trial_start", "implant_date", "lead_date", "surg_date", "comp_date"):
            assert record[column] == "" or (len(record[column]) == 10 and record[column][4] == "-")


def test_the_generator_writes_exactly_the_declared_rh_files_and_columns(demo: Generated,
                                                                     dictionary: dict[str, dict[str, str]]) -> None:
    declared, cutoff = FORMATS["rh"], dt.date.fromisoformat(CUTOFF)
    folder = demo.folder("rh")
    assert sorted(p.name for p in folder.iterdir()) == sorted(declared.file_names(cutoff))
    forms = {row["Form Name"] for row in dictionary.values()}
    for source in declared.files:
        text = source.dialect
        raw = (folder / source.file_name(cutoff)).read_bytes()
        if text.byte_order_mark == "required":
            assert raw.startswith(b"\xef\xbb\xbf"), source.name
        header = next(csv.reader(io.StringIO(raw.decode(text.python_encoding)), delimiter=text.delimiter))
        if source.further_columns_from is None:
            assert header == list(source.columns), source.name
            continue
        assert source.further_columns_from == "dictionary" and header[:len(source.columns)] == list(source.columns)
        for column in header[len(source.columns):]:  # the project's fields, as its data dictionary gives them
            assert column.split("___")[0] in dictionary or column.removesuffix("_complete") in forms, column


def test_empty_instrument_rows_are_listed_as_not_records(demo: Generated, records: list[dict[str, Any]]) -> None:
    ignored = demo.truth["deliveries"][2]["ignored_rows"][DATA]
    by_row = {r["_row"]: r for r in records}
    for row in ignored:
        assert by_row[row]["prom_complete"] == "0" and by_row[row]["prom_date"] == ""


def test_rh_export_records_agree_with_the_truth(demo: Generated, records: list[dict[str, Any]],
                                                dictionary: dict[str, dict[str, str]]) -> None:
    persons = [p for p in demo.persons_at("rh") if p["profile"] != "screened_only"]
    screening = {r["cpr"].replace("-", ""): r for r in records if r["redcap_event_name"] == "screening_arm_1"}
    for person in persons:
        row = screening[person["cpr"]]
        assert choices(dictionary["pain_location"])[row["pain_location"]] == LOCATION[person["pain_location"]]
        mine = [r for r in records if r["record_id"] == row["record_id"]]
        leads = sorted((r["lead_serial"], choices(dictionary["lead_level"])[r["lead_level"]])
                       for r in mine if r["redcap_repeat_instrument"] == "lead")
        assert leads == sorted((lead["serial"], lead["level"]) for lead in person["leads"] if lead["center"] == "rh")
        visits = sorted((r["prom_date"], r["nrs_avg"]) for r in mine if r["prom_date"])
        assert visits == sorted((m["date"], f"{m['nrs_average']:.1f}") for m in person["measurements"]
                                if m["center"] == "rh")
