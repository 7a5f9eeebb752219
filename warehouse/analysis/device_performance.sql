-- Device performance (analysis.md, "Beyond the paper: competing risks and device performance"): one row per
-- implanted patient whose first implant lies on or before $observation_end (unordered), with
--   ipg_model: the model of the patient's first pulse generator (device_type 'generator', the earliest
--              placed_date, then the smallest id; a generator with no placed_date comes last), 'unknown'
--              where the source gives no model or no generator;
--   center:    the center of the first implant (patient_flags.implant_center, as survival.sql gives it);
--   days:      first implant -> the explantation of the complete system or $observation_end, whichever
--              is first;
--   events:    every lead-defect complication ($defect_types) dated on or after the first implant and
--              on or before that end (all of them, not only the first).
-- Reads the relation `survival` (warehouse/analysis/survival.sql's rows at the same $observation_end: the implanted
-- patients, each one's days from the first implant to the explantation or $observation_end and the center of
-- the first implant), and the FHIR layer's flat tables.
with
ended as (
    select s.patient_id, s.first_implant, s.implant_center, s.explant_days as days,
           s.first_implant + to_days(cast(s.explant_days as integer)) as end_date
    from survival s
),
generator as (  -- one aggregate, not a window: the model of the first generator in this order
    select d.patient_id,
           first(coalesce(nullif(trim(d.model), ''), 'unknown') order by d.placed_date asc nulls last, d.id) as ipg_model
    from fhir.device_flat d
    where d.device_type = 'generator'
    group by d.patient_id
),
defects as (
    select e.patient_id, count(*) as events
    from ended e join fhir.complication_flat x using (patient_id)
    where list_contains($defect_types, x.complication)
      and x.date >= e.first_implant and x.date <= e.end_date
    group by e.patient_id
)
select
    e.patient_id,
    coalesce(g.ipg_model, 'unknown')                                                   as ipg_model,
    e.implant_center                                                                   as center,
    e.days,
    coalesce(x.events, 0)                                                              as events
from ended e
left join generator g using (patient_id)
left join defects x using (patient_id)
