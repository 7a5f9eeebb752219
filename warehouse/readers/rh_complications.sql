-- rh read as a set (drg_etl.sources.columnar; see rh_clean.sql): the complications facts of the clean records
-- (rh._complication): one a checked comp_type choice, in the dictionary's order.
select c.row, b.position as k, c.patient_key, c.v_comp_day as date, b.value as complication,
       c.v_permanent as permanent, null::varchar as device_ref, nullif(c.comp_note, '') as note
from clean c
join checkbox b on string_split(c.checks, '|')[b.position + 1] = '1'
where list_contains(c.forms, 'complication')
