-- The released records' held procedures enter canonical.procedures.
insert into canonical.procedures by name
select c.* exclude (fact_seq, rule_id) from rule_candidates c semi join released r
    using (delivery_id, source_file, source_row)
