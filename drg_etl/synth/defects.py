"""Choose, per block, which persons carry which injected defects."""

from __future__ import annotations

import random

from drg_etl.synth.design import Design
from drg_etl.synth.model import Person
from drg_etl.synth.render.base import CenterRenderer


def plan_block(
    design: Design, renderers: dict[str, CenterRenderer], persons: list[Person], rng: random.Random
) -> tuple[dict[str, dict[int, set[str]]], list[tuple[str, str, Person | None]]]:
    """Pick carriers for the block's defects.

    Returns the per-center hints (person number -> kinds that alter that person's own
    rows) and the extra rows to write after the block (center, kind, person or None).
    A person carries at most one hint per center.
    """
    hints: dict[str, dict[int, set[str]]] = {center: {} for center in renderers}
    extras: list[tuple[str, str, Person | None]] = []
    for center, kinds in design.defects.items():
        renderer = renderers[center]
        phantoms = set(design.phantom_defects.get(center, []))
        for kind in kinds:
            if kind in phantoms:
                extras.append((center, kind, None))
                continue
            hinted = kind in renderer.hint_kinds
            candidates = [
                p for p in persons
                if renderer.eligible(kind, p) and not (hinted and p.person_no in hints[center])
            ]
            if not candidates:
                continue
            carrier = rng.choice(candidates)
            if hinted:
                hints[center].setdefault(carrier.person_no, set()).add(kind)
            else:
                extras.append((center, kind, carrier))
    return hints, extras
