"""Render the national report: one self-contained HTML page (styles and plots inline, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from drg_etl import __version__
from drg_etl.core.dates import FOLLOW_UP_WINDOWS
from drg_etl.core.display import format_p
from drg_etl.reference.compare import compare_with_paper
from drg_etl.report import plots
from drg_etl.report.data import ReportData

TEMPLATE = Path(__file__).with_name("page.html.j2")
DAYS = ("365", "730", "1095")
COHORT_ROWS = [("trial patients", "trial_patients"), ("implanted patients", "implanted_patients"),
               ("still implanted", "still_implanted"), ("still implanted, % of implanted", "still_implanted_pct"),
               ("fully functional", "fully_functional"), ("fully functional, % of implanted", "fully_functional_pct")]


SEVERITY_ORDER = {"error": 0, "warning": 1}


def _small(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4


def _percent(share: float) -> str:
    """A share as a percent a reader scans: 0%, 0.51%, 4.3%, 13%."""
    pct = 100 * share
    if pct == 0:
        return "0%"
    if pct < 0.01:
        return "<0.01%"
    return f"{pct:.2g}%" if pct < 10 else f"{pct:.0f}%"


def _heat(check: dict[str, Any]) -> str:
    """The cell's colour class: how far the share failing is over the threshold (classes in page.html.j2)."""
    share, threshold = check["share_failed"], check["threshold"]
    if check["passed"]:
        return "dq-zero" if share == 0 else "dq-pass"
    ratio = share / threshold if threshold else float("inf")
    return "dq-fail-1" if ratio <= 2 else "dq-fail-2" if ratio <= 5 else "dq-fail-3"


def _cell(check: dict[str, Any], published: bool) -> dict[str, Any]:
    """One center's check of one rule as the grid shows it; under ``published`` a count of 1-4 rows failing
    is "<5" and its share (which would give the count away) is not shown."""
    failed, checked = check["rows_failed"], check["rows_checked"]
    masked = published and _small(failed)
    shown_failed = "<5" if masked else str(failed)
    shown_checked = "<5" if published and _small(checked) else str(checked)
    return {"passed": bool(check["passed"]), "heat": _heat(check),
            "text": f"{shown_failed} rows" if masked else _percent(check["share_failed"]),
            "detail": f"of {shown_checked}" if masked else f"{shown_failed}/{shown_checked}",
            "title": f"{check['center']}, {check['rule_id']}: {shown_failed} of {shown_checked} rows fail "
                     f"(threshold {_percent(check['threshold'])}): {'pass' if check['passed'] else 'FAIL'}"}


def quality_grid(checks: list[dict[str, Any]], *, published: bool = False) -> dict[str, Any]:
    """The checks of each center's delivery in force as a rule x center grid: the rules with a failing check
    first (errors, then the most centers failing, then the furthest over the threshold), then, folded, the
    rules every center passes."""
    centers = sorted({c["center"] for c in checks})
    deliveries = {c["center"]: c["delivery"] for c in checks}
    by_rule: dict[str, dict[str, Any]] = {}
    for c in checks:
        row = by_rule.setdefault(c["rule_id"], {"rule_id": c["rule_id"], "severity": c["severity"],
                                                "kahn_category": c["kahn_category"], "thresholds": set(),
                                                "cells": {}, "checks": []})
        row["thresholds"].add(c["threshold"])
        row["cells"][c["center"]] = _cell(c, published)
        row["checks"].append(c)
    rows = []
    for row in by_rule.values():
        failing = [c for c in row["checks"] if not c["passed"]]
        worst = max((c["share_failed"] / c["threshold"] if c["threshold"] else float("inf") for c in failing),
                    default=0.0)
        thresholds = sorted(row.pop("thresholds"))
        rows.append(dict(row, failing=len(failing), worst=worst,
                         threshold=" / ".join(_percent(x) for x in thresholds)))
    failing_rows = sorted((r for r in rows if r["failing"]),
                          key=lambda r: (SEVERITY_ORDER.get(r["severity"], 2), -r["failing"], -r["worst"],
                                         r["rule_id"]))
    passing_rows = sorted((r for r in rows if not r["failing"]), key=lambda r: r["rule_id"])
    failed = sum(r["failing"] for r in rows)
    return {"centers": centers, "deliveries": deliveries, "failing_rows": failing_rows,
            "passing_rows": passing_rows, "checks": len(checks), "failed": failed,
            "failed_errors": sum(r["failing"] for r in failing_rows if r["severity"] == "error"),
            "passed": len(checks) - failed, "passing_checks": sum(len(r["cells"]) for r in passing_rows)}


def quality_trend(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks of the centers with more than one delivery (a trend needs two): per center and delivery,
    the checks and how many failed, the latest recording of each (center, delivery, rule)."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in history:  # ordered by center, rule, cutoff, checked_at: the last one of a delivery wins
        latest[(c["center"], c["delivery"], c["rule_id"])] = c
    per_center: dict[str, set[str]] = {}
    for center, delivery, _ in latest:
        per_center.setdefault(center, set()).add(delivery)
    trend: dict[tuple[str, str], dict[str, Any]] = {}
    for (center, delivery, _), c in sorted(latest.items()):
        if len(per_center[center]) < 2:
            continue
        entry = trend.setdefault((center, delivery), {"center": center, "delivery": delivery, "checks": 0,
                                                      "failed": 0, "status": c.get("status")})
        entry["checks"] += 1
        entry["failed"] += 0 if c["passed"] else 1
    return [trend[k] for k in sorted(trend)]


def render(data: ReportData) -> str:
    """The page's HTML."""
    figures = data.figures
    trend = quality_trend(data.quality.get("checks", []))
    grid = quality_grid(data.checks_in_force, published=data.published)
    comparison = None
    if not data.published:  # beside the paper only when the cohort is the paper's (the demo): same trial cohort
        rows = compare_with_paper(figures)
        if any(r.key == "cohort.trial_patients" and r.matches for r in rows):
            comparison = rows
    page_plots = {
        "cohort_flow": plots.cohort_flow(figures["cohort"]),
        "follow_up": plots.follow_up(figures["follow_up"]) if figures.get("follow_up") else None,
        "paired": {m: plots.paired(p, m) for m, p in sorted(data.pairs.items())},
        "survival": {name: plots.survival(name, curve, data.survival_times.get(name), mask_small=data.published)
                     for name, curve in data.survival_curves.items()},
        "checks": plots.check_trend(trend) if trend else None,
        # issue 17, item 4: per-patient step curves and the funnel are left out under --publish (no data for them)
        "cumulative_incidence": plots.cumulative_incidence(data.competing_risk_days,
                                                           data.survival_curves.get("lead_defect_free", []))
        if data.competing_risk_days else None,
        "funnel": plots.funnel(figures["device_performance"]["by_center"])
        if not data.published and figures.get("device_performance") else None,
    }
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["pvalue"] = format_p
    environment.filters["pvalue_paper"] = lambda value: format_p(value, floor=None)
    environment.filters["count"] = lambda n: "<5" if data.published and _small(n) else n
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        figures=figures, published=data.published, deliveries=data.deliveries, load=data.load,
        quality=data.quality, plots=page_plots, days=DAYS, grid=grid, trend=trend, windows=FOLLOW_UP_WINDOWS,
        cohort_rows=[(label, f"cohort.{key}", figures["cohort"][key]) for label, key in COHORT_ROWS],
        comparison=comparison, version=__version__)


def write_report(data: ReportData, out: Path) -> Path:
    """Write the page to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return out
