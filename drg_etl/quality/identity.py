"""One fact, one record: two records of a delivery that give the same fact (a device, a procedure, a score, a
complication with the same identity) are the same fact given twice, and only the first is kept.

Each canonical table declares its identity (:attr:`drg_etl.core.model.Table.identity`, the natural key of
its FHIR resource); a later record with the same patient and identity is a ``row.conflict`` finding and its
fact of that table leaves the staged delivery, so the FHIR layer never builds one resource twice.
"""

from __future__ import annotations

import duckdb

from drg_etl.core.delivery import Delivery
from drg_etl.core.model import TABLES


def _findings_sql(table: str) -> str:
    """The later facts of ``table`` that repeat an earlier fact's identity (identifiers from the declaration)."""
    model = TABLES[table]
    key = ", ".join(["patient_key", *(f'"{c}"' for c in model.identity)])
    named = ", ".join(model.identity)
    return f"""
        select source_file, source_row, patient_key, fact_seq,
               first_value(source_file) over same as first_file, first_value(source_row) over same as first_row
        from staging.pending_{table} where delivery_id = $id
        window same as (partition by {key} order by fact_seq)
        qualify row_number() over same > 1
    """, named


FLAG = """
    insert into staging.pending_issues by name
    select $id as delivery_id, $center as center, $cutoff as cutoff, f.source_file as file, f.source_row as "row",
           f.patient_key, r.rule_id, r.severity, r.kahn_category,
           $what || ' given again: ' || f.first_file || ' row ' || f.first_row
               || ' gives the same (' || $named || '); only the first is kept' as message
    from same_fact f join quality.rules r on r.rule_id = 'row.conflict'"""


def flag_repeated_facts(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str) -> int:
    """Flag and drop every staged fact that repeats an earlier one's identity; return how many."""
    found = 0
    for table, model in TABLES.items():
        if not model.identity:
            continue
        sql, named = _findings_sql(table)
        con.execute(f"create or replace temp table same_fact as {sql}", {"id": delivery_id})
        count = con.execute("select count(*) from same_fact").fetchone()[0]
        if count:
            con.execute(FLAG, {"id": delivery_id, "center": delivery.center, "cutoff": delivery.cutoff,
                               "what": f"the {table[:-1]}", "named": named})
            con.execute(f"delete from staging.pending_{table} t using same_fact f where t.delivery_id = $id "
                        "and t.fact_seq = f.fact_seq", {"id": delivery_id})
            found += count
        con.execute("drop table same_fact")
    return found
