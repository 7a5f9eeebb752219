-- marts.quality_by_rule: records quarantined per center and rule among the deliveries in force.
select q.center, q.rule_id, q.severity, q.kahn_category, count(*) as records
from quality.quarantine q semi join quality.deliveries_in_force using (delivery_id)
group by all
