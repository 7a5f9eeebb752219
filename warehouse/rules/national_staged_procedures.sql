-- rule_candidates for flagging a procedures rule: the staged procedures of the deliveries being written ($targets).
create or replace temp table rule_candidates as
select * from staging.pending_procedures where list_contains($targets, delivery_id)
