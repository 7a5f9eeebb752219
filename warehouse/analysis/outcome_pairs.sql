-- Baseline and 12-month values per fully functional patient and measure (analysis.md): the official
-- assessments of marts.follow_up (a source's label, else the date window; the latest baseline, the
-- 12-month one closest to 12 months after the first implant), for the patients the flags at the
-- observation end call fully functional. Reads the relation `patient_flags` (drg_etl/pipeline/marts.py).
-- marts.patient_course holds each trial patient's pairs: per measure with both an official baseline and an
-- official 12-month assessment, the two values. Unordered: a caller that needs an order gives it.
select c.patient_id, c.measure, c.baseline, c.month12
from (select patient_id, unnest(pairs, recursive := true) from marts.patient_course) c
semi join (select patient_id from patient_flags where fully_functional) f using (patient_id)
