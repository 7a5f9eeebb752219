-- The released records' patients: their FHIR resources are rebuilt.
insert or ignore into staging.fhir_dirty
select distinct c.patient_key from rule_candidates c semi join released r using (delivery_id, source_file, source_row)
