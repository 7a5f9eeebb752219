"""The FHIR resources built in DuckDB SQL (drg_etl/fhir/sql_build.py) are, byte for byte, the rows the Python
builder's resources give (drg_etl/fhir/build.py, serialised by drg_etl/fhir/batch.row_of): every row of every type
built in SQL, for a generated cohort, for batches and target subsets of it, and for hand-made hostile facts; a value
without a code fails both; the canonical base is followed; what the SQL builds is validated as the Python build's
resources are, and an invalid one is refused."""

from __future__ import annotations

import datetime as dt
import math
import random
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from helpers import Loaded, Tiny

from drg_etl.core import mappings
from drg_etl.core.model import TABLES
from drg_etl.fhir import store, terminology
from drg_etl.fhir.batch import Row, Validator, row_of
from drg_etl.fhir.build import build_patient, resource_id
from drg_etl.fhir.sql_build import (
    SQL_GROUPS,
    UnknownGroup,
    _sorted_columns,
    build_sql_rows,
    json_number,
    json_string,
    rows_query,
    validate_texts,
)
from drg_etl.fhir.validate import InvalidResource

PREFIX = "fhir_src"  # the store's key-sorted copies, as a full rebuild reads them
HOSTILE = 'q"uote \\back\\slash\ttab\nline\r\x00nul\x01\x08\x0b\x0c\x1f\x7f \u2028\u2029 ø Å 😀 </x> \\u0041 \'sq'


def _copy_sources(con: duckdb.DuckDBPyConnection, targets: str | None = None) -> None:
    """Copies ``fhir_src_<table>`` and ``fhir_src_targets`` as a rebuild reads them (every patient, or those of
    ``targets``), each patient's facts in the order the Python builder is given them."""
    every = store._every_patient()
    chosen = every if targets is None else f"select * from ({every}) where patient_key in (select * from {targets})"
    con.execute(f"create or replace temp table {PREFIX}_targets as {chosen}")
    for name in TABLES:
        con.execute(f"create or replace temp table {PREFIX}_{name} as select t.* from canonical.current_{name} t "
                    f"semi join {PREFIX}_targets k using (patient_key) order by {_sorted_columns(name, 't')}")


def batch_facts(con: duckdb.DuckDBPyConnection, relation: str, first: str,
                last: str) -> tuple[list[str], dict[str, dict[str, list]]]:
    """The patients from ``first`` to ``last`` (key order) and their facts per table, as the Python builder takes
    them, read from ``<relation>_<table>`` (key-sorted copies of the canonical tables) and ``<relation>_targets``."""
    keys = [k for (k,) in con.execute(f"select patient_key from {relation}_targets where patient_key between ? and ? "
                                      "order by patient_key", [first, last]).fetchall()]
    facts: dict[str, dict[str, list]] = {k: {t: [] for t in TABLES} for k in keys}
    for table in TABLES:
        cursor = con.execute(f"select * from {relation}_{table} where patient_key between ? and ?", [first, last])
        names = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            fact = dict(zip(names, row, strict=True))
            facts[fact["patient_key"]][table].append(fact)
    return keys, facts


def _group(resource: dict[str, Any]) -> str | None:
    """The SQL builder's group of a Python-built resource (None: not built in SQL)."""
    kind = resource["resourceType"]
    if kind == "Condition":
        pain = resource["category"][0]["coding"][0]["code"] == "problem-list-item"
        return "patient" if pain else "complication"
    return {"Patient": "patient", "Device": "device", "Procedure": "procedure", "Observation": "observation",
            "AdverseEvent": "complication"}.get(kind)


def _python_rows(con: duckdb.DuckDBPyConnection, groups: tuple[str, ...] = SQL_GROUPS) -> list[Row]:
    """The Python builder's rows of ``groups`` for every patient of the copies, sorted."""
    keys = [k for (k,) in con.execute(f"select patient_key from {PREFIX}_targets order by 1").fetchall()]
    if not keys:
        return []
    keys, facts = batch_facts(con, PREFIX, keys[0], keys[-1])
    return sorted(row_of(r) for k in keys for r in build_patient(k, facts[k]) if _group(r) in groups)


def _sql_rows(con: duckdb.DuckDBPyConnection, **options: Any) -> list[Row]:
    return sorted(build_sql_rows(con, PREFIX, **options))


def _mismatch(sql: list[Row], python: list[Row]) -> str:
    """The first rows that differ, for a readable failure."""
    only_sql, only_python = sorted(set(sql) - set(python)), sorted(set(python) - set(sql))
    return f"{len(sql)} SQL rows, {len(python)} Python rows; SQL only: {only_sql[:1]}; Python only: {only_python[:1]}"


@pytest.fixture(scope="module")
def cohort(loaded_2000: Loaded) -> Iterator[duckdb.DuckDBPyConnection]:
    """The 2,000-patient cohort (with defects) read-only, with the store's key-sorted copies of every patient."""
    con = duckdb.connect(str(loaded_2000.warehouse), read_only=True)
    _copy_sources(con)
    yield con
    con.close()


@pytest.mark.parametrize("groups", [(g,) for g in SQL_GROUPS] + [SQL_GROUPS], ids=lambda g: "+".join(g))
def test_every_resource_is_the_python_builders_row(cohort: duckdb.DuckDBPyConnection,
                                                     groups: tuple[str, ...]) -> None:
    sql, python = _sql_rows(cohort, groups=groups), _python_rows(cohort, groups)
    assert sql == python, _mismatch(sql, python)
    counts = Counter(row[0] for row in sql)
    expected = {"patient": {"Patient", "Condition"}, "device": {"Device"}, "procedure": {"Procedure"},
                "observation": {"Observation"}, "complication": {"Condition", "AdverseEvent"}}
    assert set(counts) == set().union(*(expected[g] for g in groups))
    assert min(counts.values()) > 100
    if "observation" in groups:  # both shapes: with and without the timepoint extension
        assert {'"extension"' in row[4] for row in sql if row[0] == "Observation"} == {True, False}
    if "procedure" in groups:  # every optional member of a Procedure, and a Procedure without them
        members = Counter(m for row in sql if row[0] == "Procedure" for m in orjson.loads(row[4]))
        assert min(members[m] for m in ("performedPeriod", "focalDevice", "bodySite", "complicationDetail")) > 10
        assert members["performedDateTime"] > members["focalDevice"]


def test_every_resource_of_a_patient_is_built_in_sql(cohort: duckdb.DuckDBPyConnection) -> None:
    keys = [k for (k,) in cohort.execute(f"select patient_key from {PREFIX}_targets order by 1").fetchall()]
    keys, facts = batch_facts(cohort, PREFIX, keys[0], keys[-1])
    every = sorted(row_of(r) for k in keys for r in build_patient(k, facts[k]))
    assert _sql_rows(cohort) == every


def test_batches_and_targets_give_the_same_rows(cohort: duckdb.DuckDBPyConnection) -> None:
    whole = _sql_rows(cohort)
    bounds = store._batch_bounds(cohort, f"{PREFIX}_targets", 700)
    assert len(bounds) >= 3
    batched = sorted(row for first, last in bounds for row in build_sql_rows(cohort, PREFIX, first, last))
    assert batched == whole
    first, last = bounds[1]
    assert sorted(build_sql_rows(cohort, PREFIX, first, None)) == sorted(
        row for f, la in bounds[1:] for row in build_sql_rows(cohort, PREFIX, f, la))
    assert sorted(build_sql_rows(cohort, PREFIX, None, last)) == sorted(
        row for f, la in bounds[:2] for row in build_sql_rows(cohort, PREFIX, f, la))
    # a subset of the patients, named by a relation of targets: exactly their rows
    cohort.execute(f"create or replace temp table some_patients as select patient_key from {PREFIX}_targets "
                   "where hash(patient_key) % 5 = 0")
    chosen = {resource_id("Patient", k) for (k,) in cohort.execute("select * from some_patients").fetchall()}
    subset = sorted(build_sql_rows(cohort, PREFIX, targets="some_patients"))
    assert subset == [row for row in whole if row[2] in chosen]
    assert 0 < len(subset) < len(whole) / 2


def test_the_canonical_tables_in_force_give_the_same_rows(cohort: duckdb.DuckDBPyConnection) -> None:
    assert sorted(build_sql_rows(cohort, "canonical.current")) == _sql_rows(cohort)


def test_a_relation_name_is_checked_and_a_group_must_be_known() -> None:
    with pytest.raises(ValueError, match="not a relation name"):
        rows_query("fhir_src; drop table x")
    with pytest.raises(ValueError, match="not a relation name"):
        rows_query(PREFIX, targets="t where true")
    with pytest.raises(UnknownGroup):
        rows_query(PREFIX, groups=("organization",))
    query = rows_query(PREFIX, "a", None, groups=("observation",))
    assert set(query.parameters) >= {"first", "uuid_namespace"} and "last" not in query.parameters
    assert "$first" in query.sql and "'a'" not in query.sql


# -- hostile facts -----------------------------------------------------------------------------------------------

FLOATS = [0.0, -0.0, 7.0, 6.8, 0.1 + 0.2, 1 / 3, 2 / 3 * 10, 51.99999999999999, 1e-4, 9.99e-5, 1e-5, 1.5e-5,
          1e-6, 1.234e-7, 5e-324, 1e15, 1e16, 1.2345678901234567e19, 1e22, 1.7976931348623157e308, 123456.789e-3]


def _hostile(tiny: Tiny) -> Tiny:
    """Patients with hostile free text and identifiers, awkward numbers, and the cases of the home center and of a
    complication's device."""
    hostile_key = HOSTILE[:60]
    tiny.add("patients", "ouh", patient_key=hostile_key, sex=HOSTILE, birth_year=1960, pain_location="lower_extremity",
             diagnosis="crps_1", recorded_sex="f")
    tiny.add("devices", "ouh", patient_key=hostile_key, device_ref=HOSTILE, device_type="lead", model=HOSTILE,
             serial=HOSTILE, placed_date=dt.date(2018, 1, 2), level=HOSTILE, side="left\\", status="fractured",
             status_date=dt.date(2019, 1, 2))
    tiny.add("devices", "ouh", patient_key=hostile_key, device_ref="g1", device_type="generator", model="Axium",
             serial="S\"1", placed_date=None, level=None, side=None, status="active", status_date=None)
    tiny.add("devices", "ouh", patient_key=hostile_key, device_ref="", device_type="generator", model="",
             serial="", placed_date=None, level=None, side=None, status="removed", status_date=dt.date(2019, 1, 2))
    tiny.add("complications", "ouh", patient_key=hostile_key, date=dt.date(2019, 1, 2), complication="lead_fracture",
             permanent=None, device_ref=None, note=HOSTILE)
    tiny.add("complications", "ouh", patient_key=hostile_key, date=dt.date(2019, 1, 5), complication="infection",
             permanent=True, device_ref=HOSTILE, note="")
    tiny.add("complications", "ouh", patient_key=hostile_key, date=dt.date(2019, 3, 3), complication="pocket_pain",
             permanent=False, device_ref="", note=None)
    # procedures: a trial without end or verdict; a lead replaced on the day it was placed and removed (implanted
    # and explanted both), the source naming it too (not manipulated again); a named device; complications that day
    tiny.add("procedures", "ouh", patient_key=hostile_key, procedure="trial", date=dt.date(2017, 12, 1),
             end_date=None, trial_success=None, device_ref=None, reason=HOSTILE)
    tiny.add("procedures", "ouh", patient_key=hostile_key, procedure="trial", date=dt.date(2017, 12, 20),
             end_date=dt.date(2017, 12, 30), trial_success=True, device_ref="", reason=None)
    tiny.add("procedures", "ouh", patient_key=hostile_key, procedure="implant", date=dt.date(2018, 1, 2),
             device_ref=HOSTILE)
    tiny.add("devices", "ouh", patient_key=hostile_key, device_ref="L9", device_type="lead", model=None,
             serial="L9", placed_date=dt.date(2019, 1, 5), level="L4", side=None, status="removed",
             status_date=dt.date(2019, 1, 5))
    tiny.add("devices", "ouh", patient_key=hostile_key, device_ref="L8", device_type="lead", model=None,
             serial="L8", placed_date=dt.date(2019, 1, 5), level="S1", side="right", status="active",
             status_date=None)
    tiny.add("devices", "ouh", patient_key=hostile_key, device_ref="L7", device_type="lead", model=None,
             serial="L7", placed_date=dt.date(2018, 1, 5), level="T12", side="left", status="removed",
             status_date=dt.date(2019, 1, 5))
    tiny.add("procedures", "ouh", patient_key=hostile_key, procedure="lead_replacement", date=dt.date(2019, 1, 5),
             device_ref="L9")
    tiny.add("procedures", "ouh", patient_key=hostile_key, procedure="lead_repositioning", date=dt.date(2019, 1, 2),
             device_ref="g1")
    tiny.add("procedures", "ouh", patient_key=hostile_key, procedure="explant", date=dt.date(2019, 3, 3),
             device_ref="nothing")
    tiny.add("complications", "ouh", patient_key=hostile_key, date=dt.date(2019, 1, 5), complication="other",
             permanent=None, device_ref="L9", note=None)
    for day, value in enumerate(FLOATS, start=1):
        tiny.add("measurements", "ouh", patient_key=hostile_key, date=dt.date(2019, 1, day),
                 timepoint=["baseline", None, "", "MONTH_3"][day % 4], measure=["nrs_average", "PCS_TOTAL"][day % 2],
                 value=value)
    # the home center: the earliest procedure's (rh, without demographics: the first demographics in key order)
    tiny.add("patients", "aauh", patient_key="b" * 64, sex="male", birth_year=1950, pain_location="UPPER_EXTREMITY",
             diagnosis="other", recorded_sex=None)
    tiny.add("patients", "auh", patient_key="b" * 64, sex="female", birth_year=1951, pain_location="thoracic_abdominal",
             diagnosis="crps_2", recorded_sex=None)
    tiny.add("procedures", "rh", patient_key="b" * 64, procedure="implant", date=dt.date(2017, 5, 5))
    tiny.add("procedures", "aauh", patient_key="b" * 64, procedure="implant", date=dt.date(2018, 5, 5))
    # no procedure: the first center in CENTERS order with demographics (rh; aauh's come first in key order);
    # two faulty leads on one day: no device
    tiny.add("patients", "aauh", patient_key="c" * 64, sex="female", birth_year=1970,
             pain_location="lower_extremity", diagnosis="crps_1", recorded_sex=None)
    tiny.add("patients", "rh", patient_key="c" * 64, sex="male", birth_year=1971, pain_location="lower_extremity",
             diagnosis="crps_1", recorded_sex=None)
    # the earliest procedure's center has demographics, but not the first in key order (auh's)
    tiny.add("patients", "auh", patient_key="d" * 64, sex="female", birth_year=1980, pain_location="lower_extremity",
             diagnosis="other", recorded_sex=None)
    tiny.add("patients", "ouh", patient_key="d" * 64, sex="male", birth_year=1981, pain_location="upper_extremity",
             diagnosis="crps_2", recorded_sex=None)
    tiny.add("procedures", "ouh", patient_key="d" * 64, procedure="trial", date=dt.date(2016, 1, 1))
    tiny.add("procedures", "auh", patient_key="d" * 64, procedure="implant", date=dt.date(2016, 2, 1))
    for ref in ("L1", "L2"):
        tiny.lead("rh", ref, "2018-01-01", status="malfunction", status_date="2019-06-06").con.execute(
            "update canonical.devices set patient_key = $k where device_ref = $r", {"k": "c" * 64, "r": ref})
    tiny.add("complications", "rh", patient_key="c" * 64, date=dt.date(2019, 6, 6), complication="lead_malfunction",
             permanent=True, device_ref=None, note="two leads")
    tiny.lead("rh", "F1", "2018-01-01", status="removed_fragment_retained", status_date="2019-07-07")
    tiny.add("devices", "rh", device_ref="G1", device_type="generator", model="Proclaim DRG", serial="1",
             placed_date=dt.date(2018, 1, 1), level=None, side=None, status="active", status_date=dt.date(2019, 7, 7))
    tiny.add("complications", "rh", date=dt.date(2019, 7, 7), complication="retained_fragment", permanent=False,
             device_ref=None, note="one fragment")
    return tiny


def test_hostile_text_and_numbers_give_the_python_builders_bytes(tiny: Tiny) -> None:
    con = _hostile(tiny).con
    _copy_sources(con)
    sql, python = _sql_rows(con), _python_rows(con)
    assert sql == python, _mismatch(sql, python)
    texts = "\n".join(row[4] for row in sql)
    for written in ("\\u0000", "\\u000b", "\\u001f", "\\b", "\\f", "\\t", "\\n", "\\r", '\\"', "\\\\", "\u2028",
                    "😀", "\x7f", "5e-324", "0.00001", "1.234e-7", "1e+22", "-0.0", "0.30000000000000004"):
        assert written in texts, written
    evidence = [orjson.loads(row[4]).get("evidence") for row in sql if '"encounter-diagnosis"' in row[4]]
    assert sum(e is not None for e in evidence) == 4  # the fractured lead, two named devices, the one fragment
    replaced = next(orjson.loads(row[4]) for row in sql if 'procedure/lead_replacement' in row[4])
    assert [d["action"]["text"] for d in replaced["focalDevice"]] == ["Device implanted"] * 2 + ["Device removed"] * 2
    assert replaced["bodySite"] == [{"text": f"dorsal root ganglion, {site}"} for site in ("L4 None", "S1 right",
                                                                                          "T12 left")]
    assert len(replaced["complicationDetail"]) == 2
    patients = {row[2]: orjson.loads(row[4]) for row in sql if row[0] == "Patient"}
    chosen = {key: (patients[resource_id("Patient", key * 64)]["managingOrganization"]["reference"],
                    patients[resource_id("Patient", key * 64)]["birthDate"]) for key in "bcd"}
    assert chosen == {"b": ("Organization/rh", "1950"), "c": ("Organization/rh", "1971"),
                      "d": ("Organization/ouh", "1981")}


def test_a_value_without_a_code_fails_both_builders(tiny: Tiny) -> None:
    tiny.measure("ouh", "2019-02-02", 3.0, "baseline", measure="nrs_sometimes")
    _copy_sources(tiny.con)
    with pytest.raises(KeyError):
        _python_rows(tiny.con)
    with pytest.raises(duckdb.Error, match="no code for measure: nrs_sometimes"):
        build_sql_rows(tiny.con, PREFIX)


@pytest.fixture()
def other_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Another canonical base for the test (the cached terminology follows it, and is cleared again after)."""
    caches = (mappings.canonical_base, terminology.terminology, terminology.codeable, terminology.device_action)
    for cache in caches:
        cache.cache_clear()
    monkeypatch.setenv(mappings.CANONICAL_BASE_VARIABLE, "https://registry.example.dk/fhir")
    yield "https://registry.example.dk/fhir"
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


def test_the_canonical_base_is_followed(tiny: Tiny, other_base: str) -> None:
    con = _hostile(tiny).con
    _copy_sources(con)
    sql, python = _sql_rows(con), _python_rows(con)
    assert sql == python, _mismatch(sql, python)
    assert all(f'"{other_base}/StructureDefinition/' in row[4] for row in sql)
    assert not any("drg-etl.example" in row[4] for row in sql)


# -- the JSON of a value -----------------------------------------------------------------------------------------


def test_text_is_escaped_as_orjson_escapes_it() -> None:
    con = duckdb.connect()
    points = [*range(0x0, 0xD800, 1), *range(0xE000, 0x110000, 97), 0xFFFF, 0x10FFFF]
    texts = ["".join(chr(p) for p in points[i:i + 64]) for i in range(0, len(points), 64)]
    texts += [HOSTILE, "", "plain", "\\", '"', "\\u2028", "\x00"]
    con.execute("create table t as select unnest($texts) as s, generate_subscripts($texts, 1) as i",
                {"texts": texts})
    written = [w for (w,) in con.execute(f"select {json_string('s')} from t order by i").fetchall()]
    assert written == [orjson.dumps(t).decode() for t in texts]
    assert con.execute(f"select {json_string('null::varchar')}").fetchone()[0] == "null"


def test_doubles_are_written_as_orjson_writes_them() -> None:
    rng = random.Random(5)
    values = [*FLOATS, math.nan, math.inf, -math.inf, 2.2250738585072014e-308]
    values += [round(rng.uniform(0, 52), 1) for _ in range(5000)] + [rng.uniform(0, 52) for _ in range(5000)]
    values += [rng.random() * 10.0 ** rng.randint(-320, 300) for _ in range(20000)]
    bits = (struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20000))
    values += [-v for v in values[:100]] + [v for v in bits if math.isfinite(v)]
    con = duckdb.connect()
    con.execute("create table t as select unnest($v::double[]) as v, generate_subscripts($v, 1) as i", {"v": values})
    written = [w for (w,) in con.execute(f"select {json_number('v')} from t order by i").fetchall()]
    expected = [orjson.dumps(v).decode() for v in values]
    assert written == expected, [(v, w, e) for v, w, e in zip(values, written, expected, strict=True) if w != e][:3]


# -- validation --------------------------------------------------------------------------------------------------


def test_what_sql_builds_is_validated_and_an_invalid_resource_is_refused(tiny: Tiny, tmp_path: Path) -> None:
    tiny.patient("ouh").measure("ouh", "2019-01-01", 4.0, "baseline")
    _copy_sources(tiny.con)
    rows = build_sql_rows(tiny.con, PREFIX)
    assert validate_texts([row[4] for row in rows], Validator(strict=False)) == len(rows) == 3
    assert validate_texts([row[4] for row in rows], Validator(strict=True)) == 3
    # a score that is not a number (NaN: null in JSON, as orjson writes it) and a gender FHIR does not know
    tiny.measure("ouh", "2019-02-01", math.nan, "month_3")
    tiny.con.execute("update canonical.patients set sex = 'robot'")
    _copy_sources(tiny.con)
    rows = build_sql_rows(tiny.con, PREFIX)
    assert sorted(rows) == _python_rows(tiny.con)  # the same bytes as the Python builder, invalid as they are
    for kind, field in (("Observation", "valueQuantity.value"), ("Patient", "gender")):
        texts = [row[4] for row in rows if row[0] == kind]
        with pytest.raises(InvalidResource, match=field.replace(".", "\\.")):
            validate_texts(texts, Validator(strict=False))
    # one invalid resource among valid ones is found
    texts = [row[4] for row in rows if row[0] != "Patient"]
    with pytest.raises(InvalidResource, match="valueQuantity"):
        validate_texts(texts, Validator(strict=False))
