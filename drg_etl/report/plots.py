"""The report's plots, drawn by matplotlib as inline SVG (no network, no script needed to show them)."""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "svg.hashsalt": "drg-etl"})  # same data, same bytes
MEASURE_TITLES = {"nrs_average": "Average pain (NRS 0-10)", "nrs_worst": "Worst pain (NRS 0-10)",
                  "pcs_total": "Pain catastrophizing (PCS 0-52)"}
CURVE_TITLES = {"lead_defect_free": "Lead-defect-free survival",
                "system_explant_free": "System (explant-free) survival"}


def _svg(fig: plt.Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg"):], flags=re.S)


def _count(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def cohort_flow(cohort: dict[str, Any]) -> str:
    """Trial -> implanted -> still implanted -> fully functional, as a funnel of bars."""
    steps = [("trial", cohort["trial_patients"]), ("implanted", cohort["implanted_patients"]),
             ("still implanted", cohort["still_implanted"]), ("fully functional", cohort["fully_functional"])]
    fig, ax = plt.subplots(figsize=(6.5, 2.4))
    labels = [s for s, _ in steps][::-1]
    values = [_count(v) for _, v in steps][::-1]
    bars = ax.barh(labels, values, color=["#2a9d8f", "#52b69a", "#76c893", "#99d98c"])
    for bar, (_, value) in zip(bars, steps[::-1], strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value}", va="center")
    ax.set_xlabel("patients")
    ax.set_title("Cohort flow")
    return _svg(fig)


def paired(pairs: list[tuple[float, float]], measure: str) -> str:
    """Each patient's baseline and 12-month value joined by a line, with the means."""
    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    for baseline, month12 in pairs:
        ax.plot([0, 1], [baseline, month12], color="#9aa5b1", linewidth=0.8, marker="o", markersize=2.5)
    if pairs:
        ax.plot([0, 1], [sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs)],
                color="#e76f51", linewidth=2.5, marker="o", label="mean")
        ax.legend(loc="upper right", frameon=False)
    ax.set_xticks([0, 1], ["baseline", "12 months"])
    ax.set_xlim(-0.2, 1.2)
    ax.set_title(f"{MEASURE_TITLES.get(measure, measure)}, n={len(pairs)}")
    return _svg(fig)


def survival(name: str, curve: list[dict[str, float]]) -> str:
    """A Kaplan-Meier curve (steps) with its 95% confidence band."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    days = [p["t"] for p in curve]
    ax.fill_between(days, [p["lo"] for p in curve], [p["hi"] for p in curve], step="post", color="#a8dadc",
                    alpha=0.7, label="95% CI")
    ax.step(days, [p["s"] for p in curve], where="post", color="#1d3557", label="Kaplan-Meier")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("days since the first implant")
    ax.set_title(CURVE_TITLES.get(name, name))
    ax.legend(loc="lower left", frameon=False)
    return _svg(fig)


def check_trend(history: list[dict[str, Any]]) -> str:
    """Failed data-quality checks per center and delivery: how each center's trend goes."""
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    by_center: dict[str, dict[str, int]] = {}
    for check in history:
        failed = by_center.setdefault(check["center"], {})
        failed[check["delivery"]] = failed.get(check["delivery"], 0) + (0 if check["passed"] else 1)
    for center, per_delivery in sorted(by_center.items()):
        cutoffs = sorted(per_delivery)
        ax.plot(cutoffs, [per_delivery[c] for c in cutoffs], marker="o", label=center)
    ax.set_ylabel("failed checks")
    ax.set_xlabel("delivery (cutoff)")
    ax.set_title("Data-quality checks failed, per center and delivery")
    ax.legend(frameon=False, ncol=4)
    return _svg(fig)
