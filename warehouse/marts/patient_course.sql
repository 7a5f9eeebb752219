-- marts.patient_course: one row per trial patient with the per-patient figures the national analysis groups, kept
-- as dates so that the one mart holds for any observation end (the analysis compares them with its own
-- $observation_end): the first implant and its center, the first explantation of the complete system and the first
-- on or after the first implant, the lead-defect complications ($defect_types) dated on or after the first implant,
-- the model of the first pulse generator, per center of the patient's procedures whether a trial and an implant
-- there lie in the study window ($study_start, $study_end), per follow-up window ($window_names, $window_low,
-- $window_high months after the first implant) its days and the first assessment resolved to its timepoint
-- (marts.follow_up), the official baseline and 12-month values per measure that has both, and per lead its
-- placement, status and the next lead placed at its level and side. The trial patients, their first implant and its
-- center come from the patient_flags relation the statement is given (columns that do not depend on the
-- observation end). Every list is sorted (list_sort), so a patient's row is the same however it is computed.
with
flags as (
    select patient_id, implanted, first_implant, implant_center from patient_flags
),
at_center as (  -- one row per patient and center of the patient's procedures
    select p.patient_id, p.center,
           bool_or(p.procedure = 'trial'
                   and p.date between cast($study_start as date) and cast($study_end as date))     as trial,
           bool_or(p.procedure = 'implant'
                   and p.date between cast($study_start as date) and cast($study_end as date))     as implant,
           min(p.date) filter (where p.procedure = 'explant')                                      as first_explant,
           min(p.date) filter (where p.procedure = 'explant' and p.date >= f.first_implant)        as explant_after_implant
    from fhir.procedure_flat p join flags f using (patient_id)
    group by p.patient_id, p.center
),
procedures as (
    select patient_id, min(first_explant) as first_explant, min(explant_after_implant) as explant_after_implant,
           list_sort(list({'center': center, 'trial': trial, 'implant': implant})) as centers
    from at_center
    group by patient_id
),
defects as (
    select x.patient_id, list_sort(list(x.date)) as defect_dates
    from fhir.complication_flat x join flags f using (patient_id)
    where list_contains($defect_types, x.complication) and x.date >= f.first_implant
    group by x.patient_id
),
generator as (  -- the model of the first generator: the earliest placed_date, then the smallest id
    select d.patient_id,
           first(coalesce(nullif(trim(d.model), ''), 'unknown') order by d.placed_date asc nulls last, d.id) as ipg_model
    from fhir.device_flat d semi join flags f using (patient_id)
    where d.device_type = 'generator'
    group by d.patient_id
),
leads as (  -- next_placed_date: the first lead placed after this one at its level and side (both given)
    select d.patient_id, d.placed_date, d.status, d.status_date,
           case when d.level is not null and d.side is not null then
               min(d.placed_date) over (partition by d.patient_id, d.level, d.side order by d.placed_date
                                        range between interval 1 day following and unbounded following)
           end as next_placed_date
    from fhir.device_flat d semi join flags f using (patient_id)
    where d.device_type = 'lead'
),
lead_lists as (
    select patient_id,
           list_sort(list({'placed_date': placed_date, 'status': status, 'status_date': status_date,
                           'next_placed_date': next_placed_date})) as leads
    from leads
    group by patient_id
),
windows as (
    select unnest($window_names) as timepoint, unnest($window_low) as low_months,
           unnest($window_high) as high_months
),
assessed as (  -- the first assessment (any measure) resolved to each window's timepoint
    select u.patient_id, u.timepoint, min(u.date) as first_assessed
    from marts.follow_up u
    where list_contains($window_names, u.timepoint)
    group by u.patient_id, u.timepoint
),
window_lists as (
    select f.patient_id,
           list_sort(list({'timepoint': w.timepoint, 'opens': f.first_implant + to_months(w.low_months),
                           'closes': f.first_implant + to_months(w.high_months),
                           'first_assessed': a.first_assessed})) as windows
    from flags f cross join windows w
    left join assessed a on a.patient_id = f.patient_id and a.timepoint = w.timepoint
    where f.implanted
    group by f.patient_id
),
pairs as (  -- the mart marks at most one official assessment per patient, measure and timepoint
    select patient_id, list_sort(list({'measure': measure, 'baseline': baseline, 'month12': month12})) as pairs
    from (
        select u.patient_id, u.measure,
               any_value(u.value) filter (where u.timepoint = 'baseline')                 as baseline,
               any_value(u.value) filter (where u.timepoint = 'month_12')                 as month12
        from marts.follow_up u
        where u.official and u.timepoint in ('baseline', 'month_12')
        group by u.patient_id, u.measure
        having count(*) filter (where u.timepoint = 'baseline') > 0
           and count(*) filter (where u.timepoint = 'month_12') > 0
    )
    group by patient_id
)
select
    f.patient_id,
    f.implanted,
    f.first_implant,
    f.implant_center,
    p.first_explant,
    p.explant_after_implant,
    coalesce(x.defect_dates, [])                                            as defect_dates,
    coalesce(g.ipg_model, 'unknown')                                        as ipg_model,
    coalesce(p.centers, [])                                                 as centers,
    coalesce(w.windows, [])                                                 as windows,
    coalesce(o.pairs, [])                                                   as pairs,
    coalesce(l.leads, [])                                                   as leads
from flags f
left join procedures p using (patient_id)
left join defects x using (patient_id)
left join generator g using (patient_id)
left join lead_lists l using (patient_id)
left join window_lists w using (patient_id)
left join pairs o using (patient_id)
