-- Competing risks (analysis.md, "Beyond the paper: competing risks and device performance"): per day of
-- the implanted patients' times, the lead defects, the explantations without a defect before them, and
-- everyone whose time is that day (events and censorings).
-- Reads the relation `survival`: the rows of warehouse/analysis/survival.sql (drg_etl/analysis/competing_risks.py
-- puts it in front), so the cohort, the first implant, the explantation and the lead defect are the
-- same as "Device survival"'s. Per patient, the first of:
--   lead_defect:            a lead-defect complication on or after the first implant and on or before the
--                           explantation or observation_end (a defect on the explant day is the defect);
--   explant_without_defect: the explantation of the complete system on or before observation_end;
--   otherwise censored at observation_end.
with
timed as (
    select
        case when defect_event then defect_days else explant_days end                  as days,
        case when defect_event then 'lead_defect'
             when explant_event then 'explant_without_defect' end                       as event
    from survival
)
select
    days,
    count(*) filter (where event = 'lead_defect')                                      as lead_defect,
    count(*) filter (where event = 'explant_without_defect')                           as explant_without_defect,
    count(*)                                                                           as ending
from timed
group by days
order by days
