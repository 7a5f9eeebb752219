-- Follow-up completeness (analysis.md): per center of the first implant and timepoint, the implanted
-- patients due (the window ($window_low to $window_high months after the first implant) ended on or
-- before $observation_end, not explanted before it opened) and those assessed (an assessment of any
-- measure resolved to the timepoint in marts.follow_up: labelled, or dated in its window, on or before
-- the observation end). Reads the relation `patient_flags` (drg_etl/pipeline/marts.py).
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
assessed as (
    select distinct u.patient_id, u.timepoint
    from marts.follow_up u
    where u.timepoint is not null and u.date <= cast($observation_end as date)
)
select d.center, d.timepoint, count(*) as due, count(a.patient_id) as assessed
from due d left join assessed a using (patient_id, timepoint)
group by all
order by all
