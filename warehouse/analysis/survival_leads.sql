-- Device survival per lead (analysis.md, "Beyond the paper"): of the leads placed in an implanted patient
-- (at the implant or a replacement, any center) on or before $observation_end, how many there are (placed),
-- how many were revised, and how many were faulty at the end. Reads the relation `patient_flags` at the same
-- $observation_end (drg_etl/pipeline/marts.py). Read from the FHIR layer's flat tables only.
--   revised:       replaced (a later lead placed at the same level and side, as warehouse/marts/patient_flags.sql
--                  repairs a fault) or removed (status removed*), on a date before the patient's
--                  explantation of the complete system, or with no explantation by observation_end.
--   faulty_at_end: status fractured or malfunction, taken on or before observation_end.
-- A lead was replaced before the explantation exactly when some lead at its level and side was placed after it
-- and before the explantation (or with none), that is when it was placed before the latest such lead: one
-- aggregate per patient, level and side (its leads not removed, and that latest date), not a search for each
-- lead's replacement.
with
params as (
    select cast($observation_end as date) as obs_end
),
implanted as (
    select patient_id, first_implant, first_explant from patient_flags where implanted
),
-- The first explantation on or after the first implant and on or before obs_end: the flags' first explantation
-- where that is on or after the first implant; the procedures are searched only for a patient explanted before it.
explant_before as (
    select i.patient_id, min(p.date) as explant_date
    from implanted i join fhir.procedure_flat p using (patient_id), params
    where i.first_explant < i.first_implant
      and p.procedure = 'explant' and p.date >= i.first_implant and p.date <= params.obs_end
    group by i.patient_id
),
explant as (
    select i.patient_id,
           coalesce(case when i.first_explant >= i.first_implant then i.first_explant end, b.explant_date) as explant_date
    from implanted i left join explant_before b using (patient_id)
),
leads as (
    select d.patient_id, d.level, d.side, d.placed_date, e.explant_date,
           coalesce(list_contains($removed_statuses, d.status)
                    and coalesce(d.status_date, d.placed_date) <= params.obs_end
                    and (e.explant_date is null or coalesce(d.status_date, d.placed_date) < e.explant_date),
                    false)                                                        as removed,  -- before the explantation
           list_contains($faulty_statuses, d.status)
               and coalesce(d.status_date, d.placed_date) <= params.obs_end      as faulty_at_end
    from fhir.device_flat d join explant e using (patient_id), params
    where d.device_type = 'lead' and d.placed_date <= params.obs_end
),
per_level as (
    select
        l.level is not null and l.side is not null                                as at_level,
        count(*)                                                                  as placed,
        count(*) filter (where l.removed)                                         as removed,
        list(l.placed_date) filter (where not l.removed)                          as kept,
        max(l.placed_date) filter (where l.explant_date is null or l.placed_date < l.explant_date) as latest,
        count(*) filter (where l.faulty_at_end)                                   as faulty_at_end
    from leads l
    group by l.patient_id, l.level, l.side
)
select
    coalesce(sum(placed), 0)                                                      as placed,
    coalesce(sum(removed + case when at_level then coalesce(len([d for d in kept if d < latest]), 0) else 0 end), 0)
                                                                                  as revised,  -- removed or replaced
    coalesce(sum(faulty_at_end), 0)                                               as faulty_at_end
from per_level
