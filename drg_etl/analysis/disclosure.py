"""Complementary suppression for ``analyze --json --publish`` (issue 17, item 5).

``publishable`` masks every count from 1 to 4 as "<5" (primary suppression). A masked cell of an additive
table (cells that sum to a published total) could still be recovered by subtraction: the total minus the
published cells. Here, for every such table, declared in one place (``tables``), while a table has exactly one
masked cell, or a masked cell the table's arithmetic pins to one value above 0, or masked cells whose recoverable sum
is 1-4, the next-smallest unmasked cell is suppressed too, marked ``SUPPRESSED`` (it need not be below 5, so
it is not "<5"), with what is computed from it (``derived``) and the same count published elsewhere
(``links``). Repeated until no table changes. Unmasked figures are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MASK = "<5"
SUPPRESSED = "suppressed"

Path = tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """``cells`` add up to ``total``; ``exact`` False: they add up to at least it (a patient counted at two
    centers counts at each), treated here as if exact, the safe side."""

    name: str
    total: Path
    cells: tuple[Path, ...]
    exact: bool = True


def tables(figures: dict[str, Any]) -> list[Table]:
    """Every additive table of the published figures."""
    out = [Table("pain_location", ("cohort", "trial_patients"),
                 tuple(("pain_location", loc, "n") for loc in figures["pain_location"]))]
    for key, total in (("trial_patients", "trial_patients"), ("implanted_patients", "implanted_patients")):
        out.append(Table(f"by_center.{key}", ("cohort", total),
                         tuple(("by_center", c, key) for c in figures["by_center"]), exact=False))
    follow_up = figures.get("follow_up")
    if follow_up:
        for t in (t for t in follow_up if t != "by_center"):
            for key in ("due", "assessed"):
                out.append(Table(f"follow_up.{t}.{key}", ("follow_up", t, key),
                                 tuple(("follow_up", "by_center", c, t, key) for c in follow_up["by_center"])))
    device = figures.get("device_performance")
    if device:
        for grouping, groups in device.items():
            out.append(Table(f"device_performance.{grouping}.patients", ("cohort", "implanted_patients"),
                             tuple(("device_performance", grouping, g, "patients") for g in groups)))
            out.append(Table(f"device_performance.{grouping}.events", ("complications", "lead_defect_patients"),
                             tuple(("device_performance", grouping, g, "events") for g in groups)))
    return out


def links(figures: dict[str, Any]) -> list[tuple[Path, ...]]:
    """The same count published in several places: masked in one, masked in all."""
    out: list[tuple[Path, ...]] = [
        (("cohort", "implanted_patients"), ("survival", "lead_defect_free", "patients"),
         ("survival", "system_explant_free", "patients")),
        (("complications", "lead_defect_patients"), ("survival", "lead_defect_free", "events"),
         ("competing_risks", "lead_defect", "events")),
    ]
    if "device_performance" in figures:
        out += [(("by_center", c, "implanted_patients"), ("device_performance", "by_center", c, "patients"))
                for c in figures["by_center"] if c in figures["device_performance"].get("by_center", {})]
    return [tuple(p for p in group if _has(figures, p)) for group in out]


def derived(figures: dict[str, Any], path: Path) -> list[Path]:
    """What is computed from the count at ``path`` (masked with it)."""
    head, *rest = path
    if path == ("cohort", "trial_patients"):
        return [("pain_location", loc, "pct") for loc in figures["pain_location"]]
    if path == ("cohort", "implanted_patients"):
        return [("cohort", "still_implanted_pct"), ("cohort", "fully_functional_pct"),
                ("complications", "lead_defect_pct"), ("complications", "retained_fragment_pct")]
    if head in ("cohort", "complications") and path[-1].endswith(("_patients", "implanted", "functional")):
        share = path[-1].removesuffix("_patients") + "_pct"
        return [(head, share)] if share in figures[head] else []
    if head == "pain_location" or head == "follow_up":
        return [(*path[:-1], "pct")]
    if head == "device_performance" and path[-1] == "events":
        return [(*path[:-1], k) for k in ("rate_per_100", "lo", "hi", "ratio", "p_value")]
    if head == "survival" and path[-1] == "events":
        return [(*path[:-1], "at_days", d, k) for d in figures["survival"][rest[0]]["at_days"]
                for k in ("s", "lo", "hi")]
    if head == "competing_risks" and path[-1] == "events":
        return [(*path[:-1], "at_days", d, k) for d in figures["competing_risks"][rest[0]]["at_days"]
                for k in ("cif", "one_minus_km")]
    return []


def _has(tree: Any, path: Path) -> bool:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _get(tree: Any, path: Path) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    if tree.get(path[-1]) is not None:
        tree[path[-1]] = value


def bounds(value: Any, unknown_max: int, zero_possible: bool = False) -> tuple[int, int]:
    """What a reader knows of a published cell: its value; 1-4 for "<5" (0-4 where "<5" may stand for a 0: a
    device-performance group's events when its patients are masked); 0 or more for a suppressed one."""
    if value == MASK:
        return (0 if zero_possible else 1), 4
    if value == SUPPRESSED:
        return 0, unknown_max
    return value, value


def zero_possible(published: dict[str, Any], path: Path) -> bool:
    """Whether a "<5" at ``path`` may hide a 0."""
    return (path[0] == "device_performance" and path[-1] == "events"
            and _get(published, (*path[:-1], "patients")) in (MASK, SUPPRESSED))


def intervals(signed: list[tuple[int, tuple[int, int]]]) -> list[tuple[int, int]]:
    """For sum(sign * x) == 0 with each x within its bounds: the values each x can take by this equation alone
    (lowest, highest; one value if they meet)."""
    out = []
    for i, (sign_i, (lo_i, hi_i)) in enumerate(signed):
        # sign_i * x_i == -(the others' signed sum): its range
        others_lo = sum(-s * (hi if s > 0 else lo) for j, (s, (lo, hi)) in enumerate(signed) if j != i)
        others_hi = sum(-s * (lo if s > 0 else hi) for j, (s, (lo, hi)) in enumerate(signed) if j != i)
        low, high = (others_lo, others_hi) if sign_i > 0 else (-others_hi, -others_lo)
        out.append((max(lo_i, low), min(hi_i, high)))
    return out


def suppress(published: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    """Complementary suppression of ``published`` (primary-masked figures) against the unmasked ``original``."""
    out = _copy(published)
    table_list = [t for t in tables(original) if _has(original, t.total) and all(_has(original, c) for c in t.cells)]
    link_list = links(original)
    unknown_max = max((_get(original, ("cohort", "trial_patients")), 1))

    def mask(path: Path) -> None:
        _set(out, path, SUPPRESSED)
        for d in derived(original, path):
            if _has(out, d) and _get(out, d) not in (MASK, None):
                _set(out, d, SUPPRESSED)

    changed = True
    while changed:
        changed = False
        for group in link_list:
            if any(_get(out, p) in (MASK, SUPPRESSED) for p in group):
                for p in group:
                    if _get(out, p) not in (MASK, SUPPRESSED):
                        mask(p)
                        changed = True
        for table in table_list:
            members = (table.total, *table.cells)
            shown = [_get(out, p) for p in members]
            hidden = [p for p, v in zip(members, shown, strict=True) if v in (MASK, SUPPRESSED)]
            if not hidden:
                continue
            signed = [(1 if p == table.total else -1, bounds(v, unknown_max, zero_possible(out, p)))
                      for p, v in zip(members, shown, strict=True)]
            ranges = intervals(signed)
            # a masked count pinned to one value above 0 (a 0 is no small count to protect)
            exposed = any(ranges[members.index(p)][0] >= ranges[members.index(p)][1] > 0 for p in hidden)
            if table.total not in hidden:
                recovered = _get(original, table.total) - sum(_get(original, c) for c in table.cells if c not in hidden)
                exposed = exposed or 1 <= recovered <= 4
            if not exposed:
                continue
            candidates = [c for c in table.cells if c not in hidden]
            order = sorted(candidates, key=lambda c: (_get(original, c) == 0, _get(original, c)))
            if not order and table.total not in hidden:
                order = [table.total]
            if order:
                mask(order[0])
                changed = True
    return out


def _copy(tree: Any) -> Any:
    return {k: _copy(v) for k, v in tree.items()} if isinstance(tree, dict) else tree
