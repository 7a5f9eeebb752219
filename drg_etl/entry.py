"""The console script's entry point: signals first, then the command line.

Ctrl-C (SIGINT) and SIGTERM at any moment, the imports included, end the command with one line on
stderr and the shell's exit status for the signal (130, 143), never a traceback. A load is one
transaction (a kill leaves the warehouse as it was; the next load finishes an interrupted FHIR
rebuild), so the line says so. This module imports nothing heavy before the handlers are set.

The console script is :func:`run`: :func:`main`, then the process ends with the command's status, its output
flushed and its exit functions run, without the interpreter's teardown of the modules it imported.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from drg_etl.core.errors import Interrupted

MESSAGE = "interrupted; the warehouse is as it was"


def _stop(signum: int, _frame: FrameType | None) -> None:
    Interrupted.received = signum
    raise Interrupted(signum)


def _unraisable(hook: Any) -> None:
    """An interrupt raised inside a weakref callback or a finaliser is swallowed by Python ("Exception ignored
    in ...", with a traceback): say nothing, and deliver the signal again, to land in the command itself."""
    if isinstance(hook.exc_value, Interrupted | KeyboardInterrupt):
        signum = Interrupted.received or signal.SIGINT
        # to the main thread, so a wait it is in (a sleep, a query's poll) is interrupted at once
        threading.Timer(0.01, signal.pthread_kill, (threading.main_thread().ident, signum)).start()
        return
    sys.__unraisablehook__(hook)


def main() -> None:
    """Run ``drg-etl``; an interrupt is one line and exit 128 + the signal's number."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    sys.unraisablehook = _unraisable
    try:
        from drg_etl.cli import app

        app()
    except KeyboardInterrupt:  # raised by a library that installed its own handler
        _interrupted(Interrupted.received or signal.SIGINT)
    except BaseException:
        # The handler's exception may reach here wrapped: raised inside a class body during an import,
        # Python turns it into "RuntimeError: Error calling __set_name__". A signal received is the cause.
        if Interrupted.received is None:
            raise
        _interrupted(Interrupted.received)
    finally:  # the command is done: a signal during the interpreter's teardown changes nothing
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run() -> None:
    """The console script: :func:`main`, then the end of the process without the interpreter's teardown."""
    try:
        main()
    except SystemExit as done:
        _exit_without_teardown(done)


def _exit_without_teardown(done: SystemExit) -> None:
    """End the process with the command's exit status, its output flushed and the exit functions run (``atexit``:
    temporary folders, logging), but without the interpreter's teardown of its modules: freeing the objects of
    pandas, pyarrow and DuckDB takes 0.1-0.2 s after the command is done, and every command's connection is closed
    by then. Re-raises when that is not plain: an exit message to print, or another thread still running."""
    if not (done.code is None or isinstance(done.code, int)) or threading.active_count() > 1:
        raise done
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is done: a signal now changes nothing
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away (a pipe into head): nothing more to tell it
            pass
    os._exit(done.code or 0)


def _interrupted(signum: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting changes nothing
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        sys.stderr.write(MESSAGE + "\n")
        sys.stderr.flush()
    finally:
        raise SystemExit(128 + int(signum))


if __name__ == "__main__":
    run()
