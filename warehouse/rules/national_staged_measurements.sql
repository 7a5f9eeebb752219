-- rule_candidates for flagging a measurements rule: the staged measurements of the deliveries being written ($targets).
create or replace temp table rule_candidates as
select * from staging.pending_measurements where list_contains($targets, delivery_id)
