"""The canonical value sets every source maps onto (extracts.md, "Canonical values")."""

from __future__ import annotations

PAIN_LOCATIONS = ("lower_extremity", "upper_extremity", "thoracic_abdominal")
DIAGNOSES = ("crps_1", "crps_2", "postsurgical", "posttraumatic", "postherpetic", "other")
PROCEDURES = (
    "trial",
    "implant",
    "lead_replacement",
    "lead_repositioning",
    "ipg_replacement",
    "lead_removal",
    "explant",
)
LEAD_STATUSES = ("active", "fractured", "malfunction", "removed", "removed_fragment_retained")
COMPLICATIONS = (
    "lead_fracture",
    "lead_malfunction",
    "lead_migration",
    "infection",
    "csf_leak",
    "pocket_pain",
    "retained_fragment",
    "nerve_damage",
    "other",
)
TIMEPOINTS = ("baseline", "month_3", "month_6", "month_12", "month_24", "month_36")
DEVICE_TYPES = ("generator", "lead")
SEXES = ("male", "female")
MEASURES = ("nrs_average", "nrs_worst", "pcs_total")

CENTERS = ("auh", "ouh", "rh", "aauh")
CENTER_NAMES = {
    "auh": "Aarhus Universitetshospital",
    "ouh": "Odense Universitetshospital",
    "rh": "Rigshospitalet",
    "aauh": "Aalborg Universitetshospital",
}
FAULTY_LEAD_STATUSES = ("fractured", "malfunction")
REMOVED_LEAD_STATUSES = ("removed", "removed_fragment_retained")
LEAD_DEFECT_COMPLICATIONS = ("lead_fracture", "lead_malfunction")
