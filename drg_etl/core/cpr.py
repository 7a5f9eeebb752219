"""The Danish CPR number: parsing, the century rule, sex, and synthesis of valid numbers.

A CPR number is ``DDMMYYSSSS``, written with or without a hyphen after the sixth digit.
The century follows from the 7th digit and the two-digit year (the CPR office's rule);
the last digit is odd for men and even for women. The modulus-11 check is deliberately
not applied: numbers issued since 2007 need not pass it.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import unicodedata
from dataclasses import dataclass

_CPR_PATTERN = re.compile(r"^(\d{6})-?(\d{4})$", re.ASCII)  # ASCII digits: what a CPR number is written in
# Spellings are matched on a folded copy of the text (see fold_text): every Unicode decimal digit
# as its ASCII digit, every dash as "-", every space as " ", character for character, so a match's
# span in the fold is its span in the original.
# Ten digits as DDMMYY then SSSS, even glued to letters ("pt2304871236"): six digits (or pairs, or a
# dotted date), an optional separator, four digits (or two pairs); never inside a longer run of digits.
# Separators a CPR number is written with: spaces, dots, dashes, slashes, underscores, colons, commas, a plus,
# brackets (after folding, every Unicode dash is "-" and every space or invisible character " ").
_SEP = r"[\s._:,+/()\-]"
_DATE6 = rf"(?:\d{{6}}|\d{{2}}{_SEP}?\d{{2}}{_SEP}?\d{{2}})"
_CPR_STRICT = re.compile(rf"(?<!\d){_DATE6}{_SEP}{{0,3}}(?:\d{{4}}|\d{{2}}{_SEP}?\d{{2}})(?!\d)")
# Anything that could be a CPR number or a mistyped one, standing alone (not inside a longer word such as
# a pseudonym or a serial): the same date part, an optional separator, then three to five characters that
# start with a digit (so a date in a note, "d. 12.05.17 ved kontrol", is not taken for one).
_CPR_LIKE = re.compile(
    r"(?<![0-9A-Za-z])(?:cpr[\s:.\-]*)?"          # an optional "CPR" label glued to it
    + _DATE6 +
    rf"{_SEP}{{0,2}}\d[0-9A-Za-z]{{2,4}}"          # separators, then the sequence
    r"(?![0-9A-Za-z])", re.IGNORECASE)
CPR_PLACEHOLDER = "<CPR?>"
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u00ad")


def _fold_char(char: str) -> str:
    if char.isascii():
        return char
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    if char in _DASHES or unicodedata.category(char) == "Pd":
        return "-"
    if unicodedata.category(char) in ("Zs", "Zl", "Zp", "Cf", "Cc"):  # spaces, breaks, invisible characters
        return " "
    return char


class _FoldTable(dict[int, str]):
    """:meth:`str.translate`'s table of :func:`_fold_char`, filled as characters are met (bounded: hostile text may
    hold every character Unicode has)."""

    LIMIT = 1 << 16

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < self.LIMIT:
            self[code] = folded
        return folded


_FOLD_TABLE = _FoldTable()


def fold_text(text: str) -> str:
    """``text`` with Unicode digits, dashes and spaces as their ASCII kin, one character for one."""
    if text.isascii():
        return text
    return text.translate(_FOLD_TABLE)


# Machine identifiers that hold digits by chance: a UUID (FHIR resource ids), a run of 16 or more hex digits
# (a pseudonym or its prefix). A CPR-shaped run inside one is not a CPR number.
_MACHINE_ID = re.compile(r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,})"
                         r"(?![0-9A-Za-z])")


def is_machine_identifier(text: str) -> bool:
    """Whether the text is one machine identifier whole (a UUID, a run of 16 or more hex digits: a pseudonym)."""
    return _MACHINE_ID.fullmatch(text) is not None


def _matches(pattern: re.Pattern[str], folded: str) -> list[re.Match[str]]:
    """The pattern's matches in the folded text, but those inside a machine identifier."""
    found = list(pattern.finditer(folded))
    if not found:
        return found
    machine = [m.span() for m in _MACHINE_ID.finditer(folded)]
    return [m for m in found if not any(start <= m.start() and m.end() <= end for start, end in machine)]


def _cpr_spans(text: str) -> list[tuple[int, int]]:
    folded = fold_text(text)
    spans = [m.span() for m in _matches(_CPR_STRICT, folded)] + [m.span() for m in _matches(_CPR_LIKE, folded)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# The fewest decimal digits a match of either pattern holds: _CPR_LIKE's six of the date and one of the
# sequence (_CPR_STRICT needs ten). Text with fewer (most values: codes, scores, names) is passed at once.
SHORTEST_CPR_TEXT = 7
_ENOUGH_DIGITS = re.compile(rf"(?:\d\D*){{{SHORTEST_CPR_TEXT}}}")
_TEN_DIGITS = re.compile(r"(?:\d\D*){10}")


def scrub_cpr(text: str) -> str:
    """``text`` with everything that could be a CPR number replaced: for messages, reasons and records kept.

    Any spelling: with or without a hyphen, dash, space or dot; digit pairs; a dotted date; glued to
    letters; Unicode digits (full-width, Arabic-Indic, ...) and hyphens (non-breaking, en dash, ...).
    A registry's values repeat (dates, codes, column names): each distinct text is searched once.
    """
    if len(text) < SHORTEST_CPR_TEXT or is_machine_identifier(text):
        return text  # a machine identifier whole (a FHIR id, a pseudonym; each one distinct): never one, not cached
    return _scrubbed_text(text)


@functools.lru_cache(maxsize=1 << 16)  # in memory only, for this process: never written anywhere
def _scrubbed_text(text: str) -> str:
    if _ENOUGH_DIGITS.search(text) is None:
        return text
    spans = _cpr_spans(text)
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], CPR_PLACEHOLDER]
        last = end
    parts.append(text[last:])
    return "".join(parts)


# What every match of either pattern holds, with no look-around (so it is searched fast, and may be searched for
# in many texts joined by characters it cannot hold): the date part (_DATE6 as one branch, which is faster), up to
# three separators, then a digit and two letters or digits (_CPR_LIKE's sequence; _CPR_STRICT's four digits) or a
# digit and a separator (_CPR_STRICT's "12 34"). Searched in folded text, where every decimal digit is ASCII; the
# letters are those _CPR_LIKE's case-insensitive [A-Za-z] takes (the dotted and dotless i, the long s and the
# Kelvin sign too).
CANDIDATE_LETTERS = "A-Za-z\u0130\u0131\u017f\u212a"
_CPR_CANDIDATE = re.compile(rf"[0-9][0-9]{_SEP}?[0-9][0-9]{_SEP}?[0-9][0-9]{_SEP}{{0,3}}[0-9]"
                            rf"(?:[0-9{CANDIDATE_LETTERS}]{{2}}|[0-9]{_SEP})")


def cpr_candidates(text: str) -> list[int]:
    """Where in ``text`` something may be a CPR number: the start of each candidate (see :data:`_CPR_CANDIDATE`).

    A text holding none has nothing :func:`scrub_cpr` would replace; one holding some is asked :func:`scrub_cpr`.
    """
    return [match.start() for match in _CPR_CANDIDATE.finditer(fold_text(text))]


def holds_cpr(text: str) -> bool:
    """Whether an identifier (a serial, a model, a resource id) holds a CPR number in any spelling.

    Stricter than :func:`scrub_cpr`: ten digits whose first six are a day and month that exist,
    so that a serial of other digits is not taken for one (a CPR in an identifier is a data error
    that quarantines the record; in free text it is scrubbed).
    """
    if len(text) < 10 or _TEN_DIGITS.search(text) is None or is_machine_identifier(text):
        return False  # a machine identifier whole (a FHIR id): every match in it is one
    for match in _matches(_CPR_STRICT, fold_text(text)):
        digits = re.sub(r"\D", "", match.group(0))
        day, month = int(digits[0:2]), int(digits[2:4])
        if 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]:
            return True
    return False


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


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
        raise CprError("CPR number encodes an impossible birth date") from exc
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
