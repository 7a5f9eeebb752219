-- auh's udstyr.csv read as a set (drg_etl.sources.columnar; see auh_patients.sql): the devices facts of the
-- records auh._device reads without a finding. A lead needs its level and side; the status date may not come
-- before the placement. $device_ref: the format's template of a device's reference (drg_etl.core.formats).
select c.row, 0 as k, c.patient_key, replace($device_ref, '{serial}', serial.value) as device_ref, kind.value as device_type,
       nullif(c."Model", '') as model, serial.value as serial, placed.value as placed_date,
       case when kind.value = 'lead' then level.value end as level,
       case when kind.value = 'lead' then side.value end as side,
       status.value as status, status_day.value as status_date
from ready c
join kind on kind.raw = c."Type"
join serial on serial.raw = c."Serienr"
join placed on placed.raw = c."Implantationsdato"
join level on level.raw = c."Niveau"
join side on side.raw = c."Side"
join status on status.raw = c."Status"
join status_day on status_day.raw = c."Statusdato"
where kind.given
  and serial.given
  and placed.given
  and status.given
  and status_day.given
  and (kind.value <> 'lead' or (level.given and side.given))
  and status_day.value >= placed.value
  and regexp_full_match(c."Model", '|[!-~]|[!-~].*[!-~]')
