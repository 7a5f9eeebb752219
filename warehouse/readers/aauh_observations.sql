-- aauh's Observation.ndjson read as a set (drg_etl.sources.columnar, drg_etl.sources.aauh._Reader.observations):
-- the measurements facts of the lines aauh._Reader.observation reads without a finding. `ready` holds the screened
-- lines: their patient (the subject's Patient of this delivery), `earlier` (the line's verdict among the file's
-- lines: 'none', a first line of its id), the code of the measure system, effectiveDateTime and the value (as
-- Python spells the number; empty: none, or not a plain number). `measure` and `day` are the row reader's
-- verdicts on each code and date; `score_ranges` the scale of each measure.
select c.row, 0 as k, c.patient_key, day.value as date, null::varchar as timepoint, measure.value as measure,
       cast(c.value as double) as value
from ready c
join measure on measure.raw = c.code
join day on day.raw = c.effective
join score_ranges s on s.measure = measure.value
where c.earlier = 'none'
  and measure.given
  and day.given
  and c.value <> '' and cast(c.value as double) between s.low and s.high
