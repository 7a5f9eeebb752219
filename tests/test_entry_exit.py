"""The console script ends its process without the interpreter's teardown (issue 18): the command's whole output,
its exit status and the exit functions are kept all the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import Loaded

AT_EXIT = """
import atexit, sys
atexit.register(lambda: print("exit functions ran"))
sys.argv = ["drg-etl", *sys.argv[1:]]
from drg_etl.entry import run
run()
"""


def _console_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", AT_EXIT, *args], capture_output=True, text=True, timeout=300)


def test_a_command_gives_its_whole_output_its_status_and_runs_the_exit_functions(loaded_demo: Loaded) -> None:
    done = _console_script("analyze", "--warehouse", str(loaded_demo.warehouse), "--json")
    assert done.returncode == 0, done.stderr
    text, last = done.stdout.rsplit("\n", 2)[0], done.stdout.rstrip("\n").rsplit("\n", 1)[1]
    assert json.loads(text)["cohort"]["trial_patients"] > 0  # every byte of the JSON, though it was buffered
    assert last == "exit functions ran"


def test_a_refused_command_keeps_its_exit_status_and_its_message(tmp_path: Path) -> None:
    done = _console_script("analyze", "--warehouse", str(tmp_path / "none.duckdb"), "--json")
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "none.duckdb" in done.stderr
    assert done.stdout.endswith("exit functions ran\n")
