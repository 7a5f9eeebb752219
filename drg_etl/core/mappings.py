"""Load the declarative source maps in ``mappings/`` and fail fast when one is malformed."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import yaml

from drg_etl.core import vocabulary
from drg_etl.core.errors import MappingSpecError
from drg_etl.core.paths import MAPPINGS_DIR

CANONICAL_BASE_VARIABLE = "DRG_ETL_CANONICAL_BASE"
PLACEHOLDER = "{canonical_base}"
_BASE = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]+)*$")


@functools.cache
def canonical_base() -> str:
    """The base of every URL of the project's namespace: ``canonical_base`` in mappings/terminology.yaml, or
    ``DRG_ETL_CANONICAL_BASE`` for a run; an absolute http(s) URL without a trailing slash."""
    # libyaml's safe loader where PyYAML has it: the same document, in a twentieth of the time (every command
    # that opens a warehouse asks for the base, analyze included).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load((MAPPINGS_DIR / "terminology.yaml").read_text(encoding="utf-8"), Loader=loader)
    base = os.environ.get(CANONICAL_BASE_VARIABLE) or spec.get("canonical_base", "")
    if not _BASE.match(base):
        where = CANONICAL_BASE_VARIABLE if os.environ.get(CANONICAL_BASE_VARIABLE) else "terminology.yaml"
        raise MappingSpecError(f"{where}: the canonical base must be an absolute http(s) URL without a trailing "
                               f"slash, such as https://registry.example.dk/fhir (got {base!r})")
    return base


def with_canonical_base(text: str) -> str:
    """``text`` (SQL, a ViewDefinition, a mapping) with every ``{canonical_base}`` replaced by the base."""
    return text.replace(PLACEHOLDER, canonical_base())


# Which canonical value set each label table must land in.
_VALUE_SETS: dict[str, tuple[Any, ...]] = {
    "sex": vocabulary.SEXES,
    "pain_location": vocabulary.PAIN_LOCATIONS,
    "diagnosis": vocabulary.DIAGNOSES,
    "procedure": vocabulary.PROCEDURES,
    "procedure_text": vocabulary.PROCEDURES,
    "surgery_type": vocabulary.PROCEDURES,
    "revision_type": vocabulary.PROCEDURES,
    "lead_status": vocabulary.LEAD_STATUSES,
    "complication": vocabulary.COMPLICATIONS,
    "timepoint": vocabulary.TIMEPOINTS,
    "device_type": vocabulary.DEVICE_TYPES,
    "side": ("left", "right"),
    "trial_success": (True, False),
    "permanent": (True, False),
    "measure": vocabulary.MEASURES,
}


class SourceMap:
    """One center's map: column renames and label tables, with the inverse for rendering."""

    def __init__(self, center: str, spec: dict[str, Any]) -> None:
        self.center = center
        self.spec = spec
        self.labels: dict[str, dict[str, Any]] = {
            concept: {str(k): v for k, v in table.items()}
            for concept, table in spec.get("labels", {}).items()
        }
        self.render_any: set[str] = set(spec.get("render_any", []))

    def to_canonical(self, concept: str, label: object) -> Any:
        """The canonical value of a source label; KeyError when the label is unknown."""
        return self.labels[concept][str(label).strip()]

    def labels_for(self, concept: str, value: Any) -> list[str]:
        """Every source label that maps onto a canonical value, in map order."""
        return [label for label, canon in self.labels[concept].items() if canon == value]

    def to_label(self, concept: str, value: Any) -> str:
        """The label a center writes for a canonical value (the first in the map)."""
        labels = self.labels_for(concept, value)
        if not labels:
            raise MappingSpecError(f"mappings/{self.center}.yaml: no {concept} label for {value!r}")
        return labels[0]


def _validate(center: str, spec: dict[str, Any]) -> None:
    if spec.get("center") != center:
        raise MappingSpecError(f"mappings/{center}.yaml: 'center' is {spec.get('center')!r}")
    if not isinstance(spec.get("version"), int):
        raise MappingSpecError(f"mappings/{center}.yaml: 'version' must be an integer")
    for concept, table in spec.get("labels", {}).items():
        allowed = _VALUE_SETS.get(concept)
        if allowed is None:
            continue
        bad = [v for v in table.values() if v not in allowed]
        if bad:
            raise MappingSpecError(
                f"mappings/{center}.yaml: labels.{concept} maps onto {bad}, "
                f"not canonical values {list(allowed)}"
            )


@functools.cache
def source_map(center: str, mappings_dir: Path = MAPPINGS_DIR) -> SourceMap:
    """The validated source map of a center, read once per process."""
    path = mappings_dir / f"{center}.yaml"
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingSpecError(f"{path}: cannot read the source map: {exc}") from exc
    _validate(center, spec)
    return SourceMap(center, spec)
