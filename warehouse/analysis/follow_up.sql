-- Follow-up completeness (analysis.md): per center of the first implant and timepoint, the implanted
-- patients due (the window ($window_low to $window_high months after the first implant) ended on or
-- before $observation_end, not explanted before it opened) and those assessed (an assessment of any
-- measure resolved to the timepoint in marts.follow_up: labelled, or dated in its window, on or before
-- the observation end). Reads the relation `patient_flags` (drg_etl/pipeline/marts.py).
-- A patient's assessed timepoints are one bit mask (bit i: $window_names[i + 1]), from one pass over the mart
-- grouped by patient alone, not a distinct of (patient, timepoint) pairs.
with
windows as (
    select unnest($window_names) as timepoint, unnest($window_low) as low_months,
           unnest($window_high) as high_months
),
due as (
    select f.patient_id, f.implant_center as center, w.timepoint
    from patient_flags f, windows w
    where f.implanted
      and f.first_implant + to_months(w.high_months) <= cast($observation_end as date)
      and (f.first_explant is null or f.first_explant >= f.first_implant + to_months(w.low_months))
),
assessed as (  -- only the windows' timepoints (not baseline) have a bit
    select u.patient_id, bit_or(1::bigint << (list_position($window_names, u.timepoint) - 1)) as timepoints
    from marts.follow_up u
    where list_contains($window_names, u.timepoint) and u.date <= cast($observation_end as date)
    group by u.patient_id
)
select d.center, d.timepoint, count(*) as due,
       count(*) filter (where (a.timepoints >> (list_position($window_names, d.timepoint) - 1)) & 1 = 1) as assessed
from due d left join assessed a using (patient_id)
group by all
order by all
