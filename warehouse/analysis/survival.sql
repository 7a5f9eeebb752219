-- Device survival (analysis.md, "Beyond the paper"): one row per implanted patient whose first
-- implant lies on or before $observation_end, with the two times to event in days (and the center of the first
-- implant, which device performance groups by). Unordered: a caller that needs an order gives it.
-- Reads the relation `patient_flags` at the same $observation_end (drg_etl/pipeline/marts.py). Read from the FHIR layer's flat tables only.
--   lead-defect-free: first implant -> first lead_fracture / lead_malfunction dated on or after it;
--                     censored at the explantation of the complete system or observation_end,
--                     whichever is first (an event on the censoring day is an event).
--   system survival:  first implant -> first explantation of the complete system on or after it;
--                     censored at observation_end.
with
params as (
    select cast($observation_end as date) as obs_end
),
cohort as (
    select f.patient_id, f.first_implant, f.implant_center, f.first_explant
    from patient_flags f, params
    where f.implanted and f.first_implant <= params.obs_end
),
-- The first explantation on or after the first implant and on or before obs_end is the flags' first explantation
-- (on or before obs_end) where that is on or after the first implant; the procedures are searched only for a
-- patient explanted before the first implant.
explant_before as (
    select c.patient_id, min(p.date) as explant_date
    from cohort c join fhir.procedure_flat p using (patient_id), params
    where c.first_explant < c.first_implant
      and p.procedure = 'explant' and p.date >= c.first_implant and p.date <= params.obs_end
    group by c.patient_id
),
explant as (
    select c.patient_id, c.first_implant, c.implant_center,
           coalesce(case when c.first_explant >= c.first_implant then c.first_explant end, b.explant_date) as explant_date
    from cohort c left join explant_before b using (patient_id)
),
defect as (
    select c.patient_id, min(x.date) as defect_date
    from cohort c join fhir.complication_flat x using (patient_id), params
    where list_contains($defect_types, x.complication)
      and x.date >= c.first_implant and x.date <= params.obs_end
    group by c.patient_id
),
timed as (
    select
        e.patient_id,
        e.first_implant,
        e.implant_center,
        e.explant_date,
        d.defect_date,
        coalesce(e.explant_date, params.obs_end)                            as defect_censor_date,
        d.defect_date is not null
            and d.defect_date <= coalesce(e.explant_date, params.obs_end)   as defect_event,
        e.explant_date is not null                                          as explant_event,
        params.obs_end
    from explant e
    left join defect d using (patient_id), params
)
select
    patient_id,
    first_implant,
    defect_event,
    datediff('day', first_implant,
             case when defect_event then defect_date else defect_censor_date end)  as defect_days,
    explant_event,
    datediff('day', first_implant, coalesce(explant_date, obs_end))               as explant_days,
    implant_center
from timed
