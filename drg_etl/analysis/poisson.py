"""The Poisson tail and the chi-square quantile that device performance needs, in the standard library.

analyze took both from SciPy (scipy.stats' poisson.sf and chi2.ppf, then scipy.special's pdtrc and gammaincinv),
whose import cost every run a fifth of a second. Here:

- :func:`poisson_sf` (k, mu) = P(X > k), X ~ Poisson(mu): the mass above k summed directly while it is the smaller
  tail (mu < k + 1), else one less the mass up to k (then at least about a half). Each sum starts at its largest
  term, taken in log space (``math.lgamma``), and walks away from the mode by the ratio p(j + 1) / p(j) =
  mu / (j + 1), so a tail of 1e-200 keeps its digits and nothing underflows before the result does.
- :func:`chi2_ppf` (q, 2a) = 2 x gammaincinv(a, q) for whole a: the regularized lower gamma is the Poisson tail,
  P(a, x) = P(X >= a) = poisson_sf(a - 1, x) (Abramowitz & Stegun 26.4.21), solved for x by Newton's method,
  whose derivative is the Poisson mass p(a - 1; x), from the Wilson-Hilferty approximation (A&S 26.4.17), kept
  inside a bracket that bisection narrows when a step would leave it.

tests/test_device_performance_special.py holds both to SciPy on a wide grid, raw and as the analysis rounds them.
"""

from __future__ import annotations

import math
from statistics import NormalDist

#: A sum stops when its next term is below this share of the sum (the terms fall faster than geometrically).
_NEGLIGIBLE = 1e-17
#: Cephes' MAXLOG, log(DBL_MAX): SciPy's upper tail is 0 where the log of x^a e^-x / Gamma(a) is below -MAXLOG.
_MAXLOG = 7.09782712893383996732e2


def _log_pmf(j: int, mu: float) -> float:
    """log P(X = j), X ~ Poisson(mu), mu > 0."""
    return -mu + j * math.log(mu) - math.lgamma(j + 1)


def poisson_sf(k: int, mu: float) -> float:
    """P(X > k) for X ~ Poisson(mu), k >= 0 and mu >= 0 (scipy.stats.poisson.sf; relative error about 1e-12)."""
    if mu == 0:
        return 0.0
    if mu < k + 1:  # the upper tail is the smaller one: sum it from p(k + 1) upwards (terms fall: mu / (j + 1) < 1)
        if (k + 1) * math.log(mu) - mu - math.lgamma(k + 1) < -_MAXLOG:  # past the denormals, as SciPy
            return 0.0
        term, total, j = 1.0, 1.0, k + 1
        while term > _NEGLIGIBLE * total:
            j += 1
            term *= mu / j
            total += term
        return min(1.0, math.exp(_log_pmf(k + 1, mu) + math.log(total)))
    # the mass up to k from p(k) downwards (terms fall: j / mu < 1), one less it
    term, total, j = 1.0, 1.0, k
    while j > 0 and term > _NEGLIGIBLE * total:
        term *= j / mu
        total += term
        j -= 1
    return max(0.0, 1.0 - math.exp(_log_pmf(k, mu) + math.log(total)))


def chi2_ppf(q: float, df: int) -> float:
    """The chi-square quantile scipy.stats.chi2.ppf(q, df) for 0 < q < 1 and an even df >= 2 (the exact Poisson
    interval's); relative error about 1e-13 for q up to 0.9999 (P(a, x) is one less a small mass there)."""
    if df < 2 or df % 2:
        raise ValueError(f"chi2_ppf takes an even df of 2 or more, not {df}")
    a = df // 2
    lower_cdf = lambda x: poisson_sf(a - 1, x)  # noqa: E731  P(a, x): increasing in x from 0 to 1
    # Wilson-Hilferty: chi2_df(q) ~ df (1 - 2/(9 df) + z sqrt(2/(9 df)))^3
    c = 2 / (9 * df)
    x = max(df * (1 - c + NormalDist().inv_cdf(q) * math.sqrt(c)) ** 3 / 2, 1e-3)
    low, high = 0.0, math.inf
    for _ in range(200):
        value = lower_cdf(x)
        if value < q:
            low = max(low, x)
        else:
            high = min(high, x)
        slope = math.exp(_log_pmf(a - 1, x))
        step = (value - q) / slope if slope > 0 else math.inf
        following = x - step
        if not low < following < high:  # Newton would leave the bracket: bisect it (or double out of it)
            following = (low + high) / 2 if high < math.inf else 2 * x
        if abs(following - x) <= 4 * math.ulp(x):
            x = following
            break
        x = following
    return 2 * x
