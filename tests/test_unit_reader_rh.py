"""Unit tests of the rh reader: a few hand-written REDCap export rows in, canonical facts and findings out.

Each test writes a tiny REDCap delivery (extracts.md "rh": the raw export ``DRGDK_DATA_<cutoff>.csv``,
UTF-8 with a byte order mark, codes not labels, one row per record, event and repeat instance;
and the project's data dictionary ``DRGDK_DataDictionary.csv`` in REDCap's standard column set),
reads it with :func:`drg_etl.sources.deliveries.read_delivery` and asserts facts and findings
(file, row, column, rule) exactly. The export's header is row 1, so the first record is row 2.
The dictionary is written here from the spec, so the reader is held to REDCap's conventions,
not to the project's generator.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from functools import partial
from pathlib import Path

import duckdb
import pytest
from helpers import pseudonym_of, read_delivery_facts, rejected_by

from drg_etl.core.model import TABLES
from drg_etl.pipeline.load import load_inbox

KEY = bytes.fromhex("e75ff17ffe6e1ff0b8c6cb7db170baba78a484ab5bdc13bb120a4bd877276045")
D = dt.date
DATA = "DRGDK_DATA_2019-12-31.csv"
DICTIONARY = "DRGDK_DataDictionary.csv"
DICTIONARY_COLUMNS = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
]
LEVELS = [*(f"C{i}" for i in range(1, 9)), *(f"T{i}" for i in range(1, 13)), *(f"L{i}" for i in range(1, 6)),
          *(f"S{i}" for i in range(1, 6))]


def choices(*labels: str, start: int = 1) -> str:
    """A REDCap choices cell ``1, First | 2, Second``."""
    return " | ".join(f"{code}, {label}" for code, label in enumerate(labels, start=start))


PCS_CHOICES = choices("Not at all", "To a slight degree", "To a moderate degree", "To a great degree",
                      "All the time", start=0)
# (field, form, type, choices) as extracts.md describes the project.
FIELDS: list[tuple[str, str, str, str]] = [
    ("record_id", "demographics", "text", ""),
    ("cpr", "demographics", "text", ""),
    ("sex", "demographics", "radio", "1, Female | 2, Male"),
    ("pain_location", "demographics", "dropdown", choices("Lower extremity", "Upper extremity",
                                                          "Thoracic/abdominal")),
    ("diagnosis", "demographics", "dropdown", choices("CRPS type 1", "CRPS type 2", "Postsurgical neuropathic pain",
                                                      "Posttraumatic nerve injury", "Postherpetic neuralgia",
                                                      "Other")),
    ("prom_date", "prom", "text", ""),
    ("nrs_avg", "prom", "text", ""),
    ("nrs_worst", "prom", "text", ""),
    *((f"pcs_{i:02d}", "prom", "radio", PCS_CHOICES) for i in range(1, 14)),
    ("pcs_total", "prom", "calc", "sum(" + ",".join(f"[pcs_{i:02d}]" for i in range(1, 14)) + ")"),
    ("trial_start", "trial", "text", ""),
    ("trial_end", "trial", "text", ""),
    ("trial_success", "trial", "radio", "0, No | 1, Yes"),
    ("implant_date", "implant", "text", ""),
    ("ipg_model", "implant", "dropdown", "1, Axium | 2, Proclaim DRG"),
    ("ipg_serial", "implant", "text", ""),
    ("lead_date", "lead", "text", ""),
    ("lead_level", "lead", "dropdown", choices(*LEVELS)),
    ("lead_side", "lead", "radio", "1, Left | 2, Right"),
    ("lead_serial", "lead", "text", ""),
    ("lead_status", "lead", "dropdown", choices("Active", "Fractured", "Malfunction", "Removed",
                                                "Removed with retained fragment")),
    ("lead_status_date", "lead", "text", ""),
    ("surg_date", "surgery", "text", ""),
    ("surg_type", "surgery", "dropdown", choices("Lead replacement", "Lead repositioning", "IPG replacement",
                                                 "Lead removal", "Explantation of complete system")),
    ("surg_reason", "surgery", "notes", ""),
    ("comp_date", "complication", "text", ""),
    ("comp_type", "complication", "checkbox", choices("Lead fracture", "Lead malfunction", "Lead migration",
                                                      "Infection", "CSF leak", "Pocket pain", "Retained fragment",
                                                      "Nerve damage", "Other")),
    ("comp_permanent", "complication", "radio", "0, No | 1, Yes"),
    ("comp_note", "complication", "notes", ""),
]
ANNA = "010180-1234"  # synthetic: born 1 Jan 1980, female
BO = "020275-3457"  # synthetic: born 2 Feb 1975, male


def export_columns(fields: list[tuple[str, str, str, str]], dag: bool = False) -> list[str]:
    """The raw export's header in REDCap's order: keys, then per form its fields (a checkbox one per choice)."""
    columns = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    if dag:
        columns.append("redcap_data_access_group")
    for form in dict.fromkeys(f[1] for f in fields):
        for name, field_form, kind, cell in fields:
            if field_form == form and name != "record_id":
                codes = [c.split(",")[0].strip() for c in cell.split("|")]
                columns += [f"{name}___{code}" for code in codes] if kind == "checkbox" else [name]
        columns.append(f"{form}_complete")
    return columns


def pcs(*items: int) -> dict[str, str]:
    """The 13 PCS items and their total."""
    return {**{f"pcs_{i:02d}": str(v) for i, v in enumerate(items, start=1)}, "pcs_total": str(sum(items))}


def screening(record: str = "1", cpr: str = ANNA, **values: str) -> dict[str, str]:
    """A screening row: demographics (Anna's by default) and, when given, the baseline prom."""
    return {"record_id": record, "redcap_event_name": "screening_arm_1", "cpr": cpr, "sex": "1",
            "pain_location": "1", "diagnosis": "1", "demographics_complete": "2", **values}


def event(name: str, record: str = "1", **values: str) -> dict[str, str]:
    """A row of a non-repeating event."""
    return {"record_id": record, "redcap_event_name": name, **values}


def repeat(instrument: str, instance: int, record: str = "1", **values: str) -> dict[str, str]:
    """A row of a repeating instrument (event ``events_arm_1``)."""
    return {"record_id": record, "redcap_event_name": "events_arm_1", "redcap_repeat_instrument": instrument,
            "redcap_repeat_instance": str(instance), f"{instrument}_complete": "2", **values}


BASELINE = {"prom_date": "2016-03-01", "nrs_avg": "6.8", "nrs_worst": "9", **pcs(3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2),
            "prom_complete": "2"}
TRIAL = event("trial_arm_1", trial_start="2016-03-10", trial_end="2016-03-17", trial_success="1", trial_complete="2")
IMPLANT = event("implant_arm_1", implant_date="2016-04-07", ipg_model="2", ipg_serial="IPG-0001",
                implant_complete="2")
# One patient with a full treatment; the month-6 form was saved empty (not a record).
CLEAN: list[dict[str, str]] = [
    screening(**BASELINE),
    TRIAL,
    IMPLANT,
    event("month_3_arm_1", prom_date="2016-07-07", nrs_avg="3.1", nrs_worst="5",
          **pcs(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0), prom_complete="2"),
    event("month_6_arm_1", prom_complete="0"),
    repeat("lead", 1, lead_date="2016-04-07", lead_level="25", lead_side="1", lead_serial="LD-0001",
           lead_status="5", lead_status_date="2017-01-05"),
    repeat("lead", 2, lead_date="2017-01-05", lead_level="26", lead_side="2", lead_serial="LD-0002",
           lead_status="1", lead_status_date="2017-01-05"),
    repeat("surgery", 1, surg_date="2017-01-05", surg_type="1", surg_reason="lead fracture"),
    repeat("complication", 1, comp_date="2016-12-20", comp_type___1="1", comp_type___4="1", comp_permanent="0",
           comp_note="fracture and a wound infection"),
    repeat("surgery", 2, surg_date="2019-02-01", surg_type="5", surg_reason="no lasting effect"),
]


def csv_text(rows: list[list[str]]) -> str:
    """Rows as REDCap writes CSV (comma, minimal quoting)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_rh(inbox: Path, rows: list[dict[str, str]] | None = None, fields: list[tuple[str, str, str, str]] = FIELDS,
             cutoff: str = "2019-12-31", dag: bool = False) -> Path:
    """Write the export (with its BOM) and the data dictionary; ``rows`` replace the clean rows."""
    folder = inbox / "rh" / cutoff
    folder.mkdir(parents=True)
    dictionary = [DICTIONARY_COLUMNS] + [[name, form, "", kind, name.replace("_", " ").capitalize(), cell]
                                         + [""] * 12 for name, form, kind, cell in fields]
    (folder / DICTIONARY).write_text(csv_text(dictionary), encoding="utf-8")
    header = export_columns(fields, dag)
    records = [[row.get(c, "") for c in header] for row in (CLEAN if rows is None else rows)]
    (folder / f"DRGDK_DATA_{cutoff}.csv").write_text("\ufeff" + csv_text([header, *records]), encoding="utf-8")
    return folder


# The reading harness (helpers.py) for rh under this module's test key.
read = partial(read_delivery_facts, "rh", key=KEY)  # read(folder) -> ReadOutcome
rejection = partial(rejected_by, "rh", key=KEY)  # rejection(folder) -> [(file, rule id)]
pseudonym = partial(pseudonym_of, key=KEY)  # pseudonym(cpr) -> the patient key the reader must give


def with_row(row: dict[str, str]) -> list[dict[str, str]]:
    """Anna's screening, trial and implant rows, then ``row`` (row 5)."""
    return [screening(**BASELINE), TRIAL, IMPLANT, row]


# -- a clean patient -------------------------------------------------------------------------------


def test_rh_clean_patient_with_full_treatment_gives_every_canonical_fact(tmp_path: Path) -> None:
    """Every event and repeat instance of a clean record becomes its canonical facts, with no finding."""
    out = read(write_rh(tmp_path))
    key = pseudonym(ANNA)
    assert out.issues == []
    assert out.facts["patients"] == [
        {"source_file": DATA, "source_row": 2, "patient_key": key, "sex": "female", "birth_year": 1980,
         "pain_location": "lower_extremity", "diagnosis": "crps_1", "recorded_sex": "female"}]
    assert {(f["source_file"], f["patient_key"]) for t in TABLES for f in out.facts[t]} == {(DATA, key)}
    assert [(f["source_row"], f["procedure"], f["date"], f["end_date"], f["trial_success"], f["device_ref"],
             f["reason"]) for f in out.facts["procedures"]] == [
        (3, "trial", D(2016, 3, 10), D(2016, 3, 17), True, None, None),
        (4, "implant", D(2016, 4, 7), None, None, None, None),
        (9, "lead_replacement", D(2017, 1, 5), None, None, None, "lead fracture"),
        (11, "explant", D(2019, 2, 1), None, None, None, "no lasting effect"),
    ]
    assert [(f["source_row"], f["device_ref"], f["device_type"], f["model"], f["serial"], f["placed_date"],
             f["level"], f["side"], f["status"], f["status_date"]) for f in out.facts["devices"]] == [
        (4, "rh:1:ipg", "generator", "Proclaim DRG", "IPG-0001", D(2016, 4, 7), None, None, "active", D(2016, 4, 7)),
        (7, "rh:1:lead:1", "lead", None, "LD-0001", D(2016, 4, 7), "L5", "left", "removed_fragment_retained",
         D(2017, 1, 5)),
        (8, "rh:1:lead:2", "lead", None, "LD-0002", D(2017, 1, 5), "S1", "right", "active", D(2017, 1, 5)),
    ]
    assert [(f["source_row"], f["date"], f["timepoint"], f["measure"], f["value"])
            for f in out.facts["measurements"]] == [
        (2, D(2016, 3, 1), "baseline", "nrs_average", 6.8),
        (2, D(2016, 3, 1), "baseline", "nrs_worst", 9.0),
        (2, D(2016, 3, 1), "baseline", "pcs_total", 31.0),
        (5, D(2016, 7, 7), "month_3", "nrs_average", 3.1),
        (5, D(2016, 7, 7), "month_3", "nrs_worst", 5.0),
        (5, D(2016, 7, 7), "month_3", "pcs_total", 12.0),
    ]
    # one checkbox row with two choices ticked: two complications
    assert [(f["source_row"], f["date"], f["complication"], f["permanent"], f["device_ref"], f["note"])
            for f in out.facts["complications"]] == [
        (10, D(2016, 12, 20), "lead_fracture", False, None, "fracture and a wound infection"),
        (10, D(2016, 12, 20), "infection", False, None, "fracture and a wound infection"),
    ]
    assert (out.counts[DATA].rows_read, out.counts[DATA].rows_ignored) == (9, 1)


def test_rh_explant_removes_the_generator_at_load(tmp_path: Path) -> None:
    """REDCap keeps the generator on the implant form; the explant surgery marks it removed on its date."""
    inbox = tmp_path / "inbox"
    write_rh(inbox)
    load_inbox(inbox, tmp_path / "wh.duckdb", KEY)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("select device_ref, status, status_date from canonical.devices "
                           "where device_type = 'generator'").fetchall() == [("rh:1:ipg", "removed", D(2019, 2, 1))]
        assert con.execute("select count(*) from quality.quarantine").fetchone() == (0,)


# -- the data dictionary decides what codes mean ---------------------------------------------------


def test_rh_codes_are_decoded_with_the_delivered_dictionary(tmp_path: Path) -> None:
    """A recoded dropdown (pain location codes reordered) is read through the dictionary, not hard-coded codes."""
    fields = [(n, f, k, "7, Thoracic/abdominal | 8, Upper extremity | 9, Lower extremity" if n == "pain_location"
               else c) for n, f, k, c in FIELDS]
    out = read(write_rh(tmp_path, [screening(pain_location="9"), TRIAL], fields=fields))
    assert out.issues == []
    assert out.facts["patients"][0]["pain_location"] == "lower_extremity"


@pytest.mark.parametrize(("kind", "cell"), [("yesno", ""), ("yesno", "1, Yes | 0, No"), ("truefalse", "")])
def test_rh_yesno_and_truefalse_fields_carry_their_implicit_choices(tmp_path: Path, kind: str, cell: str) -> None:
    """A radio Yes/No turned into a yesno or truefalse field: 1 and 0 mean yes and no whether or not listed."""
    fields = [(n, f, kind if n in ("trial_success", "comp_permanent") else k,
               cell if n in ("trial_success", "comp_permanent") else c) for n, f, k, c in FIELDS]
    rows = [screening(), event("trial_arm_1", trial_start="2016-03-10", trial_end="2016-03-17", trial_success="0"),
            repeat("complication", 1, comp_date="2016-12-20", comp_type___5="1", comp_permanent="1")]
    out = read(write_rh(tmp_path, rows, fields=fields))
    assert out.issues == []
    assert out.facts["procedures"][0]["trial_success"] is False
    assert (out.facts["complications"][0]["complication"], out.facts["complications"][0]["permanent"]) == (
        "csf_leak", True)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (screening(sex="3"), "sex"),
        (screening(diagnosis="Other"), "diagnosis"),  # a label where REDCap's raw export writes the code
        (repeat("lead", 1, lead_date="2016-04-07", lead_level="31", lead_side="1", lead_serial="LD-1",
                lead_status="1", lead_status_date="2016-04-07"), "lead_level"),
        (repeat("surgery", 1, surg_date="2017-01-05", surg_type="6"), "surg_type"),
        (event("implant_arm_1", implant_date="2016-04-07", ipg_model="3", ipg_serial="IPG-1"), "ipg_model"),
    ],
)
def test_rh_code_that_is_not_a_choice_in_the_dictionary_breaks_code_unknown(tmp_path: Path, row: dict[str, str],
                                                                          column: str) -> None:
    """A code the dictionary does not list for its field is code.unknown in that field."""
    rows = [row, TRIAL] if row["redcap_event_name"] == "screening_arm_1" else with_row(row)
    out = read(write_rh(tmp_path, rows))
    row_number = 2 if row["redcap_event_name"] == "screening_arm_1" else 5
    assert out.findings() == [(DATA, row_number, column, "code.unknown")]


def test_rh_unknown_event_breaks_code_unknown(tmp_path: Path) -> None:
    """A row of an event the project does not define is code.unknown in redcap_event_name."""
    out = read(write_rh(tmp_path, with_row(event("month_48_arm_1", prom_date="2020-01-01", prom_complete="2"))))
    assert out.findings() == [(DATA, 5, "redcap_event_name", "code.unknown")]


# -- checkboxes, repeating instruments, empty forms ------------------------------------------------


def test_rh_checkbox_value_other_than_0_or_1_breaks_code_unknown(tmp_path: Path) -> None:
    """A checkbox column holds 0 or 1; '2' is code.unknown in that choice's column."""
    out = read(write_rh(tmp_path, with_row(repeat("complication", 1, comp_date="2016-12-20", comp_type___1="1",
                                                  comp_type___3="2"))))
    assert out.findings() == [(DATA, 5, "comp_type___3", "code.unknown")]
    assert out.facts["complications"] == []


def test_rh_complication_with_no_type_ticked_is_missing_a_required_value(tmp_path: Path) -> None:
    """A complication row whose checkbox has no choice ticked breaks value.missing_required in comp_type."""
    out = read(write_rh(tmp_path, with_row(repeat("complication", 1, comp_date="2016-12-20", comp_type___3="0",
                                                  comp_note="unclear"))))
    assert out.findings() == [(DATA, 5, "comp_type", "value.missing_required")]


def test_rh_repeat_instances_are_separate_devices_of_their_record(tmp_path: Path) -> None:
    """Each instance of the repeating lead form is its own lead, referenced by record and instance."""
    leads = [repeat("lead", n, record=record, lead_date="2016-04-07", lead_level=str(20 + n), lead_side="2",
                    lead_serial=f"LD-{record}{n}", lead_status="1", lead_status_date="2016-04-07")
             for record, n in (("1", 1), ("1", 2), ("2", 1))]
    rows = [screening(), screening(record="2", cpr=BO, sex="2"), *leads]
    out = read(write_rh(tmp_path, rows))
    assert out.issues == []
    assert [(f["patient_key"], f["device_ref"], f["level"]) for f in out.facts["devices"]] == [
        (pseudonym(ANNA), "rh:1:lead:1", "L1"), (pseudonym(ANNA), "rh:1:lead:2", "L2"),
        (pseudonym(BO), "rh:2:lead:1", "L1")]


def test_rh_forms_saved_empty_are_not_records(tmp_path: Path) -> None:
    """A row of a form marked 0 (Incomplete) with no data is ignored and counted as such, never reported."""
    empty = [event("trial_arm_1", trial_complete="0"), event("month_12_arm_1", prom_complete="0"),
             repeat("lead", 1, lead_complete="0")]
    out = read(write_rh(tmp_path, [screening(), TRIAL, *empty]))
    assert out.issues == []
    assert (out.counts[DATA].rows_read, out.counts[DATA].rows_ignored) == (2, 3)


def test_rh_incomplete_form_with_data_is_a_record(tmp_path: Path) -> None:
    """A form marked 0 but holding data is read like any other (its values are checked)."""
    out = read(write_rh(tmp_path, with_row(event("month_3_arm_1", prom_date="2016-07-07", nrs_avg="3.1",
                                                 prom_complete="0"))))
    assert out.issues == []
    assert [(f["source_row"], f["timepoint"], f["measure"]) for f in out.facts["measurements"]][-1] == (
        5, "month_3", "nrs_average")


@pytest.mark.xfail(strict=True, reason="a prom form marked Complete (2) with no data gives neither a fact nor a "
                                       "finding: the record is lost and the load fails reconciliation")
def test_rh_form_marked_complete_without_data_is_missing_its_required_values(tmp_path: Path) -> None:
    """Only forms marked 0 with no data are not records: one marked 2 is a record lacking its prom_date."""
    out = read(write_rh(tmp_path, with_row(event("month_3_arm_1", prom_complete="2"))))
    assert (DATA, 5, "prom_date", "value.missing_required") in out.findings()


# -- row rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cpr", ["0101801", "01018O1234", "320180-1234"])
def test_rh_invalid_cpr_quarantines_the_screening_row_and_orphans_the_record(tmp_path: Path, cpr: str) -> None:
    """An invalid CPR is cpr.invalid on the screening row; the record's other rows have no patient."""
    out = read(write_rh(tmp_path, [screening(), TRIAL, screening(record="2", cpr=cpr), {**TRIAL, "record_id": "2"}]))
    assert out.findings() == [(DATA, 4, "cpr", "cpr.invalid"), (DATA, 5, "record_id", "patient.no_demographics")]
    assert out.rows("patients") == [2]
    assert out.rows("procedures") == [3]


def test_rh_missing_cpr_is_a_missing_required_value(tmp_path: Path) -> None:
    """An empty cpr on the screening row breaks value.missing_required."""
    out = read(write_rh(tmp_path, [screening(), TRIAL, screening(record="2", cpr="")]))
    assert out.findings() == [(DATA, 4, "cpr", "value.missing_required")]


def test_rh_row_of_a_record_without_screening_has_no_demographics(tmp_path: Path) -> None:
    """A row whose record has no screening row breaks patient.no_demographics in record_id."""
    out = read(write_rh(tmp_path, with_row({**TRIAL, "record_id": "7"})))
    assert out.findings() == [(DATA, 5, "record_id", "patient.no_demographics")]


def test_rh_sex_contradicting_the_cpr_is_a_warning_and_the_patient_loads(tmp_path: Path) -> None:
    """sex 2 (Male) for a woman's CPR: cpr.sex_mismatch (warning); sex from the CPR, the recorded sex kept."""
    out = read(write_rh(tmp_path, [screening(sex="2"), TRIAL]))
    assert out.findings() == [(DATA, 2, "sex", "cpr.sex_mismatch")]
    assert (out.facts["patients"][0]["sex"], out.facts["patients"][0]["recorded_sex"]) == ("female", "male")


@pytest.mark.parametrize(("value", "rule"), [("2016-02-30", "date.invalid"), ("10-03-2016", "date.invalid"),
                                             ("2020-01-02", "date.out_of_range"), ("2009-12-31", "date.out_of_range")])
def test_rh_bad_date_is_reported_in_its_field(tmp_path: Path, value: str, rule: str) -> None:
    """An impossible or non-ISO date is date.invalid; one after the cutoff or before 2010 is date.out_of_range."""
    out = read(write_rh(tmp_path, [screening(), {**TRIAL, "trial_start": value}]))
    assert out.findings() == [(DATA, 3, "trial_start", rule)]
    assert out.facts["procedures"] == []


@pytest.mark.parametrize(
    ("values", "column", "rule"),
    [
        ({"nrs_avg": "10.5"}, "nrs_avg", "score.out_of_range"),
        ({"nrs_worst": "11"}, "nrs_worst", "score.out_of_range"),
        ({"pcs_03": "5"}, "pcs_03", "score.out_of_range"),
        ({"pcs_total": "53"}, "pcs_total", "score.out_of_range"),
        ({"pcs_total": "30"}, "pcs_total", "pcs.total_mismatch"),  # the items sum to 31
        ({"nrs_avg": "6,8"}, "nrs_avg", "code.unknown"),  # REDCap writes a decimal point
        ({"nrs_worst": "7.5"}, "nrs_worst", "code.unknown"),  # an integer field
    ],
)
def test_rh_prom_score_rules(tmp_path: Path, values: dict[str, str], column: str, rule: str) -> None:
    """Scores out of their scale, a PCS total that is not the sum of its items, a malformed number."""
    out = read(write_rh(tmp_path, [screening(**{**BASELINE, **values}), TRIAL]))
    assert out.findings() == [(DATA, 2, column, rule)]
    assert out.facts["measurements"] == []
    assert out.rows("patients") == [2]  # the demographics of the same screening row still load


@pytest.mark.parametrize(
    ("row", "columns"),
    [
        ({**TRIAL, "trial_end": ""}, ["trial_end"]),
        ({**TRIAL, "trial_success": ""}, ["trial_success"]),
        ({**IMPLANT, "ipg_serial": ""}, ["ipg_serial"]),
        (repeat("lead", 1, lead_date="2016-04-07", lead_serial="LD-1", lead_status="1"),
         ["lead_level", "lead_side", "lead_status_date"]),
        (repeat("surgery", 1, surg_type="3"), ["surg_date"]),
    ],
)
def test_rh_missing_required_value_is_reported_per_field(tmp_path: Path, row: dict[str, str],
                                                        columns: list[str]) -> None:
    """Each required field left empty breaks value.missing_required in that field; the row gives no fact."""
    out = read(write_rh(tmp_path, [screening(), event("month_3_arm_1", prom_complete="0"), row]))
    assert out.findings() == [(DATA, 4, c, "value.missing_required") for c in columns]
    assert out.facts["procedures"] == out.facts["devices"] == []


def cut_row(folder: Path, row: int, fields: int) -> None:
    """Keep only the first ``fields`` fields of export row ``row`` (the header is row 1)."""
    path = folder / DATA
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    lines[row - 1] = ",".join(lines[row - 1].split(",")[:fields])
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")


def test_rh_row_with_more_fields_than_the_header_breaks_row_shape(tmp_path: Path) -> None:
    """A record with a field too many is row.shape (no column); the rows around it load."""
    folder = write_rh(tmp_path, [screening(), TRIAL, IMPLANT])
    path = folder / DATA
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    lines[2] += ",extra"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    out = read(folder)
    assert out.findings() == [(DATA, 3, None, "row.shape")]
    assert out.rows("procedures") == [4]


def test_rh_row_with_fewer_fields_than_the_header_breaks_row_shape(tmp_path: Path) -> None:
    """A record cut short in the middle of the export is row.shape; the rows around it load."""
    folder = write_rh(tmp_path, [screening(), TRIAL, IMPLANT])
    cut_row(folder, 3, 10)
    out = read(folder)
    assert out.findings() == [(DATA, 3, None, "row.shape")]
    assert out.rows("procedures") == [4]


def test_rh_screening_row_cut_short_before_its_cpr_breaks_row_shape_and_the_delivery_loads(tmp_path: Path) -> None:
    """A screening row that ends before its cpr column is row.shape, not a rejected delivery (the first pass, which
    reads every screening row's CPR, passes it by); its record's other rows have no patient."""
    folder = write_rh(tmp_path, [screening(), TRIAL, screening(record="2"), {**TRIAL, "record_id": "2"}])
    cut_row(folder, 4, 2)
    out = read(folder)
    assert out.findings() == [(DATA, 4, None, "row.shape"), (DATA, 5, "record_id", "patient.no_demographics")]
    assert out.rows("patients") == [2]


def test_rh_cpr_in_full_width_digits_is_an_invalid_cpr_and_the_delivery_loads(tmp_path: Path) -> None:
    """A CPR number written in other digits than ASCII's (full-width) is cpr.invalid on its row, not a rejected
    delivery; the digits it spells are never kept."""
    wide = ANNA.translate({ord(d): ord(d) + 0xFF10 - ord("0") for d in "0123456789"})
    out = read(write_rh(tmp_path, [screening(), TRIAL, screening(record="2", cpr=wide)]))
    assert out.findings() == [(DATA, 4, "cpr", "cpr.invalid")]
    assert out.rows("patients") == [2]


def test_rh_record_id_holding_a_cpr_is_quarantined(tmp_path: Path) -> None:
    """A REDCap record id that is a CPR number breaks cpr.in_identifier; nothing of the row is kept."""
    out = read(write_rh(tmp_path, [screening(record=BO.replace("-", ""), cpr=BO, sex="2"), TRIAL,
                                   screening()]))
    assert (DATA, 2, "record_id", "cpr.in_identifier") in out.findings()
    assert [f["patient_key"] for f in out.facts["patients"]] == [pseudonym(ANNA)]


def test_rh_export_with_a_data_access_group_column_is_read(tmp_path: Path) -> None:
    """A project with data access groups exports redcap_data_access_group after the keys: still the format."""
    out = read(write_rh(tmp_path, [screening(), TRIAL], dag=True))
    assert out.issues == []
    assert out.rows("procedures") == [3]


def test_rh_exact_duplicate_row_is_quarantined_at_load_and_the_first_loads(tmp_path: Path) -> None:
    """An exact repeat of an export row breaks row.duplicate; the first copy loads."""
    inbox = tmp_path / "inbox"
    write_rh(inbox, [screening(), TRIAL, TRIAL])
    load_inbox(inbox, tmp_path / "wh.duckdb", KEY)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute('select file, "row", rule_id from quality.quarantine').fetchall() == [
            (DATA, 4, "row.duplicate")]
        assert con.execute("select source_row from canonical.procedures").fetchall() == [(3,)]


# -- file-level rejections -------------------------------------------------------------------------


def test_rh_export_without_byte_order_mark_is_rejected_for_its_encoding(tmp_path: Path) -> None:
    """REDCap's export starts with a UTF-8 BOM; one without breaks file.encoding."""
    folder = write_rh(tmp_path)
    path = folder / DATA
    path.write_text(path.read_text(encoding="utf-8-sig"), encoding="utf-8")
    assert rejection(folder) == [(DATA, "file.encoding")]


def test_rh_export_in_windows_1252_is_rejected_for_its_encoding(tmp_path: Path) -> None:
    """An export re-saved as Windows-1252 (a note with 'æ' as one byte) breaks file.encoding."""
    folder = write_rh(tmp_path, [screening(), TRIAL, repeat("surgery", 1, surg_date="2017-01-05", surg_type="3",
                                                             surg_reason="tømt batteri")])
    path = folder / DATA
    path.write_bytes(b"\xef\xbb\xbf" + path.read_text(encoding="utf-8-sig").encode("cp1252"))
    assert rejection(folder) == [(DATA, "file.encoding")]


def test_rh_semicolon_delimited_export_is_rejected_for_its_delimiter(tmp_path: Path) -> None:
    """An export separated by ';' (opened and re-saved in a Danish spreadsheet) breaks file.delimiter."""
    folder = write_rh(tmp_path)
    path = folder / DATA
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\n").writerows(rows)
    path.write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")
    assert rejection(folder) == [(DATA, "file.delimiter")]


def test_rh_export_column_not_in_the_dictionary_rejects_the_file(tmp_path: Path) -> None:
    """A column the dictionary does not imply (a field added to the export only) breaks file.columns."""
    folder = write_rh(tmp_path)
    path = folder / DATA
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    path.write_text("\ufeff" + "\n".join(line + (",weight" if i == 0 else ",") for i, line in enumerate(lines))
                    + "\n", encoding="utf-8")
    assert rejection(folder) == [(DATA, "file.columns")]


def test_rh_dictionary_with_a_renamed_column_is_rejected(tmp_path: Path) -> None:
    """The dictionary must have REDCap's standard column set; a renamed one breaks file.columns."""
    folder = write_rh(tmp_path)
    path = folder / DICTIONARY
    path.write_text(path.read_text(encoding="utf-8").replace("Field Type", "Type", 1), encoding="utf-8")
    assert rejection(folder) == [(DICTIONARY, "file.columns")]


def test_rh_missing_dictionary_rejects_the_delivery(tmp_path: Path) -> None:
    """A delivery without its data dictionary breaks file.missing."""
    folder = write_rh(tmp_path)
    (folder / DICTIONARY).unlink()
    assert rejection(folder) == [(DICTIONARY, "file.missing")]


def test_rh_export_named_for_another_cutoff_is_missing(tmp_path: Path) -> None:
    """The export's name carries the delivery's cutoff: a file for another date is not the delivery's export."""
    folder = write_rh(tmp_path)
    (folder / DATA).rename(folder / "DRGDK_DATA_2019-12-30.csv")
    assert rejection(folder) == [(DATA, "file.missing")]


def test_rh_export_with_a_header_only_is_rejected_as_empty(tmp_path: Path) -> None:
    """The export must hold records: a header alone breaks file.empty."""
    assert rejection(write_rh(tmp_path, [])) == [(DATA, "file.empty")]
