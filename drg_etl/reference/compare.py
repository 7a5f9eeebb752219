"""Compare computed national figures with the paper's, each at the paper's rounding."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml

REFERENCE_PATH = Path(__file__).with_name("horan2021.yaml")


@dataclass(frozen=True)
class Comparison:
    """One published figure beside the computed one."""

    label: str
    key: str
    published: float
    computed: Any
    matches: bool


def at_paper_rounding(value: float, rounding: str) -> float:
    """``value`` rounded the way the paper rounds this figure (half up)."""
    if rounding in ("integer", "percent"):
        return float(Decimal(repr(value)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    if rounding == "decimal1":
        return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    if rounding == "sig2":
        if value == 0:
            return 0.0
        exponent = math.floor(math.log10(abs(value))) - 1
        return float(Decimal(repr(value)).quantize(Decimal(f"1e{exponent}"), rounding=ROUND_HALF_UP))
    raise ValueError(f"unknown rounding {rounding!r}")


def _lookup(figures: dict[str, Any], key: str) -> Any:
    value: Any = figures
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def compare_with_paper(figures: dict[str, Any], path: Path = REFERENCE_PATH) -> list[Comparison]:
    """Each published figure beside the computed one, and whether they agree at the paper's rounding."""
    reference = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows = []
    for entry in reference["figures"]:
        computed = _lookup(figures, entry["key"])
        matches = isinstance(computed, int | float) and (
            at_paper_rounding(float(computed), entry["rounding"]) == float(entry["published"])
        )
        rows.append(Comparison(entry["label"], entry["key"], entry["published"], computed, matches))
    return rows
