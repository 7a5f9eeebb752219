-- The temp table of the within-delivery rules, dropped after each rule.
drop table if exists delivery_findings
