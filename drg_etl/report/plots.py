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


def cumulative_incidence(days: list[tuple[int, int, int, int]], km_curve: list[dict[str, float]]) -> str:
    """The cumulative incidence (Aalen-Johansen, explant as the competing risk) of a lead defect and of an
    explant without one, beside 1 - the lead-defect-free Kaplan-Meier curve, as step functions over the years
    since the first implant.

    ``days``: competing_risks.day_counts' rows; the curves are competing_risks.aalen_johansen read at each
    of those days (the estimator is the analysis's, not redrawn here).
    """
    from drg_etl.analysis.competing_risks import aalen_johansen

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    times = tuple(int(r[0]) for r in days)
    cif = aalen_johansen(days, times) if days else {}
    labels = {"lead_defect": ("lead defect: cumulative incidence", "#e76f51"),
              "explant_without_defect": ("explant without a defect: cumulative incidence", "#8d99ae")}
    for kind, values in cif.items():
        label, colour = labels[kind]
        ax.step([0.0, *(t / DAYS_PER_YEAR for t in times)], [0.0, *(v or 0.0 for v in values)], where="post",
                color=colour, label=label, gid=f"cif-{kind}")
    if km_curve:
        ax.step([p["t"] / DAYS_PER_YEAR for p in km_curve], [1 - p["s"] for p in km_curve], where="post",
                color="#1d3557", linestyle="--", label="lead defect: 1 - Kaplan-Meier", gid="cif-one-minus-km")
    last = max([*(t / DAYS_PER_YEAR for t in times), *(p["t"] / DAYS_PER_YEAR for p in km_curve), 1.0])
    ticks = list(range(0, int(last) + 1 + (last > int(last))))
    ax.set_xticks(ticks)
    ax.set_xlim(0, ticks[-1])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("years since the first implant")
    ax.set_ylabel("cumulative probability")
    ax.set_title("Lead defect: cumulative incidence beside 1 - KM")
    ax.legend(loc="upper left", frameon=False, fontsize=7)
    return _svg(fig)


def _poisson_limit(p: float, mu: float) -> float:
    """The p-quantile of Poisson(mu), interpolated between integers as Spiegelhalter's funnel plots draw the
    exact limits (Statist. Med. 2005;24:1185-1202)."""
    from scipy.stats import poisson

    r = float(poisson.ppf(p, mu))
    below, at = float(poisson.cdf(r - 1, mu)), float(poisson.cdf(r, mu))
    return max(0.0, r - ((at - p) / (at - below) if at > below else 0.0))  # a rate is never below 0


#: The funnel plot's control limits: two-sided coverage and line style.
FUNNEL_LIMITS = ((0.95, "--"), (0.998, ":"))


def funnel(by_center: dict[str, dict[str, Any]]) -> str:
    """Each center's lead-defect rate per 100 patient-years against its patient-years, with the 95% and 99.8%
    exact Poisson control limits around the national rate (all centers' events over their patient-years)."""
    centers = {c: g for c, g in by_center.items() if isinstance(g.get("patient_years"), int | float)
               and g["patient_years"] > 0 and isinstance(g.get("rate_per_100"), int | float)}
    years = sum(g["patient_years"] for g in centers.values())
    events = sum(g["events"] for g in centers.values())
    national = events / years if years else 0.0
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    top = max([g["patient_years"] for g in centers.values()] + [1.0]) * 1.15
    grid = [top * i / 200 for i in range(1, 201)]
    for coverage, style in FUNNEL_LIMITS:
        tail = (1 - coverage) / 2
        for p in (tail, 1 - tail):
            ax.plot(grid, [100 * _poisson_limit(p, national * e) / e for e in grid], color="#8d99ae",
                    linestyle=style, linewidth=1, label=f"{coverage:.1%} limits".replace(".0%", "%") if p > 0.5
                    else None)
    ax.axhline(100 * national, color="#1d3557", linewidth=1, label="national rate")
    for center, g in centers.items():
        ax.plot(g["patient_years"], g["rate_per_100"], marker="o", color="#e76f51", linestyle="none")
        ax.annotate(center, (g["patient_years"], g["rate_per_100"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlim(0, top)  # the limits rise without bound at few patient-years: the y axis stops above the centers
    ax.set_ylim(0, max([3 * 100 * national, *(1.5 * g["rate_per_100"] for g in centers.values()), 1.0]))
    ax.set_xlabel("patient-years")
    ax.set_ylabel("lead defects per 100 patient-years")
    ax.set_title("Lead-defect rate per center (funnel plot)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=3, frameon=False, fontsize=7)
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
