-- auh's prom.csv read as a set (drg_etl.sources.columnar; see auh_patients.sql): the measurements facts of the
-- records auh._measurement reads without a finding, one a score present, in the record's order. A record
-- needs at least one score.
with clean as (
    select c.row, c.patient_key, day.value as date, timepoint.value as timepoint, average.value as nrs_average,
           worst.value as nrs_worst, pcs.value as pcs_total
    from ready c
    join day on day.raw = c."Dato"
    join timepoint on timepoint.raw = c."Tidspunkt"
    join average on average.raw = c."NRS_gns"
    join worst on worst.raw = c."NRS_max"
    join pcs on pcs.raw = c."PCS"
    where day.given
      and timepoint.given
      and average.ok and worst.ok and pcs.ok
      and (average.value is not null or worst.value is not null or pcs.value is not null)
)
select row, 0 as k, patient_key, date, timepoint, 'nrs_average' as measure, nrs_average as value
from clean where nrs_average is not null
union all
select row, 1, patient_key, date, timepoint, 'nrs_worst', nrs_worst from clean where nrs_worst is not null
union all
select row, 2, patient_key, date, timepoint, 'pcs_total', pcs_total from clean where pcs_total is not null
