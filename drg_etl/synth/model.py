"""The generator's truth: one person's history in canonical values, center by center."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from drg_etl.core.cpr import Cpr


@dataclass
class Lead:
    """A DRG lead as recorded by the center that placed it."""

    lead_id: str
    center: str
    model: str
    serial: str
    level: str
    side: str
    placed: dt.date
    status: str = "active"
    status_date: dt.date | None = None
    replaces: str | None = None

    def set_status(self, status: str, day: dt.date) -> None:
        """Record a status change (the center keeps only the latest)."""
        self.status, self.status_date = status, day


@dataclass
class Generator:
    """An implantable pulse generator."""

    device_id: str
    center: str
    model: str
    serial: str
    placed: dt.date
    status: str = "active"
    status_date: dt.date | None = None


@dataclass
class Procedure:
    """One procedure; leads and generators placed or removed name devices of the person."""

    kind: str
    center: str
    date: dt.date
    end_date: dt.date | None = None
    trial_success: bool | None = None
    leads_placed: list[str] = field(default_factory=list)
    leads_removed: list[str] = field(default_factory=list)
    lead_concerned: str | None = None
    generator_placed: str | None = None
    generator_removed: str | None = None
    reason: str = ""


@dataclass
class Measurement:
    """One assessment: average and worst NRS and the PCS items (total is their sum)."""

    center: str
    timepoint: str
    date: dt.date
    nrs_average: float | None
    nrs_worst: int | None
    pcs_items: list[int] | None

    @property
    def pcs_total(self) -> int | None:
        """The Pain Catastrophizing Scale total, the sum of its 13 items."""
        return None if self.pcs_items is None else sum(self.pcs_items)


@dataclass
class Complication:
    """A complication, possibly of one lead."""

    center: str
    date: dt.date
    kind: str
    permanent: bool
    lead_id: str | None = None
    note: str = ""


@dataclass
class Person:
    """Everything the generator knows of one person; ``centers[0]`` is the home center."""

    person_no: int
    cpr: Cpr
    pain_location: str
    diagnosis: str
    profile: str
    variant: dict[str, Any]
    centers: list[str]
    procedures: list[Procedure] = field(default_factory=list)
    generators: list[Generator] = field(default_factory=list)
    leads: list[Lead] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    complications: list[Complication] = field(default_factory=list)

    @property
    def sex(self) -> str:
        """Sex as the CPR number gives it."""
        return self.cpr.sex

    def lead(self, lead_id: str) -> Lead:
        """The lead with this id."""
        return next(lead for lead in self.leads if lead.lead_id == lead_id)

    def at(self, center: str) -> dict[str, list[Any]]:
        """This person's facts recorded at one center."""
        return {
            "procedures": [p for p in self.procedures if p.center == center],
            "generators": [g for g in self.generators if g.center == center],
            "leads": [lead for lead in self.leads if lead.center == center],
            "measurements": [m for m in self.measurements if m.center == center],
            "complications": [c for c in self.complications if c.center == center],
        }

    def to_json(self) -> dict[str, Any]:
        """The person as plain JSON values (dates as ISO strings)."""
        data = asdict(self)
        data["cpr"] = self.cpr.digits
        data["sex"] = self.sex
        data["birth_year"] = self.cpr.birth_date.year
        for m, src in zip(data["measurements"], self.measurements, strict=True):
            m["pcs_total"] = src.pcs_total
        return _iso(data)


def _iso(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value
