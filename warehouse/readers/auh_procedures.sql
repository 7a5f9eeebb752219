-- auh's procedurer.csv read as a set (drg_etl.sources.columnar; see auh_patients.sql): the procedures facts of
-- the records auh._procedure reads without a finding. A trial needs its end and result; no end may come before
-- the start. A free text must be as the row reader keeps it (nothing to strip: printable ASCII at both ends;
-- else the row reader reads it).
select c.row, 0 as k, c.patient_key, kind.value as procedure, day.value as date,
       case when kind.value = 'trial' then ends.value end as end_date,
       case when kind.value = 'trial' then result.value end as trial_success,
       null::varchar as device_ref, nullif(c."Beskrivelse", '') as reason
from ready c
join kind on kind.raw = c."Procedurekode"
join day on day.raw = c."Dato"
join ends on ends.raw = c."Slutdato"
join result on result.raw = c."Resultat"
where kind.given
  and day.given
  and ends.ok
  and (kind.value <> 'trial' or (ends.value is not null and result.given))
  and not coalesce(ends.value < day.value, false)
  and regexp_full_match(c."Beskrivelse", '|[!-~]|[!-~].*[!-~]')
