"""Unit tests of the auh reader: a few hand-written CSV records in, canonical facts and findings out.

Each test writes a tiny delivery in the exact auh format (extracts.md "auh": five Windows-1252
files, ``;``, CRLF, ``dd-mm-yyyy``, decimal comma), reads it with the library's entry point
:func:`drg_etl.sources.deliveries.read_delivery` and asserts the facts and the findings
(file, row, column, rule) exactly. The header is row 1, so the first record is row 2.
Rules that run over the staged delivery (exact duplicates) are checked through the public load.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from pathlib import Path

import duckdb
import pytest
from helpers import pseudonym_of, read_delivery_facts, rejected_by

from drg_etl.pipeline.load import load_inbox

KEY = bytes.fromhex("1e1eb05a6c900022cf3dd2af9af68b74054810f384533ff1d41b9ad581ddab52")
CUTOFF = dt.date(2019, 12, 31)
D = dt.date

# The headers as extracts.md fixes them (not imported from the reader: the test holds the reader to the spec).
HEADERS = {
    "patienter.csv": "CPR;Køn;Smertelokalisation;Diagnose",
    "procedurer.csv": "CPR;Dato;Slutdato;Procedurekode;Beskrivelse;Resultat",
    "udstyr.csv": "CPR;Type;Model;Serienr;Implantationsdato;Niveau;Side;Status;Statusdato",
    "prom.csv": "CPR;Dato;Tidspunkt;NRS_gns;NRS_max;PCS",
    "komplikationer.csv": "CPR;Dato;Type;Permanent;Note",
}
ANNA = "010180-1234"  # synthetic: born 1 Jan 1980, last digit even: female
BO = "020275-3457"  # synthetic: born 2 Feb 1975, last digit odd: male

# One patient with a full treatment: trial, implant, a lead replaced, the system explanted.
CLEAN = {
    "patienter.csv": [f"{ANNA};K;Underekstremitet;CRPS type 1"],
    "procedurer.csv": [
        f"{ANNA};10-03-2016;17-03-2016;DRG-PROEVE;Prøvestimulation, DRG;Positiv",
        f"{ANNA};07-04-2016;;DRG-IMPL;Implantation af DRG-stimulator;",
        f"{ANNA};05-01-2017;;DRG-ELSKIFT;Skift af elektrode;",
        f"{ANNA};01-02-2019;;DRG-EKSPL;Eksplantation af DRG-system;",
    ],
    "udstyr.csv": [
        f"{ANNA};Generator;Proclaim DRG;IPG-0001;07-04-2016;;;Fjernet;01-02-2019",
        f"{ANNA};Elektrode;MN10450-50A;LD-0001;07-04-2016;L5;V;Fjernet, fragment efterladt;05-01-2017",
        f"{ANNA};Elektrode;MN10450-50A;LD-0002;05-01-2017;S1;H;Fjernet;01-02-2019",
    ],
    "prom.csv": [
        f"{ANNA};01-03-2016;Baseline;6,8;9;30",
        f"{ANNA};07-07-2016;3 mdr;3,1;5;12",
    ],
    "komplikationer.csv": [f'{ANNA};20-12-2016;Elektrodebrud;Nej;"Brud på elektrode; skiftet"'],
}


def write_auh(inbox: Path, files: dict[str, list[str]] | None = None, cutoff: str = "2019-12-31") -> Path:
    """Write an auh delivery (Windows-1252, CRLF): the clean records, with ``files`` replacing a file's records."""
    folder = inbox / "auh" / cutoff
    folder.mkdir(parents=True)
    for name, header in HEADERS.items():
        lines = [header, *(files or {}).get(name, CLEAN[name])]
        (folder / name).write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return folder


# The reading harness (helpers.py) for auh under this module's test key.
read = partial(read_delivery_facts, "auh", key=KEY)  # read(folder) -> ReadOutcome
rejection = partial(rejected_by, "auh", key=KEY)  # rejection(folder) -> [(file, rule id)]
pseudonym = partial(pseudonym_of, key=KEY)  # pseudonym(cpr) -> the patient key the reader must give


# -- a clean patient -------------------------------------------------------------------------------


def test_auh_clean_patient_with_full_treatment_gives_every_canonical_fact(tmp_path: Path) -> None:
    """Every record of a clean patient becomes its canonical fact, with no finding."""
    out = read(write_auh(tmp_path))
    key = pseudonym(ANNA)
    assert out.issues == []
    assert out.facts["patients"] == [
        {"source_file": "patienter.csv", "source_row": 2, "patient_key": key, "sex": "female", "birth_year": 1980,
         "pain_location": "lower_extremity", "diagnosis": "crps_1", "recorded_sex": "female"},
    ]
    proc = {"source_file": "procedurer.csv", "patient_key": key, "end_date": None, "trial_success": None,
            "device_ref": None}
    assert out.facts["procedures"] == [
        {**proc, "source_row": 2, "procedure": "trial", "date": D(2016, 3, 10), "end_date": D(2016, 3, 17),
         "trial_success": True, "reason": "Prøvestimulation, DRG"},
        {**proc, "source_row": 3, "procedure": "implant", "date": D(2016, 4, 7),
         "reason": "Implantation af DRG-stimulator"},
        {**proc, "source_row": 4, "procedure": "lead_replacement", "date": D(2017, 1, 5),
         "reason": "Skift af elektrode"},
        {**proc, "source_row": 5, "procedure": "explant", "date": D(2019, 2, 1),
         "reason": "Eksplantation af DRG-system"},
    ]
    dev = {"source_file": "udstyr.csv", "patient_key": key}
    assert out.facts["devices"] == [
        {**dev, "source_row": 2, "device_ref": "auh:IPG-0001", "device_type": "generator", "model": "Proclaim DRG",
         "serial": "IPG-0001", "placed_date": D(2016, 4, 7), "level": None, "side": None, "status": "removed",
         "status_date": D(2019, 2, 1)},
        {**dev, "source_row": 3, "device_ref": "auh:LD-0001", "device_type": "lead", "model": "MN10450-50A",
         "serial": "LD-0001", "placed_date": D(2016, 4, 7), "level": "L5", "side": "left",
         "status": "removed_fragment_retained", "status_date": D(2017, 1, 5)},
        {**dev, "source_row": 4, "device_ref": "auh:LD-0002", "device_type": "lead", "model": "MN10450-50A",
         "serial": "LD-0002", "placed_date": D(2017, 1, 5), "level": "S1", "side": "right", "status": "removed",
         "status_date": D(2019, 2, 1)},
    ]
    assert [(f["source_file"], f["source_row"], f["patient_key"]) for f in out.facts["measurements"]] == \
        [("prom.csv", 2, key)] * 3 + [("prom.csv", 3, key)] * 3
    assert [(f["date"], f["timepoint"], f["measure"], f["value"]) for f in out.facts["measurements"]] == [
        (D(2016, 3, 1), "baseline", "nrs_average", 6.8),
        (D(2016, 3, 1), "baseline", "nrs_worst", 9.0),
        (D(2016, 3, 1), "baseline", "pcs_total", 30.0),
        (D(2016, 7, 7), "month_3", "nrs_average", 3.1),
        (D(2016, 7, 7), "month_3", "nrs_worst", 5.0),
        (D(2016, 7, 7), "month_3", "pcs_total", 12.0),
    ]
    assert out.facts["complications"] == [
        {"source_file": "komplikationer.csv", "source_row": 2, "patient_key": key, "date": D(2016, 12, 20),
         "complication": "lead_fracture", "permanent": False, "device_ref": None, "note": "Brud på elektrode; skiftet"},
    ]
    assert {f: (c.rows_read, c.rows_ignored) for f, c in out.counts.items()} == {
        "patienter.csv": (1, 0), "procedurer.csv": (4, 0), "udstyr.csv": (3, 0), "prom.csv": (2, 0),
        "komplikationer.csv": (1, 0)}


@pytest.mark.parametrize(
    ("cpr", "sex", "birth_year"),
    [
        ("0202753457", "male", 1975),  # no hyphen
        ("020275-3457", "male", 1975),  # hyphen after the sixth digit
        ("0101054321", "male", 2005),  # 7th digit 4, year 00-36: born in the 2000s
        ("311299-9876", "female", 1999),  # 7th digit 9, year 37-99: born in the 1900s
    ],
)
def test_auh_patient_sex_and_birth_year_come_from_the_cpr_number(tmp_path: Path, cpr: str, sex: str,
                                                                  birth_year: int) -> None:
    """The canonical sex and birth year follow the CPR number (century rule); the pseudonym ignores the hyphen."""
    label = "M" if sex == "male" else "K"
    out = read(write_auh(tmp_path, {"patienter.csv": [f"{cpr};{label};Thorax/abdomen;Andet"],
                                    "procedurer.csv": [f"{cpr};10-03-2016;17-03-2016;DRG-PROEVE;x;Negativ"]}))
    assert out.issues == []
    [patient] = out.facts["patients"]
    assert (patient["patient_key"], patient["sex"], patient["birth_year"], patient["pain_location"],
            patient["diagnosis"]) == (pseudonym(cpr), sex, birth_year, "thoracic_abdominal", "other")
    assert out.facts["procedures"][0]["trial_success"] is False


# -- row rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cpr", ["010180-123", "01018O-1234", "3102801234", "011380-1234", "010180--1234"])
def test_auh_invalid_cpr_is_quarantined_without_a_fact(tmp_path: Path, cpr: str) -> None:
    """A CPR of wrong length, characters or an impossible birth date breaks cpr.invalid; the row gives no fact."""
    out = read(write_auh(tmp_path, {"patienter.csv": [*CLEAN["patienter.csv"], f"{cpr};K;Underekstremitet;Andet"]}))
    assert out.findings() == [("patienter.csv", 3, "CPR", "cpr.invalid")]
    assert out.rows("patients") == [2]
    assert cpr.replace("-", "") not in out.issues[0].message  # the message never quotes the number


def test_auh_missing_cpr_is_a_missing_required_value(tmp_path: Path) -> None:
    """An empty CPR field breaks value.missing_required, not cpr.invalid."""
    out = read(write_auh(tmp_path, {"komplikationer.csv": [";20-12-2016;Infektion;Ja;"]}))
    assert out.findings() == [("komplikationer.csv", 2, "CPR", "value.missing_required")]
    assert out.facts["complications"] == []


def test_auh_sex_contradicting_the_cpr_is_a_warning_and_the_patient_loads(tmp_path: Path) -> None:
    """Køn M for a CPR of a woman: a cpr.sex_mismatch warning; the fact keeps the CPR's sex and the recorded one."""
    out = read(write_auh(tmp_path, {"patienter.csv": [f"{ANNA};M;Underekstremitet;CRPS type 1"]}))
    assert out.findings() == [("patienter.csv", 2, "Køn", "cpr.sex_mismatch")]
    assert out.issues[0].severity == "warning"
    [patient] = out.facts["patients"]
    assert (patient["sex"], patient["recorded_sex"]) == ("female", "male")


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (f"{ANNA};31-02-2016;;DRG-IMPL;x;", "Dato"),  # no 31 February
        (f"{ANNA};2016-04-07;;DRG-IMPL;x;", "Dato"),  # ISO, not dd-mm-yyyy
        (f"{ANNA};10-03-2016;32-03-2016;DRG-PROEVE;x;Positiv", "Slutdato"),
    ],
)
def test_auh_impossible_or_misspelt_date_breaks_date_invalid(tmp_path: Path, row: str, column: str) -> None:
    """A date that does not exist or is not dd-mm-yyyy is date.invalid in its column; the row gives no fact."""
    out = read(write_auh(tmp_path, {"procedurer.csv": [*CLEAN["procedurer.csv"], row]}))
    assert out.findings() == [("procedurer.csv", 6, column, "date.invalid")]
    assert out.rows("procedures") == [2, 3, 4, 5]


@pytest.mark.parametrize("day", ["01-01-2020", "31-12-2009"])
def test_auh_date_after_cutoff_or_before_2010_is_out_of_range(tmp_path: Path, day: str) -> None:
    """A date after the delivery's cutoff (2019-12-31) or before 2010 breaks date.out_of_range."""
    out = read(write_auh(tmp_path, {"komplikationer.csv": [f"{ANNA};{day};Infektion;Ja;"]}))
    assert out.findings() == [("komplikationer.csv", 2, "Dato", "date.out_of_range")]
    assert out.facts["complications"] == []


def test_auh_date_on_the_cutoff_day_is_accepted(tmp_path: Path) -> None:
    """The cutoff day itself is inside the delivery."""
    out = read(write_auh(tmp_path, {"komplikationer.csv": [f"{ANNA};31-12-2019;Infektion;Ja;"]}))
    assert out.issues == []
    assert out.facts["complications"][0]["date"] == CUTOFF


@pytest.mark.parametrize(
    ("scores", "column"),
    [("11,0;9;30", "NRS_gns"), ("6,8;11;30", "NRS_max"), ("6,8;9;53", "PCS"), ("-0,5;9;30", "NRS_gns")],
)
def test_auh_score_out_of_range_quarantines_the_prom_row(tmp_path: Path, scores: str, column: str) -> None:
    """NRS outside 0-10 or PCS outside 0-52 breaks score.out_of_range; none of the row's scores load."""
    out = read(write_auh(tmp_path, {"prom.csv": [f"{ANNA};01-03-2016;Baseline;{scores}"]}))
    assert out.findings() == [("prom.csv", 2, column, "score.out_of_range")]
    assert out.facts["measurements"] == []


def test_auh_scores_on_the_scale_limits_are_accepted(tmp_path: Path) -> None:
    """0 and 10 for NRS, 0 and 52 for PCS are on the scale; an empty score is simply absent."""
    out = read(write_auh(tmp_path, {"prom.csv": [f"{ANNA};01-03-2016;Baseline;0,0;10;52",
                                                 f"{ANNA};07-07-2016;3 mdr;10,0;;0"]}))
    assert out.issues == []
    assert [(f["source_row"], f["measure"], f["value"]) for f in out.facts["measurements"]] == [
        (2, "nrs_average", 0.0), (2, "nrs_worst", 10.0), (2, "pcs_total", 52.0),
        (3, "nrs_average", 10.0), (3, "pcs_total", 0.0)]


@pytest.mark.parametrize(
    ("file", "row", "column"),
    [
        ("patienter.csv", f"{BO};M;Fod;Andet", "Smertelokalisation"),
        ("patienter.csv", f"{BO};X;Underekstremitet;Andet", "Køn"),
        ("procedurer.csv", f"{ANNA};07-04-2016;;DRG-IMPLANT;Implantation af DRG-stimulator;", "Procedurekode"),
        ("udstyr.csv", f"{ANNA};Batteri;Proclaim DRG;IPG-9;07-04-2016;;;Aktiv;07-04-2016", "Type"),
        ("udstyr.csv", f"{ANNA};Elektrode;MN;LD-9;07-04-2016;L6;V;Aktiv;07-04-2016", "Niveau"),
        ("udstyr.csv", f"{ANNA};Elektrode;MN;LD-9;07-04-2016;L5;Venstre;Aktiv;07-04-2016", "Side"),
        ("udstyr.csv", f"{ANNA};Elektrode;MN;LD-9;07-04-2016;L5;V;OK;07-04-2016", "Status"),
        ("prom.csv", f"{ANNA};01-03-2016;1 mdr;6,8;9;30", "Tidspunkt"),
        ("prom.csv", f"{ANNA};01-03-2016;Baseline;6.8;9;30", "NRS_gns"),  # a decimal point, not a comma
        ("komplikationer.csv", f"{ANNA};20-12-2016;Hovedpine;Nej;", "Type"),
        ("komplikationer.csv", f"{ANNA};20-12-2016;Infektion;Måske;", "Permanent"),
    ],
)
def test_auh_unknown_label_breaks_code_unknown(tmp_path: Path, file: str, row: str, column: str) -> None:
    """A label outside the format's list is code.unknown in its column; the row gives no fact."""
    out = read(write_auh(tmp_path, {file: [*CLEAN[file], row]}))
    row_number = len(CLEAN[file]) + 2
    assert out.findings() == [(file, row_number, column, "code.unknown")]
    table = {"patienter.csv": "patients", "procedurer.csv": "procedures", "udstyr.csv": "devices",
             "prom.csv": "measurements", "komplikationer.csv": "complications"}[file]
    assert row_number not in out.rows(table)


def test_auh_procedure_text_is_free_text_and_never_decides_the_procedure(tmp_path: Path) -> None:
    """Beskrivelse is typed by hand: the code decides the procedure, the text is kept as the reason."""
    out = read(write_auh(tmp_path, {"procedurer.csv": [
        *CLEAN["procedurer.csv"][:1], f"{ANNA};07-04-2016;;DRG-IMPL;Skift af generator;"]}))
    assert out.issues == []
    assert [(f["procedure"], f["reason"]) for f in out.facts["procedures"]][1] == ("implant", "Skift af generator")


@pytest.mark.parametrize(
    ("file", "row", "columns"),
    [
        ("procedurer.csv", f"{ANNA};10-03-2016;;DRG-PROEVE;x;", ["Slutdato", "Resultat"]),  # a trial needs both
        ("patienter.csv", f"{BO};M;;Andet", ["Smertelokalisation"]),
        ("udstyr.csv", f"{ANNA};Elektrode;MN;;07-04-2016;;;Aktiv;07-04-2016", ["Serienr", "Niveau", "Side"]),
        ("prom.csv", f"{ANNA};01-03-2016;Baseline;;;", ["NRS_gns"]),  # no score at all
        ("komplikationer.csv", f"{ANNA};;Infektion;Nej;", ["Dato"]),
    ],
)
def test_auh_missing_required_value_is_reported_per_column(tmp_path: Path, file: str, row: str,
                                                          columns: list[str]) -> None:
    """Each required value that is missing breaks value.missing_required in its own column."""
    out = read(write_auh(tmp_path, {file: [*CLEAN[file], row]}))
    row_number = len(CLEAN[file]) + 2
    assert out.findings() == [(file, row_number, c, "value.missing_required") for c in columns]


def test_auh_optional_values_may_be_empty(tmp_path: Path) -> None:
    """Model, Permanent and Note may be empty; a generator has no level or side; an implant no end or verdict."""
    out = read(write_auh(tmp_path, {
        "udstyr.csv": [f"{ANNA};Generator;;IPG-0001;07-04-2016;;;Aktiv;07-04-2016"],
        "komplikationer.csv": [f"{ANNA};20-12-2016;Andet;;"],
    }))
    assert out.issues == []
    assert (out.facts["devices"][0]["model"], out.facts["devices"][0]["level"]) == (None, None)
    assert (out.facts["complications"][0]["permanent"], out.facts["complications"][0]["note"]) == (None, None)


@pytest.mark.parametrize(
    ("file", "row", "column"),
    [
        ("procedurer.csv", f"{ANNA};17-03-2016;10-03-2016;DRG-PROEVE;x;Positiv", "Slutdato"),
        ("udstyr.csv", f"{ANNA};Elektrode;MN;LD-9;07-04-2016;L4;H;Brud;01-04-2016", "Statusdato"),
    ],
)
def test_auh_dates_out_of_order_within_a_row(tmp_path: Path, file: str, row: str, column: str) -> None:
    """A trial that ends before it starts, a status dated before the lead was placed: dates.out_of_order."""
    out = read(write_auh(tmp_path, {file: [*CLEAN[file], row]}))
    assert out.findings() == [(file, len(CLEAN[file]) + 2, column, "dates.out_of_order")]


@pytest.mark.parametrize(("row", "fields"), [(f"{ANNA};01-03-2016;Baseline;6,8;9;30;x", 7),
                                             (f"{ANNA};01-03-2016;Baseline;6,8", 4)])
def test_auh_row_with_more_or_fewer_fields_than_the_header_breaks_row_shape(tmp_path: Path, row: str,
                                                                           fields: int) -> None:
    """A record whose field count differs from the header's is row.shape (no column); the records around it load."""
    out = read(write_auh(tmp_path, {"prom.csv": [CLEAN["prom.csv"][0], row, CLEAN["prom.csv"][1]]}))
    assert out.findings() == [("prom.csv", 3, None, "row.shape")]
    assert f"{fields} fields" in out.issues[0].message
    assert sorted(set(out.rows("measurements"))) == [2, 4]


@pytest.mark.xfail(strict=True, reason="a last record with MORE fields than the header is taken for a truncated "
                                       "file (file.empty) and rejects the delivery; truncation only loses fields")
def test_auh_last_record_with_an_extra_field_is_a_row_shape_finding_not_a_truncated_file(tmp_path: Path) -> None:
    """The file ends with CRLF and its last record has one field too many: a row finding, not a truncated file."""
    out = read(write_auh(tmp_path, {"prom.csv": [*CLEAN["prom.csv"], f"{ANNA};01-03-2016;Baseline;6,8;9;30;x"]}))
    assert out.findings() == [("prom.csv", 4, None, "row.shape")]


def test_auh_cpr_in_a_serial_quarantines_and_cpr_in_a_note_is_scrubbed(tmp_path: Path) -> None:
    """A CPR where a serial belongs breaks cpr.in_identifier (no fact); one in a note is replaced (a warning)."""
    out = read(write_auh(tmp_path, {
        "udstyr.csv": [f"{ANNA};Generator;Proclaim DRG;{BO};07-04-2016;;;Aktiv;07-04-2016"],
        "komplikationer.csv": [f"{ANNA};20-12-2016;Infektion;Nej;ring til {BO}"],
    }))
    assert out.findings() == [("udstyr.csv", 2, "Serienr", "cpr.in_identifier"),
                              ("komplikationer.csv", 2, "Note", "cpr.in_free_text")]
    assert out.facts["devices"] == []
    assert out.facts["complications"][0]["note"] == "ring til <CPR?>"


def test_auh_exact_duplicate_row_is_quarantined_at_load_and_the_first_loads(tmp_path: Path) -> None:
    """An exact repeat of a record breaks row.duplicate (a rule over the staged delivery); the first copy loads."""
    inbox = tmp_path / "inbox"
    write_auh(inbox, {"komplikationer.csv": [*CLEAN["komplikationer.csv"], *CLEAN["komplikationer.csv"]]})
    load_inbox(inbox, tmp_path / "wh.duckdb", KEY)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute('select file, "row", column_name, rule_id, severity from quality.quarantine').fetchall() == [
            ("komplikationer.csv", 3, None, "row.duplicate", "error")]
        assert con.execute("select source_row from canonical.complications").fetchall() == [(2,)]


# -- file-level rejections -------------------------------------------------------------------------


def test_auh_missing_file_rejects_the_delivery(tmp_path: Path) -> None:
    """A delivery without one of its five files is rejected naming the file (file.missing)."""
    folder = write_auh(tmp_path)
    (folder / "komplikationer.csv").unlink()
    assert rejection(folder) == [("komplikationer.csv", "file.missing")]


def test_auh_unexpected_file_is_a_warning_and_not_read(tmp_path: Path) -> None:
    """A file the format does not define is reported (file.unexpected, a warning) and not read."""
    folder = write_auh(tmp_path)
    (folder / "noter.txt").write_bytes(b"not a delivery file\r\n")
    out = read(folder)
    assert out.findings() == [("noter.txt", 0, None, "file.unexpected")]
    assert out.issues[0].severity == "warning"
    assert len(out.facts["patients"]) == 1


def test_auh_utf8_file_is_rejected_for_its_encoding(tmp_path: Path) -> None:
    """A file saved as UTF-8 (ø as two bytes) breaks file.encoding: auh delivers Windows-1252."""
    folder = write_auh(tmp_path)
    text = "\r\n".join([HEADERS["patienter.csv"], *CLEAN["patienter.csv"]]) + "\r\n"
    (folder / "patienter.csv").write_bytes(text.encode("utf-8"))
    assert rejection(folder) == [("patienter.csv", "file.encoding")]


def test_auh_comma_delimited_file_is_rejected_for_its_delimiter(tmp_path: Path) -> None:
    """A file separated by ',' instead of ';' breaks file.delimiter."""
    folder = write_auh(tmp_path)
    lines = [HEADERS["prom.csv"].replace(";", ","), f"{ANNA},01-03-2016,Baseline,7,9,30"]
    (folder / "prom.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    assert rejection(folder) == [("prom.csv", "file.delimiter")]


@pytest.mark.parametrize("header", ["CPR;Dato;Type;Permanent;Bemærkning", "CPR;Dato;Type;Permanent",
                                    "CPR;Dato;Type;Permanent;Note;Læge", "CPR;Type;Dato;Permanent;Note"])
def test_auh_renamed_missing_extra_or_reordered_column_rejects_the_file(tmp_path: Path, header: str) -> None:
    """The header must be exactly the format's columns in order (file.columns)."""
    folder = write_auh(tmp_path)
    (folder / "komplikationer.csv").write_bytes((header + "\r\n").encode("cp1252"))
    assert rejection(folder) == [("komplikationer.csv", "file.columns")]


def test_auh_header_only_patient_file_is_rejected_as_empty(tmp_path: Path) -> None:
    """patienter.csv must hold records: a header alone breaks file.empty (complications may be none)."""
    folder = write_auh(tmp_path, {"patienter.csv": [], "komplikationer.csv": []})
    assert rejection(folder) == [("patienter.csv", "file.empty")]


def test_auh_file_cut_off_mid_line_is_rejected_as_truncated(tmp_path: Path) -> None:
    """A file whose last line lacks its CRLF was cut off: file.empty, the whole delivery rejected."""
    folder = write_auh(tmp_path)
    (folder / "udstyr.csv").write_bytes((HEADERS["udstyr.csv"] + "\r\n" + CLEAN["udstyr.csv"][0][:30]).encode("cp1252"))
    assert rejection(folder) == [("udstyr.csv", "file.empty")]


def test_auh_zero_byte_file_is_rejected_as_empty(tmp_path: Path) -> None:
    """A file of no bytes at all breaks file.empty."""
    folder = write_auh(tmp_path)
    (folder / "prom.csv").write_bytes(b"")
    assert rejection(folder) == [("prom.csv", "file.empty")]
