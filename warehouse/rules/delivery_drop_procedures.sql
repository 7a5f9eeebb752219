-- Drop the procedures of the records a within-delivery rule found (delivery_findings) in delivery $id.
delete from staging.pending_procedures t using delivery_findings f
where t.delivery_id = $id and t.source_file = f.source_file and t.source_row = f.source_row
