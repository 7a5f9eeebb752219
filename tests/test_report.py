"""The HTML report in a real browser (headless Chromium): it renders, every plot is drawn, its figures are analyze's."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers import SCREENSHOT, Loaded, reading, run_cli, updating_screenshot

from drg_etl.core.display import format_p
from drg_etl.report.data import read_report_data
from drg_etl.report.html import quality_grid, quality_trend, render

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="the browser test needs Chromium (Debian package "
                                    "`chromium`; .ci/run installs it)")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Keys(HTMLParser):
    """The page's figures (elements with data-key) and the body's render check."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, str] = {}
        self.values: dict[str, str] = {}  # data-value: the raw number behind a figure shown rounded (p-values)
        self.body: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in found.items()}
        if tag in VOID:
            return
        self._open.append(found.get("data-key"))
        if found.get("data-key"):
            self.keys[found["data-key"]] = ""
            if found.get("data-value") is not None:
                self.values[found["data-key"]] = found["data-value"] or ""

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <use .../>, <path .../>: no text, nothing open

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in VOID:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1]:
            self.keys[self._open[-1]] += data.strip()


class _Node:
    """An element of the rendered page: tag, attributes, children, text."""

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[_Node] = []
        self.parts: list[str] = []

    def text(self) -> str:
        """Its text and its descendants', each piece stripped, joined by a space."""
        return " ".join(t for t in [*(p.strip() for p in self.parts), *(c.text() for c in self.children)] if t)

    def walk(self) -> list[_Node]:
        """Itself and every descendant, in document order."""
        return [self, *(n for c in self.children for n in c.walk())]

    def find(self, **attrs: str) -> _Node:
        """The first element (itself or a descendant) with these attribute values."""
        found = [n for n in self.walk() if all(n.attrs.get(k) == v for k, v in attrs.items())]
        assert found, attrs
        return found[0]


class _Tree(HTMLParser):
    """The page's DOM (as Chromium serialised it) as a tree of :class:`_Node`."""

    def __init__(self) -> None:
        super().__init__()
        self.root = _Node("#document", {})
        self._stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {k: v or "" for k, v in attrs})
        self._stack[-1].children.append(node)
        if tag not in VOID:
            self._stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack[-1].children.append(_Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].parts.append(data)


def _browse(page: Path, tmp: Path, screenshot: Path | None = None) -> tuple[str, str]:
    """The DOM after Chromium ran the page, and Chromium's log (console messages included)."""
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if screenshot is not None:
        shot = subprocess.run([*common, "--window-size=1280,4200", f"--screenshot={screenshot}", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000
    return done.stdout, done.stderr


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: node}


def _same(shown: str, value: Any) -> bool:
    if value is None:
        return shown in ("None", "")
    if isinstance(value, bool):  # a flag reads yes or no
        return shown == ("yes" if value else "no")
    if isinstance(value, str):
        return shown == str(value)
    return float(shown) == pytest.approx(float(value), rel=1e-9)


@needs_chromium
@pytest.mark.parametrize("publish", [False, True])
def test_the_report_renders_in_chromium_with_every_plot_and_analyzes_figures(loaded_demo: Loaded, tmp_path: Path,
                                                                               publish: bool) -> None:
    page = tmp_path / "report.html"
    flag = ["--publish"] if publish else []
    done = run_cli("report", "--warehouse", str(loaded_demo.warehouse), "--out", str(page), *flag)
    assert done.returncode == 0, done.stderr
    html = page.read_text("utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|<link|@import|url\((?!#)""", html), "self-contained"
    screenshot = tmp_path / "report.png" if not publish else None
    dom, log = _browse(page, tmp_path, screenshot)
    assert [line for line in log.splitlines() if "CONSOLE" in line] == []
    parsed = _Keys()
    parsed.feed(dom)
    assert int(parsed.body["data-plots"]) >= (4 if not publish else 1)
    assert parsed.body["data-empty-plots"] == ""
    figures = json.loads(run_cli("analyze", "--warehouse", str(loaded_demo.warehouse), "--json", *flag).stdout)
    expected = _flatten(figures)
    assert len(parsed.keys) > 30
    for key, shown in parsed.keys.items():
        assert key in expected, key
        if key in parsed.values:  # shown rounded for a reader, the raw number beside it
            assert _same(parsed.values[key], expected[key]), (key, parsed.values[key], expected[key])
            assert shown == format_p(expected[key]), (key, shown)
        else:
            assert _same(shown, expected[key]), (key, shown, expected[key])
    assert {k for k in parsed.values} == {k for k in expected if k.endswith(".p_value")}
    assert {f"follow_up.{t}.due" for t in ("month_3", "month_12", "month_36")} <= set(parsed.keys)
    assert "follow_up.by_center.aauh.month_12.assessed" in parsed.keys
    assert parsed.keys["outcomes_12m.nrs_average.p_value"] == "< 0.001"  # 1/2048, not 0.00048828125
    assert parsed.keys["outcomes_12m.nrs_worst.p_value"] == "0.0039"
    tree = _Tree()
    tree.feed(dom)
    quality = json.loads(run_cli("quality", "--warehouse", str(loaded_demo.warehouse), "--json").stdout)
    _check_quality_grid(tree.root, quality, publish)
    if not publish:
        for name in ("lead_defect_free", "system_explant_free"):
            _check_km_plot(tree.root.find(id=f"plot-km-{name}"), name, figures["survival"][name])
    _check_device_surveillance(tree.root, parsed.keys, publish)
    if not publish:
        assert "Beside the paper" in html and html.count('<span class="pass">yes<') == 21
    if screenshot is not None and updating_screenshot():
        shutil.copyfile(screenshot, SCREENSHOT)


SMALL_COUNT = re.compile(r"(?<![\d.<])[1-4](?![\d.%])")  # a count 1-4 on its own (not 195, 0.51%, <5)


def _grid_rows(table: _Node) -> list[tuple[str, list[str], list[str]]]:
    """(rule, each center's check "pass"/"fail", each cell's text) of a grid table's rows."""
    return [(row.attrs["data-rule"], [c.attrs["data-check"] for c in row.walk() if "data-check" in c.attrs],
             [c.text() for c in row.walk() if "data-check" in c.attrs])
            for row in table.walk() if row.tag == "tr" and "data-rule" in row.attrs]


def _check_quality_grid(page: _Node, quality: dict[str, Any], publish: bool) -> None:
    """The rule x center grid: failing rules first, each with a failing check; the passing rules folded; as
    many failed checks as ``quality --json`` counts; under --publish no count 1-4."""
    shown = _grid_rows(page.find(id="dq-grid"))
    folded_box = page.find(id="dq-passing")
    folded = _grid_rows(folded_box)
    assert shown and "fail" in shown[0][1], "a failing check comes first"
    assert all("fail" in checks for _, checks, _ in shown)
    assert folded and all(set(checks) == {"pass"} for _, checks, _ in folded)
    assert folded_box.tag == "details" and "open" not in folded_box.attrs, "the passing rules are folded"
    passing = sum(len(checks) for _, checks, _ in folded)
    summary = next(n for n in folded_box.walk() if n.tag == "summary").text()
    assert summary == f"{passing} checks pass: {len(folded)} rules pass at every center"
    summary_by_center = quality["checks_summary"]
    assert sum(checks.count("fail") for _, checks, _ in shown) == sum(s["failed"] for s in summary_by_center)
    assert len(shown) + len(folded) == len({c["rule_id"] for c in quality["checks"]})
    errors_first = [page.find(**{"data-rule": rule}) for rule, _, _ in shown]
    severities = [row.children[1].text() for row in errors_first]
    assert severities == sorted(severities), "errors before warnings"
    if publish:
        for rule, _, texts in shown + folded:
            assert not any(SMALL_COUNT.search(text) for text in texts), (rule, texts)
    assert page.find(id="dq-no-trend"), "one delivery per center: no trend shown"
    assert not [n for n in page.walk() if n.attrs.get("id") == "plot-check-trend"]


def _check_km_plot(plot: _Node, name: str, figures: dict[str, Any]) -> None:
    """A Kaplan-Meier plot's labelled axes, its censoring marks and its number-at-risk row (read from the SVG's
    text), the numbers at 0-3 years equal to ``analyze --json``'s."""
    texts = [n.text() for n in plot.walk() if n.tag == "text"]
    assert "years since the first implant" in texts
    assert {"probability lead-defect-free", "probability explant-free"} & set(texts)
    censored = plot.find(id=f"km-{name}-censored")
    assert len([n for n in censored.walk() if n.tag == "use"]) >= 1
    assert plot.find(id=f"km-{name}-at-risk").text() == "Number at risk"
    expected = [figures["patients"]] + [(figures["at_days"][d] or {}).get("at_risk", 0) for d in ("365", "730", "1095")]
    shown = [plot.find(id=f"km-{name}-at-risk-{year}").text() for year in range(4)]
    assert shown == [str(n) for n in expected], (name, shown, expected)


def _check_device_surveillance(page: _Node, keys: dict[str, str], publish: bool) -> None:
    """Issue 17, item 4: the section, its tables (their cells are among the keys checked against
    ``analyze --json``), the disclaimer; the curves and the funnel plot only when not published."""
    ids = {n.attrs.get("id") for n in page.walk()}
    assert "device-surveillance" in ids
    assert page.find(id="device-surveillance").text() == "Device surveillance"
    assert "a screen for expert review, not a verdict" in page.find(id="flag-disclaimer").text()
    for d in ("365", "730", "1095"):
        assert {f"competing_risks.lead_defect.at_days.{d}.cif", f"competing_risks.lead_defect.at_days.{d}.one_minus_km",
                f"competing_risks.explant_without_defect.at_days.{d}.cif"} <= set(keys)
    for group in ("by_ipg_model.Axium", "by_ipg_model.Proclaim DRG", "by_center.auh", "by_center.aauh"):
        assert {f"device_performance.{group}.{f}" for f in ("patients", "patient_years", "events", "rate_per_100",
                                                             "lo", "hi", "ratio", "p_value", "flagged")} <= set(keys)
    if publish:
        assert not {"plot-funnel", "plot-cumulative-incidence"} & ids
        assert keys["device_performance.by_ipg_model.Proclaim DRG.events"] == "<5"  # 1 event on the demo
        return
    texts = [n.text() for n in page.find(id="plot-funnel").walk() if n.tag == "text"]
    assert {"patient-years", "lead defects per 100 patient-years", "auh", "ouh", "rh", "aauh"} <= set(texts)
    texts = [n.text() for n in page.find(id="plot-cumulative-incidence").walk() if n.tag == "text"]
    assert {"years since the first implant", "cumulative probability", "lead defect: 1 - Kaplan-Meier"} <= set(texts)


def test_p_values_as_a_reader_expects_them_in_the_report_and_the_terminal(loaded_demo: Loaded) -> None:
    assert [format_p(p) for p in (0.00048828125, 0.00390625, 0.0009999, 0.001, 0.049, 0.1, 0.31, 1.0)] == [
        "< 0.001", "0.0039", "< 0.001", "0.0010", "0.049", "0.10", "0.31", "1.0"]
    assert format_p(0.00048828125, floor=None) == "0.00049"  # at the paper's rounding (Horan et al. print 0.00049)
    assert [format_p(v) for v in (None, "<5")] == ["n/a", "<5"]
    printed = run_cli("analyze", "--warehouse", str(loaded_demo.warehouse)).stdout
    assert "p < 0.001" in printed and "p = 0.0039" in printed and "0.000488" not in printed
    raw = json.loads(run_cli("analyze", "--warehouse", str(loaded_demo.warehouse), "--json").stdout)
    assert raw["outcomes_12m"]["nrs_average"]["p_value"] == pytest.approx(1 / 2048)  # --json keeps the number


def test_the_quality_trend_shows_only_centers_with_more_than_one_delivery(loaded_demo: Loaded) -> None:
    with reading(loaded_demo.warehouse) as con:
        data = read_report_data(con)
    history = data.quality["checks"]
    assert quality_trend(history) == []
    earlier = [dict(c, delivery="2019-06-30", passed=True, share_failed=0.0, rows_failed=0, status="superseded")
               for c in history if c["center"] == "ouh"]
    data.quality["checks"] = earlier + history
    trend = quality_trend(data.quality["checks"])
    assert {e["center"] for e in trend} == {"ouh"}
    assert [(e["delivery"], e["failed"]) for e in trend] == [
        ("2019-06-30", 0), ("2019-12-31", sum(not c["passed"] for c in history if c["center"] == "ouh"))]
    page = render(data)
    assert 'id="plot-check-trend"' in page and 'id="dq-no-trend"' not in page
    grid = quality_grid(data.checks_in_force)
    assert grid["failing_rows"][0]["failing"] >= 1 and not any(r["failing"] for r in grid["passing_rows"])
    assert grid["failed"] + grid["passed"] == grid["checks"] == len(data.checks_in_force)
