"""Property tests: any input to a value parser gives a value or a ValueProblem naming a rule, never a crash."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drg_etl.core.rules import RULES
from drg_etl.sources.values import (
    ValueProblem,
    check_date_range,
    parse_danish_date,
    parse_decimal,
    parse_dotted_date,
    parse_integer,
    parse_iso_date,
)

PARSERS = [parse_danish_date, parse_dotted_date, parse_iso_date, parse_integer,
           lambda t: parse_decimal(t, comma=True), lambda t: parse_decimal(t, comma=False)]


@pytest.mark.parametrize("parse", PARSERS)
@given(text=st.text(max_size=16))
def test_value_or_clear_error(parse, text: str) -> None:
    try:
        parse(text)
    except ValueProblem as exc:
        assert exc.rule_id in RULES and str(exc)


@given(st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_dates_round_trip(day: dt.date) -> None:
    if day.year >= 1000:
        assert parse_danish_date(f"{day:%d-%m-%Y}") == day
        assert parse_dotted_date(f"{day:%d.%m.%Y}") == day
        assert parse_iso_date(day.isoformat()) == day


@given(st.decimals(min_value=-1000, max_value=1000, places=1, allow_nan=False, allow_infinity=False))
def test_danish_decimals_round_trip(value) -> None:
    text = f"{value:.1f}"
    assert parse_decimal(text.replace(".", ","), comma=True) == pytest.approx(float(value))
    assert parse_decimal(text, comma=False) == pytest.approx(float(value))


@pytest.mark.parametrize(("text", "rule_id"), [
    ("31-02-2016", "date.invalid"), ("2017-02-30", "date.invalid"), ("31.02.2017", "date.invalid"),
    ("1-2-2016", "date.invalid"), ("6.8", "code.unknown"), ("seks", "code.unknown"),
])
def test_known_bad_values(text: str, rule_id: str) -> None:
    parsers = {"date.invalid": [parse_danish_date, parse_iso_date, parse_dotted_date],
               "code.unknown": [lambda t: parse_decimal(t, comma=True)]}[rule_id]
    problems = []
    for parse in parsers:
        with pytest.raises(ValueProblem) as info:
            parse(text)
        problems.append(info.value.rule_id)
    assert rule_id in problems


def test_date_range() -> None:
    cutoff = dt.date(2019, 12, 31)
    assert check_date_range(dt.date(2010, 1, 1), cutoff) == dt.date(2010, 1, 1)
    for day in (dt.date(2009, 12, 31), dt.date(2020, 1, 1)):
        with pytest.raises(ValueProblem) as info:
            check_date_range(day, cutoff)
        assert info.value.rule_id == "date.out_of_range"
