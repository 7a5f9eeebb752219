-- Trial and implanted patients per center (a patient tried at one center and implanted at
-- another counts at each). Expects `flags` (patient_flags.sql).
select
    p.center,
    count(distinct p.patient_id) filter (
        where p.procedure = 'trial' and p.date between date '2014-01-01' and date '2018-12-31')    as trial_patients,
    count(distinct p.patient_id) filter (
        where p.procedure = 'implant' and f.implanted
          and p.date between date '2014-01-01' and date '2018-12-31')                              as implanted_patients
from fhir.procedure_flat p
join flags f using (patient_id)
group by p.center
order by p.center
