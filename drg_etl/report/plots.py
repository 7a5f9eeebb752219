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


def follow_up(completeness: dict[str, Any]) -> str:
    """Assessed share of the due assessments per timepoint: the nation and each center of the first implant.

    A masked share ("<5" under ``--publish``) draws no bar.
    """
    timepoints = [t for t in completeness if t != "by_center"]
    groups = {"national": {t: completeness[t] for t in timepoints}, **completeness["by_center"]}
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    width = 0.8 / len(groups)
    for n, (group, cells) in enumerate(groups.items()):
        xs = [i + (n - (len(groups) - 1) / 2) * width for i in range(len(timepoints))]
        shares = [cells[t]["pct"] if isinstance(cells[t]["pct"], int | float) else 0.0 for t in timepoints]
        ax.bar(xs, shares, width, label=group, color="#264653" if group == "national" else None)
    ax.set_xticks(range(len(timepoints)), [t.replace("_", " ") for t in timepoints])
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of due assessments done")
    ax.set_xlabel("timepoint (months after the first implant)")
    ax.set_title("Follow-up completeness")
    ax.legend(fontsize=7, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
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


#: What each curve's y axis is the probability of.
CURVE_Y_LABELS = {"lead_defect_free": "probability lead-defect-free",
                  "system_explant_free": "probability explant-free"}
DAYS_PER_YEAR = 365  # the analysis reads the curves at 365, 730 and 1095 days: years of 365 days
MASK = "<5"


def at_risk(times: list[tuple[int, bool]], years: list[int], *, mask_small: bool = False) -> list[int | str]:
    """The number at risk at each whole year: patients whose time is that many days (365 a year) or more,
    as analysis.md counts them; 1-4 as "<5" when ``mask_small``."""
    counts = [sum(days >= year * DAYS_PER_YEAR for days, _ in times) for year in years]
    return [MASK if mask_small and 1 <= n <= 4 else n for n in counts]


def _step_value(curve: list[dict[str, float]], day: float) -> float:
    value = 1.0
    for point in curve:
        if point["t"] > day:
            break
        value = point["s"]
    return value


def survival(name: str, curve: list[dict[str, float]], times: list[tuple[int, bool]] | None = None, *,
             mask_small: bool = False) -> str:
    """A Kaplan-Meier curve (steps) with its 95% confidence band, a + at each censoring time, labelled axes
    in years since the first implant, and the number at risk at each year in a row under the plot.

    ``times``: each patient's (days, event); without them no censoring marks and no at-risk row.
    """
    times = times or []
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    years = [p["t"] / DAYS_PER_YEAR for p in curve]
    ax.fill_between(years, [p["lo"] for p in curve], [p["hi"] for p in curve], step="post", color="#a8dadc",
                    alpha=0.7, label="95% CI")
    ax.step(years, [p["s"] for p in curve], where="post", color="#1d3557", label="Kaplan-Meier")
    censored = sorted({days for days, event in times if not event})
    if censored:
        ax.plot([d / DAYS_PER_YEAR for d in censored], [_step_value(curve, d) for d in censored], linestyle="none",
                marker="+", markersize=7, markeredgewidth=1.2, color="#1d3557", label="censored",
                gid=f"km-{name}-censored")
    last = max([*years, *(d / DAYS_PER_YEAR for d, _ in times), 1.0])
    ticks = list(range(0, int(last) + 1 + (last > int(last))))
    ax.set_xticks(ticks)
    ax.set_xlim(0, ticks[-1])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("years since the first implant")
    ax.set_ylabel(CURVE_Y_LABELS.get(name, "survival probability"))
    ax.set_title(CURVE_TITLES.get(name, name))
    ax.legend(loc="lower left", frameon=False)
    if times:
        row = ax.get_xaxis_transform()  # x in data units, y in axes units: the row sits under the x label
        ax.text(0, -0.25, "Number at risk", transform=row, ha="left", va="top", fontweight="bold",
                gid=f"km-{name}-at-risk")
        for year, n in zip(ticks, at_risk(times, ticks, mask_small=mask_small), strict=True):
            ax.text(year, -0.33, str(n), transform=row, ha="center", va="top", gid=f"km-{name}-at-risk-{year}")
    return _svg(fig)


def check_trend(trend: list[dict[str, Any]]) -> str:
    """Failed data-quality checks per center and delivery (html.quality_trend: centers with two deliveries or
    more): how each center's trend goes."""
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    by_center: dict[str, dict[str, int]] = {}
    for entry in trend:
        by_center.setdefault(entry["center"], {})[entry["delivery"]] = entry["failed"]
    for center, per_delivery in sorted(by_center.items()):
        cutoffs = sorted(per_delivery)
        ax.plot(cutoffs, [per_delivery[c] for c in cutoffs], marker="o", label=center)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("failed checks")
    ax.set_xlabel("delivery (cutoff)")
    ax.set_title("Data-quality checks failed, per center and delivery")
    ax.legend(frameon=False, ncol=4)
    return _svg(fig)
