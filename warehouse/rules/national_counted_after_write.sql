-- counted_procedures for flagging: the procedures as they will be in force after the write. Per center the newest
-- staged delivery, if it is not older than the center's delivery in force (older staged deliveries are written as
-- superseded and justify nothing); a center with no such delivery keeps its delivery in force.
create or replace temp table counted_procedures as
with will_be_in_force as (
    select p.delivery_id, p.center from staging.pending_deliveries p
    where p.cutoff >= coalesce((select max(d.cutoff) from quality.deliveries d
                                where d.center = p.center and d.status = 'in_force'), date '0001-01-01')
    qualify row_number() over (partition by p.center order by p.cutoff desc) = 1)
select patient_key, procedure, date, end_date, trial_success from canonical.current_procedures
where center not in (select center from will_be_in_force)
union all
select patient_key, procedure, date, end_date, trial_success from staging.pending_procedures
where delivery_id in (select delivery_id from will_be_in_force)
