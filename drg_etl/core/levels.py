"""Spinal levels of DRG leads: C1-C8, T1-T12, L1-L5, S1-S5, in cranio-caudal order."""

from __future__ import annotations

SPINAL_LEVELS: tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 9))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
    + tuple(f"S{i}" for i in range(1, 6))
)
SIDES: tuple[str, ...] = ("left", "right")


class LevelError(ValueError):
    """A value that is not a spinal level."""


def parse_level(value: object) -> str:
    """Normalise a spinal level such as ``l5`` or `` L5 `` to ``L5``; raise LevelError otherwise."""
    if value is None:
        raise LevelError("spinal level is missing")
    text = str(value).strip().upper()
    if text not in SPINAL_LEVELS:
        raise LevelError(f"{value!r} is not a spinal level (C1-C8, T1-T12, L1-L5, S1-S5)")
    return text


def level_index(level: str) -> int:
    """The 0-based position of a level in cranio-caudal order."""
    return SPINAL_LEVELS.index(parse_level(level))
