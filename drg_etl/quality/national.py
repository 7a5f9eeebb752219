"""National rules, as SQL over the staged deliveries and the deliveries in force.

Some rules need every center: an implant needs a successful trial somewhere (often at
another center), an explant and the follow-ups are dated against the first implant anywhere.
They run set-based in DuckDB over the *universe*: the procedures as they will be in force
after the write (each center's newest staged delivery where it supersedes, else the delivery in
force). Findings are raised only on the
staged deliveries being written. As in the readers, a record is blamed for the first thing
wrong with it: a flagged record's facts of that table are dropped before the next rule runs.
"""

from __future__ import annotations

import duckdb

from drg_etl.core.dates import FOLLOW_UP_WINDOWS

_COLUMNS = "patient_key, procedure, date, end_date, trial_success"
# The staged deliveries that will be in force after the write: per center the newest, if it is not
# older than the center's delivery in force. Older staged deliveries are written as superseded and
# justify nothing; a center with none of these keeps its delivery in force in the universe.
WILL_BE_IN_FORCE = """
    select p.delivery_id, p.center from staging.pending_deliveries p
    where p.cutoff >= coalesce((select max(d.cutoff) from quality.deliveries d
                                where d.center = p.center and d.status = 'in_force'), date '0001-01-01')
    qualify row_number() over (partition by p.center order by p.cutoff desc) = 1"""
UNIVERSE = f"""
    select {_COLUMNS} from canonical.current_procedures
    where center not in (select center from ({WILL_BE_IN_FORCE}))
    union all select {_COLUMNS} from staging.pending_procedures
    where delivery_id in (select delivery_id from ({WILL_BE_IN_FORCE}))"""
_ISO = "strftime({}, '%Y-%m-%d')"

IMPLANTS_WITHOUT_TRIAL = f"""
    with trials as (
        select patient_key, min(coalesce(end_date, date)) as ended from ({UNIVERSE})
        where procedure = 'trial' and trial_success group by patient_key)
    select p.delivery_id, p.center, p.cutoff, p.source_file, p.source_row, p.patient_key,
           if(t.ended is null, 'procedure', 'date') as column_name,
           if(t.ended is null, 'implant.without_trial', 'dates.out_of_order') as rule_id,
           if(t.ended is null,
              'implant on ' || {_ISO.format('p.date')} || ' but no successful trial at any center',
              'implant on ' || {_ISO.format('p.date')} || ' before the successful trial ending '
                  || {_ISO.format('t.ended')}) as message
    from staging.pending_procedures p left join trials t using (patient_key)
    where list_contains($targets, p.delivery_id) and p.procedure = 'implant'
      and (t.ended is null or t.ended > p.date)"""

FIRST_IMPLANTS = f"""
    create or replace temp table first_implants as
    select patient_key, min(date) as first from ({UNIVERSE}) where procedure = 'implant' group by patient_key"""

EXPLANTS_BEFORE_IMPLANT = f"""
    select p.delivery_id, p.center, p.cutoff, p.source_file, p.source_row, p.patient_key, 'date' as column_name,
           'dates.out_of_order' as rule_id,
           'explant on ' || {_ISO.format('p.date')} || ' before the implant on ' || {_ISO.format('i.first')}
               as message
    from staging.pending_procedures p join first_implants i using (patient_key)
    where list_contains($targets, p.delivery_id) and p.procedure = 'explant' and p.date < i.first"""

FOLLOW_UPS_OUT_OF_PLACE = f"""
    with windows(timepoint, low, high) as (values {{windows}}),
    judged as (
        select m.delivery_id, m.center, m.cutoff, m.source_file, m.source_row, m.patient_key, m.fact_seq,
               'date' as column_name,
               case when i.first is null or m.date < i.first then 'dates.out_of_order'
                    when m.date < i.first + to_months(w.low) or m.date > i.first + to_months(w.high)
                        then 'followup.outside_window' end as rule_id,
               case when i.first is null or m.date < i.first
                        then m.timepoint || ' follow-up on ' || {_ISO.format('m.date')} || ' before the implant ('
                             || coalesce({_ISO.format('i.first')}, 'none') || ')'
                    else m.timepoint || ' follow-up on ' || {_ISO.format('m.date')}
                         || ' is outside its window after the implant on ' || {_ISO.format('i.first')} end as message
        from staging.pending_measurements m join windows w using (timepoint)
        left join first_implants i using (patient_key)
        where list_contains($targets, m.delivery_id))
    select * exclude (fact_seq) from judged where rule_id is not null
    qualify row_number() over (partition by delivery_id, source_file, source_row order by fact_seq) = 1"""


def window_values() -> str:
    """The follow-up windows (analysis.md, drg_etl/core/dates.py) as SQL ``values`` rows."""
    return ", ".join(f"('{tp}', {low}, {high})" for tp, (low, high) in FOLLOW_UP_WINDOWS.items())


def _flag(con: duckdb.DuckDBPyConnection, findings_sql: str, table: str, targets: list[str], check: str) -> int:
    """Quarantine the records a rule finds and hold back their facts of ``table``; return how many.

    Held facts (``staging.pending_held_*``, then ``quality.held_*``) are re-examined when later
    deliveries arrive (drg_etl/quality/release.py): the trial may come from another center.
    """
    con.execute(f"create or replace temp table flagged as {findings_sql}", {"targets": targets})
    con.execute(f"""
        insert into staging.pending_held_{table} by name
        select t.* exclude (fact_seq), $check as national_check, f.rule_id
        from staging.pending_{table} t
        join (select delivery_id, source_file, source_row, min(rule_id) as rule_id from flagged group by all) f
          on t.delivery_id = f.delivery_id and t.source_file = f.source_file and t.source_row = f.source_row""",
                {"check": check})
    con.execute("""
        insert into staging.pending_issues
        select f.delivery_id, f.center, f.cutoff, f.source_file, f.source_row, null, f.column_name, f.rule_id,
               r.severity, r.kahn_category, f.message, f.patient_key
        from flagged f join quality.rules r using (rule_id)""")
    con.execute(f"""
        delete from staging.pending_{table} t using flagged f
        where t.delivery_id = f.delivery_id and t.source_file = f.source_file and t.source_row = f.source_row""")
    return con.execute("select count(*) from flagged").fetchone()[0]


def check_national(con: duckdb.DuckDBPyConnection, targets: list[str]) -> int:
    """Run the national rules on the staged deliveries ``targets`` (delivery ids); return the findings."""
    if not targets:
        return 0
    windows = window_values()
    found = _flag(con, IMPLANTS_WITHOUT_TRIAL, "procedures", targets, "implant_trial")
    con.execute(FIRST_IMPLANTS)
    found += _flag(con, EXPLANTS_BEFORE_IMPLANT, "procedures", targets, "explant_implant")
    found += _flag(con, FOLLOW_UPS_OUT_OF_PLACE.replace("{windows}", windows), "measurements", targets,
                   "followup_implant")
    con.execute("drop table if exists flagged")
    con.execute("drop table if exists first_implants")
    return found
