-- rule_scope for releasing what the rule $check holds: each held record among rule_candidates (delivery_id,
-- source_file, source_row) is judged against its patient's procedures in force and its own held procedures, as it
-- was flagged: the procedures that would be in force then held its own facts too (a record with an explant before
-- its own implant stays held until an earlier implant arrives), but no other record's held facts count for it.
create or replace temp table rule_scope as
select r.delivery_id, r.source_file, r.source_row, c.procedure, c.date, c.end_date, c.trial_success
from (select distinct delivery_id, source_file, source_row, patient_key from rule_candidates) r
join canonical.current_procedures c using (patient_key)
union all
select h.delivery_id, h.source_file, h.source_row, h.procedure, h.date, h.end_date, h.trial_success
from quality.held_procedures h join quality.deliveries d using (delivery_id)
where d.status = 'in_force' and h.national_check = $check
