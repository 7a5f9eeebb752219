"""Parsers for the values the centers write. Each returns a value or raises ValueProblem with a rule id."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from drg_etl.core.dates import EARLIEST_PLAUSIBLE


class ValueProblem(ValueError):
    """A value that breaks a rule; ``rule_id`` names the rule (core/rules.py)."""

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id


_DANISH_DATE = re.compile(r"^(\d{2})-(\d{2})-(\d{4})$")
_DOTTED_DATE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
_INTEGER = re.compile(r"^-?\d+$")


def _make_date(year: str, month: str, day: str, text: str) -> dt.date:
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError as exc:
        raise ValueProblem("date.invalid", f"{text!r} is not a calendar date") from exc


def parse_danish_date(text: str) -> dt.date:
    """``dd-mm-yyyy`` (auh)."""
    match = _DANISH_DATE.match(text.strip())
    if not match:
        raise ValueProblem("date.invalid", f"{text!r} is not a date dd-mm-yyyy")
    day, month, year = match.groups()
    return _make_date(year, month, day, text)


def parse_dotted_date(text: str) -> dt.date:
    """``dd.mm.yyyy`` (dates typed as text in the ouh workbook)."""
    match = _DOTTED_DATE.match(text.strip())
    if not match:
        raise ValueProblem("date.invalid", f"{text!r} is not a date dd.mm.yyyy")
    day, month, year = match.groups()
    return _make_date(year, month, day, text)


def parse_iso_date(text: str) -> dt.date:
    """``YYYY-MM-DD`` (REDCap, FHIR dates; a FHIR dateTime's date part is accepted)."""
    match = _ISO_DATE.match(text.strip()[:10])
    if not match or (len(text.strip()) > 10 and text.strip()[10] != "T"):
        raise ValueProblem("date.invalid", f"{text!r} is not a date YYYY-MM-DD")
    return _make_date(*match.groups(), text)


def check_date_range(day: dt.date, cutoff: dt.date) -> dt.date:
    """A date no earlier than 2010 and no later than the delivery's cutoff."""
    if day > cutoff:
        raise ValueProblem("date.out_of_range", f"{day.isoformat()} is after the delivery's cutoff {cutoff}")
    if day < EARLIEST_PLAUSIBLE:
        raise ValueProblem("date.out_of_range", f"{day.isoformat()} is before {EARLIEST_PLAUSIBLE}")
    return day


def parse_decimal(text: str, *, comma: bool) -> float:
    """A decimal number written with a decimal comma (``6,8``) or point (``6.8``)."""
    raw = text.strip()
    if comma:
        if "." in raw:
            raise ValueProblem("code.unknown", f"{text!r} uses a decimal point; this source writes a comma")
        raw = raw.replace(",", ".")
    if not _DECIMAL.match(raw):
        raise ValueProblem("code.unknown", f"{text!r} is not a number")
    try:
        return float(Decimal(raw))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueProblem("code.unknown", f"{text!r} is not a number") from exc


def parse_integer(text: str) -> int:
    """A whole number."""
    raw = text.strip()
    if not _INTEGER.match(raw):
        raise ValueProblem("code.unknown", f"{text!r} is not a whole number")
    return int(raw)


def check_score(value: float, low: float, high: float, name: str) -> float:
    """A score within its scale."""
    if not low <= value <= high:
        raise ValueProblem("score.out_of_range", f"{name} {value:g} is outside {low:g}-{high:g}")
    return value
