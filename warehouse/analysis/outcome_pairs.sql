-- Baseline and 12-month values per fully functional patient and measure (analysis.md): the official
-- assessments of marts.follow_up (a source's label, else the date window; the latest baseline, the
-- 12-month one closest to 12 months after the first implant), for the patients the flags at the
-- observation end call fully functional. Reads the relation `patient_flags` (drg_etl/pipeline/marts.py).
-- The mart marks at most one official assessment per patient, measure and timepoint, so a measure of a patient
-- has a pair when it has both an official baseline and an official 12-month assessment: one scan of the mart,
-- not a join of the mart with itself. Unordered: a caller that needs an order gives it.
select u.patient_id, u.measure,
       any_value(u.value) filter (where u.timepoint = 'baseline')                 as baseline,
       any_value(u.value) filter (where u.timepoint = 'month_12')                 as month12
from marts.follow_up u
semi join (select patient_id from patient_flags where fully_functional) f using (patient_id)
where u.official and u.timepoint in ('baseline', 'month_12')
group by u.patient_id, u.measure
having count(*) filter (where u.timepoint = 'baseline') > 0
   and count(*) filter (where u.timepoint = 'month_12') > 0
