"""Loading the deliveries: quarantine against the generator's truth, reconciliation, canonical = truth."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import TEST_KEY, Loaded, copy_of


def key_of(cpr: str) -> str:
    return hmac.new(TEST_KEY, cpr.encode(), hashlib.sha256).hexdigest()


def query(loaded: Loaded, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(loaded.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_other_seed"])
def test_every_injected_defect_is_quarantined_under_its_rule_and_nothing_else(
        fixture: str, request: pytest.FixtureRequest) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    found = set(query(loaded, "select center, file, \"row\", rule_id, severity from quality.quarantine"))
    expected = {(d["center"], d["file"], d["row"], d["rule_id"], d["severity"]) for d in loaded.gen.truth["defects"]}
    assert found == expected


def test_clean_cohort_loads_with_an_empty_quarantine(loaded_clean: Loaded) -> None:
    assert query(loaded_clean, "select count(*) from quality.quarantine") == [(0,)]
    assert loaded_clean.report.exit_code == 0
    assert sorted(loaded_clean.report.loaded) == ["aauh/2019-12-31", "auh/2019-12-31", "ouh/2019-12-31",
                                                  "rh/2019-12-31"]


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_clean", "loaded_other_seed"])
def test_rows_read_equal_loaded_plus_quarantined_per_file(fixture: str, request: pytest.FixtureRequest) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    rows = query(loaded, "select d.center, f.file, rows_read, rows_loaded, rows_quarantined, rows_ignored "
                         "from quality.delivery_files f join quality.deliveries d using (delivery_id)")
    truth = {(d["center"], f): n for d in loaded.gen.truth["deliveries"] for f, n in d["records"].items()}
    assert {(c, f) for c, f, *_ in rows} == set(truth)
    for center, file, read, ok, bad, _ignored in rows:
        assert read == ok + bad, (center, file)
        assert read == truth[(center, file)], (center, file)
    quarantined_rows = query(loaded, "select center, file, count(distinct \"row\") from quality.quarantine "
                                     "where severity = 'error' group by all")
    for center, file, n in quarantined_rows:
        assert n == next(bad for c, f, _, _, bad, _ in rows if (c, f) == (center, file))


def _expected(gen_truth: dict[str, Any]) -> dict[str, set[tuple[Any, ...]]]:
    """The canonical facts the truth says each center's delivery holds."""
    out: dict[str, set[tuple[Any, ...]]] = {t: set() for t in ("patients", "procedures", "devices", "measurements",
                                                               "complications")}
    d = dt.date.fromisoformat
    for p in gen_truth["patients"]:
        key = key_of(p["cpr"])
        for center in p["centers"]:
            out["patients"].add((center, key, p["sex"], p["birth_year"], p["pain_location"], p["diagnosis"]))
        for x in p["procedures"]:
            end = d(x["end_date"]) if x["end_date"] else None
            out["procedures"].add((x["center"], key, x["kind"], d(x["date"]), end, x["trial_success"]))
        for g in p["generators"]:
            out["devices"].add((g["center"], key, "generator", g["serial"], None, None, g["status"], d(g["placed"])))
        for lead in p["leads"]:
            out["devices"].add((lead["center"], key, "lead", lead["serial"], lead["level"], lead["side"],
                                lead["status"], d(lead["placed"])))
        for m in p["measurements"]:
            timepoint = None if m["center"] == "aauh" else m["timepoint"]
            for measure in ("nrs_average", "nrs_worst", "pcs_total"):
                if m[measure] is not None:
                    out["measurements"].add((m["center"], key, d(m["date"]), timepoint, measure, float(m[measure])))
        for c in p["complications"]:
            out["complications"].add((c["center"], key, d(c["date"]), c["kind"], c["permanent"]))
    return out


CANONICAL_SQL = {
    "patients": "select center, patient_key, sex, birth_year, pain_location, diagnosis from canonical.current_patients",
    "procedures": "select center, patient_key, procedure, date, end_date, trial_success "
                  "from canonical.current_procedures",
    "devices": "select center, patient_key, device_type, serial, level, side, status, placed_date "
               "from canonical.current_devices",
    "measurements": "select center, patient_key, date, timepoint, measure, value from canonical.current_measurements",
    "complications": "select center, patient_key, date, complication, permanent from canonical.current_complications",
}


@pytest.mark.parametrize("table", sorted(CANONICAL_SQL))
@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_other_seed", "loaded_clean"])
def test_canonical_tables_equal_the_truth(fixture: str, table: str, request: pytest.FixtureRequest) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    rows = query(loaded, CANONICAL_SQL[table])
    assert len(rows) == len(set(rows)), "no fact twice"
    assert set(rows) == _expected(loaded.gen.truth)[table]


def test_one_person_at_two_centers_is_one_patient(loaded_demo: Loaded) -> None:
    rows = query(loaded_demo, "select patient_key, count(distinct center) from canonical.current_patients "
                              "group by 1 having count(distinct center) > 1")
    twice = [p for p in loaded_demo.gen.truth["patients"] if len(p["centers"]) > 1]
    assert {r[0] for r in rows} == {key_of(p["cpr"]) for p in twice}


def test_the_cross_center_implant_is_not_flagged(loaded_demo: Loaded) -> None:
    """The patient tried at rh and implanted at aauh has a trial nationally: no implant.without_trial."""
    crossed = next(p for p in loaded_demo.gen.truth["patients"] if set(p["centers"]) == {"rh", "aauh"})
    flagged = query(loaded_demo, "select count(*) from quality.quarantine where rule_id = 'implant.without_trial' "
                                 f"and patient_key = '{key_of(crossed['cpr'])}'")
    assert flagged == [(0,)]
    implants = query(loaded_demo, "select center from canonical.current_procedures where procedure = 'implant' "
                                  f"and patient_key = '{key_of(crossed['cpr'])}'")
    assert implants == [("aauh",)]


def test_quarantine_points_back_and_holds_the_pseudonym(loaded_demo: Loaded) -> None:
    rows = query(loaded_demo, "select center, file, \"row\", message, record, patient_key from quality.quarantine")
    assert rows
    for center, file, row, message, record, patient_key in rows:
        assert file and row >= 1 and message and record
        if center != "aauh" and patient_key:  # a FHIR record names its patient by resource id instead
            assert patient_key in record


def test_the_load_audit_records_hashes_counts_timing_and_code_version(loaded_demo: Loaded) -> None:
    loads = query(loaded_demo, "select load_id, seconds, loaded, skipped, rejected, code_version from quality.loads")
    assert len(loads) == 1
    _, seconds, loaded, skipped, rejected, version = loads[0]
    assert seconds > 0 and (loaded, skipped, rejected) == (4, 0, 0) and version.startswith("drg-etl ")
    hashes = query(loaded_demo, "select file, sha256 from quality.delivery_files where file = 'prom.csv'")
    assert len(hashes) == 1 and len(hashes[0][1]) == 64


def test_a_load_with_nothing_new_writes_nothing(loaded_demo: Loaded, tmp_path: Path) -> None:
    """A nightly load that finds no new delivery leaves the file byte for byte as it was (no audit row, no rebuild)."""
    from drg_etl.pipeline.load import load_inbox

    warehouse = copy_of(loaded_demo, tmp_path)
    before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    report = load_inbox(loaded_demo.gen.inbox, warehouse, TEST_KEY)
    assert report.exit_code == 0 and report.loaded == [] and len(report.skipped) == 4
    assert report.fhir_counts == dict(query(loaded_demo, "select resource_type, count(*) from fhir.resources "
                                                         "group by 1"))
    assert hashlib.sha256(warehouse.read_bytes()).hexdigest() == before


def test_a_load_with_nothing_new_still_finishes_an_interrupted_fhir_build(loaded_demo: Loaded, tmp_path: Path) -> None:
    from drg_etl.pipeline.load import load_inbox

    warehouse = copy_of(loaded_demo, tmp_path)
    with duckdb.connect(str(warehouse)) as con:  # as a load killed between its write and its FHIR build leaves it
        con.execute("insert into staging.fhir_dirty select distinct patient_key from canonical.patients limit 3")
    load_inbox(loaded_demo.gen.inbox, warehouse, TEST_KEY)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from staging.fhir_dirty").fetchone() == (0,)
        assert con.execute("select count(*) from quality.fhir_builds").fetchone() == (2,)
