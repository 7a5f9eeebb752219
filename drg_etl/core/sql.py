"""The warehouse's SQL files (``warehouse/`` in a checkout, ``drg_etl/_data/warehouse`` when installed).

SQL lives in ``.sql`` files and takes its values as DuckDB named parameters (``$name``), never
by formatting text into it: :func:`read_sql` returns a file's text, read once.
"""

from __future__ import annotations

import functools

from drg_etl.core.paths import SQL_DIR


@functools.cache
def read_sql(name: str) -> str:
    """The text of ``warehouse/<name>`` (e.g. ``"rules/implant_trial.sql"``); FileNotFoundError names the path."""
    return (SQL_DIR / name).read_text(encoding="utf-8")
