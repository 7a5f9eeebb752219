-- row.no_fact: a record of the staged delivery $id that gave no fact and broke no error rule (a patient
-- registered and not yet treated, a REDCap form marked complete but left empty). A finding on that record,
-- so that every record read is loaded or quarantined: counts reconcile by construction, never by failure.
insert into staging.pending_issues by name
select s.delivery_id, d.center, d.cutoff, s.file, s."row", null as resource_id, null as column_name, r.rule_id,
       r.severity, r.kahn_category, 'the record holds no fact to load (only who the patient is)' as message,
       null as patient_key
from staging.pending_source_records s
cross join (select $center as center, $cutoff::date as cutoff) d
join quality.rules r on r.rule_id = 'row.no_fact'
where s.delivery_id = $id
  and not exists (select 1 from staging.pending_contributed c
                  where c.delivery_id = s.delivery_id and c.file = s.file and c."row" = s."row")
  and not exists (select 1 from staging.pending_issues i
                  where i.delivery_id = s.delivery_id and i.file = s.file and i."row" = s."row"
                    and i.severity = 'error');
