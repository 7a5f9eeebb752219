-- Device survival per lead (analysis.md, "Beyond the paper"): of the leads placed in an implanted patient
-- (at the implant or a replacement, any center) on or before $observation_end, how many there are (placed),
-- how many were revised, and how many were faulty at the end. Read from marts.patient_course, whose dates hold at
-- any observation end.
--   revised:       replaced (a later lead placed at the same level and side, as warehouse/marts/patient_flags.sql
--                  repairs a fault) or removed (status removed*), on a date before the patient's
--                  explantation of the complete system, or with no explantation by observation_end.
--   faulty_at_end: status fractured or malfunction, taken on or before observation_end.
-- A lead was replaced before the explantation exactly when some lead at its level and side was placed after it, on
-- or before observation_end and before the explantation (or with none), that is when the first lead placed after it
-- there (the mart's next_placed_date) was. The explantation is the first on or after the first implant, where that
-- is on or before observation_end.
with
params as (
    select cast($observation_end as date) as obs_end
),
leads as (
    select l.placed_date, l.status, l.next_placed_date, coalesce(l.status_date, l.placed_date) as status_day,
           case when l.explant_after_implant <= params.obs_end then l.explant_after_implant end as explant_date,
           params.obs_end
    from (select explant_after_implant, unnest(leads, recursive := true)
          from marts.patient_course where implanted) l, params
    where l.placed_date <= params.obs_end
)
select
    count(*)                                                                      as placed,
    count(*) filter (where coalesce(list_contains($removed_statuses, status) and status_day <= obs_end
                                    and (explant_date is null or status_day < explant_date), false)  -- removed
                        or (next_placed_date <= obs_end
                            and (explant_date is null or next_placed_date < explant_date)))          -- replaced
                                                                                  as revised,
    count(*) filter (where list_contains($faulty_statuses, status) and status_day <= obs_end)
                                                                                  as faulty_at_end
from leads
