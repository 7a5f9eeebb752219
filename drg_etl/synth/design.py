"""Read the cohort design (demo_cohort.yaml) into plain values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from drg_etl.core import vocabulary
from drg_etl.core.errors import MappingSpecError

#: The pulse generator models the generator places.
IPG_MODELS = ("Axium", "Proclaim DRG")
DESIGN_PATH = Path(__file__).with_name("demo_cohort.yaml")


#: The rule each kind of injected defect breaks.
KIND_RULES: dict[str, str] = {
    "cpr_invalid": "cpr.invalid",
    "sex_mismatch": "cpr.sex_mismatch",
    "date_invalid": "date.invalid",
    "date_after_cutoff": "date.out_of_range",
    "date_before_2010": "date.out_of_range",
    "score_out_of_range": "score.out_of_range",
    "pcs_mismatch": "pcs.total_mismatch",
    "code_unknown": "code.unknown",
    "missing_required": "value.missing_required",
    "duplicate": "row.duplicate",
    "conflict": "row.conflict",
    "implant_without_trial": "implant.without_trial",
    "explant_before_implant": "dates.out_of_order",
    "followup_outside_window": "followup.outside_window",
    "lead_never_placed": "lead.never_placed",
    "no_demographics": "patient.no_demographics",
}


@dataclass(frozen=True)
class Design:
    """The cohort design: block size, center and pain-location quotas, courses, targets."""

    block: int
    cutoff: dt.date
    centers: dict[str, int]
    pain_location: dict[str, int]
    profiles: dict[str, dict[str, Any]]
    cross_center: list[dict[str, Any]]
    screened_only: dict[str, int]
    score_targets: dict[str, dict[str, float]]
    defects: dict[str, list[str]]
    phantom_defects: dict[str, list[str]]
    #: None: the generator model is drawn alike for all. R: a patient whose course brings a lead defect
    #: gets ``failing_model`` at the first implant R times as often as the other model (where both are on
    #: the market, from 2017), from a random stream of its own, so the rest of the cohort is unchanged.
    model_failure_ratio: float | None = None
    failing_model: str = "Proclaim DRG"

    def profile_slots(self) -> list[tuple[str, int, dict[str, Any]]]:
        """One (profile, index within profile, variant) per trial patient of a block."""
        slots = []
        for name, spec in self.profiles.items():
            variants = spec.get("variants") or [{}]
            for index in range(spec["count"]):
                slots.append((name, index, dict(variants[index % len(variants)])))
        return slots


def load_design(path: Path = DESIGN_PATH) -> Design:
    """Load and check the design; a malformed design fails here, not halfway through a run."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    design = Design(
        block=int(spec["block"]),
        cutoff=spec["cutoff"],
        centers=dict(spec["centers"]),
        pain_location=dict(spec["pain_location"]),
        profiles=dict(spec["profiles"]),
        cross_center=list(spec.get("cross_center", [])),
        screened_only=dict(spec.get("screened_only", {})),
        score_targets=dict(spec["score_targets"]),
        defects={c: list(k) for c, k in spec.get("defects", {}).items()},
        phantom_defects={c: list(k) for c, k in spec.get("phantom_defects", {}).items()},
        model_failure_ratio=spec.get("model_failure_ratio"),
        failing_model=spec.get("failing_model", "Proclaim DRG"),
    )
    problems = []
    if sum(design.centers.values()) != design.block:
        problems.append("centers do not add up to block")
    if sum(design.pain_location.values()) != design.block:
        problems.append("pain_location does not add up to block")
    if sum(p["count"] for p in design.profiles.values()) != design.block:
        problems.append("profile counts do not add up to block")
    if set(design.centers) - set(vocabulary.CENTERS):
        problems.append(f"unknown centers {set(design.centers) - set(vocabulary.CENTERS)}")
    if set(design.pain_location) - set(vocabulary.PAIN_LOCATIONS):
        problems.append("unknown pain locations")
    unknown = {k for kinds in design.defects.values() for k in kinds} - set(KIND_RULES)
    if unknown:
        problems.append(f"unknown defect kinds {sorted(unknown)}")
    problems += design_setting_problems(design)
    if problems:
        raise MappingSpecError(f"{path}: " + "; ".join(problems))
    return design


def design_setting_problems(design: Design) -> list[str]:
    """What is wrong with the model-failure setting, if anything."""
    problems = []
    ratio = design.model_failure_ratio
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio > 0):
        problems.append("model_failure_ratio must be a number above 0")
    if design.failing_model not in IPG_MODELS:
        problems.append(f"failing_model must be one of {list(IPG_MODELS)}")
    return problems
