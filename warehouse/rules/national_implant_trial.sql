-- National rule implant_trial: an implant needs a successful trial, at any center, that ended by the implant.
-- Finds the implants among rule_candidates that break it, each record judged against its rule_scope (the
-- procedures that count for it): implant.without_trial when there is no successful trial in scope,
-- dates.out_of_order when the first one ended after the implant. Written once: quality/national.py flags what it
-- finds among the staged facts, quality/release.py releases a held record once it finds nothing among its held facts.
create or replace temp table rule_findings as
with trials as (
    select delivery_id, source_file, source_row, min(coalesce(end_date, date)) as ended from rule_scope
    where procedure = 'trial' and trial_success group by all)
select p.delivery_id, p.center, p.cutoff, p.source_file, p.source_row, p.patient_key,
       if(t.ended is null, 'procedure', 'date') as column_name,
       if(t.ended is null, 'implant.without_trial', 'dates.out_of_order') as rule_id,
       if(t.ended is null,
          'implant on ' || strftime(p.date, '%Y-%m-%d') || ' but no successful trial at any center',
          'implant on ' || strftime(p.date, '%Y-%m-%d') || ' before the successful trial ending '
              || strftime(t.ended, '%Y-%m-%d')) as message
from rule_candidates p left join trials t using (delivery_id, source_file, source_row)
where p.procedure = 'implant' and (t.ended is null or t.ended > p.date)
