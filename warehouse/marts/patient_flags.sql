-- marts.patient_flags: one row per trial patient with the flags of analysis.md at $observation_end,
-- read from the FHIR layer's flat tables only. The study window ($study_start, $study_end), the
-- lead-defect complication types ($defect_types) and the lead statuses ($faulty_statuses,
-- $removed_statuses) are the Python constants (drg_etl/core/dates.py, vocabulary.py), bound by
-- drg_etl/pipeline/marts.py.
with
params as (
    select cast($observation_end as date) as obs_end, cast($study_start as date) as study_start,
           cast($study_end as date) as study_end
),
trials as (
    select p.patient_id, p.date, p.center
    from fhir.procedure_flat p, params
    where p.procedure = 'trial' and p.date between params.study_start and params.study_end
),
trial_patients as (
    select patient_id, min(date) as first_trial, arg_min(center, (date, center)) as trial_center
    from trials group by patient_id
),
implanted as (
    select p.patient_id, min(p.date) as first_implant, arg_min(p.center, (p.date, p.center)) as implant_center
    from fhir.procedure_flat p join trial_patients using (patient_id), params
    where p.procedure = 'implant' and p.date between params.study_start and params.study_end
    group by p.patient_id
),
explanted as (
    select p.patient_id, min(p.date) as first_explant
    from fhir.procedure_flat p, params
    where p.procedure = 'explant' and p.date <= params.obs_end
    group by p.patient_id
),
leads as (
    select d.*
    from fhir.device_flat d, params
    where d.device_type = 'lead' and d.placed_date <= params.obs_end
),
lead_state as (
    select
        l.*,
        case
            when list_contains($removed_statuses, l.status)
                 and coalesce(l.status_date, l.placed_date) <= params.obs_end then 'removed'
            when list_contains($faulty_statuses, l.status)
                 and coalesce(l.status_date, l.placed_date) <= params.obs_end then 'faulty'
            else 'working'
        end as state
    from leads l, params
),
-- A faulty lead counts against the system unless a lead was placed later at its level and side.
unrepaired as (
    select distinct f.patient_id
    from lead_state f
    where f.state = 'faulty'
      and not exists (
          select 1 from leads r
          where r.patient_id = f.patient_id and r.level = f.level and r.side = f.side
            and r.placed_date > coalesce(f.status_date, f.placed_date)
      )
),
complications as (
    select c.* from fhir.complication_flat c, params where c.date <= params.obs_end
),
pain as (
    select patient_id, min(pain_location) as pain_location from fhir.pain_condition_flat group by patient_id
)
select
    t.patient_id,
    params.obs_end                                                      as observation_end,
    t.first_trial,
    t.trial_center,
    pain.pain_location,
    i.first_implant,
    i.implant_center,
    e.first_explant,
    i.patient_id is not null                                            as implanted,
    i.patient_id is not null and e.patient_id is null                   as still_implanted,
    i.patient_id is not null and e.patient_id is null and u.patient_id is null as fully_functional,
    i.patient_id is not null and exists (
        select 1 from complications c
        where c.patient_id = t.patient_id and list_contains($defect_types, c.complication)
    )                                                                   as lead_defect,
    i.patient_id is not null and exists (
        select 1 from complications c
        where c.patient_id = t.patient_id and c.complication = 'retained_fragment'
    )                                                                   as retained_fragment,
    i.patient_id is not null and exists (
        select 1 from complications c
        where c.patient_id = t.patient_id and c.complication = 'nerve_damage' and c.permanent
    )                                                                   as permanent_nerve_damage
from trial_patients t
left join implanted i using (patient_id)
left join explanted e using (patient_id)
left join unrepaired u using (patient_id)
left join pain using (patient_id), params
