-- Device performance (analysis.md, "Beyond the paper: competing risks and device performance"): one row per
-- implanted patient whose first implant lies on or before $observation_end (unordered), with
--   ipg_model: the model of the patient's first pulse generator (device_type 'generator', the earliest
--              placed_date, then the smallest id; a generator with no placed_date comes last), 'unknown'
--              where the source gives no model or no generator (marts.patient_course);
--   center:    the center of the first implant (as survival.sql gives it);
--   days:      first implant -> the explantation of the complete system or $observation_end, whichever
--              is first;
--   events:    every lead-defect complication ($defect_types) dated on or after the first implant and
--              on or before that end (all of them, not only the first).
-- Reads the relation `survival` (warehouse/analysis/survival.sql's rows at the same $observation_end), which holds
-- each of these per patient.
select
    s.patient_id,
    s.ipg_model,
    s.implant_center                                                                   as center,
    s.explant_days                                                                     as days,
    s.defect_events                                                                    as events
from survival s
