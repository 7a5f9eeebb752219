-- The warehouse's views over the tables declared in drg_etl/core/tables.py (created after them).

-- The deliveries in force: per center the newest written delivery. The one place that says what
-- "in force" means; canonical.current_* (drg_etl/core/model.py) and every reader of the deliveries
-- in force go through it.
create or replace view quality.deliveries_in_force as
    select * from quality.deliveries where status = 'in_force';

-- The quarantine without the records a later delivery released.
create or replace view quality.open_quarantine as
    select q.* from quality.quarantine q
    where not exists (select 1 from quality.releases r where r.delivery_id = q.delivery_id and r.file = q.file
                      and r."row" = q."row" and r.rule_id = q.rule_id);
