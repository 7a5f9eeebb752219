-- The released records' held measurements enter canonical.measurements.
insert into canonical.measurements by name
select c.* exclude (fact_seq, rule_id) from rule_candidates c semi join released r
    using (delivery_id, source_file, source_row)
