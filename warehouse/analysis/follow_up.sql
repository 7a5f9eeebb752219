-- Follow-up completeness (analysis.md): per center of the first implant and timepoint, the implanted
-- patients due (the window ($window_low to $window_high months after the first implant) ended on or
-- before $observation_end, not explanted before it opened) and those assessed (an assessment of any
-- measure resolved to the timepoint in marts.follow_up: labelled, or dated in its window, on or before
-- the observation end). Reads the relation `patient_flags` (drg_etl/pipeline/marts.py).
-- A patient's assessed timepoints are one bit mask (bit i: $window_names[i + 1]), from one pass over the mart
-- grouped by patient alone, not a distinct of (patient, timepoint) pairs; it is joined to the implanted patients
-- before they meet the windows.
with
windows as (
    select unnest($window_names) as timepoint, unnest($window_low) as low_months,
           unnest($window_high) as high_months
),
assessed as (  -- only the windows' timepoints (not baseline) have a bit
    select u.patient_id, bit_or(1::bigint << (list_position($window_names, u.timepoint) - 1)) as timepoints
    from marts.follow_up u
    where list_contains($window_names, u.timepoint) and u.date <= cast($observation_end as date)
    group by u.patient_id
),
implanted as (
    select f.implant_center as center, f.first_implant, f.first_explant, a.timepoints
    from patient_flags f left join assessed a using (patient_id)
    where f.implanted
)
select i.center, w.timepoint, count(*) as due,
       count(*) filter (where (i.timepoints >> (list_position($window_names, w.timepoint) - 1)) & 1 = 1) as assessed
from implanted i, windows w
where i.first_implant + to_months(w.high_months) <= cast($observation_end as date)                 -- due
  and (i.first_explant is null or i.first_explant >= i.first_implant + to_months(w.low_months))
group by all
order by all
