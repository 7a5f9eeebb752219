-- auh's patienter.csv read as a set (drg_etl.sources.columnar): the patients facts of the records auh._patient
-- reads without a finding. `ready` holds the screened records (the CPR number read: patient_key, patient_sex,
-- birth_year); each probe relation (raw, ok, value; given: ok and a value) the row reader's verdict on a
-- column's distinct texts (value null: the text was empty). Each fact with its record's `row` and its place `k` in the record.
select c.row, 0 as k, c.patient_key, c.patient_sex as sex, c.birth_year, loc.value as pain_location,
       dx.value as diagnosis, sex.value as recorded_sex
from ready c
join sex on sex.raw = c."Køn"
join pain_location loc on loc.raw = c."Smertelokalisation"
join diagnosis dx on dx.raw = c."Diagnose"
where sex.given
  and loc.given
  and dx.given
  and sex.value = c.patient_sex  -- cpr.sex_mismatch otherwise
