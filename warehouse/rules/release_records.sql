-- The held records to release: those among rule_candidates the rule finds nothing in any more (rule_findings).
create or replace temp table released as
select c.delivery_id, c.source_file, c.source_row, min(c.rule_id) as rule_id
from rule_candidates c anti join rule_findings f using (delivery_id, source_file, source_row)
group by all
