-- The temp tables of the national rules, dropped when the flagging or the release is done.
drop table if exists rule_candidates;
drop table if exists counted_procedures;
drop table if exists rule_scope;
drop table if exists rule_findings;
drop table if exists follow_up_windows;
drop table if exists released;
