"""The tests write nowhere in the checkout: after every other test, ``git status`` shows what it showed before.

conftest.py notes the checkout's changed and untracked files when this test is collected, before any test
runs, and runs this test last. Files git ignores (caches, build/, *.duckdb) are not looked at; changes made
before the run (work in progress) are allowed, but not a test rewriting one of them. The one write asked for:
docs/report.png, when DRG_ETL_UPDATE_SCREENSHOT=1 tells test_report.py to refresh it.
"""

from __future__ import annotations

import pytest
from helpers import ROOT, SCREENSHOT, CheckoutState, checkout_state, updating_screenshot


def test_no_test_created_or_changed_a_file_in_the_checkout(checkout_before: CheckoutState | None) -> None:
    if checkout_before is None:
        pytest.skip(f"git cannot tell what changed in {ROOT} (no git, or no repository at the checkout's root)")
    before, after = checkout_before, checkout_state()
    assert after is not None
    asked = {SCREENSHOT.relative_to(ROOT).as_posix()} if updating_screenshot() else set()
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
                     and path not in asked)
    assert changed == [], f"tests wrote into the checkout (or someone edited it during the run): {changed}"
