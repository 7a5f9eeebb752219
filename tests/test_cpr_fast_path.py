"""The scrubber's fast paths (short text, too few digits, a UUID, the cache) change no answer."""

from __future__ import annotations

import random
import uuid

from drg_etl.core.cpr import CPR_PLACEHOLDER, _cpr_spans, scrub_cpr

_PIECES = ["230487", "1236", "-", "\u2011", " ", ".", "pt", "cpr:", "１２", "23", "04", "87", "12", "36", "x", "\n",
           "2019-03-02", "0", "9", "/", "ab", "٣", "(", ")"]


def _reference(text: str) -> str:
    """The scrubber without its fast paths: every span the patterns find, replaced."""
    parts, last = [], 0
    for start, end in _cpr_spans(text):
        parts += [text[last:start], CPR_PLACEHOLDER]
        last = end
    return "".join([*parts, text[last:]])


def test_the_fast_paths_agree_with_the_patterns_on_hostile_text() -> None:
    rng = random.Random(18)
    texts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 9))) for _ in range(20_000)]
    texts += [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(2_000)]
    texts += ["2304871236", "230487-1236", "2304871", "230487 1x9", "1234567", "123456", "ab2304871236cd"]
    changed = 0
    for text in texts * 2:  # the second pass answers from the cache
        assert scrub_cpr(text) == _reference(text), text
        changed += scrub_cpr(text) != text
    assert changed > 1_000  # the generated texts do hold CPR numbers: the comparison is not vacuous
