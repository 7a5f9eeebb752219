"""The project's exceptions and exit codes, under one root.

Exit codes follow cli.md: 0 done; 1 done, but a delivery or file was rejected whole;
2 the call itself was wrong (usage, missing key, unreadable path). Codes are never reused.
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class DrgEtlError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = EXIT_USAGE


class MappingSpecError(DrgEtlError):
    """A file in mappings/ (or another declared spec) is malformed: the spec is wrong, not the data."""


class UsageError(DrgEtlError):
    """The call itself is wrong: a bad option, a missing key, an unreadable path."""


class WarehouseError(DrgEtlError):
    """The warehouse cannot serve the call: locked by a load, unreadable, not built, or stale (exit 2)."""


class Interrupted(BaseException):
    """A signal (Ctrl-C, SIGTERM) asked the command to stop (a BaseException: no ``except Exception`` takes it).

    ``received`` keeps the signal once one arrived: a library that turns the interrupt into an error of its
    own (DuckDB's "Query interrupted") is still recognised as interrupted by :func:`interrupted_by`.
    """

    received: int | None = None

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupted_by() -> Interrupted | None:
    """The interrupt to raise instead of an error, if a signal has arrived."""
    return Interrupted(Interrupted.received) if Interrupted.received is not None else None


def stop_if_interrupted() -> None:
    """Raise the interrupt if a signal has arrived, though a library swallowed it (took it for an error of its own
    and went on): before a load writes, nothing it read after the signal may count."""
    if (stop := interrupted_by()) is not None:
        raise stop
