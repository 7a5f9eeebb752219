-- Trial and implanted patients per center (a patient tried at one center and implanted at
-- another counts at each). Reads the relation `patient_flags` (drg_etl/pipeline/marts.py);
-- the study window is bound from the Python constants. Every center of a flagged patient's procedures is
-- listed. A patient's procedures are first reduced to one row per center (a trial there in the window, an
-- implant there in the window), so the patients are counted without a distinct.
with
at_center as (
    select
        p.center,
        p.patient_id,
        bool_or(p.procedure = 'trial'
                and p.date between cast($study_start as date) and cast($study_end as date))         as trial,
        bool_or(p.procedure = 'implant'
                and p.date between cast($study_start as date) and cast($study_end as date))         as implant
    from fhir.procedure_flat p
    group by p.center, p.patient_id
)
select
    c.center,
    count(*) filter (where c.trial)                                                                 as trial_patients,
    count(*) filter (where c.implant and f.implanted)                                               as implanted_patients
from at_center c
join patient_flags f using (patient_id)
group by c.center
order by c.center
