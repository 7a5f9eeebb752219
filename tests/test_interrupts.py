"""Ctrl-C and SIGTERM at any moment end a command with one line, and a failed write reports its first cause."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import TEST_KEY, Generated

from drg_etl.core.errors import Interrupted
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


_WRAPPED_BY_AN_IMPORT = """
import os, signal, sys, time, types

def app():  # the signal arrives while a class body is being built, as it did in numpy's import
    class Descriptor:
        def __set_name__(self, owner, name):
            os.kill(os.getpid(), signal.{signal})
            time.sleep(5)

    class Owner:
        attribute = Descriptor()

cli = types.ModuleType("drg_etl.cli")
cli.app = app
sys.modules["drg_etl.cli"] = cli
from drg_etl.entry import main
main()
"""


@pytest.mark.parametrize(("signal_name", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupt_that_python_wraps_in_another_error_is_still_one_line(signal_name: str, status: int) -> None:
    run = subprocess.run([sys.executable, "-c", _WRAPPED_BY_AN_IMPORT.format(signal=signal_name)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == status, run.stderr
    assert run.stderr == MESSAGE + "\n"


_SWALLOWED_BY_A_CALLBACK = """
import os, signal, sys, time, types, weakref

def app():  # the signal arrives while a weakref callback runs (as pandera's cleanup did): Python swallows it there
    class Thing:
        pass

    def callback(_reference):
        os.kill(os.getpid(), signal.{signal})
        time.sleep(0.2)

    thing = Thing()
    reference = weakref.ref(thing, callback)
    del thing
    time.sleep(5)  # the interrupt must still end the command
    print("not interrupted")

cli = types.ModuleType("drg_etl.cli")
cli.app = app
sys.modules["drg_etl.cli"] = cli
from drg_etl.entry import main
main()
"""


@pytest.mark.parametrize(("signal_name", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupt_that_a_callback_swallows_still_ends_the_command_in_one_line(signal_name: str,
                                                                                   status: int) -> None:
    run = subprocess.run([sys.executable, "-c", _SWALLOWED_BY_A_CALLBACK.format(signal=signal_name)],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr, run.stdout) == (status, MESSAGE + "\n", "")


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


def _reader_meeting_a_signal(wrapped: bool) -> Callable[[str], Callable[..., None]]:
    """ouh's reader, but a SIGTERM arrives while it reads and a library takes it for an error of its own: raised
    wrapped (as DuckDB and pyarrow raise a Python error met in a callback, with its trace) or swallowed."""
    from drg_etl.sources import deliveries

    real = deliveries.format_reader

    def reader_of(center: str) -> Callable[..., None]:
        read = real(center)
        if center != "ouh":
            return read

        def read_meeting_the_signal(delivery: Any, staged: Any, pseudonymize: Any) -> None:
            read(delivery, staged, pseudonymize)
            Interrupted.received = signal.SIGTERM  # what the handler notes before it raises
            if wrapped:
                raise ValueError("Python exception in a callback: Traceback (most recent call last): Interrupted")

        return read_meeting_the_signal

    return reader_of


@pytest.mark.parametrize("wrapped", [True, False], ids=["wrapped", "swallowed"])
def test_a_signal_a_library_takes_for_its_own_error_still_stops_the_load_before_it_writes(
        demo: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrapped: bool) -> None:
    """A signal a library turns into its own error while a delivery is read does not reject the delivery (a
    rejection is written to the warehouse, its reason a trace); one a library swallows does not let the load
    write: either way the load stops as if interrupted, and the next load finds the warehouse as it was."""
    from drg_etl.pipeline.load import load_inbox
    from drg_etl.sources import deliveries

    monkeypatch.setattr(Interrupted, "received", None)
    real = deliveries.format_reader
    monkeypatch.setattr(deliveries, "format_reader", _reader_meeting_a_signal(wrapped))
    monkeypatch.setenv("DRG_ETL_READ_WORKERS", "1")  # read in this process, where the reader is replaced
    warehouse = tmp_path / "w.duckdb"
    with pytest.raises(Interrupted):
        load_inbox(demo.inbox, warehouse, TEST_KEY)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from quality.rejections").fetchall() == [(0,)]
        assert con.execute("select count(*) from canonical.patients").fetchall() == [(0,)]
    monkeypatch.setattr(deliveries, "format_reader", real)
    Interrupted.received = None
    assert len(load_inbox(demo.inbox, warehouse, TEST_KEY).loaded) == 4  # the next load completes it
