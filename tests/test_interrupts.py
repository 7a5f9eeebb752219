"""Ctrl-C and SIGTERM at any moment end a command with one line, and a failed write reports its first cause."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from helpers import TEST_KEY, Generated

from drg_etl.core.transaction import transaction
from drg_etl.entry import MESSAGE


def _drg_etl(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "drg_etl.entry", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("after", [0.15, 2.5])  # while Python still imports; while the load reads and writes
def test_an_interrupt_is_one_line_and_the_signals_exit_status(demo: Generated, tmp_path: Path, signum: int,
                                                              status: int, after: float) -> None:
    env = {**os.environ, "DRG_ETL_PSEUDONYM_KEY": TEST_KEY.decode()}
    warehouse = tmp_path / "w.duckdb"
    load = _drg_etl(["load", str(demo.inbox), "--warehouse", str(warehouse)], env)
    time.sleep(after)
    load.send_signal(signum)
    out, err = load.communicate(timeout=120)
    if load.returncode == 0:
        pytest.skip("the load finished before the signal arrived on this machine")
    assert load.returncode == status, err
    assert err == MESSAGE + "\n" and "Traceback" not in out
    rerun = _drg_etl(["load", str(demo.inbox), "--warehouse", str(warehouse)], env)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err  # the warehouse was left as it was: the next load completes it


def test_a_failed_transaction_reports_its_first_cause_not_the_rollbacks() -> None:
    con = duckdb.connect()
    con.execute("create table t (x integer)")
    with pytest.raises(ValueError, match="the first cause"), transaction(con):
        con.execute("insert into t values (1)")
        con.execute("commit")  # the transaction ends early (as a full disk ends it): the rollback will fail
        raise ValueError("the first cause")
    with pytest.raises(duckdb.ConstraintException), transaction(con):
        con.execute("create table u (x integer primary key)")
        con.execute("insert into u values (1), (1)")
    assert con.execute("select count(*) from duckdb_tables() where table_name = 'u'").fetchone()[0] == 0
