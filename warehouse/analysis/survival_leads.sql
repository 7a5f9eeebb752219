-- Device survival per lead (analysis.md, "Beyond the paper"): one row per lead placed in an
-- implanted patient (at the implant or a replacement, any center) on or before $observation_end.
-- Reads the relation `patient_flags` at the same $observation_end (drg_etl/pipeline/marts.py). Read from the FHIR layer's flat tables only.
--   revised:       replaced (a later lead placed at the same level and side, as warehouse/marts/patient_flags.sql
--                  repairs a fault) or removed (status removed*), on a date before the patient's
--                  explantation of the complete system, or with no explantation by observation_end.
--   faulty_at_end: status fractured or malfunction, taken on or before observation_end.
with
params as (
    select cast($observation_end as date) as obs_end
),
implanted as (
    select patient_id, first_implant from patient_flags where implanted
),
explant as (
    select i.patient_id, min(p.date) as explant_date
    from implanted i join fhir.procedure_flat p using (patient_id), params
    where p.procedure = 'explant' and p.date >= i.first_implant and p.date <= params.obs_end
    group by i.patient_id
),
leads as (
    select d.id, d.patient_id, d.level, d.side, d.placed_date, d.status,
           coalesce(d.status_date, d.placed_date) as status_date
    from fhir.device_flat d join implanted using (patient_id), params
    where d.device_type = 'lead' and d.placed_date <= params.obs_end
),
revision as (
    select
        l.id,
        case when list_contains($removed_statuses, l.status) and l.status_date <= params.obs_end
             then l.status_date end                                             as removed_date,
        (select min(r.placed_date) from leads r
         where r.patient_id = l.patient_id and r.level = l.level and r.side = l.side
           and r.placed_date > l.placed_date)                                   as replaced_date
    from leads l, params
)
select
    l.id,
    l.patient_id,
    l.placed_date,
    least(v.removed_date, v.replaced_date)                                      as revision_date,
    e.explant_date,
    coalesce(least(v.removed_date, v.replaced_date) < e.explant_date,
             least(v.removed_date, v.replaced_date) is not null)               as revised,
    list_contains($faulty_statuses, l.status) and l.status_date <= params.obs_end as faulty_at_end
from leads l
join revision v using (id)
left join explant e using (patient_id), params
order by l.patient_id, l.placed_date, l.id
