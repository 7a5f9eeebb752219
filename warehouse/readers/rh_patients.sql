-- rh read as a set (drg_etl.sources.columnar; see rh_clean.sql): the patients fact of each clean record with the
-- demographics instrument (rh._demographics: sex from the CPR number, the recorded sex beside it).
select row, 0 as k, patient_key, patient_sex as sex, birth_year, v_pain_location as pain_location,
       v_diagnosis as diagnosis, v_recorded_sex as recorded_sex
from clean
where list_contains(forms, 'demographics')
