-- auh's komplikationer.csv read as a set (drg_etl.sources.columnar; see auh_patients.sql): the complications
-- facts of the records auh._complication reads without a finding.
select c.row, 0 as k, c.patient_key, day.value as date, kind.value as complication, permanent.value as permanent,
       null::varchar as device_ref, nullif(c."Note", '') as note
from ready c
join day on day.raw = c."Dato"
join kind on kind.raw = c."Type"
join permanent on permanent.raw = c."Permanent"
where day.given
  and kind.given
  and permanent.ok
  and regexp_full_match(c."Note", '|[!-~]|[!-~].*[!-~]')
