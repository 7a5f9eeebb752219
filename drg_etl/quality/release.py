"""Release what a national rule held back once later deliveries set it right, with an audit record.

A center's delivery may arrive before the one that justifies it (an implant at aauh whose
trial was at rh). The national rules quarantine such a record and hold its facts in
``quality.held_*``; after every write they are examined again against the deliveries in force,
and a record that now passes is released: its facts enter ``canonical.*``, its file's counts
move from quarantined to loaded, ``quality.releases`` records which delivery and load released
it and when, and its patient's FHIR resources are rebuilt.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from drg_etl.quality.national import window_values

IN_FORCE = "join quality.deliveries d using (delivery_id) where d.status = 'in_force'"
CHECKS: dict[str, tuple[str, str]] = {
    "implant_trial": ("procedures", f"""
        with trials as (
            select patient_key, min(coalesce(end_date, date)) as ended from canonical.current_procedures
            where procedure = 'trial' and trial_success group by patient_key)
        select distinct h.delivery_id, h.source_file, h.source_row, h.rule_id
        from quality.held_procedures h join trials t using (patient_key) {IN_FORCE}
          and h.national_check = 'implant_trial' and h.procedure = 'implant' and t.ended <= h.date"""),
    "explant_implant": ("procedures", f"""
        with firsts as (select patient_key, min(date) as first from canonical.current_procedures
                        where procedure = 'implant' group by patient_key)
        select distinct h.delivery_id, h.source_file, h.source_row, h.rule_id
        from quality.held_procedures h join firsts f using (patient_key) {IN_FORCE}
          and h.national_check = 'explant_implant' and h.procedure = 'explant' and h.date >= f.first"""),
    "followup_implant": ("measurements", f"""
        with firsts as (select patient_key, min(date) as first from canonical.current_procedures
                        where procedure = 'implant' group by patient_key),
        windows(timepoint, low, high) as (values {{windows}})
        select h.delivery_id, h.source_file, h.source_row, min(h.rule_id) as rule_id
        from quality.held_measurements h left join firsts f using (patient_key)
        left join windows w using (timepoint) {IN_FORCE} and h.national_check = 'followup_implant'
        group by all
        having bool_and(w.timepoint is null or (f.first is not null and h.date >= f.first + to_months(w.low)
                                                and h.date <= f.first + to_months(w.high)))"""),
}

MOVE_COUNTS = """
    with rows as (select distinct delivery_id, source_file as file, source_row as "row" from released),
    still as (
        select distinct q.delivery_id, q.file, q."row" from quality.quarantine q semi join rows r
            using (delivery_id, file, "row")
        where q.severity = 'error' and not exists (
            select 1 from quality.releases x where x.delivery_id = q.delivery_id and x.file = q.file
              and x."row" = q."row" and x.rule_id = q.rule_id)),
    moved as (select delivery_id, file, count(*) as n from rows anti join still using (delivery_id, file, "row")
              group by all)
    update quality.delivery_files f set rows_loaded = f.rows_loaded + m.n, rows_quarantined = f.rows_quarantined - m.n
    from moved m where f.delivery_id = m.delivery_id and f.file = m.file"""


def release_held(con: duckdb.DuckDBPyConnection, load_id: str, released_by: str) -> int:
    """Release the held records that the deliveries in force now justify; return how many (in the caller's
    transaction)."""
    total = 0
    for check, (table, sql) in CHECKS.items():  # implants first: a released implant may release follow-ups
        con.execute(f"create or replace temp table released as {sql.replace('{windows}', window_values())}")
        if not (count := con.execute("select count(*) from released").fetchone()[0]):
            continue
        total += count
        held = (f"from quality.held_{table} h semi join released r using (delivery_id, source_file, source_row) "
                "where h.national_check = ?")
        con.execute(f"insert into canonical.{table} by name select h.* exclude (national_check, rule_id) {held}",
                    [check])
        con.execute(f"insert or ignore into staging.fhir_dirty select distinct h.patient_key {held}", [check])
        con.execute(f"""delete from quality.held_{table} h using released r
                        where h.national_check = ? and h.delivery_id = r.delivery_id
                          and h.source_file = r.source_file and h.source_row = r.source_row""", [check])
        con.execute("insert into quality.releases select delivery_id, source_file, source_row, rule_id, ?, ?, ? "
                    "from released", [released_by, load_id, dt.datetime.now(dt.UTC).replace(tzinfo=None)])
        con.execute(MOVE_COUNTS)
    con.execute("drop table if exists released")
    return total
