"""What a pull did, for the command line and the Dagster assets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PullResult:
    """What a pull did: the delivery it wrote (or that nothing changed), and what it asked and received."""

    center: str
    folder: Path
    written: bool
    replaced: bool
    mode: str  # "full" or "incremental"
    counts: dict[str, int]
    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)
