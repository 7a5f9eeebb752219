-- Within-delivery rule row.conflict for demographics: the records of one patient disagree on pain location or
-- diagnosis. Delivery $id; findings into delivery_findings.
create or replace temp table delivery_findings as
with p as (select * from staging.pending_patients where delivery_id = $id),
conflicted as (
    select patient_key from p group by patient_key having count(distinct (pain_location, diagnosis)) > 1)
select p.source_file, p.source_row, p.patient_key, null::varchar as column_name, 'row.conflict' as rule_id,
       'demographics disagree with '
       || array_to_string(list_sort(list_distinct(list('row ' || q.source_row))), ', ')
       || ' of the same patient' as message
from p semi join conflicted c using (patient_key)
join p q on q.patient_key = p.patient_key and q.fact_seq <> p.fact_seq
group by p.source_file, p.source_row, p.patient_key, p.fact_seq
