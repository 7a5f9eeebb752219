"""Unit tests per data-quality rule: for every rule of the catalogue, a tiny inbox that breaks exactly it.

Each test writes a few records (mostly auh CSV, whose rows hold one fact each; another center where
only its format can break the rule), runs the public load
:func:`drg_etl.pipeline.load.load_inbox` and reads ``quality.quarantine``, ``quality.rejections``
and ``canonical.*`` back with DuckDB. Each asserts the finding (center, file, row, column, rule,
severity, Kahn category) and that no other rule fired. National rules (an implant needs a
successful trial at any center, dates in order, follow-up windows) run over every center's
deliveries; a record they hold back is released when a later delivery sets it right.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import pytest

from drg_etl.core.cpr import parse_cpr
from drg_etl.core.delivery import Delivery, DeliveryRejected, registry_today
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.rules import RULES
from drg_etl.pipeline.load import LoadReport, load_inbox
from drg_etl.sources.deliveries import read_delivery

KEY = bytes.fromhex("151535e3573bf6a49699f034d7c6b5ac4be78cc7e98989907640516143657b1c")
D = dt.date
ANNA = "010180-1234"  # synthetic: born 1 Jan 1980, female
BO = "020275-3457"  # synthetic: born 2 Feb 1975, male

COVERED: set[str] = set()


def breaks(*rule_ids: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a test as the one that breaks these rules (the catalogue test checks every rule has one)."""
    def mark(test: Callable[..., None]) -> Callable[..., None]:
        COVERED.update(rule_ids)
        return test
    return mark


# -- tiny deliveries -------------------------------------------------------------------------------

AUH_HEADERS = {
    "patienter.csv": "CPR;Køn;Smertelokalisation;Diagnose",
    "procedurer.csv": "CPR;Dato;Slutdato;Procedurekode;Beskrivelse;Resultat",
    "udstyr.csv": "CPR;Type;Model;Serienr;Implantationsdato;Niveau;Side;Status;Statusdato",
    "prom.csv": "CPR;Dato;Tidspunkt;NRS_gns;NRS_max;PCS",
    "komplikationer.csv": "CPR;Dato;Type;Permanent;Note",
}
TRIAL = f"{ANNA};10-03-2016;17-03-2016;DRG-PROEVE;Prøvestimulation, DRG;Positiv"
IMPLANT = f"{ANNA};07-04-2016;;DRG-IMPL;Implantation af DRG-stimulator;"
# A clean auh patient: demographics, a successful trial and an implant 3 weeks after it.
AUH: dict[str, list[str]] = {
    "patienter.csv": [f"{ANNA};K;Underekstremitet;CRPS type 1"],
    "procedurer.csv": [TRIAL, IMPLANT],
    "udstyr.csv": [f"{ANNA};Generator;Proclaim DRG;IPG-0001;07-04-2016;;;Aktiv;07-04-2016"],
    "prom.csv": [f"{ANNA};01-03-2016;Baseline;6,8;9;30"],
    "komplikationer.csv": [],
}


def write_auh(inbox: Path, files: dict[str, list[str]] | None = None, cutoff: str = "2019-12-31") -> Path:
    """An auh delivery (Windows-1252, ';', CRLF): the clean records, ``files`` replacing a file's records."""
    folder = inbox / "auh" / cutoff
    folder.mkdir(parents=True)
    for name, header in AUH_HEADERS.items():
        lines = [header, *(files or {}).get(name, AUH[name])]
        (folder / name).write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return folder


OUH_COLUMNS = {
    "Patients": ["CPR-nr", "Gender", "Pain area", "Diagnosis"],
    "Treatment": ["CPR-nr", "Trial start", "Trial end", "Trial outcome", "Implant date", "IPG model", "IPG serial",
                  *(f"Lead {n} {c}" for n in range(1, 5) for c in ("level", "serial", "status")),
                  *(f"Revision {n} {c}" for n in range(1, 4) for c in ("date", "type", "lead")),
                  "Explant date", "Explant reason"],
    "Follow-up": ["CPR-nr", *(f"{m} {tp}" for tp in ("baseline", "3m", "6m", "12m", "24m", "36m")
                              for m in ("Date", "NRS avg", "NRS worst", "PCS"))],
    "Complications": ["CPR-nr", "Date", "Complication", "Permanent harm", "Comment"],
}


def write_ouh(inbox: Path, treatment: list[dict[str, Any]], cutoff: str = "2019-12-31") -> Path:
    """An ouh workbook: Anna on the Patients sheet and these Treatment rows (by column name)."""
    folder = inbox / "ouh" / cutoff
    folder.mkdir(parents=True)
    book = openpyxl.Workbook()
    book.remove(book.active)
    sheets: dict[str, list[dict[str, Any]]] = {
        "Patients": [{"CPR-nr": ANNA, "Gender": "F", "Pain area": "Foot", "Diagnosis": "CRPS I"}],
        "Treatment": treatment, "Follow-up": [], "Complications": []}
    for sheet, header in OUH_COLUMNS.items():
        ws = book.create_sheet(sheet)
        ws.append(header)
        for row in sheets[sheet]:
            ws.append([row.get(c) for c in header])
    book.save(folder / "DRG_registrering.xlsx")
    return folder


def write_rh(inbox: Path, screening: dict[str, str], cutoff: str = "2019-12-31") -> Path:
    """An rh delivery of one screening row, with a dictionary of the demographics and prom forms only."""
    folder = inbox / "rh" / cutoff
    folder.mkdir(parents=True)
    pcs_choices = "0, Not at all | 1, Slight | 2, Moderate | 3, Great | 4, All the time"
    fields = [("record_id", "demographics", "text", ""), ("cpr", "demographics", "text", ""),
              ("sex", "demographics", "radio", "1, Female | 2, Male"),
              ("pain_location", "demographics", "dropdown",
               "1, Lower extremity | 2, Upper extremity | 3, Thoracic/abdominal"),
              ("diagnosis", "demographics", "dropdown", "1, CRPS type 1 | 2, CRPS type 2 | 6, Other"),
              ("prom_date", "prom", "text", ""), ("nrs_avg", "prom", "text", ""), ("nrs_worst", "prom", "text", ""),
              *((f"pcs_{i:02d}", "prom", "radio", pcs_choices) for i in range(1, 14)),
              ("pcs_total", "prom", "calc", "sum([pcs_01],...)")]
    dictionary = [["Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
                   "Choices, Calculations, OR Slider Labels", "Field Note",
                   "Text Validation Type OR Show Slider Number", "Text Validation Min", "Text Validation Max",
                   "Identifier?", "Branching Logic (Show field only if...)", "Required Field?", "Custom Alignment",
                   "Question Number (surveys only)", "Matrix Group Name", "Matrix Ranking?", "Field Annotation"]]
    dictionary += [[name, form, "", kind, name, cell] + [""] * 12 for name, form, kind, cell in fields]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(dictionary)
    (folder / "DRGDK_DataDictionary.csv").write_text(buffer.getvalue(), encoding="utf-8")
    header = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
              *(f[0] for f in fields[1:5]), "demographics_complete", *(f[0] for f in fields[5:]), "prom_complete"]
    row = {"record_id": "1", "redcap_event_name": "screening_arm_1", "cpr": ANNA, "sex": "1", "pain_location": "1",
           "diagnosis": "1", "demographics_complete": "2", "prom_complete": "2", **screening}
    text = ",".join(header) + "\n" + ",".join(row.get(c, "") for c in header) + "\n"
    (folder / f"DRGDK_DATA_{cutoff}.csv").write_text("\ufeff" + text, encoding="utf-8")
    return folder


def coded(system: str, code: str) -> dict[str, Any]:
    """A CodeableConcept of one coding."""
    return {"coding": [{"system": system, "code": code}]}


AAUH = "http://aauh.example/fhir/CodeSystem/"


def aauh_procedure(rid: str, code: str, **elements: Any) -> dict[str, Any]:
    """A completed Procedure of Anna's with the given elements."""
    return {"resourceType": "Procedure", "id": rid, "status": "completed", "subject": {"reference": "Patient/p-1"},
            "code": coded(f"{AAUH}procedure", code), **elements}


def aauh_device(did: str, kind: str, **elements: Any) -> dict[str, Any]:
    """An active Device of Anna's."""
    return {"resourceType": "Device", "id": did, "type": coded(f"{AAUH}udstyr", kind), "serialNumber": did.upper(),
            "patient": {"reference": "Patient/p-1"}, "status": "active", **elements}


SUCCESS = coded("http://snomed.info/sct", "385669000")
# A clean aauh patient: Anna with her pain Condition, a successful trial, an implant placing a generator, a PROM.
AAUH_CLEAN: dict[str, list[Any]] = {
    "Patient": [{"resourceType": "Patient", "id": "p-1", "gender": "female",
                 "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": ANNA.replace("-", "")}]}],
    "Condition": [{"resourceType": "Condition", "id": "c-1", "subject": {"reference": "Patient/p-1"},
                   "category": [coded("http://terminology.hl7.org/CodeSystem/condition-category",
                                      "problem-list-item")],
                   "code": coded(f"{AAUH}smertediagnose", "CRPS2"), "bodySite": [coded(f"{AAUH}smerteomraade", "OE")]}],
    "Procedure": [aauh_procedure("pr-1", "PROEVESTIM", performedPeriod={"start": "2016-03-10", "end": "2016-03-17"},
                                 outcome=SUCCESS),
                  aauh_procedure("pr-2", "IMPLANT", performedDateTime="2016-04-07", focalDevice=[
                      {"action": coded("http://hl7.org/fhir/device-action", "implanted"),
                       "manipulated": {"reference": "Device/d-1"}}])],
    "Device": [aauh_device("d-1", "GENERATOR", modelNumber="Axium")],
    "Observation": [{"resourceType": "Observation", "id": "o-1", "status": "final",
                     "code": coded(f"{AAUH}prom", "PCS"), "subject": {"reference": "Patient/p-1"},
                     "effectiveDateTime": "2016-03-01", "valueQuantity": {"value": 28}}],
}


def write_aauh(inbox: Path, extra: dict[str, list[Any]] | None = None, cutoff: str = "2019-12-31") -> Path:
    """An aauh export: the clean resources, then ``extra`` lines per resource type."""
    folder = inbox / "aauh" / cutoff
    folder.mkdir(parents=True)
    for rt, resources in AAUH_CLEAN.items():
        lines = [r if isinstance(r, str) else json.dumps(r) for r in [*resources, *(extra or {}).get(rt, [])]]
        (folder / f"{rt}.ndjson").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return folder


# -- the load and what it left ---------------------------------------------------------------------


class Loaded:
    """A load over ``base/inbox`` into ``base/wh.duckdb``, with queries over the warehouse."""

    def __init__(self, base: Path) -> None:
        self.inbox, self.path = base / "inbox", base / "wh.duckdb"
        self.report: LoadReport | None = None

    def load(self) -> Loaded:
        """Run the public load (again)."""
        self.report = load_inbox(self.inbox, self.path, KEY)
        return self

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query over the warehouse."""
        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()

    def findings(self) -> list[tuple[Any, ...]]:
        """The quarantine as (center, file, row, column, rule, severity, Kahn category), sorted."""
        return self.query('select center, file, "row", column_name, rule_id, severity, kahn_category '
                          'from quality.quarantine order by all')

    def findings_at(self, file: str, row: int) -> list[tuple[Any, ...]]:
        """The findings of one record."""
        return [f for f in self.findings() if (f[1], f[2]) == (file, row)]


@pytest.fixture
def wh(tmp_path: Path) -> Loaded:
    """A warehouse to load ``tmp_path/inbox`` into."""
    return Loaded(tmp_path)


def finding(center: str, file: str, row: int, column: str | None, rule_id: str) -> tuple[Any, ...]:
    """A quarantine row as :meth:`Loaded.findings` gives it, severity and category from the catalogue."""
    rule = RULES[rule_id]
    return center, file, row, column, rule_id, rule.severity, rule.kahn_category


def pseudonym(cpr: str) -> str:
    """The patient key of a CPR number under the test key."""
    return Pseudonymizer(KEY)(parse_cpr(cpr))


def rejected(folder: Path, center: str) -> list[tuple[str, str]]:
    """Read a delivery with the library's entry point; the (file, rule) pairs of its rejection."""
    with pytest.raises(DeliveryRejected) as caught:
        read_delivery(Delivery(center, D(2019, 12, 31), folder), Pseudonymizer(KEY))
    return [(r.file, r.rule_id) for r in caught.value.rejections]


# -- the catalogue ---------------------------------------------------------------------------------


def test_every_rule_in_the_catalogue_has_a_unit_test() -> None:
    """Each rule id of drg_etl.core.rules.RULES is broken by a test of this module (and no unknown id is)."""
    assert sorted(set(RULES) - COVERED) == []
    assert sorted(COVERED - set(RULES)) == []


def test_clean_inbox_breaks_no_rule(wh: Loaded) -> None:
    """The baseline every other test changes by a record or two: it loads whole, with no finding."""
    write_auh(wh.inbox)
    wh.load()
    assert wh.findings() == []
    assert wh.query("select procedure from canonical.procedures order by date") == [("trial",), ("implant",)]


# -- the inbox and file level ----------------------------------------------------------------------


@breaks("inbox.not_a_delivery")
def test_rule_inbox_not_a_delivery(wh: Loaded) -> None:
    """Folders that are not INBOX/<center>/<YYYY-MM-DD> are reported, never read; the real delivery loads."""
    write_auh(wh.inbox)
    for folder in ("AUH/2019-12-31", "auh/2019-13-01", "odense/2019-12-31"):
        (wh.inbox / folder).mkdir(parents=True)
    wh.load()
    assert wh.report is not None and wh.report.exit_code == 1
    assert sorted(wh.report.rejected) == ["AUH", "auh/2019-13-01", "odense"]
    assert {f.rule_id for f in wh.report.files if f.rejected} == {"inbox.not_a_delivery"}
    assert wh.query("select center, status from quality.deliveries") == [("auh", "in_force")]


def test_rule_file_level_rejects_the_delivery_and_the_previous_stays_in_force(wh: Loaded) -> None:
    """A file that cannot be read as its format rejects its delivery whole, recorded; the previous stays."""
    write_auh(wh.inbox, cutoff="2019-06-30")
    wh.load()
    folder = write_auh(wh.inbox, {"patienter.csv": [f"{ANNA};K;Overekstremitet;Andet"]})
    (folder / "prom.csv").write_bytes(b"CPR;Dato;Tidspunkt;NRS;NRS_max;PCS\r\n")
    wh.load()
    assert wh.report is not None and wh.report.exit_code == 1
    assert wh.query("select cutoff, file, rule_id from quality.rejections") == [
        (D(2019, 12, 31), "prom.csv", "file.columns")]
    assert wh.query("select strftime(cutoff, '%Y-%m-%d'), status from quality.deliveries") == [
        ("2019-06-30", "in_force")]
    assert wh.query("select pain_location from canonical.current_patients") == [("lower_extremity",)]


def _missing(folder: Path) -> None:
    (folder / "udstyr.csv").unlink()


def _columns(folder: Path) -> None:
    (folder / "prom.csv").write_bytes(b"CPR;Dato;Tidspunkt;NRS;NRS_max;PCS\r\n")


def _encoding(folder: Path) -> None:
    (folder / "patienter.csv").write_bytes(f"CPR;Køn;Smertelokalisation;Diagnose\r\n{ANNA};K;Andet;Andet\r\n"
                                           .encode())


def _delimiter(folder: Path) -> None:
    (folder / "komplikationer.csv").write_bytes(b"CPR,Dato,Type,Permanent,Note\r\n")


def _empty(folder: Path) -> None:
    (folder / "procedurer.csv").write_bytes(AUH_HEADERS["procedurer.csv"].encode("cp1252") + b"\r\n")


@breaks("file.missing", "file.columns", "file.encoding", "file.delimiter", "file.empty")
@pytest.mark.parametrize(
    ("damage", "file", "rule_id"),
    [(_missing, "udstyr.csv", "file.missing"), (_columns, "prom.csv", "file.columns"),
     (_encoding, "patienter.csv", "file.encoding"), (_delimiter, "komplikationer.csv", "file.delimiter"),
     (_empty, "procedurer.csv", "file.empty")],
    ids=["file.missing", "file.columns", "file.encoding", "file.delimiter", "file.empty"],
)
def test_rule_file_level(tmp_path: Path, damage: Callable[[Path], None], file: str, rule_id: str) -> None:
    """One damaged auh file rejects the delivery naming the file and the rule."""
    folder = write_auh(tmp_path)
    damage(folder)
    assert rejected(folder, "auh") == [(file, rule_id)]


@breaks("file.unreadable")
def test_rule_file_unreadable_workbook(tmp_path: Path) -> None:
    """An ouh workbook that will not open rejects the delivery (file.unreadable)."""
    folder = write_ouh(tmp_path, [])
    (folder / "DRG_registrering.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    assert rejected(folder, "ouh") == [("DRG_registrering.xlsx", "file.unreadable")]


@breaks("file.ndjson")
def test_rule_file_ndjson_line_not_fhir_r4(tmp_path: Path) -> None:
    """An NDJSON line that is not a valid R4 resource (an element R4 does not have) rejects the file."""
    bad = aauh_procedure("pr-9", "REPOSITION", performedDateTime="2017-01-01", performedOn="2017-01-01")
    assert rejected(write_aauh(tmp_path, {"Procedure": [bad]}), "aauh") == [("Procedure.ndjson", "file.ndjson")]


# -- row level: one inbox, each record breaking one rule -------------------------------------------

CARL = "030385-1113"  # synthetic: born 3 Mar 1985, male; no demographics row anywhere
# (file, record, column, rule): each record, appended to the clean auh delivery, breaks exactly its rule.
ROW_CASES: list[tuple[str, str, str | None, str]] = [
    ("patienter.csv", f"{BO[:-1]};M;Underekstremitet;Andet", "CPR", "cpr.invalid"),
    ("patienter.csv", f"{BO};K;Underekstremitet;Andet", "Køn", "cpr.sex_mismatch"),
    ("procedurer.csv", f"{ANNA};10-03-2016;;DRG-PROEVE;x;Negativ", "Slutdato", "value.missing_required"),
    ("udstyr.csv", f"{ANNA};Elektrode;MN;{BO};07-04-2016;L4;V;Aktiv;07-04-2016", "Serienr", "cpr.in_identifier"),
    ("udstyr.csv", f"{ANNA};Elektrode;MN;LD-9;07-04-2016;L4;X;Aktiv;07-04-2016", "Side", "code.unknown"),
    ("prom.csv", f"{ANNA};30-02-2016;Baseline;6,8;9;30", "Dato", "date.invalid"),
    ("prom.csv", f"{ANNA};02-01-2020;Baseline;6,8;9;30", "Dato", "date.out_of_range"),
    ("prom.csv", f"{ANNA};01-03-2016;Baseline;6,8;9;60", "PCS", "score.out_of_range"),
    ("prom.csv", f"{CARL};01-03-2016;Baseline;4,0;6;20", "CPR", "patient.no_demographics"),
    ("prom.csv", AUH["prom.csv"][0], None, "row.duplicate"),
    ("komplikationer.csv", f"{ANNA};20-12-2016;Infektion;Nej", None, "row.shape"),
    ("komplikationer.csv", f"{ANNA};20-12-2016;Infektion;Nej;se også {BO}", "Note", "cpr.in_free_text"),
]


def _row_numbers() -> list[int]:
    seen: dict[str, int] = {}
    numbers = []
    for file, *_ in ROW_CASES:
        seen[file] = seen.get(file, len(AUH[file]) + 1) + 1
        numbers.append(seen[file])
    return numbers


ROW_NUMBERS = _row_numbers()


@pytest.fixture(scope="module")
def row_rules(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The clean auh delivery with every record of ROW_CASES appended (and a stray file), loaded once."""
    loaded = Loaded(tmp_path_factory.mktemp("row_rules"))
    files = {name: list(rows) for name, rows in AUH.items()}
    for file, record, _column, _rule in ROW_CASES:
        files[file].append(record)
    folder = write_auh(loaded.inbox, files)
    (folder / "patienter_gammel.csv").write_bytes(b"CPR;Navn\r\n")
    return loaded.load()


@breaks(*(case[3] for case in ROW_CASES))
@pytest.mark.parametrize(("file", "row", "column", "rule_id"),
                         [(f, n, c, r) for (f, _rec, c, r), n in zip(ROW_CASES, ROW_NUMBERS, strict=True)],
                         ids=[case[3] for case in ROW_CASES])
def test_rule_row_level(row_rules: Loaded, file: str, row: int, column: str | None, rule_id: str) -> None:
    """A bad auh record breaks exactly its rule, with the rule's severity and Kahn category."""
    assert row_rules.findings_at(file, row) == [finding("auh", file, row, column, rule_id)]


def test_rule_row_level_records_break_nothing_else_and_counts_reconcile(row_rules: Loaded) -> None:
    """No other finding than the cases'; per file, rows read = loaded + quarantined (warnings load)."""
    expected = [finding("auh", f, n, c, r) for (f, _rec, c, r), n in zip(ROW_CASES, ROW_NUMBERS, strict=True)]
    expected.append(finding("auh", "patienter_gammel.csv", 0, None, "file.unexpected"))
    assert row_rules.findings() == sorted(expected)
    errors = {f: sum(1 for (g, *_rest, r) in ROW_CASES if g == f and RULES[r].severity == "error") for f in AUH}
    assert dict(row_rules.query("select file, rows_quarantined from quality.delivery_files")) == errors
    assert all(read == loaded + quarantined for read, loaded, quarantined in row_rules.query(
        "select rows_read, rows_loaded, rows_quarantined from quality.delivery_files"))


@breaks("file.unexpected")
def test_rule_file_unexpected_is_a_warning_and_the_delivery_loads(row_rules: Loaded) -> None:
    """A file the format does not define is flagged (a warning, row 0) and not read; the delivery loads."""
    assert row_rules.findings_at("patienter_gammel.csv", 0) == [
        finding("auh", "patienter_gammel.csv", 0, None, "file.unexpected")]
    assert row_rules.query("select status from quality.deliveries") == [("in_force",)]
    assert "patienter_gammel.csv" not in {f for (f,) in row_rules.query("select file from quality.delivery_files")}


def test_rule_warnings_load_with_their_fact(row_rules: Loaded) -> None:
    """cpr.sex_mismatch and cpr.in_free_text are warnings: the patient and the complication load (scrubbed)."""
    assert row_rules.query("select sex, recorded_sex from canonical.patients where patient_key = ?",
                           pseudonym(BO)) == [("male", "female")]
    assert row_rules.query("select note from canonical.complications") == [("se også <CPR?>",)]


@breaks("pcs.total_mismatch")
def test_rule_pcs_total_mismatch(wh: Loaded) -> None:
    """rh: a PCS total that is not the sum of its 13 items quarantines the prom (the demographics load)."""
    items = {f"pcs_{i:02d}": "2" for i in range(1, 14)}
    write_rh(wh.inbox, {"prom_date": "2016-03-01", "nrs_avg": "6.8", "nrs_worst": "8", **items, "pcs_total": "25"})
    write_auh(wh.inbox)  # rh holds no trial here: Anna's trial and implant come from auh
    wh.load()
    assert wh.findings() == [finding("rh", "DRGDK_DATA_2019-12-31.csv", 2, "pcs_total", "pcs.total_mismatch")]
    assert wh.query("select count(*) from canonical.measurements where center = 'rh'") == [(0,)]
    assert wh.query("select count(*) from canonical.patients where center = 'rh'") == [(1,)]


@breaks("row.conflict")
def test_rule_row_conflict_between_two_demographics_rows(wh: Loaded) -> None:
    """Two demographics rows of one patient that disagree: both quarantined."""
    write_auh(wh.inbox, {"patienter.csv": [*AUH["patienter.csv"], f"{ANNA};K;Underekstremitet;CRPS type 2"]})
    wh.load()
    assert wh.findings_at("patienter.csv", 2) == [finding("auh", "patienter.csv", 2, None, "row.conflict")]
    assert wh.findings_at("patienter.csv", 3) == [finding("auh", "patienter.csv", 3, None, "row.conflict")]
    assert wh.query("select count(*) from canonical.patients") == [(0,)]


def test_rule_row_conflict_between_two_scores_at_one_timepoint(wh: Loaded) -> None:
    """Two baseline records giving different NRS for one patient: row.conflict on both, neither loads."""
    write_auh(wh.inbox, {"prom.csv": [*AUH["prom.csv"], f"{ANNA};01-03-2016;Baseline;5,2;9;30"]})
    wh.load()
    assert wh.findings() == [finding("auh", "prom.csv", 2, None, "row.conflict"),
                             finding("auh", "prom.csv", 3, None, "row.conflict")]
    assert wh.query("select count(*) from canonical.measurements") == [(0,)]


@pytest.fixture(scope="module")
def aauh_rules(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The clean aauh export plus a trial with no period (Procedure line 3) and a lead never placed (Device 2)."""
    loaded = Loaded(tmp_path_factory.mktemp("aauh_rules"))
    write_aauh(loaded.inbox, {
        "Procedure": [aauh_procedure("pr-3", "PROEVESTIM", performedDateTime="2015-10-01", outcome=SUCCESS)],
        "Device": [aauh_device("d-9", "ELEKTRODE", note=[{"text": "L2 venstre"}])]})
    return loaded.load()


@breaks("canonical.schema")
def test_rule_canonical_schema(aauh_rules: Loaded) -> None:
    """aauh: a trial Procedure dated by performedDateTime has no end date; the canonical schema quarantines it."""
    assert aauh_rules.findings_at("Procedure.ndjson", 3) == [
        finding("aauh", "Procedure.ndjson", 3, None, "canonical.schema")]
    (message,) = aauh_rules.query('select message from quality.quarantine where "row" = 3')[0]
    assert "trial.has_end_and_verdict" in message
    assert aauh_rules.query("select source_row from canonical.procedures order by 1") == [(1,), (2,)]


@breaks("lead.never_placed")
def test_rule_lead_never_placed(aauh_rules: Loaded) -> None:
    """aauh: a lead Device that no Procedure implants is quarantined, named by its resource id."""
    assert aauh_rules.findings_at("Device.ndjson", 2) == [
        finding("aauh", "Device.ndjson", 2, "id", "lead.never_placed")]
    assert aauh_rules.query("select resource_id from quality.quarantine where file = 'Device.ndjson'") == [("d-9",)]
    assert len(aauh_rules.findings()) == 2


# -- national rules --------------------------------------------------------------------------------


@breaks("implant.without_trial")
def test_rule_implant_without_successful_trial(wh: Loaded) -> None:
    """An implant whose only trial failed (no successful trial at any center) is quarantined and held back."""
    write_auh(wh.inbox, {"procedurer.csv": [f"{ANNA};10-03-2016;17-03-2016;DRG-PROEVE;x;Negativ", IMPLANT]})
    wh.load()
    assert wh.findings() == [finding("auh", "procedurer.csv", 3, "procedure", "implant.without_trial")]
    assert wh.query("select procedure, national_check from quality.held_procedures") == [("implant", "implant_trial")]
    assert wh.query("select procedure from canonical.procedures") == [("trial",)]


def test_rule_implant_with_trial_at_another_center_in_the_same_load_passes(wh: Loaded) -> None:
    """The national check looks at every center: a trial at ouh justifies an implant at auh."""
    write_auh(wh.inbox, {"procedurer.csv": [IMPLANT]})
    write_ouh(wh.inbox, [{"CPR-nr": ANNA, "Trial start": dt.datetime(2016, 3, 10),
                          "Trial end": dt.datetime(2016, 3, 17), "Trial outcome": "Success"}])
    wh.load()
    assert wh.findings() == []
    assert wh.query("select center, procedure from canonical.procedures order by date") == [
        ("ouh", "trial"), ("auh", "implant")]


@breaks("dates.out_of_order")
@pytest.mark.parametrize(
    ("files", "file", "row"),
    [
        ({"procedurer.csv": [TRIAL, f"{ANNA};15-03-2016;;DRG-IMPL;x;"]}, "procedurer.csv", 3),  # before trial end
        ({"procedurer.csv": [TRIAL, IMPLANT, f"{ANNA};01-04-2016;;DRG-EKSPL;x;"]}, "procedurer.csv", 4),
        ({"prom.csv": [*AUH["prom.csv"], f"{ANNA};01-04-2016;3 mdr;4,0;6;20"]}, "prom.csv", 3),
    ],
    ids=["implant before trial", "explant before implant", "follow-up before implant"],
)
def test_rule_dates_out_of_order_across_records(wh: Loaded, files: dict[str, list[str]], file: str,
                                                row: int) -> None:
    """Dates out of order across records are quarantined (column: the canonical 'date')."""
    write_auh(wh.inbox, files)
    wh.load()
    assert wh.findings() == [finding("auh", file, row, "date", "dates.out_of_order")]


@breaks("followup.outside_window")
def test_rule_followup_outside_window(wh: Loaded) -> None:
    """Follow-ups dated outside their windows after the implant (07-04-2016) are quarantined; those inside load.

    Windows are inclusive: month 3 is 2-4 months after the implant, month 6 5-8, month 12 9-15.
    """
    write_auh(wh.inbox, {"prom.csv": [*AUH["prom.csv"],
                                      f"{ANNA};07-06-2016;3 mdr;4,0;6;20",  # 2 months: on the window's edge
                                      f"{ANNA};07-07-2017;12 mdr;3,0;5;10",  # 15 months: on the edge
                                      f"{ANNA};06-09-2016;6 mdr;4,0;6;20",  # a day short of 5 months
                                      f"{ANNA};08-04-2018;24 mdr;3,0;5;10"]})  # 24 months: inside 18-30
    wh.load()
    assert wh.findings() == [finding("auh", "prom.csv", 5, "date", "followup.outside_window")]
    assert wh.query("select distinct timepoint from canonical.measurements order by 1") == [
        ("baseline",), ("month_12",), ("month_24",), ("month_3",)]


def test_rule_implant_held_back_is_released_by_a_later_delivery_of_another_center(wh: Loaded) -> None:
    """The release path: auh's implant waits in quarantine until ouh's later delivery brings the trial."""
    write_auh(wh.inbox, {"procedurer.csv": [IMPLANT]}, cutoff="2019-06-30")
    wh.load()
    held = finding("auh", "procedurer.csv", 2, "procedure", "implant.without_trial")
    assert wh.findings() == [held]
    assert wh.query("select rows_loaded, rows_quarantined from quality.delivery_files "
                    "where file = 'procedurer.csv'") == [(0, 1)]

    write_ouh(wh.inbox, [{"CPR-nr": ANNA, "Trial start": dt.datetime(2016, 3, 10),
                          "Trial end": dt.datetime(2016, 3, 17), "Trial outcome": "Success"}])
    wh.load()
    assert wh.report is not None and wh.report.skipped == ["auh/2019-06-30"]
    (auh_delivery,) = wh.query("select delivery_id from quality.deliveries where center = 'auh'")[0]
    (second_load,) = wh.query("select load_id from quality.deliveries where center = 'ouh'")[0]
    assert wh.query('select delivery_id, file, "row", rule_id, released_by, load_id from quality.releases') == [
        (auh_delivery, "procedurer.csv", 2, "implant.without_trial", "ouh/2019-12-31", second_load)]
    assert wh.findings() == [held]  # the finding stays on record ...
    assert wh.query("select count(*) from quality.open_quarantine") == [(0,)]  # ... and is closed
    assert wh.query("select center, procedure, date from canonical.current_procedures order by date") == [
        ("ouh", "trial", D(2016, 3, 10)), ("auh", "implant", D(2016, 4, 7))]
    assert wh.query("select count(*) from quality.held_procedures") == [(0,)]
    assert wh.query("select rows_loaded, rows_quarantined from quality.delivery_files "
                    "where file = 'procedurer.csv'") == [(1, 0)]


# -- hardening II: CPR numbers in text, faults a row cannot cost a delivery -----------------------------------


@breaks("cpr.in_identifier", "cpr.in_free_text")
def test_rule_a_cpr_in_an_identifier_quarantines_and_in_free_text_is_replaced(wh: Loaded) -> None:
    """A serial holding a CPR number is a data error; a note holding one is kept without it."""
    write_auh(wh.inbox, {
        "udstyr.csv": [f"{ANNA};Generator;Proclaim DRG;SN 020280-4321;07-04-2016;;;Aktiv;07-04-2016"],
        "komplikationer.csv": [f"{ANNA};10-05-2016;Infektion;Nej;ring pt 0202804321"]})
    wh.load()
    assert finding("auh", "udstyr.csv", 2, "Serienr", "cpr.in_identifier") in wh.findings()
    assert finding("auh", "komplikationer.csv", 2, "Note", "cpr.in_free_text") in wh.findings()
    assert wh.query("select note from canonical.complications") == [("ring pt <CPR?>",)]
    assert wh.query("select count(*) from canonical.devices") == [(0,)]


@breaks("delivery.in_the_future")
def test_rule_a_cutoff_after_today_is_not_read(wh: Loaded) -> None:
    """A delivery dated after the day of the load is a typo: reported, never in force."""
    write_auh(wh.inbox)
    write_auh(wh.inbox, cutoff=(registry_today() + dt.timedelta(days=1)).isoformat())
    wh.load()
    assert wh.report is not None and wh.report.exit_code == 1
    assert {f.rule_id for f in wh.report.files if f.rejected} == {"delivery.in_the_future"}
    assert wh.query("select strftime(cutoff, '%Y-%m-%d') from quality.deliveries") == [("2019-12-31",)]


@breaks("delivery.mostly_quarantined")
def test_rule_a_superseding_delivery_that_quarantines_nearly_all_is_refused(wh: Loaded) -> None:
    """A later delivery whose every record is quarantined would replace the center with nothing: refused."""
    write_auh(wh.inbox, cutoff="2019-06-30")
    wh.load()
    write_auh(wh.inbox, {name: [line.replace(ANNA, "010180-12345") for line in lines]
                         for name, lines in AUH.items()})
    wh.load()
    assert wh.query("select rule_id from quality.rejections") == [("delivery.mostly_quarantined",)]
    assert wh.query("select strftime(cutoff, '%Y-%m-%d') from quality.deliveries_in_force") == [("2019-06-30",)]


@breaks("file.dictionary", "redcap.field_type")
def test_rule_a_redcap_dictionary_not_in_redcaps_form(wh: Loaded) -> None:
    """A repeated choice code rejects rh's delivery; a field type REDCap lacks is a warning."""
    folder = write_rh(wh.inbox, {})
    path = folder / "DRGDK_DataDictionary.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("1, Female | 2, Male", "1, Female | 1, Male"),
                    encoding="utf-8")
    assert rejected(folder, "rh") == [("DRGDK_DataDictionary.csv", "file.dictionary")]
    path.write_text(path.read_text(encoding="utf-8").replace("1, Female | 1, Male", "1, Female | 2, Male")
                    .replace("nrs_avg,prom,,text", "nrs_avg,prom,,richtext"), encoding="utf-8")
    wh.load()
    assert finding("rh", "DRGDK_DataDictionary.csv", 8, "Field Type", "redcap.field_type") in wh.findings()


@breaks("row.no_fact")
def test_rule_a_record_with_no_fact(wh: Loaded) -> None:
    """An ouh Treatment row with only the CPR number: a finding, not a failed reconciliation."""
    write_ouh(wh.inbox, [{"CPR-nr": ANNA}])
    wh.load()
    assert wh.report is not None and wh.report.rejected == []
    assert finding("ouh", "DRG_registrering.xlsx#Treatment", 2, None, "row.no_fact") in wh.findings()


@breaks("row.quoting")
def test_rule_an_unclosed_quote(wh: Loaded) -> None:
    """A note whose quote is never closed swallows the next record: a finding, and the swallowed text is gone."""
    write_auh(wh.inbox, {"komplikationer.csv": [f'{ANNA};10-05-2016;Infektion;Nej;"unclosed',
                                                f"{ANNA};11-05-2016;Infektion;Nej;swallowed"]})
    wh.load()
    assert finding("auh", "komplikationer.csv", 2, "Note", "row.quoting") in wh.findings()
    assert "swallowed" not in str(wh.query("select * from quality.quarantine"))


@breaks("value.unreadable")
def test_rule_a_value_the_reader_cannot_handle(wh: Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception a reader raises on one record's value quarantines that record; the rest loads."""
    from drg_etl.sources import auh

    real = auh.parse_danish_date

    def breaking(text: str) -> dt.date:  # a value parser's defect, met by the reader's value steps and row rules
        if text == "10-05-2016":
            raise OverflowError("int too large to convert to float")
        return real(text)

    monkeypatch.setattr(auh, "parse_danish_date", breaking)
    write_auh(wh.inbox, {"komplikationer.csv": [f"{ANNA};10-05-2016;Infektion;Nej;boom",
                                                f"{ANNA};11-05-2016;Infektion;Nej;fine"]})
    wh.load()
    assert finding("auh", "komplikationer.csv", 2, None, "value.unreadable") in wh.findings()
    assert wh.query("select note from canonical.complications") == [("fine",)]


@breaks("file.unreconciled")
def test_rule_a_delivery_that_does_not_reconcile_is_rejected_and_the_others_load(
        wh: Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows read that neither load nor go to quarantine (a reader defect) reject that delivery only."""
    from drg_etl.sources import base

    real_add = base.RowContext.add

    def lose_ouh(self: base.RowContext, table: str, **values: Any) -> None:
        if self.staged.delivery.center != "ouh":
            real_add(self, table, **values)

    monkeypatch.setattr(base.RowContext, "add", lose_ouh)
    monkeypatch.setattr(base.RowContext, "keep_source", lambda self, *a, **k: None)
    write_auh(wh.inbox)
    write_ouh(wh.inbox, [{"CPR-nr": ANNA, "Trial start": "10.03.2016"}])
    wh.load()
    assert wh.query("select center, rule_id from quality.rejections") == [("ouh", "file.unreconciled")]
    assert wh.query("select center from quality.deliveries_in_force") == [("auh",)]


def test_rule_a_mostly_quarantined_delivery_is_refused_in_a_first_load_with_a_backlog(wh: Loaded) -> None:
    """A good delivery and a later broken one of the same center in one first load: the broken one is refused."""
    write_auh(wh.inbox, cutoff="2019-06-30")
    write_auh(wh.inbox, {name: [line.replace(ANNA, "010180-12345") for line in lines]
                         for name, lines in AUH.items()})
    wh.load()
    assert wh.query("select rule_id from quality.rejections") == [("delivery.mostly_quarantined",)]
    assert wh.query("select strftime(cutoff, '%Y-%m-%d') from quality.deliveries_in_force") == [("2019-06-30",)]


def test_two_complications_of_one_kind_on_one_day_for_two_devices_are_two_facts(wh: Loaded) -> None:
    """aauh names the Device of each complication: two broken leads on one day are two Conditions, no conflict."""
    def broken(cid: str, device: str) -> dict[str, Any]:
        return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p-1"},
                "category": [coded("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis")],
                "code": coded(f"{AAUH}komplikation", "ELEKTRODEBRUD"), "onsetDateTime": "2017-06-01",
                "evidence": [{"detail": [{"reference": f"Device/{device}"}]}]}

    write_aauh(wh.inbox, {"Condition": [broken("c-2", "d-1"), broken("c-3", "d-2")]})
    wh.load()
    assert [f for f in wh.findings() if f[4] == "row.conflict"] == []
    assert wh.query("select count(*) from canonical.complications") == [(2,)]
    assert wh.query("select count(*) from fhir.resources where resource_type = 'Condition' "
                    "and resource::varchar like '%2017-06-01%'") == [(2,)]
