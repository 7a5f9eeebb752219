-- rule_scope for flagging: each record among rule_candidates (delivery_id, source_file, source_row) is judged
-- against its patient's procedures as they will be in force after the write (counted_procedures), of the one kind
-- ($procedure) the rule reads.
create or replace temp table rule_scope as
select r.delivery_id, r.source_file, r.source_row, c.procedure, c.date, c.end_date, c.trial_success
from (select distinct delivery_id, source_file, source_row, patient_key from rule_candidates) r
join counted_procedures c using (patient_key)
where c.procedure = $procedure
