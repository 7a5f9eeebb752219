-- National rule explant_implant: an explant is not dated before the patient's first implant at any center.
-- Finds the explants among rule_candidates that break it, each record judged against its rule_scope (the
-- procedures that count for it). An explant with no implant in scope is not found. Flags and releases alike
-- (see national_implant_trial.sql).
create or replace temp table rule_findings as
with first_implants as (
    select delivery_id, source_file, source_row, min(date) as first from rule_scope
    where procedure = 'implant' group by all)
select p.delivery_id, p.center, p.cutoff, p.source_file, p.source_row, p.patient_key, 'date' as column_name,
       'dates.out_of_order' as rule_id,
       'explant on ' || strftime(p.date, '%Y-%m-%d') || ' before the implant on ' || strftime(i.first, '%Y-%m-%d')
           as message
from rule_candidates p join first_implants i using (delivery_id, source_file, source_row)
where p.procedure = 'explant' and p.date < i.first
