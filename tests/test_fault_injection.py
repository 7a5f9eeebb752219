"""Fault injection, in bounded loops: a load killed at random points, and a reader polling a running load.

After each kill, `analyze` either refuses with one clear line (exit 2) or prints the figures of a
complete load, never half of one; a rerun of the load then gives the clean result.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TEST_KEY, Generated, digest, run_cli

KILLS = 3


def _start_load(inbox: Path, warehouse: Path) -> subprocess.Popen:
    env = {**os.environ, "DRG_ETL_PSEUDONYM_KEY": TEST_KEY.decode()}
    return subprocess.Popen([sys.executable, "-m", "drg_etl.cli", "load", str(inbox), "--warehouse", str(warehouse)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def clean(demo_clean: Generated, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, float]:
    """The clean load's analysis, snapshot and wall time."""
    warehouse = tmp_path_factory.mktemp("clean") / "w.duckdb"
    started = time.monotonic()
    assert run_cli("load", str(demo_clean.inbox), "--warehouse", str(warehouse)).returncode == 0
    took = time.monotonic() - started
    figures = json.loads(run_cli("analyze", "--warehouse", str(warehouse), "--json").stdout)
    return figures, digest(warehouse), took


def _consistent_or_refused(warehouse: Path, figures: dict) -> str:
    done = run_cli("analyze", "--warehouse", str(warehouse), "--json")
    if done.returncode == 0:
        assert json.loads(done.stdout) == figures, "analyze printed the figures of half a load"
        return "complete"
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    return "refused"


def test_a_load_killed_anywhere_leaves_a_consistent_warehouse_and_a_rerun_finishes_it(
        demo_clean: Generated, clean: tuple[dict, dict, float], tmp_path: Path) -> None:
    figures, expected, took = clean
    rng = random.Random(2021)
    outcomes = []
    for attempt in range(KILLS):
        warehouse = tmp_path / f"w{attempt}.duckdb"
        load = _start_load(demo_clean.inbox, warehouse)
        time.sleep(rng.uniform(0.2, took))
        load.send_signal(signal.SIGKILL)
        load.wait()
        if warehouse.exists():
            outcomes.append(_consistent_or_refused(warehouse, figures))
        rerun = run_cli("load", str(demo_clean.inbox), "--warehouse", str(warehouse))
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(run_cli("analyze", "--warehouse", str(warehouse), "--json").stdout) == figures
        assert digest(warehouse) == expected
    assert len(outcomes) >= 1


def test_a_reader_polling_a_running_load_never_disturbs_it_nor_sees_half_of_it(
        demo_clean: Generated, clean: tuple[dict, dict, float], tmp_path: Path) -> None:
    figures, expected, _ = clean
    warehouse = tmp_path / "w.duckdb"
    load = _start_load(demo_clean.inbox, warehouse)
    seen = set()
    while load.poll() is None:
        if warehouse.exists():
            seen.add(_consistent_or_refused(warehouse, figures))
        time.sleep(0.05)
    assert load.returncode == 0, load.stderr.read()
    assert "refused" in seen
    assert _consistent_or_refused(warehouse, figures) == "complete"
    assert digest(warehouse) == expected
