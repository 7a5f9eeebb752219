"""Device performance's exact Poisson quantities (drg_etl/analysis/poisson.py, in the standard library: SciPy's
import cost analyze a fifth of a second) against scipy.stats, their oracle: the raw values to a bounded relative
error over a wide grid, and the figures as published (the interval to two decimals, p to three significant
digits, the screen's verdict) equal."""

from __future__ import annotations

import random

from scipy.stats import chi2, poisson

from drg_etl.analysis import device_performance as dp
from drg_etl.analysis import poisson as ours

#: The largest relative error allowed against SciPy (measured: about 1e-13 for the quantile, 4e-12 for the tail).
CHI2_TOLERANCE, SF_TOLERANCE = 1e-12, 1e-10


def _relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a)


def test_chi2_ppf_agrees_with_scipy_stats() -> None:
    for events in range(0, 3001):
        for q, df in ((0.025, 2 * events), (0.975, 2 * events + 2)):
            if df == 0:
                continue
            assert _relative(dp.chi2_ppf(q, df), float(chi2.ppf(q, df))) <= CHI2_TOLERANCE, (q, df)
    # other quantiles too (nearer 1, P = 1 - a small mass loses digits)
    for q in (1e-12, 1e-6, 0.001, 0.1, 0.5, 0.9, 0.999, 0.9999):
        for df in (2, 4, 10, 50, 400, 4000):
            assert _relative(ours.chi2_ppf(q, df), float(chi2.ppf(q, df))) <= CHI2_TOLERANCE, (q, df)


def _sf_agrees(k: int, mu: float) -> None:
    mine, theirs = dp.poisson_sf(k, mu), float(poisson.sf(k, mu))
    if theirs < 1e-300:  # past the normal floats: both (next to) nothing
        assert mine < 1e-290, (k, mu, mine, theirs)
        return
    assert _relative(mine, theirs) <= SF_TOLERANCE, (k, mu, mine, theirs)
    assert dp.significant(mine) == dp.significant(theirs), (k, mu, mine, theirs)


def test_poisson_sf_agrees_with_scipy_stats() -> None:
    rng = random.Random(18)
    for _ in range(20000):
        k = rng.choice([0, 1, 2, 3, 5, 10, rng.randint(0, 50), rng.randint(0, 2000)])
        mu = rng.choice([1e-9, 0.01, rng.random() * 5, rng.random() * 100, rng.random() * 3000, float(k), k + 0.5])
        _sf_agrees(k, mu)
    for k in (*range(0, 60), *range(60, 2001, 37)):  # both tails of each count: mu from far below k to far above
        for factor in (0.001, 0.1, 0.5, 0.8, 0.95, 1.0, 1.05, 1.25, 2.0, 10.0):
            _sf_agrees(k, max(k, 1) * factor)
    assert dp.poisson_sf(3, 0.0) == float(poisson.sf(3, 0.0)) == 0.0


def test_the_published_interval_and_p_are_scipys() -> None:
    """The rate's interval to two decimals at 0 to 2,000 events over person-years from a tenth to 100,000, and the
    screen's p to three significant digits and its verdict at the group sizes it sees."""
    for events in range(0, 2001):
        for years in (0.1, 0.73, 4.5, 37.2, 365.25, 1234.5, 9999.9, 100_000.0):
            lo = 0.0 if events == 0 else 100 * dp.chi2_ppf(0.025, 2 * events) / 2 / years
            theirs_lo = 0.0 if events == 0 else 100 * float(chi2.ppf(0.025, 2 * events)) / 2 / years
            hi = 100 * dp.chi2_ppf(0.975, 2 * events + 2) / 2 / years
            theirs_hi = 100 * float(chi2.ppf(0.975, 2 * events + 2)) / 2 / years
            assert (dp.two_decimals(lo), dp.two_decimals(hi)) == (dp.two_decimals(theirs_lo),
                                                                  dp.two_decimals(theirs_hi)), (events, years)
    for events in (*range(1, 40), *range(40, 2001, 23)):
        for expected in (0.01, 0.5, events / 10, events / 2.5, events / 2, events * 0.9, float(events), events * 1.5,
                         events * 4.0):
            p, theirs = dp.poisson_sf(events - 1, expected), float(poisson.sf(events - 1, expected))
            assert dp.significant(p) == dp.significant(theirs), (events, expected, p, theirs)
            assert (p < dp.ALPHA) == (theirs < dp.ALPHA), (events, expected)


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
