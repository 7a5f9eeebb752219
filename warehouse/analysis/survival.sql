-- Device survival (analysis.md, "Beyond the paper"): one row per implanted patient whose first
-- implant lies on or before $observation_end, with the two times to event in days, the center of the first implant,
-- the model of the first pulse generator and the lead defects up to the explantation or $observation_end (which
-- device performance groups and counts). Unordered: a caller that needs an order gives it.
-- Read from marts.patient_course, whose dates hold at any observation end:
--   lead-defect-free: first implant -> first lead_fracture / lead_malfunction dated on or after it;
--                     censored at the explantation of the complete system or observation_end,
--                     whichever is first (an event on the censoring day is an event).
--   system survival:  first implant -> first explantation of the complete system on or after it;
--                     censored at observation_end.
-- The first explantation on or after the first implant and on or before obs_end is the mart's first one on or after
-- the first implant, where that is on or before obs_end; so is the first lead defect (defect_dates ascend).
with
params as (
    select cast($observation_end as date) as obs_end
),
cohort as (
    select c.patient_id, c.first_implant, c.implant_center, c.ipg_model, c.defect_dates,
           case when c.explant_after_implant <= params.obs_end then c.explant_after_implant end    as explant_date,
           case when c.defect_dates[1] <= params.obs_end then c.defect_dates[1] end                 as defect_date,
           params.obs_end
    from marts.patient_course c, params
    where c.implanted and c.first_implant <= params.obs_end
),
timed as (
    select
        *,
        coalesce(explant_date, obs_end)                                     as defect_censor_date,
        defect_date is not null and defect_date <= coalesce(explant_date, obs_end) as defect_event
    from cohort
)
select
    patient_id,
    first_implant,
    defect_event,
    datediff('day', first_implant,
             case when defect_event then defect_date else defect_censor_date end)  as defect_days,
    explant_date is not null                                                      as explant_event,
    datediff('day', first_implant, coalesce(explant_date, obs_end))               as explant_days,
    implant_center,
    ipg_model,
    len(list_filter(defect_dates, lambda d: d <= defect_censor_date))             as defect_events
from timed
