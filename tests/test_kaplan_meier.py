"""Kaplan-Meier in plain floats over per-day counts (drg_etl/analysis/survival.py) against lifelines'
KaplanMeierFitter, its oracle: the estimate and the 95% log(-log) Greenwood band at the analysis's days and along the
whole curve, to 1e-12, on random histories with ties of events and censorings on a day, everyone censored, one
patient, times 0 and large cohorts."""

from __future__ import annotations

import math
import random

import pytest

from drg_etl.analysis import survival

lifelines = pytest.importorskip("lifelines")
TOLERANCE = 1e-12


def _lifelines_fit(times: list[int], events: list[bool]) -> object:
    return lifelines.KaplanMeierFitter().fit(times, event_observed=events)  # alpha 0.05, log(-log) Greenwood


def _lifelines_at_days(times: list[int], events: list[bool], days: tuple[int, ...]) -> dict[str, object]:
    """The figures the analysis published while it took them from lifelines (the code this module replaced)."""
    fitter = _lifelines_fit(times, events) if any(events) else None
    first_event = min((t for t, e in zip(times, events, strict=True) if e), default=None)
    at_days: dict[str, object] = {}
    for day in days:
        at_risk = sum(t >= day for t in times)
        if at_risk == 0:
            at_days[str(day)] = None
            continue
        if fitter is None or first_event > day:
            s = lo = hi = 1.0
        else:
            s = float(fitter.survival_function_at_times(day).iloc[0])
            bounds = fitter.confidence_interval_survival_function_.loc[:day].iloc[-1]
            lo, hi = float(bounds.iloc[0]), float(bounds.iloc[1])
        at_days[str(day)] = {"s": s, "lo": lo, "hi": hi, "at_risk": at_risk}
    return {"patients": len(times), "events": sum(bool(e) for e in events), "at_days": at_days}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=TOLERANCE) or (math.isnan(a) and math.isnan(b))


def _assert_same(times: list[int], events: list[bool], days: tuple[int, ...] = survival.AT_DAYS) -> None:
    ours, theirs = survival.estimates_at(times, events, days), _lifelines_at_days(times, events, days)
    for day, expected in theirs["at_days"].items():
        got = ours[day]
        if expected is None:
            assert got is None, (day, times, events)
            continue
        assert got["at_risk"] == expected["at_risk"], (day, times, events)
        for key in ("s", "lo", "hi"):
            assert _close(got[key], expected[key]), (key, day, got, expected, times, events)
    # and rounded, as published
    assert survival.kaplan_meier(times, events, days) == {
        **theirs, "at_days": {d: None if e is None else {**e, **{k: survival.three_decimals(e[k])
                                                                 for k in ("s", "lo", "hi")}}
                              for d, e in theirs["at_days"].items()}}
    # the whole curve and band, as the plots take them
    curve = survival._curve(times, events)
    if not any(events):
        return
    fitter = _lifelines_fit(times, events)
    band = fitter.confidence_interval_survival_function_
    expected_curve = list(zip(fitter.survival_function_.index, fitter.survival_function_.iloc[:, 0],
                              band.iloc[:, 0], band.iloc[:, 1], strict=True))
    assert len(curve) == len(expected_curve), (times, events)
    for point, (t, s, lo, hi) in zip(curve, expected_curve, strict=True):
        assert point["t"] == float(t)
        assert _close(point["s"], float(s)) and _close(point["lo"], float(lo)) and _close(point["hi"], float(hi)), \
            (point, (t, s, lo, hi), times, events)


def test_z_is_scipys_quantile() -> None:
    from scipy.stats import norm

    assert survival.Z_95 == float(norm.ppf(0.975))


def test_random_histories_with_ties() -> None:
    """Few distinct days, so events and censorings fall on the same day; days around the analysis's days."""
    rng = random.Random(20240518)
    for _ in range(400):
        n = rng.randint(1, 60)
        pool = [0, 1, 100, 364, 365, 366, 729, 730, 731, 1094, 1095, 1096, 1500]
        times = [rng.choice(pool) if rng.random() < 0.7 else rng.randint(0, 1600) for _ in range(n)]
        share = rng.choice([0.05, 0.3, 0.5, 0.9, 1.0])
        events = [rng.random() < share for _ in range(n)]
        _assert_same(times, events)
        _assert_same(times, events, days=(0, 1, 50, 365, 2000))


def test_edge_cases() -> None:
    cases: list[tuple[list[int], list[bool]]] = [
        ([5], [True]), ([5], [False]), ([0], [True]), ([0], [False]), ([400], [True]), ([1000], [True]),
        ([0, 0, 0], [True, True, False]), ([0, 0], [True, True]),  # everyone at 0: S = 0 from the start
        ([100, 200, 300], [False, False, False]),  # all censored
        ([100, 100, 100, 200], [True, False, True, False]),  # an event and censorings tied on a day
        ([10, 20, 30], [True, True, True]),  # everyone dies: S reaches 0, its band is 0
        ([400, 800, 1200], [True, True, False]),  # the first event after the first day
        ([365, 730, 1095], [True, True, True]),  # events on the days themselves
        ([365, 365, 730, 730, 1095, 1095], [False, True, False, True, False, True]),
        ([1, 2, 3], [False, False, True]),  # the last one dies: S = 0 after censorings
    ]
    for times, events in cases:
        _assert_same(times, events)
        _assert_same(times, events, days=(0, 1, 5, 365, 2000))


def test_large_cohorts() -> None:
    rng = random.Random(7)
    for n in (2_000, 20_000):
        times = [rng.randint(0, 4000) for _ in range(n)]
        events = [rng.random() < 0.08 for _ in range(n)]
        _assert_same(times, events)
        times = [rng.choice((0, 30, 365, 730, 1095, 2000)) for _ in range(n)]
        _assert_same(times, [rng.random() < 0.4 for _ in range(n)])


def test_nobody_and_no_events() -> None:
    assert survival.kaplan_meier([], []) == {"patients": 0, "events": 0,
                                             "at_days": {"365": None, "730": None, "1095": None}}
    assert survival._curve([], []) == []
    assert survival._curve([3, 9], [False, False]) == [{"t": 0.0, "s": 1.0, "lo": 1.0, "hi": 1.0},
                                                       {"t": 9.0, "s": 1.0, "lo": 1.0, "hi": 1.0}]
