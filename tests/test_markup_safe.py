"""Text from a delivery, a path or an exception reaches the terminal as it is: never read as Rich markup.

Every command runs with bracketed text ("[red]", "[/x]") in its paths and in the delivered data; none
dies with a MarkupError or a traceback, and the brackets print as written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import CUTOFF, TEST_KEY, Generated
from typer.testing import CliRunner

from drg_etl.cli import app

BRACKETS = "[/x]"
ODD_KEY = "5f0c3e9a7d1b42c8e6a09f3b71d4c2e85a6f1039bd7e24c6f8a5b3d0e19c7a43"  # a second key, for rekey


def _plant_brackets(inbox: Path) -> None:
    """A label and a note with closing tags in auh's data, and a folder named like markup."""
    path = inbox / "auh" / CUTOFF / "patienter.csv"
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    fields = lines[1].split(";")
    fields[1] = f"K{BRACKETS}"  # an unknown sex label: quoted in the finding's message
    lines[1] = ";".join(fields)
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    (inbox / "[red]").mkdir()


def test_every_command_prints_bracketed_text_as_it_is(demo: Generated, tmp_path: Path) -> None:
    base = tmp_path / "odd [red]path[/red] [/x]"
    inbox, warehouse = base / "inbox", base / "w [/x].duckdb"
    shutil.copytree(demo.inbox, inbox)
    _plant_brackets(inbox)
    runner = CliRunner()
    env = {"DRG_ETL_PSEUDONYM_KEY": TEST_KEY.decode()}
    runs = {}
    for name, args in [
        ("generate", ["generate", "--out", str(base / "gen [/x]"), "--patients", "5"]),
        ("load", ["load", str(inbox), "--warehouse", str(warehouse)]),
        ("quality", ["quality", "--warehouse", str(warehouse)]),
        ("quality --json", ["quality", "--warehouse", str(warehouse), "--json"]),
        ("analyze", ["analyze", "--warehouse", str(warehouse)]),
        ("export-fhir", ["export-fhir", "--warehouse", str(warehouse), "--out", str(base / "fhir [/x]")]),
        ("report", ["report", "--warehouse", str(warehouse), "--out", str(base / "r [/x].html")]),
        ("fhir-package", ["fhir-package", "--out", str(base / "pkg [/x]")]),
        ("analyze, no warehouse", ["analyze", "--warehouse", str(base / "no[/x]where.duckdb")]),
        ("demo", ["demo", "--workdir", str(base / "demo [/x]")]),
    ]:
        runs[name] = runner.invoke(app, args, env=env)
    rekey_env = {"DRG_ETL_OLD_PSEUDONYM_KEY": TEST_KEY.decode(), "DRG_ETL_PSEUDONYM_KEY": ODD_KEY}
    runs["rekey"] = runner.invoke(app, ["rekey", "--warehouse", str(warehouse), "--inbox", str(inbox)], env=rekey_env)
    for name, run in runs.items():
        assert run.exception is None or isinstance(run.exception, SystemExit), (name, repr(run.exception))
        assert "MarkupError" not in run.output and "Traceback" not in run.output, (name, run.output[-500:])
    codes = {name: run.exit_code for name, run in runs.items()}
    assert codes == {"generate": 0, "load": 1, "quality": 0, "quality --json": 0, "analyze": 0, "export-fhir": 0,
                     "report": 0, "fhir-package": 0, "analyze, no warehouse": 2, "demo": 0, "rekey": 0}, codes
    load = runs["load"].output
    assert f"'K{BRACKETS}'" in load  # the finding quotes the label as delivered
    assert "not read: [red]" in load  # the folder named like markup is named, not swallowed
    assert BRACKETS in runs["analyze, no warehouse"].output
    assert any(f"K{BRACKETS}" in json.dumps(r) for r in json.loads(runs["quality --json"].output)["rules"])
