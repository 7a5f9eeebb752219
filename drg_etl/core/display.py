"""How a figure is written for a reader: one convention shared by the report and the terminal.

p-values follow the convention of the APA and NEJM style guides: a p-value below 0.001 is written
``< 0.001``; any other with two significant digits (``0.0039``, ``0.049``, ``0.31``, ``0.10``).
``analyze --json`` keeps the raw numbers; only what a person reads is rounded.
"""

from __future__ import annotations

import math

#: Below this a p-value is written ``< 0.001`` (APA, NEJM).
P_FLOOR = 0.001


def format_p(value: object, floor: float | None = P_FLOOR) -> str:
    """``value`` as a reader expects a p-value: ``< 0.001`` below ``floor``, else two significant digits.

    ``floor=None`` gives two significant digits throughout (``0.00049``), as Horan et al. print theirs:
    for a comparison at the paper's rounding. A value that is not a number (None, a masked "<5") is
    written as it is, None as "n/a".
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return str(value)
    p = float(value)
    if floor is not None and p < floor:
        return f"< {floor:g}"
    if p == 0:
        return "0"
    text = f"{p:#.2g}"  # '#' keeps a trailing zero: 0.10, 1.0
    if "e" in text:  # below 1e-4 (only when floor is None): write it out, still two significant digits
        digits = 1 - math.floor(math.log10(abs(p)))
        text = f"{p:.{digits}f}"
    return text
