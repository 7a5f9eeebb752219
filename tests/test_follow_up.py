"""Follow-up completeness (analysis.md): the analysis equals the generator's oracle; the oracle's definitions pinned
on hand-built histories; --publish masks small counts."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from typing import Any

import pytest
from helpers import CUTOFF_DATE, Generated, Loaded
from typer.testing import CliRunner

from drg_etl.analysis.national import national_analysis
from drg_etl.cli import app
from drg_etl.core.dates import FOLLOW_UP_WINDOWS
from drg_etl.core.formats import FORMATS
from drg_etl.core.vocabulary import CENTERS
from drg_etl.pipeline.warehouse import connect
from drg_etl.synth.cohort import iter_blocks, person_cpr
from drg_etl.synth.design import load_design
from drg_etl.synth.model import Measurement, Person, Procedure
from drg_etl.synth.oracle import Oracle

TIMEPOINTS = list(FOLLOW_UP_WINDOWS)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def follow_up_of(loaded: Loaded, end: dt.date | None = None) -> dict[str, Any]:
    con = connect(loaded.warehouse, read_only=True)
    try:
        return national_analysis(con, end)["follow_up"]
    finally:
        con.close()


# -- the analysis against the oracle ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_clean", "loaded_other_seed", "loaded_2000"])
def test_follow_up_equals_the_generators_oracle(fixture: str, request: pytest.FixtureRequest) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    oracle = loaded.gen.truth["figures"]["follow_up"]
    assert oracle["month_3"]["due"] > 0 and oracle["month_36"]["due"] > 0  # the cohort exercises every window
    assert follow_up_of(loaded) == oracle


def test_follow_up_equals_the_oracle_at_an_earlier_observation_end(loaded_demo: Loaded) -> None:
    """Due depends on the observation end: the oracle rerun over the demo's histories as of 2017-06-30."""
    end = d("2017-06-30")
    oracle = Oracle(end)
    for persons in iter_blocks(load_design(), loaded_demo.gen.truth["seed"], None):
        for person in persons:
            oracle.add(person)
    expected = oracle.figures()["follow_up"]
    assert expected != loaded_demo.gen.truth["figures"]["follow_up"]
    assert follow_up_of(loaded_demo, end) == expected


def test_publish_masks_follow_up_counts_one_to_four(loaded_demo: Loaded) -> None:
    result = CliRunner().invoke(app, ["analyze", "--warehouse", str(loaded_demo.warehouse), "--json", "--publish"])
    assert result.exit_code == 0, result.output
    masked = json.loads(result.output)["follow_up"]
    oracle = loaded_demo.gen.truth["figures"]["follow_up"]
    cells = [(masked[t], oracle[t]) for t in TIMEPOINTS]
    cells += [(masked["by_center"][c][t], oracle["by_center"][c][t]) for c in CENTERS for t in TIMEPOINTS]
    small = 0
    for shown, true in cells:
        hidden = [k for k in ("due", "assessed") if 1 <= true[k] <= 4]
        small += bool(hidden)
        for k in ("due", "assessed"):
            assert shown[k] == ("<5" if k in hidden else true[k])
        assert shown["pct"] == ("<5" if hidden else true["pct"])
    assert small > 0  # the demo's centers have timepoints with 1-4 due


@pytest.mark.parametrize("fixture", ["demo", "scaled", "loaded_2000"])
def test_rh_export_holds_every_assessment_the_truth_gives_rh(fixture: str, request: pytest.FixtureRequest) -> None:
    """The oracle counts the truth's assessments; rh's REDCap export must hold them all, also the ones after a
    missed 12 months (an empty event row once stopped the later events being written: seed 5's 2,000 had 3)."""
    value = request.getfixturevalue(fixture)
    gen: Generated = value.gen if isinstance(value, Loaded) else value
    export = gen.folder("rh") / FORMATS["rh"].file("export").file_name(CUTOFF_DATE)
    with export.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cpr_of = {r["record_id"]: r["cpr"].replace("-", "") for r in rows if r["redcap_event_name"] == "screening_arm_1"}
    written = {(cpr_of.get(r["record_id"]), r["redcap_event_name"], r["prom_date"])
               for r in rows if r["prom_date"]}
    events = {"baseline": "screening_arm_1", **{t: f"{t}_arm_1" for t in TIMEPOINTS}}
    expected = {(p["cpr"], events[m["timepoint"]], m["date"])
                for p in gen.truth["patients"] for m in p["measurements"] if m["center"] == "rh"}
    assert expected and expected <= written


# -- the oracle's definitions, on hand-built histories -----------------------------------------------------------


def person(implant_center: str = "auh", implant: str = "2015-03-01") -> Person:
    p = Person(0, person_cpr(0, "female", 1, random.Random(0)), "lower_extremity", "crps_1", "functional", {},
               [implant_center])
    p.procedures += [Procedure("trial", implant_center, d("2015-01-10"), d("2015-01-20"), True),
                     Procedure("implant", implant_center, d(implant))]
    return p


def measure(p: Person, center: str, day: str, timepoint: str, value: float | None = 4.0) -> Person:
    p.measurements.append(Measurement(center, timepoint, d(day), value, None, None))
    return p


def follow_up(end: str, *persons: Person) -> dict[str, Any]:
    oracle = Oracle(d(end))
    for p in persons:
        oracle.add(p)
    return oracle.figures()["follow_up"]


def test_oracle_shape_has_every_center_and_timepoint_with_null_pct_where_none_is_due() -> None:
    figures = follow_up("2019-12-31")
    assert list(figures) == [*TIMEPOINTS, "by_center"]
    assert list(figures["by_center"]) == list(CENTERS)
    for cells in [figures, *figures["by_center"].values()]:
        assert all(cells[t] == {"due": 0, "assessed": 0, "pct": None} for t in TIMEPOINTS)


def test_a_patient_explanted_before_a_window_opens_is_not_due_then() -> None:
    # Implant 2015-03-01: month_3 opens 2015-05-01, month_6 opens 2015-08-01.
    p = person()
    p.procedures.append(Procedure("explant", "auh", d("2015-05-01")))
    figures = follow_up("2019-12-31", p)
    assert figures["month_3"]["due"] == 1  # explanted on the day the window opens: still due
    assert all(figures[t]["due"] == 0 for t in TIMEPOINTS[1:])
    p.procedures[-1] = Procedure("explant", "auh", d("2015-04-30"))
    assert all(follow_up("2019-12-31", p)[t]["due"] == 0 for t in TIMEPOINTS)


def test_a_window_ending_after_the_observation_end_is_not_due() -> None:
    # month_6 closes 2015-11-01, month_12 2016-06-01.
    assert follow_up("2015-11-01", person())["month_6"]["due"] == 1
    figures = follow_up("2016-05-31", person())
    assert [figures[t]["due"] for t in TIMEPOINTS] == [1, 1, 0, 0, 0]
    assert figures["month_6"] == {"due": 1, "assessed": 0, "pct": 0.0}
    assert figures["month_12"] == {"due": 0, "assessed": 0, "pct": None}


def test_labels_count_where_the_source_labels_and_dates_where_it_does_not() -> None:
    # auh labels its assessments: the label counts. aauh gives dates only: the window its date falls in counts
    # (the truth's label, which aauh's source does not carry, does not).
    labelled = measure(person("auh"), "auh", "2015-06-01", "month_3")
    dated = measure(person("aauh"), "aauh", "2015-09-15", "month_12")  # in month_6's window (2015-08-01..11-01)
    outside = measure(person("aauh"), "aauh", "2015-07-15", "month_6")  # between month_3's and month_6's windows
    figures = follow_up("2019-12-31", labelled, dated, outside)
    assert figures["by_center"]["auh"]["month_3"] == {"due": 1, "assessed": 1, "pct": 100.0}
    assert figures["by_center"]["aauh"]["month_6"] == {"due": 2, "assessed": 1, "pct": 50.0}
    assert figures["by_center"]["aauh"]["month_12"]["assessed"] == 0
    assert figures["by_center"]["aauh"]["month_3"]["assessed"] == 0
    assert figures["month_6"] == {"due": 3, "assessed": 1, "pct": 33.3}


def test_an_assessment_without_any_of_the_three_measures_does_not_count() -> None:
    p = measure(person(), "auh", "2015-06-01", "month_3", value=None)
    assert follow_up("2019-12-31", p)["month_3"] == {"due": 1, "assessed": 0, "pct": 0.0}


def test_by_center_is_the_center_of_the_first_implant() -> None:
    p = person("rh", "2015-03-01")
    p.centers.append("ouh")
    p.procedures.append(Procedure("implant", "ouh", d("2016-03-01")))
    measure(p, "rh", "2015-06-01", "month_3")
    figures = follow_up("2019-12-31", p)
    assert figures["by_center"]["rh"]["month_3"] == {"due": 1, "assessed": 1, "pct": 100.0}
    assert all(figures["by_center"]["ouh"][t]["due"] == 0 for t in TIMEPOINTS)


def test_no_implant_in_the_study_window_is_not_due() -> None:
    p = person(implant="2019-02-01")
    assert all(follow_up("2023-12-31", p)[t]["due"] == 0 for t in TIMEPOINTS)
