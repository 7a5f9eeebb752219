"""Render the national report: one self-contained HTML page (styles and plots inline, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from drg_etl import __version__
from drg_etl.reference.compare import compare_with_paper
from drg_etl.report import plots
from drg_etl.report.data import ReportData

TEMPLATE = Path(__file__).with_name("page.html.j2")
DAYS = ("365", "730", "1095")
COHORT_ROWS = [("trial patients", "trial_patients"), ("implanted patients", "implanted_patients"),
               ("still implanted", "still_implanted"), ("still implanted, % of implanted", "still_implanted_pct"),
               ("fully functional", "fully_functional"), ("fully functional, % of implanted", "fully_functional_pct")]


def _check_table(checks: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    cutoffs = sorted({c["delivery"] for c in checks})
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for c in checks:
        row = rows.setdefault((c["center"], c["rule_id"]), {"center": c["center"], "rule_id": c["rule_id"],
                                                             "severity": c["severity"], "by_cutoff": {}})
        row["by_cutoff"][c["delivery"]] = c
    return cutoffs, [rows[k] for k in sorted(rows)]


def render(data: ReportData) -> str:
    """The page's HTML."""
    figures = data.figures
    checks = data.quality.get("checks", [])
    cutoffs, check_rows = _check_table(checks)
    comparison = None
    if not data.published:  # beside the paper only when the cohort is the paper's (the demo): same trial cohort
        rows = compare_with_paper(figures)
        if any(r.key == "cohort.trial_patients" and r.matches for r in rows):
            comparison = rows
    page_plots = {
        "cohort_flow": plots.cohort_flow(figures["cohort"]),
        "paired": {m: plots.paired(p, m) for m, p in sorted(data.pairs.items())},
        "survival": {name: plots.survival(name, curve) for name, curve in data.survival_curves.items()},
        "checks": plots.check_trend(checks) if checks else None,
    }
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        figures=figures, published=data.published, deliveries=data.deliveries, load=data.load,
        quality=data.quality, plots=page_plots, days=DAYS, check_cutoffs=cutoffs, check_rows=check_rows,
        cohort_rows=[(label, f"cohort.{key}", figures["cohort"][key]) for label, key in COHORT_ROWS],
        comparison=comparison, version=__version__)


def write_report(data: ReportData, out: Path) -> Path:
    """Write the page to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return out
