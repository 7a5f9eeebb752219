-- rh read as a set (drg_etl.sources.columnar; see rh_clean.sql): the procedures facts of the clean records: a
-- trial (rh._trial), an implantation (rh._implant), a surgery (rh._surgery).
select row, 0 as k, patient_key, 'trial' as procedure, v_trial_start_day as date, v_trial_end_day as end_date,
       v_trial_success as trial_success, null::varchar as device_ref, null::varchar as reason
from clean where list_contains(forms, 'trial')
union all
select row, 0, patient_key, 'implant', v_implant_day, null, null, null, null
from clean where list_contains(forms, 'implant')
union all
select row, 0, patient_key, v_surg_type, v_surg_day, null, null, null, nullif(surg_reason, '')
from clean where list_contains(forms, 'surgery')
