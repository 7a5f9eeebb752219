"""Disclosure control under --publish (issue 17, item 5): no masked count can be recovered from the published
figures. Proved by linear programming: every masked count is minimised and maximised over the published
tables' arithmetic (integrality relaxed); a count that can take only one value would be disclosed."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from helpers import Loaded, generate_inbox, load_generated
from scipy.optimize import linprog

from drg_etl.analysis.disclosure import MASK, SUPPRESSED, _get, bounds, links, tables, zero_possible
from drg_etl.analysis.national import national_analysis, publishable
from drg_etl.pipeline.warehouse import connect

SMALL = [(60, 3), (60, 21), (120, 5)]  # (patients, seed): cohorts with many small cells


@pytest.fixture(scope="module")
def small_cohorts(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = []
    for patients, seed in SMALL:
        base = tmp_path_factory.mktemp(f"small{patients}_{seed}")
        out.append(_figures(load_generated(generate_inbox(base, patients=patients, seed=seed), base).warehouse))
    return out


def _figures(warehouse: Path) -> dict[str, Any]:
    con = connect(warehouse, read_only=True)
    try:
        return national_analysis(con)
    finally:
        con.close()


def pinned_cells(published: dict[str, Any], original: dict[str, Any]) -> list[tuple[str, float]]:
    """Every masked count a reader can pin to one value above 0 from the published figures: the tables'
    sums (an equation where the cells add up exactly on this cohort, else the cells' sum at least the total)
    and the same count published in several places; a "<5" is 1-4 to the reader (0-4 where it may be a 0), a
    suppressed cell anything from 0 to the trial patients."""
    hidden = (MASK, SUPPRESSED)
    unknown_max = original["cohort"]["trial_patients"]
    variables: dict[tuple[str, ...], int] = {}

    def term(path: tuple[str, ...]) -> tuple[int | None, int]:
        value = _get(published, path)
        if value in hidden:
            return variables.setdefault(path, len(variables)), 0
        return None, value

    rows: list[tuple[dict[int, int], int, bool]] = []  # (coefficients, constant, equality): coef.x + constant ? 0
    for table in tables(original):
        exact = _get(original, table.total) == sum(_get(original, c) for c in table.cells)
        coef: dict[int, int] = {}
        constant = 0
        for sign, path in [(1, table.total), *((-1, c) for c in table.cells)]:
            index, value = term(path)
            if index is None:
                constant += sign * value
            else:
                coef[index] = coef.get(index, 0) + sign
        rows.append((coef, constant, exact))  # total - sum == 0, or total - sum <= 0
    for group in links(original):
        for a, b in pairwise(group):
            (ia, va), (ib, vb) = term(a), term(b)
            coef = {}
            if ia is not None:
                coef[ia] = 1
            if ib is not None:
                coef[ib] = coef.get(ib, 0) - 1
            rows.append((coef, va - vb, True))
    n = len(variables)
    if n == 0:
        return []
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    for coef, constant, equality in rows:
        if not coef:
            continue
        row = [coef.get(i, 0) for i in range(n)]
        (a_eq if equality else a_ub).append(row)
        (b_eq if equality else b_ub).append(-constant)
    box = [bounds(_get(published, p), unknown_max, zero_possible(published, p)) for p in variables]
    out = []
    for path, i in variables.items():
        ends = []
        for direction in (1, -1):
            c = [0] * n
            c[i] = direction
            result = linprog(c, A_ub=a_ub or None, b_ub=b_ub or None, A_eq=a_eq or None, b_eq=b_eq or None,
                             bounds=box, method="highs")
            assert result.status == 0, (path, result.message)  # the true figures are a solution
            ends.append(direction * result.fun)
        low, high = ends
        if high - low < 1e-6 and high > 1e-6:
            out.append((".".join(path), high))
    return out


def test_no_masked_count_is_pinned_on_the_demo(loaded_demo: Loaded) -> None:
    figures = _figures(loaded_demo.warehouse)
    assert pinned_cells(publishable(figures), figures) == []


def test_no_masked_count_is_pinned_on_small_cohorts(small_cohorts: list[dict[str, Any]]) -> None:
    for figures in small_cohorts:
        assert pinned_cells(publishable(figures), figures) == []


def test_without_complementary_suppression_a_masked_count_is_pinned(
        loaded_demo: Loaded, small_cohorts: list[dict[str, Any]]) -> None:
    demo = _figures(loaded_demo.warehouse)
    # the demo: 3 Proclaim DRG patients = 33 implanted - 30 Axium
    assert ("device_performance.by_ipg_model.Proclaim DRG.patients", pytest.approx(3)) in pinned_cells(
        publishable(demo, complementary=False), demo)
    assert sum(bool(pinned_cells(publishable(f, complementary=False), f)) for f in [demo, *small_cohorts]) >= 2


def test_suppression_changes_no_published_figure(
        loaded_demo: Loaded, small_cohorts: list[dict[str, Any]]) -> None:
    for figures in [_figures(loaded_demo.warehouse), *small_cohorts]:
        plain, suppressed = publishable(figures, complementary=False), publishable(figures)
        changed = list(_differences(plain, suppressed))
        assert all(after == SUPPRESSED and before not in (MASK, None) for before, after in changed)


def _differences(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        for key in a:
            yield from _differences(a[key], b[key])
    elif a != b:
        yield a, b
