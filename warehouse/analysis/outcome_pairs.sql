-- Baseline and 12-month values per fully functional patient and measure (analysis.md).
-- Expects a table or view `flags` (patient_flags.sql). Labelled timepoints win; where a source has
-- no label, baseline is the latest assessment within 90 days before the (first) trial start and
-- 12 months the assessment 9 to 15 months after the (first) implant closest to 12 months.
with
ff as (select * from flags where fully_functional),
obs as (select o.* from fhir.observation_flat o join ff using (patient_id)),
baseline_labelled as (
    select patient_id, measure, arg_max(value, date) as value
    from obs where timepoint = 'baseline' group by all
),
baseline_dated as (
    select o.patient_id, o.measure, arg_max(o.value, o.date) as value
    from obs o join ff using (patient_id)
    where o.timepoint is null and o.date <= ff.first_trial and o.date >= ff.first_trial - interval 90 day
    group by all
),
baseline as (
    select * from baseline_labelled
    union all
    select d.* from baseline_dated d
    where not exists (select 1 from baseline_labelled l where l.patient_id = d.patient_id and l.measure = d.measure)
),
month12_labelled as (
    select o.patient_id, o.measure,
           arg_min(o.value, abs(datediff('day', ff.first_implant + interval 12 month, o.date))) as value
    from obs o join ff using (patient_id)
    where o.timepoint = 'month_12' group by all
),
month12_dated as (
    select o.patient_id, o.measure,
           arg_min(o.value, (abs(datediff('day', ff.first_implant + interval 12 month, o.date)), o.date)) as value
    from obs o join ff using (patient_id)
    where o.timepoint is null
      and o.date between ff.first_implant + interval 9 month and ff.first_implant + interval 15 month
    group by all
),
month12 as (
    select * from month12_labelled
    union all
    select d.* from month12_dated d
    where not exists (select 1 from month12_labelled l where l.patient_id = d.patient_id and l.measure = d.measure)
),
pairs as (
    select b.patient_id, b.measure, b.value as baseline, m.value as month12
    from baseline b join month12 m using (patient_id, measure)
)
select * from pairs order by measure, patient_id
