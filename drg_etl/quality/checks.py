"""Cross-row rules within one delivery, as SQL over its staged facts (national rules: quality/national.py).

Rules run in order, each over what the earlier ones let through, so a record is blamed for
the first thing wrong with it: row-level rules in the readers, then exact duplicates, then
conflicts, then missing demographics, then the canonical schemas, then (when the delivery is
written) the national rules. A flagged record's issue goes to ``staging.pending_issues`` and
its facts leave ``staging.pending_*``.
"""

from __future__ import annotations

import duckdb

from drg_etl.core.delivery import Delivery
from drg_etl.core.model import CANONICAL_TABLES

OTHER_TABLES = [t for t in CANONICAL_TABLES if t != "patients"]

DUPLICATES = """
    with errors as (
        select distinct file, "row" from staging.pending_issues where delivery_id = $id and severity = 'error'),
    records as (
        select s.file, s."row", min(s."row") over (partition by s.file, s.record::varchar) as first
        from staging.pending_source_records s anti join errors e using (file, "row") where s.delivery_id = $id)
    select file as source_file, "row" as source_row, null::varchar as patient_key, null::varchar as column_name,
           'row.duplicate' as rule_id, 'repeats row ' || first || ' exactly' as message
    from records where "row" <> first"""

PATIENT_CONFLICTS = """
    with p as (select * from staging.pending_patients where delivery_id = $id),
    conflicted as (
        select patient_key from p group by patient_key having count(distinct (pain_location, diagnosis)) > 1)
    select p.source_file, p.source_row, p.patient_key, null::varchar as column_name, 'row.conflict' as rule_id,
           'demographics disagree with '
           || array_to_string(list_sort(list_distinct(list('row ' || q.source_row))), ', ')
           || ' of the same patient' as message
    from p semi join conflicted c using (patient_key)
    join p q on q.patient_key = p.patient_key and q.fact_seq <> p.fact_seq
    group by p.source_file, p.source_row, p.patient_key, p.fact_seq"""

MEASUREMENT_CONFLICTS = """
    with m as (select * from staging.pending_measurements where delivery_id = $id and timepoint is not null),
    disputed as (
        select patient_key, timepoint, measure from m group by all having count(distinct (date, value)) > 1)
    select source_file, source_row, patient_key, null::varchar as column_name, 'row.conflict' as rule_id,
           measure || ' at ' || timepoint || ' is given differently by another record' as message
    from m semi join disputed using (patient_key, timepoint, measure)
    qualify row_number() over (partition by source_file, source_row order by fact_seq) = 1"""

NO_DEMOGRAPHICS = """
    with known as (select distinct patient_key from staging.pending_patients where delivery_id = $id),
    facts as ({facts})
    select source_file, source_row, patient_key, 'CPR' as column_name, 'patient.no_demographics' as rule_id,
           'the delivery has no demographics record of this patient' as message
    from facts anti join known using (patient_key)
    qualify row_number() over (partition by source_file, source_row order by table_order, fact_seq) = 1"""


def flag(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str, findings_sql: str,
         tables: list[str]) -> int:
    """Record a rule's findings as pending issues and drop the flagged records' facts from ``tables``."""
    con.execute(f"create or replace temp table flagged as {findings_sql}", {"id": delivery_id})
    con.execute("""
        insert into staging.pending_issues
        select $id, $center, $cutoff, f.source_file, f.source_row, null, f.column_name, f.rule_id,
               r.severity, r.kahn_category, f.message, f.patient_key
        from flagged f join quality.rules r using (rule_id)""",
                {"id": delivery_id, "center": delivery.center, "cutoff": delivery.cutoff})
    for table in tables:
        con.execute(f"""delete from staging.pending_{table} t using flagged f
                        where t.delivery_id = $id and t.source_file = f.source_file
                          and t.source_row = f.source_row""", {"id": delivery_id})
    found = con.execute("select count(*) from flagged").fetchone()[0]
    con.execute("drop table flagged")
    return found


def check_delivery(con: duckdb.DuckDBPyConnection, delivery: Delivery, delivery_id: str) -> int:
    """Run the within-delivery rules on a staged delivery; return how many records they flagged."""
    facts = " union all ".join(
        f"select source_file, source_row, patient_key, {n} as table_order, fact_seq from staging.pending_{t} "
        "where delivery_id = $id" for n, t in enumerate(OTHER_TABLES))
    found = flag(con, delivery, delivery_id, DUPLICATES, list(CANONICAL_TABLES))
    found += flag(con, delivery, delivery_id, PATIENT_CONFLICTS, list(CANONICAL_TABLES))
    con.execute("""delete from staging.pending_patients where delivery_id = $id and fact_seq not in (
                       select min(fact_seq) from staging.pending_patients where delivery_id = $id
                       group by patient_key)""", {"id": delivery_id})
    found += flag(con, delivery, delivery_id, MEASUREMENT_CONFLICTS, ["measurements"])
    found += flag(con, delivery, delivery_id, NO_DEMOGRAPHICS.format(facts=facts), list(CANONICAL_TABLES))
    return found
