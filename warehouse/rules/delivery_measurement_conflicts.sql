-- Within-delivery rule row.conflict for measurements: a measure at a timepoint given differently by two records
-- (a record blamed once, for its first such fact). Delivery $id; findings into delivery_findings.
create or replace temp table delivery_findings as
with m as (select * from staging.pending_measurements where delivery_id = $id and timepoint is not null),
disputed as (
    select patient_key, timepoint, measure from m group by all having count(distinct (date, value)) > 1)
select source_file, source_row, patient_key, null::varchar as column_name, 'row.conflict' as rule_id,
       measure || ' at ' || timepoint || ' is given differently by another record' as message
from m semi join disputed using (patient_key, timepoint, measure)
qualify row_number() over (partition by source_file, source_row order by fact_seq) = 1
