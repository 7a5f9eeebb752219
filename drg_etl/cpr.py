"""The Danish CPR number: parsing, the century rule, sex, and synthesis of valid numbers.

A CPR number is ``DDMMYYSSSS``, written with or without a hyphen after the sixth digit.
The century follows from the 7th digit and the two-digit year (the CPR office's rule);
the last digit is odd for men and even for women. The modulus-11 check is deliberately
not applied: numbers issued since 2007 need not pass it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass

_CPR_PATTERN = re.compile(r"^(\d{6})-?(\d{4})$")
# Anything that could be a CPR number or a mistyped one: six digits (or a dotted date), an optional
# separator, three to five more characters, standing alone (not inside a longer word such as a
# pseudonym or a serial).
_CPR_LIKE = re.compile(
    r"(?<![0-9A-Za-z])(?:cpr[\s:.\-]*)?"          # an optional "CPR" label glued to it
    r"(?:\d{6}|\d{2}([./-])\d{2}\1\d{2})"          # DDMMYY, or DD.MM.YY / DD-MM-YY / DD/MM/YY
    r"[\s\-\u2013\u2014./]?[0-9A-Za-z]{3,5}"        # a space, hyphen, dash or dot, then the sequence
    r"(?![0-9A-Za-z])", re.IGNORECASE)
CPR_PLACEHOLDER = "<CPR?>"


def scrub_cpr(text: str) -> str:
    """``text`` with everything that could be a CPR number replaced: for messages, reasons and records kept."""
    return _CPR_LIKE.sub(CPR_PLACEHOLDER, text)


class CprError(ValueError):
    """A value that is not a valid CPR number; the message says why."""


@dataclass(frozen=True)
class Cpr:
    """A validated CPR number in normalised form (10 digits, no hyphen)."""

    digits: str

    @property
    def birth_date(self) -> dt.date:
        """The birth date encoded in the number."""
        return _birth_date(self.digits)

    @property
    def sex(self) -> str:
        """``male`` when the last digit is odd, ``female`` when it is even."""
        return "male" if int(self.digits[-1]) % 2 else "female"

    def hyphenated(self) -> str:
        """The ``DDMMYY-SSSS`` spelling."""
        return f"{self.digits[:6]}-{self.digits[6:]}"


def century_year(two_digit_year: int, seventh_digit: int) -> int:
    """The four-digit birth year under the CPR century rule."""
    if seventh_digit <= 3:
        return 1900 + two_digit_year
    if seventh_digit in (4, 9):
        return (2000 if two_digit_year <= 36 else 1900) + two_digit_year
    return (2000 if two_digit_year <= 57 else 1800) + two_digit_year


def _birth_date(digits: str) -> dt.date:
    day, month, yy = int(digits[0:2]), int(digits[2:4]), int(digits[4:6])
    year = century_year(yy, int(digits[6]))
    return dt.date(year, month, day)


def parse_cpr(value: object) -> Cpr:
    """Parse and validate a CPR number written with or without the hyphen.

    Raises :class:`CprError` naming what is wrong: length, characters or an impossible
    birth date.
    """
    if value is None:
        raise CprError("CPR number is missing")
    text = str(value).strip()
    if not text:
        raise CprError("CPR number is missing")
    match = _CPR_PATTERN.match(text)
    if match is None:
        digits = text.replace("-", "")
        if not digits.isdigit() or not digits.isascii():
            raise CprError("CPR number has characters other than digits and one hyphen")
        raise CprError(f"CPR number has {len(digits)} digits, not 10")
    digits = match.group(1) + match.group(2)
    try:
        _birth_date(digits)
    except ValueError as exc:
        raise CprError(f"CPR number encodes an impossible birth date ({digits[:6]})") from exc
    return Cpr(digits)


def synthesize_cpr(birth_date: dt.date, sex: str, rng: random.Random) -> Cpr:
    """A valid synthetic CPR number for a birth date and sex (not modulus-11 checked)."""
    yy = birth_date.year % 100
    if 1900 <= birth_date.year <= 1999:
        choices = [0, 1, 2, 3] + ([4, 9] if yy >= 37 else [])
    elif 2000 <= birth_date.year <= 2036:
        choices = [4, 9, 5, 6, 7, 8]
    else:
        raise ValueError(f"no CPR century digit for birth year {birth_date.year}")
    seventh = rng.choice(choices)
    middle = rng.randrange(0, 100)
    last = rng.randrange(1, 10, 2) if sex == "male" else rng.randrange(0, 10, 2)
    digits = f"{birth_date:%d%m}{yy:02d}{seventh}{middle:02d}{last}"
    cpr = parse_cpr(digits)
    assert cpr.birth_date == birth_date, (digits, birth_date)
    return cpr
