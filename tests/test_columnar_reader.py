"""A file read as a set (drg_etl.sources.columnar) gives what its row reader gives, record by record.

The row reader (``auh._procedure`` and its kin) defines every value and finding. Reading as a set runs its
value steps once per distinct text and the row rules as SQL; every record the SQL does not find clean is
read by the row reader. Here both ways read the same deliveries, the generator's and hostile ones, and
must stage the same: every fact with its lineage and position (``fact_seq``), every finding, every kept
source record, the records that gave a fact, the per-file counts. The SQL must also have read most of a
generated delivery itself (else the comparison would hold by the row reader alone).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
from helpers import CUTOFF_DATE, TEST_KEY, fact_rows, generate_inbox

from drg_etl.core.delivery import Delivery
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.sources import columnar
from drg_etl.sources.base import StagedDelivery
from drg_etl.sources.deliveries import read_delivery

KEY = bytes.fromhex(TEST_KEY.decode())


def staged_contents(center: str, folder: Path, cutoff: dt.date = CUTOFF_DATE, *, batch_records: int | None = None
                    ) -> dict[str, Any]:
    """Everything a reader hands the staging tables, collected from every batch (sorted where order is not
    part of the contract: a batch's facts are a set, their ``fact_seq`` the reading order)."""
    got: dict[str, Any] = {"facts": Counter(), "issues": Counter(), "kept": Counter(), "contributed": set(),
                           "by_sql": 0}

    def sink(batch: StagedDelivery) -> None:
        for table, rows in fact_rows(batch).items():
            got["facts"].update((table, *row.values()) for row in rows)
        got["issues"].update(astuple(issue) for issue in batch.issues)
        got["kept"].update(batch.source_rows)
        got["contributed"] |= batch.contributed
        for kind, frame in batch.frames:
            if kind == "source_records":
                got["by_sql"] += len(frame)
                got["kept"].update(zip(*(frame.column(c).to_pylist() for c in ("file", "row", "record")), strict=True))
            elif kind == "contributed":
                got["contributed"] |= set(zip(frame.column("file").to_pylist(), frame.column("row").to_pylist(),
                                              strict=True))

    if batch_records is not None:
        original = StagedDelivery.__init__

        def small(self: StagedDelivery, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            self.batch_records = batch_records

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(StagedDelivery, "__init__", small)
            staged = read_delivery(Delivery(center, cutoff, folder), Pseudonymizer(KEY), sink)
    else:
        staged = read_delivery(Delivery(center, cutoff, folder), Pseudonymizer(KEY), sink)
    got["counts"] = {c.file: (c.rows_read, c.rows_ignored) for c in staged.counts.values()}
    return got


def row_by_row(center: str, folder: Path, **options: Any) -> dict[str, Any]:
    """:func:`staged_contents` with the SQL given no record: every record read by the row reader."""
    take = columnar.ColumnarFile._take
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(columnar.ColumnarFile, "_take", lambda self, rows: take(self, []))
        got = staged_contents(center, folder, **options)
    assert got.pop("by_sql") == 0
    return got


def as_set(center: str, folder: Path, **options: Any) -> tuple[dict[str, Any], int]:
    """:func:`staged_contents` read as a set, and how many records the SQL read itself."""
    got = staged_contents(center, folder, **options)
    return got, got.pop("by_sql")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated inbox of 400 trial patients, the generator's defects planted."""
    return generate_inbox(tmp_path_factory.mktemp("columnar"), patients=400, seed=7).inbox


@pytest.mark.parametrize("center", ["auh", "rh"])
def test_generated_delivery_reads_the_same_as_a_set(generated: Path, center: str) -> None:
    """The generator's delivery: the same staged contents both ways, and the SQL read most records."""
    (folder,) = (generated / center).iterdir()
    expected = row_by_row(center, folder)
    got, by_sql = as_set(center, folder)
    assert got == expected
    records = sum(read for read, _ in expected["counts"].values())
    assert by_sql > 0.9 * records, (by_sql, records)
    assert expected["issues"], "the generator plants defects in every center's delivery"


def test_small_batches_and_chunks_read_the_same(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches handed on and chunks read mid-file (a few rows each) change nothing."""
    (folder,) = (generated / "auh").iterdir()
    expected = row_by_row("auh", folder)
    monkeypatch.setattr(columnar, "CHUNK_ROWS", 7)
    got, _ = as_set("auh", folder, batch_records=5)
    assert got == expected


# -- hostile values: each column's good values mixed with what breaks it ----------------------------------------

ANNA, BO = "010180-1234", "020275-3457"  # synthetic: a woman born 1980, a man born 1975
CPRS = [ANNA, BO, "0101801234", " 010180-1234", "010180-123", "310280-1234", "01018O-1234", "", "abc",
        "０１０１８０-１２３４"]
DATES = ["10-03-2016", "17-03-2016", "07-04-2016", "01-02-2019", " 07-04-2016", "07-04-2016 ", "31-02-2016",
         "2016-04-07", "07.04.2016", "01-01-2009", "01-01-2020", "31-12-2019", "", " ", "7-4-2016", "07-04-16",
         "\u00a007-04-2016", "０７-０４-２０１６"]
TEXTS = ["", "Kontrol", "Brud på elektrode; skiftet", " foran", "bagved ", "\u00a0", "  ", "pt 010180-1234",
         "ring 0101801234", "Ø-test", "slut ø", "ok.", "x", "line\nbreak", 'citat "x"', "t\tab"]
CODES = {
    "sex": ["M", "K", "k", " K", "X", ""],
    "pain_location": ["Underekstremitet", "Overekstremitet", "Thorax/abdomen", "underekstremitet", ""],
    "diagnosis": ["CRPS type 1", "CRPS type 2", "Andet", "CRPS 1", ""],
    "procedure": ["DRG-PROEVE", "DRG-IMPL", "DRG-ELSKIFT", "DRG-EKSPL", "DRG-ELFJERN", "drg-impl", "", "X"],
    "trial_success": ["Positiv", "Negativ", "", "Ja", " Positiv"],
    "device_type": ["Generator", "Elektrode", "Elektrode", "", "Lead"],
    "serial": ["IPG-0001", "LD-0002", " LD-3", "", "SN0101801234", "LD 010180 1234", "Ø-7"],
    "level": ["L5", "S1", "T12", "L6", "l4", "", "Th12", "L4/L5"],
    "side": ["H", "V", "", "h", "B"],
    "lead_status": ["Aktiv", "Brud", "Fjernet", "Fjernet, fragment efterladt", "", "Død"],
    "timepoint": ["Baseline", "3 mdr", "12 mdr", "", "4 mdr", "baseline"],
    "nrs_average": ["6,8", "3,1", "10", "0", "", "6.8", "11", "-1", "6,", "x", " 5,0", "1e1", "٣"],
    "integer": ["9", "5", "0", "52", "53", "", "4,5", "-0", " 7", "07", "x"],
    "complication": ["Elektrodebrud", "Infektion", "Spinalvæskelækage", "", "Ukendt"],
    "permanent": ["Ja", "Nej", "", "ja", "Måske"],
}


def _pick(rng: random.Random, pool: list[str], good: int) -> str:
    """Mostly one of the first ``good`` values (so many records are clean), else any."""
    return rng.choice(pool[:good]) if rng.random() < 0.75 else rng.choice(pool)


def hostile_auh(folder: Path, rng: random.Random, records: int) -> None:
    """An auh delivery whose every column mixes good values with hostile ones, and some rows of the wrong width."""
    folder.mkdir(parents=True)

    def cpr() -> str:
        return _pick(rng, CPRS, 2)

    def date() -> str:
        return _pick(rng, DATES, 4)

    def text() -> str:
        return _pick(rng, TEXTS, 3)

    def code(name: str, good: int = 2) -> str:
        return _pick(rng, CODES[name], good)

    files = {
        "patienter.csv": ("CPR;Køn;Smertelokalisation;Diagnose",
                          lambda: [cpr(), code("sex"), code("pain_location", 3), code("diagnosis", 3)]),
        "procedurer.csv": ("CPR;Dato;Slutdato;Procedurekode;Beskrivelse;Resultat",
                           lambda: [cpr(), date(), _pick(rng, ["", *DATES], 4), code("procedure", 4), text(),
                                    code("trial_success")]),
        "udstyr.csv": ("CPR;Type;Model;Serienr;Implantationsdato;Niveau;Side;Status;Statusdato",
                       lambda: [cpr(), code("device_type", 3), text(), code("serial", 2), date(), code("level", 3),
                                code("side"), code("lead_status", 4), date()]),
        "prom.csv": ("CPR;Dato;Tidspunkt;NRS_gns;NRS_max;PCS",
                     lambda: [cpr(), date(), code("timepoint", 3), code("nrs_average", 5), code("integer", 4),
                              code("integer", 4)]),
        "komplikationer.csv": ("CPR;Dato;Type;Permanent;Note",
                               lambda: [cpr(), date(), code("complication", 3), code("permanent", 3), text()]),
    }
    for name, (header, record) in files.items():
        lines = [header]
        for at in range(records):
            fields = record()
            if rng.random() < 0.02 and at < records - 1:  # a short last record would be a truncated file
                fields = fields[:-1] if rng.random() < 0.5 else [*fields, "x"]
            lines.append(";".join(f'"{v}"' if any(c in v for c in ';"\n') else v for v in
                                  (f.replace('"', '""') if '"' in f else f for f in fields)))
        (folder / name).write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252", errors="replace"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_auh_delivery_reads_the_same_as_a_set(tmp_path: Path, seed: int) -> None:
    """Hostile values in every column: the same findings, facts and kept records both ways; the SQL still
    read a share of the records itself."""
    folder = tmp_path / "auh" / "2019-12-31"
    hostile_auh(folder, random.Random(seed), 600)
    expected = row_by_row("auh", folder)
    got, by_sql = as_set("auh", folder)
    assert got["issues"] == expected["issues"]
    assert got == expected
    assert by_sql > 300, by_sql
    rules = {issue[5] for issue in expected["issues"]}
    assert {"cpr.invalid", "date.invalid", "date.out_of_range", "code.unknown", "score.out_of_range",
            "cpr.in_free_text", "cpr.in_identifier", "row.shape", "value.missing_required"} <= rules, rules


# -- rh: the generator's REDCap export with hostile values planted in its cells ----------------------------------

REDCAP_CODES = ["1", "2", "0", "9", "", " 1", "x", "01", "1.0", "-1"]
REDCAP_POOLS: dict[str, list[str]] = {
    "cpr": CPRS,
    "date": ["2016-04-07", "2015-13-01", "2016-02-30", "07-04-2016", "", " 2016-04-07", "2008-01-01",
             "2020-01-01", "2016-4-7", "２０１６-04-07"],
    "nrs_avg": CODES["nrs_average"],
    "integer": CODES["integer"],
    "serial": CODES["serial"],
    "checkbox": ["0", "1", "", "2", " 1", "x"],
    "text": TEXTS,
    "record_id": ["010180-1234", "9999", ""],
    "redcap_event_name": ["bogus_arm_1", "month_3_arm_1", "screening_arm_1", ""],
    "redcap_repeat_instrument": ["prom", "complication", "surgery", "nope"],
}


def _redcap_pool(column: str) -> list[str]:
    """The hostile values a column of rh's export is given."""
    if column in REDCAP_POOLS:
        return REDCAP_POOLS[column]
    if column.endswith(("_date", "_start", "_end")):
        return REDCAP_POOLS["date"]
    if column == "nrs_avg":
        return REDCAP_POOLS["nrs_avg"]
    if column == "nrs_worst" or column.startswith("pcs_"):
        return REDCAP_POOLS["integer"]
    if column.endswith("_serial"):
        return REDCAP_POOLS["serial"]
    if "___" in column:
        return REDCAP_POOLS["checkbox"]
    if column in ("surg_reason", "comp_note"):
        return REDCAP_POOLS["text"]
    return REDCAP_CODES


def hostile_rh(source: Path, folder: Path, rng: random.Random) -> None:
    """rh's generated export (``source``) copied to ``folder`` with one cell of most records made
    hostile (codes, dates, scores, CPR numbers, free text, event and instrument names), some rows of the wrong
    width; the data dictionary as it was."""
    import csv
    import shutil

    folder.mkdir(parents=True)
    (data,) = source.glob("DRGDK_DATA_*.csv")
    shutil.copy(source / "DRGDK_DataDictionary.csv", folder)
    raw = data.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    header, records = rows[0], rows[1:]
    out = [header]
    for at, record in enumerate(records):
        record = list(record)
        cells = [i for i, column in enumerate(header)  # the cells it fills, now and then an empty one
                 if column != "redcap_repeat_instance" and (record[i] or rng.random() < 0.02)]
        if rng.random() < 0.6:  # one hostile cell, so that each finding stands alone
            at_cell = rng.choice(cells)
            record[at_cell] = rng.choice(_redcap_pool(header[at_cell]))
        if rng.random() < 0.01 and at < len(records) - 1:
            record = record[:-1] if rng.random() < 0.5 else [*record, "x"]
        out.append(record)
    text = io_text(out)
    folder.joinpath(data.name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


def io_text(rows: list[list[str]]) -> str:
    """Rows as REDCap writes its CSV export: commas, CRLF, a field quoted where it must be."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_rh_export_reads_the_same_as_a_set(generated: Path, tmp_path: Path, seed: int) -> None:
    """Hostile cells in rh's export: the same findings, facts and kept records both ways; the SQL still read
    a share of the records itself."""
    (source,) = (generated / "rh").iterdir()
    folder = tmp_path / "rh" / source.name
    hostile_rh(source, folder, random.Random(seed))
    expected = row_by_row("rh", folder)
    got, by_sql = as_set("rh", folder)
    assert got["issues"] == expected["issues"]
    assert got == expected
    records = sum(read for read, _ in expected["counts"].values())
    assert by_sql > 0.4 * records, (by_sql, records)
    rules = {issue[5] for issue in expected["issues"]}
    assert {"cpr.invalid", "cpr.in_identifier", "date.invalid", "date.out_of_range", "code.unknown",
            "score.out_of_range", "row.shape"} <= rules, rules


# -- aauh: the generator's Observations with hostile resources planted among them ---------------------------------

def _plain_observations(self: Any, lines: Any) -> None:
    """aauh's Observations read line by line by the row reader, as before they were read as a set."""
    for number, line, resource in lines:
        self.guarded(self.observation, number, line, resource)


def aauh_line_by_line(folder: Path) -> dict[str, Any]:
    """:func:`staged_contents` of an aauh delivery with every Observation read by the row reader alone."""
    from drg_etl.sources import aauh

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aauh._Reader, "observations", _plain_observations)
        got = staged_contents("aauh", folder)
    assert got.pop("by_sql") == 0
    return got


def hostile_observations(source: Path, folder: Path, rng: random.Random) -> None:
    """aauh's generated delivery copied to ``folder``, most Observations made hostile in one place each (every one
    still valid R4, as the file must be): codes, dates, values, subjects, CPR numbers in the id or a note, text that is
    not ASCII, numbers the scrubber spells otherwise, lines repeated or conflicting with an earlier one."""
    import json
    import shutil

    shutil.copytree(source, folder)
    (observations,) = folder.glob("Observation.ndjson")
    lines = observations.read_text(encoding="utf-8").splitlines()
    taken: list[str] = []

    def change(resource: dict[str, Any]) -> None:
        kind = rng.randrange(14)
        if kind == 0:
            resource["code"]["coding"][0]["code"] = rng.choice(["XYZ", "nrs-gns", "NRS GNS"])
        elif kind == 1:
            resource["code"]["coding"][0]["system"] = "http://other.example/codes"
        elif kind == 2:
            resource["effectiveDateTime"] = rng.choice(["2016-02-30", "2016", "2008-01-01", "2021-01-01",
                                                        "2016-04-07T10:00:00+01:00"])
        elif kind == 3:
            resource.pop("effectiveDateTime")
        elif kind == 4:
            resource["valueQuantity"]["value"] = rng.choice([11, -1, 10, 0, 3.25, 1e20, 0.00001, 7.0, 52, 53,
                                                             1234567890123456789, 1012801234])
        elif kind == 5:
            resource["valueQuantity"].pop("value")
        elif kind == 6:
            resource["subject"]["reference"] = rng.choice(["Patient/unknown", "Group/1", "Patient/"])
        elif kind == 7:
            resource["id"] = rng.choice(["010180-1234", "0101801234", "x010180-1234x"])
        elif kind == 8:
            resource["note"] = [{"text": rng.choice(["pt 010180-1234", "ring 0101801234", "12-34/56 78 12 34",
                                                     "ok", "Ømt efter 3 mdr", "linje\nskift", 'citat "x"'])}]
        elif kind == 9:
            resource["note"] = [{"text": "ref Patient/" + resource["subject"]["reference"].split("/")[-1] + "1"}]
        elif kind == 10 and taken:
            resource.clear()
            resource.update(json.loads(rng.choice(taken)))  # the same line again
        elif kind == 11 and taken:
            earlier = json.loads(rng.choice(taken))
            resource["id"] = earlier["id"]  # an id given before, with other content
        elif kind == 12:
            resource["id"] = resource["id"].upper()
        else:
            resource["status"] = "amended"

    out = []
    for line in lines:
        resource = json.loads(line)
        if rng.random() < 0.5:
            change(resource)
        text = json.dumps(resource, ensure_ascii=rng.random() < 0.5, separators=(",", ":"))
        out.append(text)
        taken.append(text)
    observations.write_text("\n".join(out) + "\n", encoding="utf-8")


def test_generated_aauh_observations_read_the_same_as_a_set(generated: Path) -> None:
    """The generator's aauh delivery: line by line and as a set stage the same; the SQL read most Observations."""
    (folder,) = (generated / "aauh").iterdir()
    expected = aauh_line_by_line(folder)
    got, by_sql = as_set("aauh", folder)
    assert got == expected
    observations = next(read for file, (read, _) in expected["counts"].items() if file.startswith("Observation"))
    assert by_sql > 0.9 * observations, (by_sql, observations)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_aauh_observations_read_the_same_as_a_set(generated: Path, tmp_path: Path, seed: int) -> None:
    """Hostile Observations: the same findings, facts, kept records and counts both ways; the SQL still read a share
    of the lines itself."""
    (source,) = (generated / "aauh").iterdir()
    folder = tmp_path / "aauh" / source.name
    hostile_observations(source, folder, random.Random(seed))
    expected = aauh_line_by_line(folder)
    got, by_sql = as_set("aauh", folder)
    assert got["issues"] == expected["issues"]
    assert got == expected
    assert by_sql > 0.3 * sum(read for read, _ in expected["counts"].values()), by_sql
    rules = {issue[5] for issue in expected["issues"]}
    assert {"code.unknown", "date.invalid", "date.out_of_range", "score.out_of_range", "value.missing_required",
            "patient.no_demographics", "cpr.in_identifier", "row.duplicate", "row.conflict"} <= rules, rules
    kept = " ".join(record for _, _, record in got["kept"])
    assert "010180-1234" not in kept and "0101801234" not in kept and "<CPR?>" in kept  # a note's CPR scrubbed
