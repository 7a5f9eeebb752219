-- Drop the procedures of the records a national rule found (rule_findings) before the next rule runs.
delete from staging.pending_procedures t using rule_findings f
where t.delivery_id = f.delivery_id and t.source_file = f.source_file and t.source_row = f.source_row
