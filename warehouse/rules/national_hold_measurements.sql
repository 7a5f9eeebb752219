-- Hold back every measurement of a record the rule $check found (rule_findings), blamed for its first finding.
insert into staging.pending_held_measurements by name
select t.* exclude (fact_seq), $check as national_check, f.rule_id
from staging.pending_measurements t
join (select delivery_id, source_file, source_row, min(rule_id) as rule_id from rule_findings group by all) f
  on t.delivery_id = f.delivery_id and t.source_file = f.source_file and t.source_row = f.source_row
