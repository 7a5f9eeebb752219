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
from helpers import SCREENSHOT, Loaded, run_cli, updating_screenshot

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="the browser test needs Chromium (Debian package "
                                "`chromium`; .ci/run installs it)")


class _Keys(HTMLParser):
    """The page's figures (elements with data-key) and the body's render check."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in found.items()}
        self._open.append(found.get("data-key"))
        if found.get("data-key"):
            self.keys[found["data-key"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1]:
            self.keys[self._open[-1]] += data.strip()


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
    if isinstance(value, bool) or isinstance(value, str):
        return shown == str(value)
    return float(shown) == pytest.approx(float(value), rel=1e-9)


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
        assert _same(shown, expected[key]), (key, shown, expected[key])
    if not publish:
        assert "Beside the paper" in html and html.count(">yes<") == 21
    if screenshot is not None and updating_screenshot():
        shutil.copyfile(screenshot, SCREENSHOT)
