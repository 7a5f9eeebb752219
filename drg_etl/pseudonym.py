"""CPR pseudonyms: HMAC-SHA256 of the normalised CPR number under a secret key (fhir.md "Identity").

The key comes from ``DRG_ETL_PSEUDONYM_KEY``. The same person gets the same pseudonym at
every center and in every load; another key gives unlinkable pseudonyms. The CPR number
itself is never persisted.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from drg_etl.cpr import Cpr
from drg_etl.errors import UsageError

KEY_VARIABLE = "DRG_ETL_PSEUDONYM_KEY"
#: The fixed key `drg-etl demo` uses, and says so. Never use it for real data.
DEMO_KEY = "drg-etl-demo-key-not-for-real-data"
MIN_KEY_LENGTH = 16


def key_from_environment() -> bytes:
    """The pseudonym key from the environment; UsageError (exit 2) says how to set it."""
    key = os.environ.get(KEY_VARIABLE, "")
    if not key:
        raise UsageError(
            f"{KEY_VARIABLE} is not set. Pseudonyms are keyed: set a secret of at least {MIN_KEY_LENGTH} "
            f"characters, e.g.  export {KEY_VARIABLE}=\"$(python -c 'import secrets; print(secrets.token_hex(32))')\""
        )
    if len(key) < MIN_KEY_LENGTH:
        raise UsageError(f"{KEY_VARIABLE} is shorter than {MIN_KEY_LENGTH} characters; use a longer secret")
    return key.encode("utf-8")


class Pseudonymizer:
    """Turns CPR numbers into keyed pseudonyms (hex HMAC-SHA256 of the 10 digits)."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise UsageError("the pseudonym key is empty")
        self._key = key

    def __call__(self, cpr: Cpr) -> str:
        """The pseudonym of a validated CPR number."""
        return hmac.new(self._key, cpr.digits.encode("ascii"), hashlib.sha256).hexdigest()

    def of_text(self, text: str) -> str:
        """A pseudonym for any identifying text (an invalid CPR as written), so none is persisted."""
        return "x-" + hmac.new(self._key, text.strip().encode("utf-8"), hashlib.sha256).hexdigest()[:32]
