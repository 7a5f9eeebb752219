"""National rules, as SQL over the staged deliveries and the deliveries in force.

Some rules need every center: an implant needs a successful trial somewhere (often at
another center), an explant and the follow-ups are dated against the first implant anywhere.
Each rule is written once, in ``warehouse/rules/national_<check>.sql``: it finds the facts among
the temp table ``rule_candidates`` that break it, each record judged against its ``rule_scope``
(the procedures that count for it), into ``rule_findings``. Here it flags: the candidates are the
staged facts of the deliveries being written, judged against their patient's procedures in the
*universe*, the procedures as they will be in force after the write (each center's newest staged
delivery where it supersedes, else the delivery in force). :mod:`drg_etl.quality.release` runs
the same rules over the held facts to release them.
As in the readers, a record is blamed for the first thing wrong with it: a flagged record's
facts of that table are dropped before the next rule runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from drg_etl.core.dates import FOLLOW_UP_WINDOWS
from drg_etl.core.sql import read_sql


@dataclass(frozen=True)
class NationalRule:
    """A national rule: the check its held facts carry, the table of the facts it judges, its SQL file, and the
    one kind of procedure its SQL reads from ``rule_scope`` (the scope a flagging builds holds only those: at a
    million patients every follow-up record paired with all its patient's procedures outgrows memory)."""

    check: str
    table: str
    sql_file: str
    scope_procedure: str


IMPLANT_TRIAL = NationalRule("implant_trial", "procedures", "rules/national_implant_trial.sql", "trial")
EXPLANT_IMPLANT = NationalRule("explant_implant", "procedures", "rules/national_explant_implant.sql", "implant")
FOLLOWUP_IMPLANT = NationalRule("followup_implant", "measurements", "rules/national_followup_implant.sql", "implant")
# In this order: a flagged implant does not date explants and follow-ups; a released one may release them.
NATIONAL_RULES: tuple[NationalRule, ...] = (IMPLANT_TRIAL, EXPLANT_IMPLANT, FOLLOWUP_IMPLANT)


@dataclass(frozen=True)
class FlagStatements:
    """The SQL files that flag a rule's findings among one table's staged facts; each names its table itself."""

    candidates: str  # rule_candidates: the staged facts of the deliveries being written ($targets)
    hold: str  # the found records' facts into staging.pending_held_<table> ($check)
    drop: str  # the found records' facts out of staging.pending_<table>


FLAG_STATEMENTS: dict[str, FlagStatements] = {
    "procedures": FlagStatements("rules/national_staged_procedures.sql", "rules/national_hold_procedures.sql",
                                 "rules/national_drop_procedures.sql"),
    "measurements": FlagStatements("rules/national_staged_measurements.sql", "rules/national_hold_measurements.sql",
                                   "rules/national_drop_measurements.sql"),
}
COUNTED_AFTER_WRITE = "rules/national_counted_after_write.sql"  # counted_procedures: the universe
SCOPE = "rules/national_scope.sql"  # rule_scope: the candidates' patients' procedures in counted_procedures
ISSUES = "rules/national_issues.sql"
DROP_TEMP_TABLES = "rules/national_drop_temp.sql"


def load_follow_up_windows(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the temp table ``follow_up_windows`` from FOLLOW_UP_WINDOWS (analysis.md, drg_etl/core/dates.py)."""
    windows = [{"timepoint": timepoint, "low": low, "high": high}
               for timepoint, (low, high) in FOLLOW_UP_WINDOWS.items()]
    con.execute(read_sql("rules/follow_up_windows.sql"), {"windows": windows})


def find_breaches(con: duckdb.DuckDBPyConnection, rule: NationalRule) -> int:
    """Run ``rule`` over ``rule_candidates``, each record against its ``rule_scope``; its findings go to the
    temp table ``rule_findings`` (``follow_up_windows`` must be filled). Return how many (a ``create ... as`` statement
    answers with its row count)."""
    return con.execute(read_sql(rule.sql_file)).fetchone()[0]


def _flag(con: duckdb.DuckDBPyConnection, rule: NationalRule, targets: list[str]) -> int:
    """Quarantine the records of ``targets`` that ``rule`` finds and hold back their facts; return the findings.

    Held facts (``staging.pending_held_*``, then ``quality.held_*``) are re-examined when later
    deliveries arrive (drg_etl/quality/release.py): the trial may come from another center.
    """
    statements = FLAG_STATEMENTS[rule.table]
    con.execute(read_sql(statements.candidates), {"targets": targets})
    con.execute(read_sql(SCOPE), {"procedure": rule.scope_procedure})
    if not (found := find_breaches(con, rule)):
        return 0
    con.execute(read_sql(statements.hold), {"check": rule.check})
    con.execute(read_sql(ISSUES))
    con.execute(read_sql(statements.drop))
    return found


def apply_national_rules(con: duckdb.DuckDBPyConnection, targets: list[str]) -> int:
    """Run the national rules on the staged deliveries ``targets`` (delivery ids); return the findings."""
    if not targets:
        return 0
    load_follow_up_windows(con)
    con.execute(read_sql(COUNTED_AFTER_WRITE))
    found = _flag(con, IMPLANT_TRIAL, targets)
    # The first implants count only the implants the implant rule let through; explants and follow-ups are
    # both dated against the same ones.
    con.execute(read_sql(COUNTED_AFTER_WRITE))
    found += _flag(con, EXPLANT_IMPLANT, targets)
    found += _flag(con, FOLLOWUP_IMPLANT, targets)
    con.execute(read_sql(DROP_TEMP_TABLES))
    return found
