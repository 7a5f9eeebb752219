-- marts.lead_history: one row per lead of a patient: placement, status, its state at $observation_end,
-- the first lead placed later at its level and side (a repair), and the lead-defect complications
-- ($defect_types) the source links to it (Condition.evidence -> Device: fhir.complication_flat.device_id).
with
leads as (
    select d.* from fhir.device_flat d where d.device_type = 'lead'
),
linked as (
    select c.device_id, count(*) as defect_complications, min(c.date) as first_defect_date
    from fhir.complication_flat c
    where c.device_id is not null and list_contains($defect_types, c.complication)
    group by c.device_id
)
select
    l.id                                                                    as device_id,
    l.patient_id,
    l.center,
    l.level,
    l.side,
    l.placed_date,
    l.status,
    l.status_date,
    case
        when list_contains($removed_statuses, l.status)
             and coalesce(l.status_date, l.placed_date) <= cast($observation_end as date) then 'removed'
        when list_contains($faulty_statuses, l.status)
             and coalesce(l.status_date, l.placed_date) <= cast($observation_end as date) then 'faulty'
        else 'working'
    end                                                                     as state_at_end,
    case when list_contains($faulty_statuses, l.status) then (
        select min(r.placed_date) from leads r
        where r.patient_id = l.patient_id and r.level = l.level and r.side = l.side
          and r.placed_date > coalesce(l.status_date, l.placed_date)
    ) end                                                                   as replaced_date,
    coalesce(k.defect_complications, 0)                                     as defect_complications,
    k.first_defect_date
from leads l left join linked k on k.device_id = l.id
