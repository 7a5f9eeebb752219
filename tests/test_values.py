"""Value parsers: CPR numbers and spinal levels give a value or a clear error, never a crash."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drg_etl.core.cpr import CprError, century_year, parse_cpr, synthesize_cpr
from drg_etl.core.levels import SPINAL_LEVELS, LevelError, level_index, parse_level


@pytest.mark.parametrize(
    ("text", "birth", "sex"),
    [
        ("010170-1233", dt.date(1970, 1, 1), "male"),
        ("0101701234", dt.date(1970, 1, 1), "female"),
        ("2902004120", dt.date(2000, 2, 29), "female"),  # 7th digit 4, year 00-36: 2000s
        ("0101384121", dt.date(1938, 1, 1), "male"),  # 7th digit 4, year 37-99: 1900s
        ("0101605001", dt.date(1860, 1, 1), "male"),  # 7th digit 5-8, year 58-99: 1800s
        ("0101575002", dt.date(2057, 1, 1), "female"),  # 7th digit 5-8, year 00-57: 2000s
        (" 311299-9999 ", dt.date(1999, 12, 31), "male"),  # 7th digit 9, year 37-99
    ],
)
def test_cpr_century_rule_birth_date_and_sex(text: str, birth: dt.date, sex: str) -> None:
    cpr = parse_cpr(text)
    assert cpr.birth_date == birth
    assert cpr.sex == sex
    assert cpr.digits == text.strip().replace("-", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("01017012", "8 digits, not 10"),
        ("010170-12345", "11 digits"),
        ("31O585-1234", "characters"),
        ("3102851234", "impossible birth date"),
        ("0113851234", "impossible birth date"),
        ("", "missing"),
        (None, "missing"),
    ],
)
def test_cpr_errors_say_what_is_wrong(text: str | None, message: str) -> None:
    with pytest.raises(CprError, match=message):
        parse_cpr(text)


def test_modulus_11_is_not_a_validity_test() -> None:
    # 0101701234 fails the old modulus-11 check; numbers issued since 2007 need not pass it.
    weights = [4, 3, 2, 7, 6, 5, 4, 3, 2, 1]
    assert sum(int(d) * w for d, w in zip("0101701234", weights, strict=True)) % 11 != 0
    assert parse_cpr("0101701234").digits == "0101701234"


@given(st.one_of(st.text(max_size=14), st.integers(), st.none(), st.floats()))
def test_parse_cpr_never_crashes(value: object) -> None:
    try:
        cpr = parse_cpr(value)
    except CprError as exc:
        assert str(exc)
    else:
        assert len(cpr.digits) == 10 and cpr.digits.isdigit()


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2036, 12, 31)),
       st.sampled_from(["male", "female"]), st.integers(0, 2**32))
def test_synthesized_cpr_round_trips(birth: dt.date, sex: str, seed: int) -> None:
    cpr = synthesize_cpr(birth, sex, random.Random(seed))
    again = parse_cpr(cpr.hyphenated())
    assert again.birth_date == birth and again.sex == sex


def test_century_rule_table() -> None:
    assert [century_year(36, d) for d in range(10)] == [1936] * 4 + [2036] + [2036] * 4 + [2036]
    assert [century_year(58, d) for d in range(10)] == [1958] * 4 + [1958] + [1858] * 4 + [1958]


@given(st.one_of(st.text(max_size=5), st.none(), st.integers()))
def test_parse_level_value_or_clear_error(value: object) -> None:
    try:
        level = parse_level(value)
    except LevelError as exc:
        assert "spinal level" in str(exc)
    else:
        assert level in SPINAL_LEVELS


def test_levels_are_the_thirty_in_order() -> None:
    assert len(SPINAL_LEVELS) == 30
    assert SPINAL_LEVELS[0] == "C1" and SPINAL_LEVELS[-1] == "S5"
    assert parse_level(" l5 ") == "L5"
    assert level_index("T1") == 8 and level_index("L1") == 20
