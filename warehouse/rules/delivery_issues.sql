-- A within-delivery rule's findings (delivery_findings) as pending issues of delivery $id ($center, $cutoff).
insert into staging.pending_issues by name
select $id as delivery_id, $center as center, $cutoff as cutoff, f.source_file as file, f.source_row as "row",
       null::varchar as resource_id, f.column_name, f.rule_id, r.severity, r.kahn_category, f.message, f.patient_key
from delivery_findings f join quality.rules r using (rule_id)
