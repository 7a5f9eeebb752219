"""A FHIR worker's process: tied to its load first, then it builds batches of patients' resources on request.

``python -m drg_etl.fhir.worker SOURCES OUT [--strict]`` (started by :mod:`drg_etl.fhir.pool`). SOURCES is a
DuckDB file holding key-sorted copies of the canonical tables (``src_<table>``); it is opened read-only. Each line
on stdin is a task, ``{"n": 3, "first": KEY, "last": KEY}``; the worker builds those patients' resources in SQL and
validates every one (:func:`drg_etl.fhir.sql_build.built_table`), writes them to ``OUT/<n>.parquet``
(:func:`drg_etl.fhir.batch.write_table`) and answers one line on stdout:
``{"n": 3, "resources": ..}``, or ``{"n": 3, "error": "..."}``. It ends when stdin closes.
Nothing but paths, keys and counts crosses.
"""

from __future__ import annotations

import json
import os
import sys

from drg_etl.core.process import die_with_parent

SOURCE_PREFIX = "src"  # the SOURCES file's tables: src_<table>


def serve(sources: str, out: str, strict: bool) -> None:
    """Answer tasks from stdin until it closes (imports here: after the tie to the load)."""
    from pathlib import Path

    import duckdb

    from drg_etl.fhir.batch import Validator, write_table
    from drg_etl.fhir.sql_build import built_table
    from drg_etl.fhir.validate import InvalidResource

    validate = Validator(strict)
    con: duckdb.DuckDBPyConnection | None = None
    for line in sys.stdin:
        task = json.loads(line)
        reply: dict[str, object] = {"n": task["n"]}
        try:
            if con is None:
                con = duckdb.connect(sources, read_only=True, config={"memory_limit": "256MB", "threads": 1})
            table = built_table(con, SOURCE_PREFIX, task["first"], task["last"], validate)
            write_table(Path(out) / f"{task['n']}.parquet", table)
            reply.update(resources=table.num_rows)
        except InvalidResource as exc:
            reply.update(error=str(exc), invalid=[exc.resource_type, exc.resource_id, exc.errors])
        except Exception as exc:  # reported to the load, which stops with it
            reply.update(error=f"{type(exc).__name__}: {exc}")
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    die_with_parent()
    serve(sys.argv[1], sys.argv[2], "--strict" in sys.argv[3:])
    # Every answer is written and flushed, the source file opened read-only: the worker ends without the
    # interpreter's teardown (0.2 s the load would wait for).
    os._exit(0)
