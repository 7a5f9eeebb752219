"""The national analysis: equal to the generator's oracle, the paper's figures for the demo, pinned definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import Loaded, Tiny
from typer.testing import CliRunner

from drg_etl.analysis.national import national_analysis, publishable
from drg_etl.analysis.wilcoxon import signed_rank_p
from drg_etl.cli import app
from drg_etl.pipeline.warehouse import connect
from drg_etl.reference.compare import compare_with_paper

COUNTS = [("cohort", k) for k in ("trial_patients", "implanted_patients", "still_implanted", "fully_functional")]
COUNTS += [("complications", k) for k in ("lead_defect_patients", "retained_fragment_patients",
                                          "permanent_nerve_damage_patients")]


def analyze_json(loaded: Loaded, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["analyze", "--warehouse", str(loaded.warehouse), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("fixture", ["loaded_demo", "loaded_other_seed", "loaded_seed13", "loaded_2000"])
def test_analyze_equals_the_generators_oracle(fixture: str, request: pytest.FixtureRequest) -> None:
    loaded: Loaded = request.getfixturevalue(fixture)
    ours, oracle = analyze_json(loaded), loaded.gen.truth["figures"]
    assert ours["observation_end"] == oracle["observation_end"] == "2019-12-31"
    for section, key in COUNTS:
        assert ours[section][key] == oracle[section][key], key
    for section, key in [("cohort", "still_implanted_pct"), ("cohort", "fully_functional_pct"),
                         ("complications", "lead_defect_pct"), ("complications", "retained_fragment_pct")]:
        assert ours[section][key] == oracle[section][key], key
    assert ours["pain_location"] == oracle["pain_location"]
    assert ours["by_center"] == oracle["by_center"]
    for measure, o in oracle["outcomes_12m"].items():
        mine = ours["outcomes_12m"][measure]
        assert mine["n"] == o["n"] > 0, measure
        assert mine["baseline_mean"] == o["baseline_mean"] and mine["month12_mean"] == o["month12_mean"]
        assert abs(mine["baseline_mean_exact"] - o["baseline_mean_exact"]) < 1e-9
        assert abs(mine["month12_mean_exact"] - o["month12_mean_exact"]) < 1e-9
        assert abs(mine["p_value"] - o["p_value"]) < 1e-9, measure


def test_the_demo_prints_the_papers_figures_computed_from_the_deliveries(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "21 of 21 published figures reproduced" in " ".join(result.output.split())
    con = connect(tmp_path / "demo" / "warehouse.duckdb", read_only=True)
    figures = national_analysis(con)
    con.close()
    assert all(row.matches for row in compare_with_paper(figures))
    assert (tmp_path / "demo" / "fhir" / "manifest.json").exists()


def test_json_contract_shape(loaded_demo: Loaded) -> None:
    figures = analyze_json(loaded_demo)
    assert set(figures) >= {"observation_end", "cohort", "pain_location", "outcomes_12m", "complications",
                            "by_center"}
    assert set(figures["outcomes_12m"]) == {"nrs_average", "nrs_worst", "pcs_total"}
    assert figures["outcomes_12m"]["nrs_average"]["p_value"] == pytest.approx(0.000488, rel=1e-3)
    assert isinstance(figures["cohort"]["trial_patients"], int)
    assert set(figures["by_center"]) == {"auh", "ouh", "rh", "aauh"}


def test_publish_masks_small_counts(loaded_demo: Loaded) -> None:
    masked = analyze_json(loaded_demo, "--publish")
    assert masked["complications"]["retained_fragment_patients"] == "<5"
    assert masked["complications"]["retained_fragment_pct"] == "<5"
    assert masked["complications"]["permanent_nerve_damage_patients"] == "<5"
    assert masked["complications"]["lead_defect_patients"] == 13
    assert masked["cohort"]["trial_patients"] == 43


def test_observation_end_is_a_parameter(loaded_demo: Loaded) -> None:
    early = analyze_json(loaded_demo, "--observation-end", "2016-12-31")
    assert early["observation_end"] == "2016-12-31"
    assert early["cohort"]["trial_patients"] == 43
    assert early["cohort"]["still_implanted"] > analyze_json(loaded_demo)["cohort"]["still_implanted"]
    bad = CliRunner().invoke(app, ["analyze", "--warehouse", str(loaded_demo.warehouse), "--observation-end", "x"])
    assert bad.exit_code == 2


# -- the definitions, pinned on hand-built histories (helpers.Tiny, the tiny fixture) ----------------------


def _implanted(t: Tiny, center: str = "auh") -> Tiny:
    return t.patient(center).trial(center, "2015-01-10").procedure(center, "implant", "2015-03-01")


def test_a_fractured_lead_replaced_later_is_functional_again(tiny: Tiny) -> None:
    _implanted(tiny).lead("auh", "A", "2015-03-01", "fractured", "2015-09-01")
    assert tiny.analyze()["cohort"]["fully_functional"] == 0
    tiny.lead("auh", "B", "2015-10-01").procedure("auh", "lead_replacement", "2015-10-01")
    figures = tiny.analyze()
    assert figures["cohort"]["still_implanted"] == 1 and figures["cohort"]["fully_functional"] == 1


def test_a_replacement_elsewhere_on_the_spine_does_not_repair_a_fault(tiny: Tiny) -> None:
    _implanted(tiny).lead("auh", "A", "2015-03-01", "fractured", "2015-09-01")
    tiny.lead("auh", "B", "2015-10-01", level="L4")
    assert tiny.analyze()["cohort"]["fully_functional"] == 0


def test_an_explant_on_the_observation_end_counts_as_explanted(tiny: Tiny) -> None:
    _implanted(tiny).lead("auh", "A", "2015-03-01").procedure("auh", "explant", "2019-06-30")
    assert tiny.analyze("2019-06-30")["cohort"]["still_implanted"] == 0
    assert tiny.analyze("2019-06-29")["cohort"]["still_implanted"] == 1


def test_a_trial_at_one_center_and_implant_at_another_counts_once(tiny: Tiny) -> None:
    tiny.patient("rh").patient("aauh").trial("rh", "2016-02-01").procedure("aauh", "implant", "2016-04-01")
    tiny.lead("aauh", "A", "2016-04-01")
    figures = tiny.analyze()
    assert figures["cohort"]["trial_patients"] == 1 and figures["cohort"]["implanted_patients"] == 1
    assert figures["by_center"]["rh"] == {"trial_patients": 1, "implanted_patients": 0}
    assert figures["by_center"]["aauh"] == {"trial_patients": 0, "implanted_patients": 1}
    assert figures["pain_location"]["lower_extremity"] == {"n": 1, "pct": 100.0}


def test_twelve_months_falls_back_to_the_9_to_15_month_window_without_labels(tiny: Tiny) -> None:
    _implanted(tiny, "aauh").lead("aauh", "A", "2015-03-01")
    tiny.measure("aauh", "2014-12-20", 7.0, None)       # 21 days before the trial: baseline
    tiny.measure("aauh", "2015-11-20", 4.5, None)       # 8.6 months: outside the window
    tiny.measure("aauh", "2016-03-10", 3.0, None)       # 12.3 months: the closest to 12
    tiny.measure("aauh", "2016-05-25", 5.0, None)       # 14.8 months: in the window, farther
    outcome = tiny.analyze()["outcomes_12m"]["nrs_average"]
    assert (outcome["n"], outcome["baseline_mean"], outcome["month12_mean"]) == (1, 7.0, 3.0)


def test_a_labelled_timepoint_wins_over_dates(tiny: Tiny) -> None:
    _implanted(tiny).lead("auh", "A", "2015-03-01")
    tiny.measure("auh", "2014-12-01", 8.0, "baseline").measure("auh", "2016-03-20", 2.0, "month_12")
    tiny.measure("auh", "2014-12-30", 6.0, None)
    outcome = tiny.analyze()["outcomes_12m"]["nrs_average"]
    assert (outcome["baseline_mean"], outcome["month12_mean"]) == (8.0, 2.0)


def test_publish_masks_one_to_four(tiny: Tiny) -> None:
    _implanted(tiny).lead("auh", "A", "2015-03-01")
    masked = publishable(tiny.analyze())
    assert masked["cohort"]["trial_patients"] == "<5" and masked["cohort"]["still_implanted_pct"] == "<5"
    assert masked["complications"]["lead_defect_patients"] == 0


def test_wilcoxon_matches_scipy_without_ties_and_enumeration_with_ties() -> None:
    from itertools import product

    from scipy.stats import wilcoxon

    base = [7.1, 6.2, 8.3, 5.4, 6.6, 7.9, 6.0, 5.8]
    later = [3.0, 6.5, 4.4, 4.9, 2.1, 7.5, 6.6, 2.5]
    assert signed_rank_p(base, later) == pytest.approx(wilcoxon(base, later, method="exact").pvalue, abs=1e-12)
    # With ties: enumerate all 2^n sign flips of the doubled mid-ranks by brute force.
    base, later = [5.0, 6.0, 7.0, 8.0, 6.0, 5.0], [4.0, 5.0, 5.0, 9.0, 4.0, 5.0]
    diffs = [1, 1, 2, -1, 2]  # |d| = 1,1,2,1,2 (the zero dropped): doubled mid-ranks 3,3,8,3,8
    ranks = [3, 3, 8, 3, 8]
    observed = sum(r for r, d in zip(ranks, diffs, strict=True) if d > 0)
    sums = [sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in product([0, 1], repeat=5)]
    expected = min(1.0, 2 * min(sum(s >= observed for s in sums), sum(s <= observed for s in sums)) / 32)
    assert signed_rank_p(base, later) == pytest.approx(expected, abs=1e-12)


def test_wilcoxon_large_n_float_path_agrees_with_exact_integers() -> None:
    import random

    rng = random.Random(3)
    base = [round(rng.uniform(4, 9), 1) for _ in range(80)]
    later = [round(b - rng.uniform(-1.5, 3), 1) for b in base]
    from drg_etl.analysis import wilcoxon

    float_p = signed_rank_p(base, later)
    old, wilcoxon.EXACT_INTEGER_MAX = wilcoxon.EXACT_INTEGER_MAX, 1000
    try:
        integer_p = signed_rank_p(base, later)
    finally:
        wilcoxon.EXACT_INTEGER_MAX = old
    assert float_p == pytest.approx(integer_p, rel=1e-9, abs=1e-300)


def test_analyze_without_a_warehouse_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["analyze", "--warehouse", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2


def test_empty_warehouse_says_so(tmp_path: Path) -> None:
    connect(tmp_path / "empty.duckdb").close()
    result = CliRunner().invoke(app, ["analyze", "--warehouse", str(tmp_path / "empty.duckdb")])
    assert result.exit_code == 2 and "holds no load yet" in result.output
