"""One DuckDB transaction: committed whole, or rolled back whole with the first cause reported."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """``begin`` ... ``commit``; on any failure (an interrupt too) ``rollback`` and re-raise the failure itself.

    Some failures end DuckDB's transaction on their own (a full disk, an invalidated database): the
    rollback then fails too, and its "no transaction is active" must never hide the real cause.
    """
    con.execute("begin transaction")
    try:
        yield
        con.execute("commit")
    except BaseException:
        rollback_quietly(con)
        raise


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if there still is one (for a caller about to re-raise its failure)."""
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass  # the transaction is already gone; the first failure is what the caller must see
