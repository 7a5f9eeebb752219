-- A national rule's findings (rule_findings) as pending issues of the deliveries being written.
insert into staging.pending_issues by name
select f.delivery_id, f.center, f.cutoff, f.source_file as file, f.source_row as "row", null::varchar as resource_id,
       f.column_name, f.rule_id, r.severity, r.kahn_category, f.message, f.patient_key
from rule_findings f join quality.rules r using (rule_id)
