-- marts.follow_up: one row per assessment of a trial patient, with its resolved timepoint (analysis.md).
-- Labelled timepoints win; an unlabelled assessment takes the window its date falls in: baseline within
-- $baseline_days days before the first trial, the later ones ($window_names, $window_low, $window_high)
-- in months after the first implant, inclusive. `official` marks the one assessment per patient, measure
-- and timepoint the analysis uses: a label before a date window; the latest baseline; the later
-- timepoints' closest to the timepoint (then the earlier date). The first trial and implant come from
-- the patient_flags relation the statement is given.
with
windows as (
    select unnest($window_names) as timepoint, unnest($window_low) as low_months,
           unnest($window_high) as high_months, unnest($window_target) as target_months
),
obs as (
    select o.id as observation_id, o.patient_id, o.center, o.measure, o.date, o.value,
           o.timepoint as timepoint_label, f.first_trial, f.first_implant
    from fhir.observation_flat o join patient_flags f using (patient_id)
),
dated as (
    select o.*,
           case
               when o.date <= o.first_trial and o.date >= o.first_trial - to_days(cast($baseline_days as integer))
                   then 'baseline'
               else (select w.timepoint from windows w
                     where o.first_implant is not null
                       and o.date between o.first_implant + to_months(w.low_months)
                                      and o.first_implant + to_months(w.high_months))
           end as window_timepoint
    from obs o
),
resolved as (
    select d.* exclude (window_timepoint),
           coalesce(d.timepoint_label, d.window_timepoint)                               as timepoint,
           case when d.timepoint_label is not null then 'label'
                when d.window_timepoint is not null then 'date_window' end              as resolved_by
    from dated d
),
ranked as (
    select r.*,
           row_number() over (
               partition by r.patient_id, r.measure, r.timepoint
               order by r.resolved_by = 'label' desc,
                        case when r.timepoint = 'baseline' then 0
                             else abs(datediff('day', r.first_implant + to_months(w.target_months), r.date)) end,
                        case when r.timepoint = 'baseline' then -epoch(r.date) else epoch(r.date) end,
                        r.observation_id
           ) as position
    from resolved r left join windows w using (timepoint)
)
select observation_id, patient_id, center, measure, date, value, timepoint_label, timepoint, resolved_by,
       timepoint is not null and position = 1 as official
from ranked
