"""The exact two-sided Wilcoxon signed-rank test by the sign-flip permutation distribution.

Zero differences are dropped; tied absolute differences get mid-ranks; the distribution of
the positive rank sum is built exactly over every assignment of signs (no normal
approximation). Ranks are doubled so that mid-ranks stay whole numbers. Up to
``EXACT_INTEGER_MAX`` pairs the counts are exact integers; above it, float64 probabilities.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

EXACT_INTEGER_MAX = 60
MAX_PAIRS = 1000


def doubled_ranks(magnitudes: list[Decimal]) -> list[int]:
    """Twice the mid-ranks of the magnitudes (ties share the mean of their positions)."""
    order = sorted(range(len(magnitudes)), key=magnitudes.__getitem__)
    ranks = [0] * len(magnitudes)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and magnitudes[order[end + 1]] == magnitudes[order[start]]:
            end += 1
        for position in order[start:end + 1]:
            ranks[position] = (start + 1) + (end + 1)
        start = end + 1
    return ranks


def signed_rank_p(baseline: list[float], later: list[float]) -> float | None:
    """Two-sided exact p for paired values; None with no non-zero difference or too many pairs."""
    differences = [Decimal(str(b)) - Decimal(str(m)) for b, m in zip(baseline, later, strict=True)]
    differences = [d for d in differences if d != 0]
    n = len(differences)
    if n == 0 or n > MAX_PAIRS:
        return None
    ranks = doubled_ranks([abs(d) for d in differences])
    observed = sum(r for r, d in zip(ranks, differences, strict=True) if d > 0)
    total = sum(ranks)
    if n <= EXACT_INTEGER_MAX:
        counts = [0] * (total + 1)
        counts[0] = 1
        reach = 0
        for r in ranks:
            for s in range(reach, -1, -1):
                if counts[s]:
                    counts[s + r] += counts[s]
            reach += r
        upper = Fraction(sum(counts[observed:]), 2**n)
        lower = Fraction(sum(counts[: observed + 1]), 2**n)
        return float(min(Fraction(1), 2 * min(upper, lower)))
    import numpy as np  # here: only 61 to 1,000 pairs need it, and its import is a tenth of a second of analyze's

    probabilities = np.zeros(total + 1)
    probabilities[0] = 1.0
    reach = 0  # sums above this have probability 0 so far: each step touches only the sums it can reach
    for r in ranks:
        shifted = 0.5 * probabilities[:reach + 1]
        probabilities[:reach + 1] *= 0.5
        probabilities[r:reach + r + 1] += shifted  # P'(s) = P(s)/2 + P(s - r)/2, the same float operations
        reach += r
    return float(min(1.0, 2 * min(probabilities[observed:].sum(), probabilities[: observed + 1].sum())))
