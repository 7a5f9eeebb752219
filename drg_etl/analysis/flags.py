"""The patient flags at an analysis's observation end, found once for all of its statements.

:func:`drg_etl.pipeline.marts.with_flags` asks the warehouse, for each statement, whether the mart holds the flags
at the day (two look-ups), and where it does not puts the mart's whole query in front of the statement, so every
statement computed the flags again. :func:`flags_at` asks once: the mart itself where it holds at the day, else the
mart's own query run once into a temp table; :meth:`Flags.with_flags` then puts that relation in front, as
``with_flags`` does (one definition of the flags: warehouse/marts/patient_flags.sql).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

from drg_etl.core.tables import MART_PATIENT_FLAGS
from drg_etl.pipeline.marts import flags_held, flags_query, with_flags, with_relation

#: Numbers the temp tables of :func:`flags_at`.
_TABLES = itertools.count(1)


@dataclass(frozen=True)
class Flags:
    """The flags at ``observation_end`` as a query without parameters (the mart, or a temp table)."""

    relation: str
    observation_end: dt.date

    def with_flags(self, sql: str) -> tuple[str, dict[str, Any]]:
        """``sql`` (which reads the relation ``patient_flags``) with the flags in front, and its parameters."""
        return with_relation(self.relation, {}, sql, self.observation_end)


@contextlib.contextmanager
def flags_at(con: duckdb.DuckDBPyConnection, observation_end: dt.date) -> Iterator[Flags]:
    """The flags at ``observation_end`` for the block: the mart where it holds at that day, else its query's rows
    in a temp table (a read-only connection makes one too), dropped when the block ends."""
    if flags_held(con, observation_end):
        yield Flags(f"select * from {MART_PATIENT_FLAGS}", observation_end)
        return
    sql, parameters = flags_query(observation_end)
    name = f"drg_etl_flags_{next(_TABLES)}"
    con.execute(f"create temp table {name} as {sql}", parameters)
    try:
        yield Flags(f"select * from {name}", observation_end)
    finally:
        with contextlib.suppress(duckdb.Error):  # never hide the block's own error
            con.execute(f"drop table if exists temp.{name}")


def flags_statement(con: duckdb.DuckDBPyConnection, sql: str, observation_end: dt.date,
            flags: Flags | None = None) -> tuple[str, dict[str, Any]]:
    """``sql`` with the flags at ``observation_end`` in front: ``flags``' where given, else ``with_flags``'."""
    return flags.with_flags(sql) if flags is not None else with_flags(con, sql, observation_end)
