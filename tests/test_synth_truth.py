"""The generator's truth: the paper's figures, a consistent cohort for any seed, every defect listed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import CUTOFF, Generated

from drg_etl.core.dates import BASELINE_LOOKBACK_DAYS, in_follow_up_window
from drg_etl.reference.compare import compare_with_paper
from drg_etl.synth.generate import generate
from drg_etl.synth.oracle import exact_wilcoxon_p

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_deliveries.py"
LEVEL_PREFIX = {"lower_extremity": ("L", "S"), "upper_extremity": ("C", "T1"), "thoracic_abdominal": ("T",)}


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def test_demo_truth_gives_the_papers_figures(demo: Generated) -> None:
    rows = compare_with_paper(demo.truth["figures"])
    assert len(rows) == 21
    assert [r.label for r in rows if not r.matches] == []
    cohort = demo.truth["figures"]["cohort"]
    assert (cohort["trial_patients"], cohort["implanted_patients"]) == (43, 33)


def test_paper_comparison_can_fail() -> None:
    rows = compare_with_paper({"cohort": {"trial_patients": 44, "still_implanted_pct": 56.4}})
    by_key = {r.key: r for r in rows}
    assert not by_key["cohort.trial_patients"].matches
    assert not by_key["cohort.still_implanted_pct"].matches
    assert not by_key["cohort.implanted_patients"].matches  # missing counts as not matching


def check_consistent(gen: Generated) -> None:
    """Invariants every generated history must hold."""
    persons = gen.truth["patients"]
    cprs = [p["cpr"] for p in persons]
    assert len(set(cprs)) == len(cprs), "one CPR per person"
    cutoff = d(gen.truth["cutoff"])
    for p in persons:
        sex_digit = int(p["cpr"][-1]) % 2
        assert p["sex"] == ("male" if sex_digit else "female")
        procs = sorted(p["procedures"], key=lambda x: x["date"])
        dates = [d(x["date"]) for x in procs] + [d(m["date"]) for m in p["measurements"]] + \
            [d(c["date"]) for c in p["complications"]]
        assert all(dt.date(2010, 1, 1) <= day <= cutoff for day in dates), p["person_no"]
        trials = [x for x in procs if x["kind"] == "trial"]
        implants = [x for x in procs if x["kind"] == "implant"]
        for implant in implants:
            assert any(t["trial_success"] and t["end_date"] <= implant["date"] for t in trials)
        explants = [x for x in procs if x["kind"] == "explant"]
        for explant in explants:
            assert implants and explant["date"] > implants[0]["date"]
        for lead in p["leads"]:
            assert lead["level"].startswith(LEVEL_PREFIX[p["pain_location"]])
            assert lead["status_date"] >= lead["placed"]
        by_id = {lead["lead_id"]: lead for lead in p["leads"]}
        for c in p["complications"]:
            if c["kind"] in ("lead_fracture", "lead_malfunction"):
                assert by_id[c["lead_id"]]["status"] in ("fractured", "malfunction", "removed",
                                                          "removed_fragment_retained")
            if c["kind"] == "retained_fragment":
                assert by_id[c["lead_id"]]["status"] == "removed_fragment_retained"
        for m in p["measurements"]:
            if m["timepoint"] == "baseline":
                starts = [d(t["date"]) for t in trials]
                assert any(0 <= (s - d(m["date"])).days <= BASELINE_LOOKBACK_DAYS for s in starts)
            else:
                assert in_follow_up_window(m["timepoint"], d(implants[0]["date"]), d(m["date"]))
                if explants:
                    assert m["date"] < explants[0]["date"]
            if m["nrs_worst"] is not None:
                assert m["nrs_worst"] >= m["nrs_average"]
            if m["pcs_items"] is not None:
                assert len(m["pcs_items"]) == 13 and all(0 <= v <= 4 for v in m["pcs_items"])
                assert sum(m["pcs_items"]) == m["pcs_total"]
    assert sum(len(p["centers"]) > 1 for p in persons) >= 2, "patients seen at two centers"


@pytest.mark.parametrize("fixture", ["demo", "other_seed", "scaled"])
def test_cohort_is_internally_consistent(fixture: str, request: pytest.FixtureRequest) -> None:
    check_consistent(request.getfixturevalue(fixture))


def test_another_seed_gives_another_cohort(demo: Generated, other_seed: Generated) -> None:
    assert {p["cpr"] for p in demo.truth["patients"]}.isdisjoint({p["cpr"] for p in other_seed.truth["patients"]})
    assert (demo.folder("auh") / "prom.csv").read_bytes() != (other_seed.folder("auh") / "prom.csv").read_bytes()
    dates = lambda g: sorted(x["date"] for p in g.truth["patients"] for x in p["procedures"])  # noqa: E731
    assert dates(demo) != dates(other_seed)
    # The design (the demo cohort's composition) holds under any seed.
    assert other_seed.truth["figures"]["cohort"] == demo.truth["figures"]["cohort"]


def test_oracle_figures_follow_the_histories(other_seed: Generated) -> None:
    """Recount a few figures directly from the truth's histories."""
    persons = other_seed.truth["patients"]
    window = ("2014-01-01", "2018-12-31")
    trial = [p for p in persons if any(x["kind"] == "trial" and window[0] <= x["date"] <= window[1]
                                       for x in p["procedures"])]
    implanted = [p for p in trial if any(x["kind"] == "implant" for x in p["procedures"])]
    explanted = [p for p in implanted if any(x["kind"] == "explant" for x in p["procedures"])]
    fig = other_seed.truth["figures"]
    assert fig["cohort"]["trial_patients"] == len(trial)
    assert fig["cohort"]["implanted_patients"] == len(implanted)
    assert fig["cohort"]["still_implanted"] == len(implanted) - len(explanted)
    assert sum(v["trial_patients"] for v in fig["by_center"].values()) >= len(trial)


def test_scaled_cohort_keeps_the_proportions(scaled: Generated) -> None:
    fig = scaled.truth["figures"]
    assert fig["cohort"]["trial_patients"] == 300
    assert 300 * 33 / 43 - 8 <= fig["cohort"]["implanted_patients"] <= 300 * 33 / 43 + 8
    assert abs(fig["pain_location"]["lower_extremity"]["pct"] - 58.1) < 3
    assert len(scaled.truth["defects"]) > 5 * 40, "defects scale with the cohort"
    nrs = fig["outcomes_12m"]["nrs_average"]
    assert nrs["n"] > 60 and nrs["p_value"] < 1e-6
    # a scaled cohort's scores are drawn, not fitted to the paper's means as the demo's are
    assert (nrs["baseline_mean"], nrs["month12_mean"]) != pytest.approx((6.8, 3.5), abs=1e-9)


def test_exact_wilcoxon_on_known_cases() -> None:
    assert exact_wilcoxon_p([3] * 12) == pytest.approx(2 / 2**12)
    assert exact_wilcoxon_p([1, 2, 3, 4, 5, 6, 7, 8, 9]) == pytest.approx(2 / 2**9)
    # n=5, ranks 1..5, one negative of rank 1: P(T+ >= 14) = 2/32, two-sided 4/32.
    assert exact_wilcoxon_p([-1, 2, 3, 4, 5]) == pytest.approx(4 / 32)
    # ties: |d| = 1,1,2 -> doubled ranks 3,3,6; T+ (doubled) = 9 of 12. P(T+ >= 9) = 3/8 -> p = 0.75
    assert exact_wilcoxon_p([1, -1, 2]) == pytest.approx(0.75)
    assert exact_wilcoxon_p([0, 0, 2, 3]) == pytest.approx(2 / 4)
    assert exact_wilcoxon_p([0, 0]) is None


def test_same_seed_same_bytes(tmp_path: Path, demo: Generated) -> None:
    again = tmp_path / "again"
    generate(again)
    for path in sorted(p for p in demo.inbox.rglob("*") if p.is_file()):
        assert (again / path.relative_to(demo.inbox)).read_bytes() == path.read_bytes(), path.name


def _records(gen: Generated) -> dict[str, list[tuple[int, Any]]]:
    """Every file's records with their row numbers, as defect rows are numbered."""
    out: dict[str, list[tuple[int, Any]]] = {}
    for name in ("patienter.csv", "procedurer.csv", "udstyr.csv", "prom.csv", "komplikationer.csv"):
        text = (gen.folder("auh") / name).read_bytes().decode("cp1252")
        out[name] = [(i, tuple(r)) for i, r in enumerate(list(csv.reader(io.StringIO(text), delimiter=";"))[1:],
                                                           start=2)]
    data = f"DRGDK_DATA_{CUTOFF}.csv"
    rows = list(csv.reader(io.StringIO((gen.folder("rh") / data).read_text("utf-8-sig"))))[1:]
    out[data] = [(i, tuple(r)) for i, r in enumerate(rows, start=2)]
    workbook = openpyxl.load_workbook(gen.folder("ouh") / "DRG_registrering.xlsx", read_only=True)
    for sheet in workbook.sheetnames:
        rows = list(workbook[sheet].iter_rows(min_row=2, values_only=True))
        out[f"DRG_registrering.xlsx#{sheet}"] = [(i, tuple(r)) for i, r in enumerate(rows, start=2)]
    for rt in ("Patient", "Condition", "Procedure", "Device", "Observation"):
        lines = (gen.folder("aauh") / f"{rt}.ndjson").read_text("utf-8").splitlines()
        out[f"{rt}.ndjson"] = list(enumerate(lines, start=1))
    return out


def test_every_injected_defect_is_listed_and_nothing_else_differs(demo: Generated, demo_clean: Generated) -> None:
    """The rows --clean does not write (or writes otherwise) are exactly the truth's defect rows."""
    assert demo_clean.truth["defects"] == []
    dirty, clean = _records(demo), _records(demo_clean)
    kinds_seen = set()
    for name, rows in dirty.items():
        extra = Counter(r for _, r in rows) - Counter(r for _, r in clean[name])
        listed = demo.defect_rows(name)
        listed_rows = Counter(r for i, r in rows if i in listed)
        assert extra == listed_rows, name
        kinds_seen |= {x["kind"] for x in demo.defects_in(name)}
    assert len(kinds_seen) == 16
    every = {x["file"] for x in demo.truth["defects"]}
    assert every <= set(dirty)
    assert {x["center"] for x in demo.truth["defects"]} == {"auh", "ouh", "rh", "aauh"}
    assert all(x["column"] or x["rule_id"] == "row.duplicate" for x in demo.truth["defects"])


def test_clean_cohort_has_the_same_figures(demo: Generated, demo_clean: Generated) -> None:
    assert demo_clean.truth["figures"] == demo.truth["figures"]
    assert demo_clean.truth["patients"] == demo.truth["patients"]


def test_truth_record_counts_match_the_files(demo: Generated) -> None:
    records = _records(demo)
    for delivery in demo.truth["deliveries"]:
        ignored = {f: len(rows) for f, rows in delivery["ignored_rows"].items()}
        for name, count in delivery["records"].items():
            notes = sum(1 for _, r in records[name] if r and str(r[0]).startswith("Note:"))
            assert count == len(records[name]) - notes - ignored.get(name, 0), name


@pytest.mark.skipif(not CHECKER.exists(), reason=f"the shared delivery checker ({CHECKER}) is not beside this "
                    "checkout; it exists only in the project's workspace, not in a user's clone")
def test_shared_checker_accepts_the_deliveries(demo: Generated, scaled: Generated) -> None:
    for gen in (demo, scaled):
        done = subprocess.run([sys.executable, str(CHECKER), str(gen.inbox)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_truth_is_valid_json_with_its_parts(tmp_path: Path) -> None:
    truth = tmp_path / "t.json"
    generate(tmp_path / "inbox", seed=3, patients=50, truth=truth)
    data = json.loads(truth.read_text("utf-8"))
    assert set(data) >= {"patients", "defects", "figures", "deliveries", "seed", "cutoff"}
    assert data["figures"]["cohort"]["trial_patients"] == 50
