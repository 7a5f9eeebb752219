"""Release what a national rule held back once later deliveries set it right, with an audit record.

A center's delivery may arrive before the one that justifies it (an implant at aauh whose
trial was at rh). The national rules quarantine such a record and hold its facts in
``quality.held_*``; after every write they are examined again against the deliveries in force,
and a record that now passes is released: its facts enter ``canonical.*``, its file's counts
move from quarantined to loaded, ``quality.releases`` records which delivery and load released
it and when, and its patient's FHIR resources are rebuilt.

A record passes when the very rule that held it (:mod:`drg_etl.quality.national`,
``warehouse/rules/national_<check>.sql``) finds nothing among its held facts any more: the
candidates are the held facts of the deliveries in force, each record judged against its
patient's procedures in force and its own held procedures (``warehouse/rules/release_scope.sql``).
Flagging and releasing are each other's inverse by construction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from drg_etl.core.sql import read_sql
from drg_etl.quality.national import DROP_TEMP_TABLES, NATIONAL_RULES, find_breaches, load_follow_up_windows


@dataclass(frozen=True)
class ReleaseStatements:
    """The SQL files that release a rule's held facts of one table; each names its table itself."""

    candidates: str  # rule_candidates: the held facts of the rule ($check), of the deliveries in force
    release: str  # the released records' facts into canonical.<table>
    unhold: str  # the released records' facts out of quality.held_<table> ($check)


RELEASE_STATEMENTS: dict[str, ReleaseStatements] = {
    "procedures": ReleaseStatements("rules/release_held_procedures.sql", "rules/release_procedures.sql",
                                    "rules/release_unhold_procedures.sql"),
    "measurements": ReleaseStatements("rules/release_held_measurements.sql", "rules/release_measurements.sql",
                                      "rules/release_unhold_measurements.sql"),
}
SCOPE = "rules/release_scope.sql"
RELEASED_RECORDS = "rules/release_records.sql"
MARK_DIRTY = "rules/release_mark_dirty.sql"
AUDIT = "rules/release_audit.sql"
MOVE_COUNTS = "rules/release_move_counts.sql"


def release_held(con: duckdb.DuckDBPyConnection, load_id: str, released_by: str) -> int:
    """Release the held records that the deliveries in force now justify; return how many (in the caller's
    transaction)."""
    load_follow_up_windows(con)
    total = 0
    for rule in NATIONAL_RULES:  # implants first: a released implant may release explants and follow-ups
        statements = RELEASE_STATEMENTS[rule.table]
        if not con.execute(read_sql(statements.candidates), {"check": rule.check}).fetchone()[0]:
            continue  # nothing held by this rule (a create ... as statement answers with its row count)
        con.execute(read_sql(SCOPE), {"check": rule.check})
        find_breaches(con, rule)
        if not (count := con.execute(read_sql(RELEASED_RECORDS)).fetchone()[0]):
            continue
        total += count
        con.execute(read_sql(statements.release))
        con.execute(read_sql(MARK_DIRTY))
        con.execute(read_sql(statements.unhold), {"check": rule.check})
        con.execute(read_sql(AUDIT), {"released_by": released_by, "load_id": load_id,
                                      "released_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)})
        con.execute(read_sql(MOVE_COUNTS))
    con.execute(read_sql(DROP_TEMP_TABLES))
    return total
