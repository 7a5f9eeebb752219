"""auh delivery: the bytes and vocabulary extracts.md fixes, and cell-by-cell agreement with the truth."""

from __future__ import annotations

import datetime as dt
import io
import re

import pandas as pd
import pytest
from helpers import CUTOFF, Generated

from drg_etl.core.formats import FORMATS

HEADERS = {
    "patienter.csv": "CPR;Køn;Smertelokalisation;Diagnose",
    "procedurer.csv": "CPR;Dato;Slutdato;Procedurekode;Beskrivelse;Resultat",
    "udstyr.csv": "CPR;Type;Model;Serienr;Implantationsdato;Niveau;Side;Status;Statusdato",
    "prom.csv": "CPR;Dato;Tidspunkt;NRS_gns;NRS_max;PCS",
    "komplikationer.csv": "CPR;Dato;Type;Permanent;Note",
}
# extracts.md "auh", written out here so the mapping files are tested, not trusted.
SEX = {"male": "M", "female": "K"}
LOCATION = {"lower_extremity": "Underekstremitet", "upper_extremity": "Overekstremitet",
            "thoracic_abdominal": "Thorax/abdomen"}
DIAGNOSIS = {"crps_1": "CRPS type 1", "crps_2": "CRPS type 2", "postsurgical": "Postoperative nervesmerter",
             "posttraumatic": "Posttraumatisk nerveskade", "postherpetic": "Postherpetisk neuralgi",
             "other": "Andet"}
PROCEDURE = {"trial": "DRG-PROEVE", "implant": "DRG-IMPL", "lead_replacement": "DRG-ELSKIFT",
             "lead_repositioning": "DRG-ELREPOS", "ipg_replacement": "DRG-GENSKIFT", "lead_removal": "DRG-ELFJERN",
             "explant": "DRG-EKSPL"}
STATUS = {"active": "Aktiv", "fractured": "Brud", "malfunction": "Defekt", "removed": "Fjernet",
          "removed_fragment_retained": "Fjernet, fragment efterladt"}
TIMEPOINT = {"baseline": "Baseline", "month_3": "3 mdr", "month_6": "6 mdr", "month_12": "12 mdr",
             "month_24": "24 mdr", "month_36": "36 mdr"}
COMPLICATION = {"lead_fracture": "Elektrodebrud", "lead_malfunction": "Elektrodedefekt",
                "lead_migration": "Elektrodemigration", "infection": "Infektion", "csf_leak": "Spinalvæskelækage",
                "pocket_pain": "Smerter ved generator", "retained_fragment": "Efterladt fragment",
                "nerve_damage": "Nerveskade", "other": "Andet"}
DATE = re.compile(r"^\d{2}-\d{2}-\d{4}$")


def read(demo: Generated, name: str) -> pd.DataFrame:
    """A file as strings, with its rows numbered as a person reads them (header = row 1)."""
    raw = (demo.folder("auh") / name).read_bytes()
    frame = pd.read_csv(io.StringIO(raw.decode("cp1252")), sep=";", dtype=str, keep_default_na=False)
    frame.index = frame.index + 2
    errors = [d["row"] for d in demo.defects_in(name) if d["severity"] == "error"]
    return frame.drop(index=errors)


def test_patient_header_is_windows_1252(demo: Generated) -> None:
    assert (demo.folder("auh") / "patienter.csv").read_bytes().startswith("CPR;Køn".encode("cp1252"))


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_bytes_encoding_delimiter_and_header(demo: Generated, name: str) -> None:
    raw = (demo.folder("auh") / name).read_bytes()
    text = raw.decode("cp1252")
    if not raw.isascii():
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    assert text.split("\r\n", 1)[0] == HEADERS[name]
    assert text.endswith("\r\n")
    assert "\r\n" in text and text.replace("\r\n", "").count("\r") == 0
    frame = pd.read_csv(io.StringIO(text), sep=";", dtype=str, keep_default_na=False)
    assert list(frame.columns) == HEADERS[name].split(";")


def test_the_generator_writes_exactly_the_declared_auh_files_and_columns(demo: Generated) -> None:
    declared = FORMATS["auh"]
    folder = demo.folder("auh")
    assert sorted(p.name for p in folder.iterdir()) == sorted(declared.file_names(dt.date.fromisoformat(CUTOFF)))
    for source in declared.files:
        text = source.dialect
        raw = (folder / source.name).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") == (text.byte_order_mark != "absent"), source.name
        first, _, _ = raw.decode(text.python_encoding).partition(text.line_end)
        assert first.split(text.delimiter) == list(source.columns), source.name
        assert raw.endswith(text.line_end.encode("ascii")), source.name


def test_value_vocabulary(demo: Generated) -> None:
    patients = read(demo, "patienter.csv")
    assert set(patients["Køn"]) <= set(SEX.values())
    assert set(patients["Smertelokalisation"]) <= set(LOCATION.values())
    assert set(patients["Diagnose"]) <= set(DIAGNOSIS.values())
    procedures = read(demo, "procedurer.csv")
    assert set(procedures["Procedurekode"]) <= set(PROCEDURE.values())
    assert set(procedures["Resultat"]) <= {"Positiv", "Negativ", ""}
    trials = procedures[procedures["Procedurekode"] == "DRG-PROEVE"]
    assert (trials["Slutdato"] != "").all() and (trials["Resultat"] != "").all()
    others = procedures[procedures["Procedurekode"] != "DRG-PROEVE"]
    assert (others["Slutdato"] == "").all() and (others["Resultat"] == "").all()
    devices = read(demo, "udstyr.csv")
    assert set(devices["Type"]) == {"Generator", "Elektrode"}
    assert set(devices["Status"]) <= set(STATUS.values())
    leads = devices[devices["Type"] == "Elektrode"]
    assert set(leads["Side"]) <= {"H", "V"} and leads["Niveau"].str.match(r"^[CTLS]\d{1,2}$").all()
    assert (devices.loc[devices["Type"] == "Generator", ["Niveau", "Side"]] == "").all().all()
    prom = read(demo, "prom.csv")
    assert set(prom["Tidspunkt"]) <= set(TIMEPOINT.values())
    assert prom["NRS_gns"].str.match(r"^\d{1,2},\d$").all()
    assert prom["NRS_max"].str.match(r"^(\d{1,2})?$").all()
    comps = read(demo, "komplikationer.csv")
    assert set(comps["Type"]) <= set(COMPLICATION.values())
    assert set(comps["Permanent"]) <= {"Ja", "Nej", ""}
    for frame, columns in [(procedures, ["Dato"]), (devices, ["Implantationsdato", "Statusdato"]),
                           (prom, ["Dato"]), (comps, ["Dato"])]:
        for column in columns:
            assert frame[column].str.match(DATE).all(), column


def test_quoted_fields_survive(demo: Generated) -> None:
    notes = read(demo, "komplikationer.csv")["Note"]
    descriptions = read(demo, "procedurer.csv")["Beskrivelse"]
    assert notes.str.contains("\n").any(), "a multi-line note is written quoted"
    assert descriptions.str.contains(";").any(), "a description with ';' is written quoted"


def _cpr_key(series: pd.Series) -> pd.Series:
    return series.str.replace("-", "", regex=False)


def test_auh_csv_cells_agree_with_the_truth(demo: Generated) -> None:
    patients, procedures = read(demo, "patienter.csv"), read(demo, "procedurer.csv")
    devices, prom, comps = read(demo, "udstyr.csv"), read(demo, "prom.csv"), read(demo, "komplikationer.csv")
    persons = demo.persons_at("auh")
    assert len(persons) >= 10
    for person in persons:
        cpr = person["cpr"]
        row = patients[_cpr_key(patients["CPR"]) == cpr]
        assert len(row) == 1
        sex = SEX[person["sex"]]
        if row.index[0] in demo.defect_rows("patienter.csv"):  # the injected sex_mismatch warning
            sex = {"M": "K", "K": "M"}[sex]
        assert row.iloc[0].tolist()[1:] == [sex, LOCATION[person["pain_location"]], DIAGNOSIS[person["diagnosis"]]]
        mine = procedures[_cpr_key(procedures["CPR"]) == cpr]
        expected = sorted((p["date"], PROCEDURE[p["kind"]]) for p in person["procedures"] if p["center"] == "auh")
        got = sorted((f"{d[6:]}-{d[3:5]}-{d[:2]}", code) for d, code in zip(mine["Dato"], mine["Procedurekode"],
                                                                             strict=True))
        assert got == expected
        leads = devices[(_cpr_key(devices["CPR"]) == cpr) & (devices["Type"] == "Elektrode")]
        expected_leads = sorted((lead["serial"], lead["level"], "V" if lead["side"] == "left" else "H",
                                 STATUS[lead["status"]]) for lead in person["leads"] if lead["center"] == "auh")
        assert sorted(zip(leads["Serienr"], leads["Niveau"], leads["Side"], leads["Status"], strict=True)) == \
            expected_leads
        visits = prom[_cpr_key(prom["CPR"]) == cpr]
        expected_visits = sorted(
            (TIMEPOINT[m["timepoint"]], f"{m['nrs_average']:.1f}".replace(".", ","),
             "" if m["nrs_worst"] is None else str(m["nrs_worst"]),
             "" if m["pcs_total"] is None else str(m["pcs_total"]))
            for m in person["measurements"] if m["center"] == "auh")
        assert sorted(zip(visits["Tidspunkt"], visits["NRS_gns"], visits["NRS_max"], visits["PCS"],
                          strict=True)) == expected_visits
        mine_comps = comps[_cpr_key(comps["CPR"]) == cpr]
        expected_comps = sorted((COMPLICATION[c["kind"]], "Ja" if c["permanent"] else "Nej")
                                for c in person["complications"] if c["center"] == "auh")
        assert sorted(zip(mine_comps["Type"], mine_comps["Permanent"], strict=True)) == expected_comps
