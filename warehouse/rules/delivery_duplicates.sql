-- Within-delivery rule row.duplicate: a source record that repeats an earlier one of its file exactly
-- (records the readers already found in error aside). Delivery $id; findings into delivery_findings.
create or replace temp table delivery_findings as
with errors as (
    select distinct file, "row" from staging.pending_issues where delivery_id = $id and severity = 'error'),
records as (
    select s.file, s."row", min(s."row") over (partition by s.file, s.record::varchar) as first
    from staging.pending_source_records s anti join errors e using (file, "row") where s.delivery_id = $id)
select file as source_file, "row" as source_row, null::varchar as patient_key, null::varchar as column_name,
       'row.duplicate' as rule_id, 'repeats row ' || first || ' exactly' as message
from records where "row" <> first
