-- Within-delivery rule row.duplicate: a source record that repeats an earlier one of its file exactly
-- (records the readers already found in error aside). Delivery $id; findings into delivery_findings.
-- Only the records whose 64-bit hash another record of the file shares are compared by their text: sorting every
-- record's text (a million patients' rh records: 1.3 GB) took 32 s, the hash and its grouping a fifth of that.
create or replace temp table delivery_findings as
with errors as (
    select distinct file, "row" from staging.pending_issues where delivery_id = $id and severity = 'error'),
digests as materialized (
    select s.file, s."row", hash(s.record) as digest
    from staging.pending_source_records s anti join errors e using (file, "row") where s.delivery_id = $id),
candidates as (
    select file, "row" from digests
    semi join (select file, digest from digests group by all having count(*) > 1) using (file, digest)),
records as (
    select s.file, s."row", min(s."row") over (partition by s.file, s.record::varchar) as first
    from staging.pending_source_records s semi join candidates c using (file, "row") where s.delivery_id = $id)
select file as source_file, "row" as source_row, null::varchar as patient_key, null::varchar as column_name,
       'row.duplicate' as rule_id, 'repeats row ' || first || ' exactly' as message
from records where "row" <> first
