"""The canonical value sets every source maps onto (extracts.md, "Canonical values")."""

from __future__ import annotations

from drg_etl.core.levels import SPINAL_LEVELS

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
SIDES = ("left", "right")
LEAD_STATES_AT_END = ("working", "faulty", "removed")  # marts.lead_history.state_at_end
TIMEPOINT_RESOLUTIONS = ("label", "date_window")  # marts.follow_up.resolved_by

# The code list of a coded column of the FHIR flat tables and the marts, by the column's name: the data dictionary
# appends it to the column's description, the release turns it into an enum and a Stata value label set.
CODES_BY_COLUMN: dict[str, tuple[str, ...]] = {
    "center": CENTERS,
    "trial_center": CENTERS,
    "implant_center": CENTERS,
    "managing_center": CENTERS,
    "gender": SEXES,
    "pain_location": PAIN_LOCATIONS,
    "diagnosis": DIAGNOSES,
    "procedure": PROCEDURES,
    "device_type": DEVICE_TYPES,
    "status": LEAD_STATUSES,
    "level": SPINAL_LEVELS,
    "side": SIDES,
    "measure": MEASURES,
    "timepoint": TIMEPOINTS,
    "timepoint_label": TIMEPOINTS,
    "complication": COMPLICATIONS,
    "state_at_end": LEAD_STATES_AT_END,
    "resolved_by": TIMEPOINT_RESOLUTIONS,
    "severity": ("error", "warning"),
    "kahn_category": ("conformance", "completeness", "plausibility"),
}
