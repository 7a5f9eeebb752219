-- Trial and implanted patients per center (a patient tried at one center and implanted at
-- another counts at each). Every center of a trial patient's procedures is listed: marts.patient_course holds, per
-- trial patient, one entry per center of the patient's procedures (a trial there in the study window, an implant
-- there in the window), so the patients are counted without a distinct and without a join.
select
    c.center,
    count(*) filter (where c.trial)                                                                 as trial_patients,
    count(*) filter (where c.implant and c.implanted)                                               as implanted_patients
from (select implanted, unnest(centers, recursive := true) from marts.patient_course) c
group by c.center
order by c.center
