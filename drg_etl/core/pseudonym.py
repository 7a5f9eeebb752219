"""CPR pseudonyms: HMAC-SHA256 of the normalised CPR number under a secret key (fhir.md "Identity").

The key comes from ``DRG_ETL_PSEUDONYM_KEY``. The same person gets the same pseudonym at
every center and in every load; another key gives unlinkable pseudonyms. The CPR number
itself is never persisted.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import os
import string
from collections import Counter

from drg_etl.core.cpr import Cpr
from drg_etl.core.errors import UsageError

KEY_VARIABLE = "DRG_ETL_PSEUDONYM_KEY"
OLD_KEY_VARIABLE = "DRG_ETL_OLD_PSEUDONYM_KEY"
#: The fixed key `drg-etl demo` uses, and says so. It is public: no other command accepts it.
DEMO_KEY = "drg-etl-demo-key-not-for-real-data"
MIN_KEY_HEX_DIGITS = 32  # 128 bits
MIN_ENTROPY_BITS = 100.0  # the key's characters, by their observed frequencies
# Steps of 0 or +-1 between neighbouring digits: about 3/16 of a random key's, nearly all of a typed sequence's.
SEQUENCE_SHARE = 0.6
HOW = f"e.g.  export {KEY_VARIABLE}=\"$(python -c 'import secrets; print(secrets.token_hex(32))')\""


class WeakKey(UsageError):
    """A pseudonym key too weak or too public to protect CPR numbers (exit 2)."""


def normalised_key(key: str) -> str:
    """The key as its hex digits spell it: surrounding whitespace (a pasted newline) and letter case do not
    matter. The HMAC key is this text, one for one with the bytes it spells, so keys of earlier warehouses
    (lower-case hex) give the same pseudonyms."""
    return key.strip().lower()


def key_weakness(key: str) -> str | None:
    """Why a key is refused (cli.md: hex, long, not guessable, not the demo key), or None."""
    if key == DEMO_KEY:
        return "it is the public demo key, which only `drg-etl demo` may use"
    if not key.strip():
        return "it is blank"
    key = normalised_key(key)
    if bad := sorted({c for c in key if c not in string.hexdigits}):
        shown = ", ".join(repr(c) for c in bad[:5])
        return f"it is not hexadecimal: it holds {shown} (only 0-9 and a-f, 2 per byte)"
    if len(key) < MIN_KEY_HEX_DIGITS:
        return f"it has {len(key)} hex digits, fewer than {MIN_KEY_HEX_DIGITS} (128 bits)"
    lowered = key.lower()
    period = next((p for p in range(1, len(key) // 2 + 1) if all(lowered[i] == lowered[i % p]
                                                                   for i in range(len(key)))), None)
    if period is not None:
        return f"it repeats a pattern of {period} characters"
    counts = Counter(lowered)
    bits = max(0.0, -len(key) * sum(n / len(key) * math.log2(n / len(key)) for n in counts.values()))
    if bits < MIN_ENTROPY_BITS:
        return f"it is too regular to be secret (about {bits:.0f} bits of entropy, at least {MIN_ENTROPY_BITS:.0f})"
    digits = [int(c, 16) for c in lowered]
    steps = [(b - a) % 16 for a, b in itertools.pairwise(digits)]
    if sum(step in (0, 1, 15) for step in steps) > SEQUENCE_SHARE * len(steps):
        return "it counts up or down or repeats digits (a sequence like 0123... or 00112233...), not random"
    return None


def check_key(key: str, variable: str = KEY_VARIABLE) -> bytes:
    """The key as the HMAC key, or WeakKey saying why it is refused and how to make a good one."""
    if (why := key_weakness(key)) is not None:
        raise WeakKey(f"{variable} is refused: {why}. Use a random secret of 64 hex digits, {HOW}")
    return normalised_key(key).encode("ascii")


def key_from_environment(variable: str = KEY_VARIABLE) -> bytes:
    """The pseudonym key from the environment; UsageError (exit 2) says how to set it."""
    key = os.environ.get(variable, "")
    if not key:
        raise UsageError(f"{variable} is not set. Pseudonyms are keyed: set a random secret, {HOW}")
    return check_key(key, variable)


def fingerprint(key: bytes) -> str:
    """A keyed hash that identifies the key without revealing it (stored with the warehouse)."""
    return hmac.new(key, b"drg-etl pseudonym key fingerprint v1", hashlib.sha256).hexdigest()


class Pseudonymizer:
    """Turns CPR numbers into keyed pseudonyms (hex HMAC-SHA256 of the 10 digits)."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise UsageError("the pseudonym key is empty")
        self._key = key
        self.fingerprint = fingerprint(key)

    def __call__(self, cpr: Cpr) -> str:
        """The pseudonym of a validated CPR number."""
        return hmac.digest(self._key, cpr.digits.encode("ascii"), "sha256").hex()  # hmac.new's, in one C call

    def of_text(self, text: str) -> str:
        """A pseudonym for any identifying text (an invalid CPR as written), so none is persisted."""
        return "x-" + hmac.digest(self._key, text.strip().encode("utf-8"), "sha256").hex()[:32]
