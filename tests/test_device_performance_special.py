"""Device performance's exact Poisson quantities (drg_etl/analysis/device_performance.py) take scipy.special, not
scipy.stats (whose import cost analyze most of a second): the same numbers, to the bit, as scipy.stats gives."""

from __future__ import annotations

import random

from scipy.stats import chi2, poisson

from drg_etl.analysis import device_performance as dp


def test_chi2_ppf_is_scipy_stats_to_the_bit() -> None:
    for events in range(0, 3000):
        for q, df in ((0.025, 2 * events), (0.975, 2 * events + 2)):
            if df == 0:
                continue
            assert dp.chi2_ppf(q, df) == float(chi2.ppf(q, df)), (q, df)


def test_poisson_sf_is_scipy_stats_to_the_bit() -> None:
    rng = random.Random(18)
    for _ in range(20000):
        k = rng.choice([0, 1, 2, 3, 5, 10, rng.randint(0, 50), rng.randint(0, 2000)])
        mu = rng.choice([1e-9, 0.01, rng.random() * 5, rng.random() * 100, rng.random() * 3000, float(k), k + 0.5])
        assert dp.poisson_sf(k, mu) == float(poisson.sf(k, mu)), (k, mu)


def _stats_figures(patients: int, days: int, events: int, total_days: int, total_events: int) -> dict[str, object]:
    """group_figures as it was with scipy.stats (the code this module's change replaced)."""
    years = days / dp.DAYS_PER_YEAR
    other_years, other_events = (total_days - days) / dp.DAYS_PER_YEAR, total_events - events
    rate = lo = hi = ratio = p = None
    if years > 0:
        rate = 100 * events / years
        lo = 0.0 if events == 0 else 100 * float(chi2.ppf(0.025, 2 * events)) / 2 / years
        hi = 100 * float(chi2.ppf(0.975, 2 * events + 2)) / 2 / years
    if other_years > 0:
        other_rate = other_events / other_years
        if rate is not None and other_events > 0:
            ratio = rate / (100 * other_rate)
        expected = other_rate * years
        p = 1.0 if events == 0 else 0.0 if expected == 0 else float(poisson.sf(events - 1, expected))
    flagged = (ratio is not None and ratio > dp.RATIO_LIMIT and p is not None and p < dp.ALPHA
               and patients >= dp.MIN_PATIENTS)
    return {"patients": patients, "patient_years": dp.two_decimals(years), "events": events,
            "rate_per_100": None if rate is None else dp.two_decimals(rate),
            "lo": None if lo is None else dp.two_decimals(lo), "hi": None if hi is None else dp.two_decimals(hi),
            "ratio": None if ratio is None else dp.two_decimals(ratio),
            "p_value": None if p is None else dp.significant(p), "flagged": bool(flagged)}


def test_group_figures_are_as_with_scipy_stats() -> None:
    rng = random.Random(2021)
    for _ in range(3000):
        patients = rng.choice([0, 1, 4, 9, 10, rng.randint(0, 5000)])
        days = 0 if patients == 0 else rng.randint(0, patients * 4000)
        events = 0 if patients == 0 else rng.choice([0, 1, 2, rng.randint(0, patients)])
        total_days = days + rng.choice([0, rng.randint(0, 40_000_000)])
        total_events = events + (0 if total_days == days else rng.choice([0, 1, rng.randint(0, 3000)]))
        args = (patients, days, events, total_days, total_events)
        assert dp.group_figures(*args) == _stats_figures(*args), args
