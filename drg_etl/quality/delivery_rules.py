"""Cross-row rules within one delivery, as SQL over its staged facts (national rules: quality/national.py).

Rules run in order, each over what the earlier ones let through, so a record is blamed for
the first thing wrong with it: row-level rules in the readers, then exact duplicates, then
conflicts, then missing demographics, then the canonical schemas, then (when the delivery is
written) the national rules. A flagged record's issue goes to ``staging.pending_issues`` and
its facts leave ``staging.pending_*``. Each rule is a file ``warehouse/rules/delivery_<rule>.sql``
that puts its findings into the temp table ``delivery_findings``.
"""

from __future__ import annotations

import duckdb

from drg_etl.core.delivery import Delivery
from drg_etl.core.formats import FORMATS
from drg_etl.core.model import CANONICAL_TABLES
from drg_etl.core.sql import read_sql

DUPLICATES = "rules/delivery_duplicates.sql"
PATIENT_CONFLICTS = "rules/delivery_patient_conflicts.sql"
FIRST_DEMOGRAPHICS = "rules/delivery_first_demographics.sql"
MEASUREMENT_CONFLICTS = "rules/delivery_measurement_conflicts.sql"
NO_DEMOGRAPHICS = "rules/delivery_no_demographics.sql"  # names every table but patients, in the model's order
ISSUES = "rules/delivery_issues.sql"
DROP_TEMP_TABLE = "rules/delivery_drop_temp.sql"
# One file per table: a statement names its table itself.
DROP_FLAGGED: dict[str, str] = {
    "patients": "rules/delivery_drop_patients.sql",
    "procedures": "rules/delivery_drop_procedures.sql",
    "devices": "rules/delivery_drop_devices.sql",
    "measurements": "rules/delivery_drop_measurements.sql",
    "complications": "rules/delivery_drop_complications.sql",
}


def flag(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str, findings_file: str,
         tables: list[str], **params: object) -> int:
    """Record the findings of a rule (its SQL file, taking ``$id`` and ``params``) as pending issues and drop the
    flagged records' facts from ``tables``; return how many."""
    found = con.execute(read_sql(findings_file), {"id": delivery_id, **params}).fetchone()[0]  # create ... as: rows
    return record_findings(con, delivery, delivery_id, found, tables)


def record_findings(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str, found: int,
                    tables: list[str]) -> int:
    """The findings a rule put in ``delivery_findings`` (``found`` of them) as pending issues, the flagged records'
    facts dropped from ``tables``; return ``found``."""
    if not found:
        con.execute(read_sql(DROP_TEMP_TABLE))
        return 0
    con.execute(read_sql(ISSUES), {"id": delivery_id, "center": delivery.center, "cutoff": delivery.cutoff})
    for table in tables:
        con.execute(read_sql(DROP_FLAGGED[table]), {"id": delivery_id})
    con.execute(read_sql(DROP_TEMP_TABLE))
    return found


def apply_delivery_rules(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str) -> int:
    """Run the within-delivery rules on a staged delivery; return how many records they flagged."""
    found = flag(con, delivery, delivery_id, DUPLICATES, list(CANONICAL_TABLES))
    found += flag(con, delivery, delivery_id, PATIENT_CONFLICTS, list(CANONICAL_TABLES))
    con.execute(read_sql(FIRST_DEMOGRAPHICS), {"id": delivery_id})
    found += flag(con, delivery, delivery_id, MEASUREMENT_CONFLICTS, ["measurements"])
    found += flag(con, delivery, delivery_id, NO_DEMOGRAPHICS, list(CANONICAL_TABLES),
                  patient_column=FORMATS[delivery.center].patient_column)
    return found
