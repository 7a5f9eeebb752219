-- rh read as a set (drg_etl.sources.columnar; see rh_clean.sql): the measurements facts of each clean record with
-- a filled prom instrument (rh._prom), one a score present, in the record's order, at the event's timepoint.
with prom as (select * from clean where list_contains(forms, 'prom') and prom_filled)
select row, 0 as k, patient_key, v_prom_date as date, v_timepoint as timepoint, 'nrs_average' as measure,
       v_nrs_average as value
from prom where v_nrs_average is not null
union all
select row, 1, patient_key, v_prom_date, v_timepoint, 'nrs_worst', v_nrs_worst from prom where v_nrs_worst is not null
union all
select row, 2, patient_key, v_prom_date, v_timepoint, 'pcs_total', v_pcs_total from prom where v_pcs_total is not null
