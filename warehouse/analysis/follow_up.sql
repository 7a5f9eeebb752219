-- Follow-up completeness (analysis.md): per center of the first implant and timepoint, the implanted
-- patients due (the window ($window_low to $window_high months after the first implant) ended on or
-- before $observation_end, not explanted before it opened) and those assessed (an assessment of any
-- measure resolved to the timepoint in marts.follow_up: labelled, or dated in its window, on or before
-- the observation end). marts.patient_course holds each implanted patient's windows: their days and the first
-- assessment resolved to each; the first explantation on or before the observation end is the mart's first one
-- where that is on or before it.
with
windows as (
    select c.implant_center as center, c.first_explant, unnest(c.windows, recursive := true)
    from marts.patient_course c
    where c.implanted
)
select w.center, w.timepoint, count(*) as due,
       count(*) filter (where w.first_assessed <= cast($observation_end as date))                    as assessed
from windows w
where w.closes <= cast($observation_end as date)                                                    -- due
  and (w.first_explant is null or w.first_explant > cast($observation_end as date) or w.first_explant >= w.opens)
group by all
order by all
