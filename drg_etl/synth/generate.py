"""Generate the four centers' deliveries (and optionally the truth) for a seed and size."""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from drg_etl.synth import DEFAULT_SEED
from drg_etl.synth.cohort import iter_blocks
from drg_etl.synth.defects import plan_block
from drg_etl.synth.design import Design, design_setting_problems, load_design
from drg_etl.synth.oracle import Oracle
from drg_etl.synth.render.aauh import AauhRenderer
from drg_etl.synth.render.auh import AuhRenderer
from drg_etl.synth.render.base import CenterRenderer
from drg_etl.synth.render.ouh import OuhRenderer
from drg_etl.synth.render.rh import RhRenderer

RENDERERS: dict[str, type[CenterRenderer]] = {
    "auh": AuhRenderer, "ouh": OuhRenderer, "rh": RhRenderer, "aauh": AauhRenderer,
}


@dataclass
class GenerateResult:
    """What a run wrote: the files, record counts, defects and the oracle's figures."""

    files: list[Path] = field(default_factory=list)
    record_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    defects: int = 0
    persons: int = 0
    figures: dict[str, Any] = field(default_factory=dict)


def generate(
    out: Path,
    seed: int = DEFAULT_SEED,
    patients: int | None = None,
    clean: bool = False,
    truth: Path | None = None,
    design: Design | None = None,
    model_failure_ratio: float | None = None,
    failing_model: str | None = None,
) -> GenerateResult:
    """Write the deliveries under ``out``; stream the truth to ``truth`` when given.

    ``patients=None`` is the demo cohort; otherwise ``patients`` trial patients in the
    design's proportions. ``clean`` writes no defects. ``model_failure_ratio`` (with ``failing_model``)
    makes one generator model fail more often (design.py); without it the cohort is the design's.
    """
    design = design or load_design()
    if model_failure_ratio is not None or failing_model is not None:
        design = dataclasses.replace(
            design,
            model_failure_ratio=design.model_failure_ratio if model_failure_ratio is None else model_failure_ratio,
            failing_model=failing_model or design.failing_model)
        if problems := design_setting_problems(design):
            raise ValueError("; ".join(problems))
    if patients is not None and patients < 1:
        raise ValueError("--patients must be at least 1")
    renderers = {c: cls(out, design.cutoff, seed) for c, cls in RENDERERS.items()}
    oracle = Oracle(design.cutoff)
    result = GenerateResult()
    truth_file: IO[str] | None = truth.open("w", encoding="utf-8") if truth else None
    # Defects go to a spool file as they are written, so memory does not grow with the cohort.
    spool = tempfile.TemporaryFile("w+", encoding="utf-8")
    try:
        if truth_file:
            truth_file.write('{"patients": [\n')
        first = True
        for block_no, persons in enumerate(iter_blocks(design, seed, patients)):
            rng = random.Random(f"{seed}:defects:{block_no}")
            hints, extras = ({c: {} for c in renderers}, []) if clean else plan_block(design, renderers, persons, rng)
            for person in persons:
                for center in person.centers:
                    renderers[center].write_person(person, hints[center].get(person.person_no, set()))
                oracle.add(person)
                result.persons += 1
                if truth_file:
                    truth_file.write(("" if first else ",\n") + json.dumps(person.to_json(), ensure_ascii=False))
                    first = False
            for center, kind, person in extras:
                renderers[center].inject(kind, person)
            for renderer in renderers.values():
                for defect in renderer.defects:
                    spool.write(json.dumps(defect.to_json(), ensure_ascii=False) + "\n")
                    result.defects += 1
                renderer.defects.clear()
                renderer.end_block()
        for center, renderer in renderers.items():
            result.files += renderer.close()
            result.record_counts[center] = renderer.record_counts()
        result.figures = oracle.figures()
        if truth_file:
            truth_file.write('\n],\n"defects": [\n')
            spool.seek(0)
            for i, line in enumerate(spool):
                truth_file.write(("" if i == 0 else ",\n") + line.rstrip("\n"))
            meta = {
                "seed": seed,
                "patients_requested": patients,
                "clean": clean,
                "cutoff": design.cutoff.isoformat(),
                **({} if design.model_failure_ratio is None else
                   {"model_failure_ratio": design.model_failure_ratio, "failing_model": design.failing_model}),
                "deliveries": [
                    {"center": c, "delivery": r.delivery, "records": r.record_counts(),
                     "ignored_rows": r.ignored_rows()}
                    for c, r in renderers.items()
                ],
                "figures": result.figures,
            }
            truth_file.write("\n],\n" + json.dumps(meta, ensure_ascii=False, indent=1)[1:])
    finally:
        spool.close()
        if truth_file:
            truth_file.close()
    return result
