-- Trial and implanted patients per center (a patient tried at one center and implanted at
-- another counts at each). Reads the relation `patient_flags` (drg_etl/pipeline/marts.py);
-- the study window is bound from the Python constants.
select
    p.center,
    count(distinct p.patient_id) filter (
        where p.procedure = 'trial' and p.date between cast($study_start as date) and cast($study_end as date))    as trial_patients,
    count(distinct p.patient_id) filter (
        where p.procedure = 'implant' and f.implanted
          and p.date between cast($study_start as date) and cast($study_end as date))                              as implanted_patients
from fhir.procedure_flat p
join patient_flags f using (patient_id)
group by p.center
order by p.center
