"""``drg-etl pull redcap`` against the REDCap API stand-in (tests/peers/redcap_standin.py) on 127.0.0.1.

The stand-in serves the clean demo's rh project. A pulled delivery is the generated one; an incremental pull
(``dateRangeBegin`` and the deletion log) after changes gives a full pull's bytes; a same-day pull with no
change writes nothing, a later day's writes a new delivery that supersedes; faults are retried or end the
pull with nothing written; a refused token names the setting; a killed pull leaves no half delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TEST_KEY, Generated, reading, run_cli
from peers.redcap_standin import RedcapProject, RedcapStandin, TokenRights, make_token

from drg_etl.analysis.national import default_observation_end, national_analysis
from drg_etl.core.delivery import PULL_FOLDER, PULL_RECORD
from drg_etl.pipeline.load import load_inbox
from drg_etl.pull.http import PullError, RetryBudget
from drg_etl.pull.redcap import pull_redcap
from drg_etl.pull.result import PullResult

WITH_GROUPS = make_token("dag")
PLAIN = make_token("plain")
NO_EXPORT = make_token("no-export")
UNKNOWN = make_token("unknown")
TOKENS = {WITH_GROUPS: TokenRights(export=True, data_access_groups=True), PLAIN: TokenRights(export=True),
          NO_EXPORT: TokenRights(export=False)}
DATA = "DRGDK_DATA_2019-12-31.csv"
DICTIONARY = "DRGDK_DataDictionary.csv"
END = dt.date(2019, 12, 31)


@pytest.fixture
def redcap(demo_clean: Generated) -> Iterator[RedcapStandin]:
    """The stand-in serving a fresh project built from the clean demo's rh delivery (one data access group)."""
    with RedcapStandin(RedcapProject.from_delivery(demo_clean.folder("rh")), TOKENS) as server:
        yield server
        assert server.errors == []


def pull(server: RedcapStandin, inbox: Path, token: str = PLAIN, *, full: bool = False,
         waits: list[float] | None = None, attempts: int = 6) -> PullResult:
    """One pull through the library, retries sleeping at most 50 ms."""
    budget = RetryBudget(attempts=attempts, sleep=lambda s: time.sleep(min(s, 0.05)),
                         waits=waits if waits is not None else [])
    return pull_redcap(inbox, server.url, token, full=full, budget=budget)


def rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig").splitlines()


def figures(inbox: Path, warehouse: Path) -> dict:
    """The national figures at the generated cutoff, and rh's file counts, after loading the inbox."""
    load_inbox(inbox, warehouse, TEST_KEY)
    with reading(warehouse) as con:
        files = sorted(con.execute("""select f.file, f.rows_read, f.rows_loaded, f.rows_quarantined
            from quality.delivery_files f join quality.deliveries d using (delivery_id) where d.center = 'rh'
            and d.status = 'in_force'""").fetchall())
        return {"analysis": national_analysis(con, observation_end=END), "rh files": files}


def test_a_full_pull_writes_the_generated_delivery_and_loads_to_its_figures(redcap: RedcapStandin,
                                                                            demo_clean: Generated,
                                                                            tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox, ignore=shutil.ignore_patterns("rh"))
    done = run_cli("pull", "redcap", "--center", "rh", "--inbox", str(inbox), "--url", redcap.url,
                   DRG_ETL_REDCAP_TOKEN=PLAIN)
    assert done.returncode == 0, done.stderr
    folder = inbox / "rh" / "2019-12-31"
    assert f"wrote {folder} (full pull)" in done.stdout
    for name in (DATA, DICTIONARY):  # REDCap's own order and the delivery's dialect: the generator's bytes
        assert (folder / name).read_bytes() == (demo_clean.folder("rh") / name).read_bytes(), name
    assert redcap.contents()[:6] == ["version", "project", "metadata", "formEventMapping", "repeatingFormsEvents",
                                     "record"]
    record = json.loads((folder / PULL_RECORD).read_text())
    assert record["mode"] == "full" and record["source"]["server"]["version"] == redcap.version
    assert record["files"][DATA]["records"] == len(rows(folder / DATA)) - 1
    assert record["request"]["exportDataAccessGroups"] == "false", "the token has no data access group rights"
    assert figures(inbox, tmp_path / "pulled.duckdb") == figures(demo_clean.inbox, tmp_path / "generated.duckdb")


def test_a_token_with_group_rights_exports_the_group_column_and_loads_the_same(redcap: RedcapStandin,
                                                                              demo_clean: Generated,
                                                                              tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox, ignore=shutil.ignore_patterns("rh"))
    result = pull(redcap, inbox, WITH_GROUPS)
    assert rows(result.folder / DATA)[0].split(",")[4] == "redcap_data_access_group"
    assert figures(inbox, tmp_path / "pulled.duckdb") == figures(demo_clean.inbox, tmp_path / "generated.duckdb")


def _change(project: RedcapProject) -> tuple[str, str]:
    """Change a value, add a record, delete another; the added and deleted ids."""
    records = project.records()
    first = records[0]
    project.set_value(first, "screening_arm_1", None, None, "nrs_worst", "9")
    donor = records[1]
    added = str(max(int(r) for r in records) + 1)
    header, donor_rows = project.export(records=[donor])
    project.add_record([{**{c: v for c, v in zip(header, row, strict=True) if v != ""}, "record_id": added}
                        for row in donor_rows])
    deleted = records[2]
    project.delete_record(deleted)
    return added, deleted


def test_an_incremental_pull_after_changes_gives_a_full_pulls_bytes(redcap: RedcapStandin, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    redcap.clock.advance(hours=2)  # past the overlap: the first pull's records are not asked for again
    first = pull(redcap, inbox)
    redcap.clock.advance(minutes=10)
    added, deleted = _change(redcap.project)
    redcap.clock.advance(minutes=5)
    second = pull(redcap, inbox)
    assert second.mode == "incremental" and second.written and second.replaced
    record_call = [r for r in redcap.requests if r.content == "record"][-1]
    assert "dateRangeBegin" in record_call.params and "log" in redcap.contents()
    assert second.record["changes"] == {"keys_changed": 2, "keys_deleted": 1}
    full = pull(redcap, tmp_path / "fresh", full=True)
    assert full.mode == "full"
    assert (second.folder / DATA).read_bytes() == (full.folder / DATA).read_bytes()
    ids = {line.split(",")[0] for line in rows(second.folder / DATA)[1:]}
    assert added in ids and deleted not in ids
    assert first.folder == second.folder  # the same day: the day's delivery was replaced


def test_same_day_no_change_writes_nothing_and_a_later_day_is_a_new_delivery_in_force(redcap: RedcapStandin,
                                                                                      demo_clean: Generated,
                                                                                      tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox, ignore=shutil.ignore_patterns("rh"))
    first = pull(redcap, inbox)
    stamp = (first.folder / PULL_RECORD).stat().st_mtime_ns
    redcap.clock.advance(minutes=30)
    again = run_cli("pull", "redcap", "--inbox", str(inbox), "--url", redcap.url, DRG_ETL_REDCAP_TOKEN=PLAIN)
    assert again.returncode == 0 and "nothing changed since the delivery of 2019-12-31" in again.stdout
    assert (first.folder / PULL_RECORD).stat().st_mtime_ns == stamp
    warehouse = tmp_path / "w.duckdb"
    load_inbox(inbox, warehouse, TEST_KEY)
    redcap.clock.advance(hours=24)
    later = pull(redcap, inbox)
    assert later.written and later.folder.name == "2020-01-01" and later.mode == "incremental"
    assert (later.folder / "DRGDK_DATA_2020-01-01.csv").read_text().splitlines()[1:] == \
        (first.folder / DATA).read_text().splitlines()[1:]
    report = load_inbox(inbox, warehouse, TEST_KEY)
    assert report.loaded == ["rh/2020-01-01"]
    with reading(warehouse) as con:
        in_force = con.execute("select cutoff from quality.deliveries_in_force where center = 'rh'").fetchall()
        assert [str(c) for (c,) in in_force] == ["2020-01-01"]
        assert default_observation_end(con) == dt.date(2020, 1, 1)


def test_faults_are_retried_and_a_server_that_keeps_failing_ends_the_pull_with_nothing_written(
        redcap: RedcapStandin, tmp_path: Path) -> None:
    waits: list[float] = []
    redcap.faults.fail_next(503, times=2, html=True, content="record")
    redcap.faults.fail_next(429, retry_after=3, content="metadata")
    redcap.faults.cut_off_next(content="project")
    redcap.faults.cut_off_next(content="record", fraction=0.7)
    assert pull(redcap, tmp_path / "a", waits=waits).written
    assert 3.0 in waits and redcap.faults.pending() == 0
    redcap.faults.fail_next(500, times=5, content="record")
    with pytest.raises(PullError, match=r"REDCap's API \(record\): the server still answered HTTP 500 after 3"):
        pull(redcap, tmp_path / "b", attempts=3)
    assert not (tmp_path / "b" / "rh").exists()


def test_a_refused_token_exits_2_naming_the_setting_and_is_never_retried(redcap: RedcapStandin,
                                                                         tmp_path: Path) -> None:
    for token, status in ((UNKNOWN, 401), (NO_EXPORT, 403)):
        before = len(redcap.requests)
        refused = run_cli("pull", "redcap", "--inbox", str(tmp_path / "inbox"), "--url", redcap.url,
                          DRG_ETL_REDCAP_TOKEN=token)
        assert refused.returncode == 2 and refused.stdout == ""
        assert f"HTTP {status}" in refused.stderr and "check DRG_ETL_REDCAP_TOKEN" in refused.stderr
        assert token not in refused.stderr and "Traceback" not in refused.stderr
        assert len(redcap.requests) == before + 1, "a refused token is not asked again"
    missing = run_cli("pull", "redcap", "--inbox", str(tmp_path / "inbox"), "--url", redcap.url)
    assert missing.returncode == 2 and "set DRG_ETL_REDCAP_TOKEN" in missing.stderr
    assert not (tmp_path / "inbox" / "rh").exists()


def test_an_html_page_is_never_taken_for_data(redcap: RedcapStandin, tmp_path: Path) -> None:
    wrong = redcap.url.removesuffix("api/")
    refused = run_cli("pull", "redcap", "--inbox", str(tmp_path / "inbox"), "--url", wrong,
                      DRG_ETL_REDCAP_TOKEN=PLAIN)
    assert refused.returncode == 2 and refused.stderr.startswith("error: REDCap's API (version)")
    assert not (tmp_path / "inbox" / "rh").exists()


@pytest.mark.parametrize("content", ["metadata", "record", "log"])
def test_a_pull_killed_mid_call_leaves_no_half_delivery_and_the_next_completes(redcap: RedcapStandin,
                                                                             tmp_path: Path, content: str) -> None:
    inbox = tmp_path / "inbox"
    pull(redcap, inbox)
    redcap.clock.advance(hours=25)  # the next pull is a new day's delivery, incremental (with the log)
    _change(redcap.project)
    env = dict(os.environ) | {"DRG_ETL_REDCAP_TOKEN": PLAIN}
    command = [sys.executable, "-m", "drg_etl.entry", "pull", "redcap", "--inbox", str(inbox), "--url", redcap.url]
    redcap.faults.slow_next(30, content=content)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while content not in redcap.contents() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert sorted(p.name for p in (inbox / "rh").iterdir()) == ["2019-12-31"]
    assert not list((inbox / PULL_FOLDER).glob("*.tmp"))
    redcap.faults.clear()
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    reference = pull(redcap, tmp_path / "reference", full=True)
    assert (inbox / "rh" / "2020-01-01" / "DRGDK_DATA_2020-01-01.csv").read_bytes() == \
        (reference.folder / "DRGDK_DATA_2020-01-01.csv").read_bytes()
    assert not list((inbox / PULL_FOLDER).glob("work-*"))
