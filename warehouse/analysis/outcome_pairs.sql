-- Baseline and 12-month values per fully functional patient and measure (analysis.md): the official
-- assessments of marts.follow_up (a source's label, else the date window; the latest baseline, the
-- 12-month one closest to 12 months after the first implant), for the patients the flags at the
-- observation end call fully functional. Reads the relation `patient_flags` (drg_etl/pipeline/marts.py).
select b.patient_id, b.measure, b.value as baseline, m.value as month12
from marts.follow_up b
join marts.follow_up m on m.patient_id = b.patient_id and m.measure = b.measure
join patient_flags f on f.patient_id = b.patient_id
where f.fully_functional
  and b.official and b.timepoint = 'baseline'
  and m.official and m.timepoint = 'month_12'
order by b.measure, b.patient_id
