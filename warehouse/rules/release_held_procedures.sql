-- rule_candidates for releasing: the procedures the rule $check holds back, of the deliveries in force.
create or replace temp table rule_candidates as
select h.* exclude (national_check), null::integer as fact_seq
from quality.held_procedures h join quality.deliveries d using (delivery_id)
where d.status = 'in_force' and h.national_check = $check
