"""One fact, one record: two records of a delivery that give the same fact (a device, a procedure, a score, a
complication with the same identity) are the same fact given twice, and only the first is kept.

Each canonical table declares its identity (:attr:`drg_etl.core.model.Table.identity`, the natural key of
its FHIR resource); a later record with the same patient and identity is a ``row.conflict`` finding and its
facts of that table leave the staged delivery, as with every within-delivery rule, so the FHIR layer never
builds one resource twice.
"""

from __future__ import annotations

import duckdb

from drg_etl.core.delivery import Delivery
from drg_etl.core.model import TABLES
from drg_etl.quality.delivery_rules import record_findings


def _findings_sql(table: str) -> str:
    """The records whose fact of ``table`` repeats an earlier fact's identity, as ``delivery_findings`` (the
    identifiers come from the model's declaration, the values are parameters)."""
    key = ", ".join(["patient_key", *(f'"{c}"' for c in TABLES[table].identity)])
    return f"""
        create or replace temp table delivery_findings as
        select source_file, source_row, patient_key, null::varchar as column_name, 'row.conflict' as rule_id,
               $what || ' given again: ' || first_value(source_file) over same || ' row '
                   || first_value(source_row) over same || ' gives the same (' || $named || '); only the first '
                   || 'is kept' as message
        from staging.pending_{table} where delivery_id = $id
        window same as (partition by {key} order by fact_seq)
        qualify row_number() over same > 1"""


def flag_repeated_facts(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str) -> int:
    """Flag the records that repeat an earlier fact's identity and drop their facts of that table; return how
    many (through the within-delivery rules' own mechanism, :func:`record_findings`)."""
    found = 0
    for table, model in TABLES.items():
        if model.identity:
            rows = con.execute(_findings_sql(table), {"id": delivery_id, "what": f"the {table[:-1]}",
                                                      "named": ", ".join(model.identity)}).fetchone()[0]
            found += record_findings(con, delivery, delivery_id, rows, [table])
    return found
