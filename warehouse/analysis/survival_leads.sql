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
-- aggregate per level and side, not a search for each lead's replacement.
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
    select d.patient_id, d.level, d.side, d.placed_date, d.status,
           coalesce(d.status_date, d.placed_date) as status_date, e.explant_date
    from fhir.device_flat d join explant e using (patient_id), params
    where d.device_type = 'lead' and d.placed_date <= params.obs_end
),
latest as (  -- per patient, level and side: the latest lead placed before the explantation (or at all without one)
    select patient_id, level, side, max(placed_date) as latest
    from leads
    where explant_date is null or placed_date < explant_date
    group by all
)
select
    count(*)                                                                    as placed,
    count(*) filter (where
        (list_contains($removed_statuses, l.status) and l.status_date <= params.obs_end
         and (l.explant_date is null or l.status_date < l.explant_date))        -- removed before the explantation
        or l.placed_date < t.latest)                                             -- replaced before it
                                                                                as revised,
    count(*) filter (where list_contains($faulty_statuses, l.status) and l.status_date <= params.obs_end)
                                                                                as faulty_at_end
from leads l
left join latest t using (patient_id, level, side), params
