"""Synthetic patient-reported outcomes: draws, PCS items, and fitting a set to target means."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

PCS_ITEMS = 13
PCS_ITEM_MAX = 4


def pcs_items_for_total(total: int, rng: random.Random) -> list[int]:
    """Thirteen items of 0-4 that add up to ``total`` (0-52)."""
    if not 0 <= total <= PCS_ITEMS * PCS_ITEM_MAX:
        raise ValueError(f"PCS total {total} outside 0-52")
    items = [0] * PCS_ITEMS
    for _ in range(total):
        open_items = [i for i, v in enumerate(items) if v < PCS_ITEM_MAX]
        items[rng.choice(open_items)] += 1
    return items


def clamp(value: float, low: float, high: float) -> float:
    """``value`` limited to [low, high]."""
    return max(low, min(high, value))


def worst_for_average(average: float, rng: random.Random, spread: int = 2) -> int:
    """A worst-pain NRS (integer) at or above the average pain."""
    return int(clamp(math.ceil(average) + rng.randint(0, spread), 0, 10))


def fit_sum(
    values: list[int],
    target: int,
    bounds: Sequence[tuple[int, int]],
    rng: random.Random,
    step: int = 1,
) -> list[int]:
    """Nudge integer ``values`` one step at a time, within per-value bounds, until they add up to ``target``.

    Raises ValueError when the bounds cannot reach the target.
    """
    values = [int(clamp(v, lo, hi)) for v, (lo, hi) in zip(values, bounds, strict=True)]
    if not sum(lo for lo, _ in bounds) <= target <= sum(hi for _, hi in bounds):
        raise ValueError(f"target {target} out of reach of bounds {list(bounds)}")
    while (gap := target - sum(values)) != 0:
        direction = step if gap > 0 else -step
        movable = [
            i
            for i, v in enumerate(values)
            if bounds[i][0] <= v + direction <= bounds[i][1]
        ]
        i = rng.choice(movable)
        values[i] += direction
    return values


def fit_pairs(
    baseline: list[int],
    month12: list[int],
    targets: tuple[int, int],
    baseline_bounds: Callable[[int], tuple[int, int]],
    month12_bounds: Callable[[int, int], tuple[int, int]],
    rng: random.Random,
) -> tuple[list[int], list[int]]:
    """Fit paired integer scores to target sums, baseline first, then 12 months under it.

    ``baseline_bounds(i)`` bounds patient i's baseline; ``month12_bounds(i, baseline)``
    bounds the 12-month value given the fitted baseline (below it: every pair improves).
    """
    base = fit_sum(baseline, targets[0], [baseline_bounds(i) for i in range(len(baseline))], rng)
    later = fit_sum(
        month12, targets[1], [month12_bounds(i, b) for i, b in enumerate(base)], rng
    )
    return base, later
