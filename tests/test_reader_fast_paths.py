"""The readers' fast paths give the answers of the slow ones. A header that is the contract exactly passes the schema;
the leading columns of a CSV row are those of its whole record; a parsed JSON record read from its own text is kept as
the full scrub keeps it.
The kept source record's fast paths (a record's keys asked once, a record of texts searched as one text, the JSON
types first) give the full scrub's text, byte for byte, on hostile records: CPR numbers in every spelling, split by
characters JSON escapes, in numbers, keys and nested values, beside dates, subclasses and values JSON does not know.
The comparison can fail: a weakened fast path is caught."""

from __future__ import annotations

import datetime as dt
import enum
import random
import re
import uuid
from typing import Any

import orjson
import pandas as pd
import pytest

from drg_etl.core.cpr import CANDIDATE_LETTERS, CPR_PLACEHOLDER, SHORTEST_CPR_TEXT, fold_text, scrub_cpr
from drg_etl.core.delivery import FileRejected
from drg_etl.core.formats import FORMATS
from drg_etl.sources import base
from drg_etl.sources.base import kept_json
from drg_etl.sources.csvfile import _record, check_columns, header_contract, leading_columns

PSEUDONYM = "9f" * 32
_PIECES = ["230487", "1236", "-", "\u2011", " ", "\u00a0", ".", "pt", "cpr:", "１２", "23", "04", "87", "12", "36",
           "x", "\n", "\r", "\t", "\x0b", '"', "\\", "2019-03-02", "T10:15", "0", "9", "/", "ab", "٣", "(", ")", "[",
           "}", ":", ",", "e+", "\u212a", "\u017f", "\u2028", "\u200b", "æøå"]


class _Color(enum.Enum):
    RED = "2304871236"


class _Text(str):
    pass


class _Number(float):
    def __str__(self) -> str:
        return "230487-1236"


_NEAR_MISSES = [p for p in _PIECES if p not in ("230487", "1236", "\n", "\r")]  # text that holds a CPR more rarely


def _text(rng: random.Random) -> str:
    pieces = _PIECES if rng.random() < 0.3 else _NEAR_MISSES
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(14)
    if kind < 5:
        return _text(rng)
    if kind == 5:
        return rng.choice([2304871236, -2304871236, 230487, 10**20, 12345678901234567, 0, 23048712360])
    if kind == 6:
        mantissa = rng.choice(["1.2345678901", "2.30487123", "1.23456789", "9.87654321", "2.3048"])
        return float(f"{mantissa}e{rng.randint(-12, 25)}")
    if kind == 7:
        return rng.choice([float("nan"), float("inf"), -0.0, 1e16, 2304871236.0, 0.1])
    if kind == 8:
        return rng.choice([True, False, None])
    if kind == 9:
        return rng.choice([dt.date(2019, 3, 2), dt.datetime(2019, 3, 2, 10, 15, 0, 123), dt.time(10, 15)])
    if kind == 10:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if kind == 11:
        return f"Patient/{uuid.UUID(int=rng.getrandbits(128))}" if rng.random() < 0.5 else PSEUDONYM
    if kind == 12:
        return rng.choice([_Text("230487 1236"), _Text("plain"), _Number(1.5), _Color.RED,
                           uuid.UUID(int=rng.getrandbits(128)), b"230487-1236", {1, 2}])
    return rng.choice(["12.05.17 ved kontrol", "d. 2304871236", "tlf 23 04 87 12 36", "L5 sin", ""])


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 3 and roll < 0.25:
        items = [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
        return tuple(items) if rng.random() < 0.2 else items
    return _scalar(rng)


def _key(rng: random.Random) -> str:
    return rng.choice(["record_id", "comp_note", "valueQuantity", "Lead 1 serial", _text(rng), "230487-1236"])


def _records(seed: int, count: int) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        record = {_key(rng): _value(rng, 0) for _ in range(rng.randint(1, 8))}
        cpr_columns = ("cpr",) if rng.random() < 0.5 else ()
        if cpr_columns:
            record["cpr"] = rng.choice(["230487-1236", "", None, "x"])
        records.append((record, cpr_columns))
    return records


def _reference_scrubbed(value: Any) -> Any:
    """The full scrub of a value, as it was before the fast paths: every text, key and number asked."""
    if isinstance(value, str):
        return scrub_cpr(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return CPR_PLACEHOLDER if scrub_cpr(str(value)) != str(value) else value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {scrub_cpr(str(k)): _reference_scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reference_scrubbed(v) for v in value]
    return scrub_cpr(str(value))


def _full_scrub(record: dict[str, Any], cpr_columns: tuple[str, ...]) -> str | type[Exception]:
    clean = {scrub_cpr(k): (PSEUDONYM if k in cpr_columns
                            else v if type(v) is str and len(v) < SHORTEST_CPR_TEXT else _reference_scrubbed(v))
             for k, v in record.items()}
    try:
        return orjson.dumps(clean).decode()
    except TypeError as exc:  # orjson's error (a set, bytes): the fast path must raise it too
        return type(exc)


def _kept(record: dict[str, Any], cpr_columns: tuple[str, ...]) -> str | type[Exception]:
    try:
        return kept_json(record, cpr_columns, PSEUDONYM)
    except TypeError as exc:
        return type(exc)


def _disagreements(records: list[tuple[dict[str, Any], tuple[str, ...]]]) -> tuple[list[Any], int, int]:
    """Records whose kept text differs from the full scrub's; how many were found without it (a record of texts
    with nothing to scrub); how many the full scrub changed."""
    wrong, fast, scrubbed = [], 0, 0
    for record, cpr_columns in records:
        full = _full_scrub(record, cpr_columns)
        plain = {k: (PSEUDONYM if k in cpr_columns else v) for k, v in record.items()}
        try:
            scrubbed += isinstance(full, str) and full != orjson.dumps(plain, default=str).decode()
        except TypeError:
            pass
        fast += base._texts_kept_json(record, cpr_columns, PSEUDONYM) is not None
        if (kept := _kept(record, cpr_columns)) != full:
            wrong.append((record, kept, full))
    return wrong, fast, scrubbed


def test_the_fast_paths_and_the_full_scrub_agree_on_hostile_records() -> None:
    records = _records(18, 10_000)
    texts_only = [({k: v if isinstance(v, str) else _text(random.Random(n)) for k, v in record.items()}, cpr_columns)
                  for n, (record, cpr_columns) in enumerate(records)]
    wrong, fast, scrubbed = _disagreements(records + texts_only)
    assert wrong == []
    assert fast > 1_000 and scrubbed > 1_000  # every path is taken: the comparison is not vacuous


_ESCAPED_CPRS = ["230487\n1236", "230487\r\n1236", "230487\t1236", "230487\x0b1236", "23\n04\n87\n12\n36",
                 "cpr:\n230487-1236", "230487\x001236", "2304\x0087-1236"]


@pytest.mark.parametrize("text", _ESCAPED_CPRS)
def test_a_cpr_split_by_a_control_character_is_scrubbed(text: str) -> None:
    record = {"note": text, "more": "x", "nested": {"deeper": [text]}}
    assert kept_json(record, (), None) == _full_scrub(record, ())
    assert kept_json({"note": text, "more": "x"}, (), None) == _full_scrub({"note": text, "more": "x"}, ())


_CPR_NUMBERS = [1.23456789e-05, 1.2345678901e20, 2304871236, 2304871236.0, -2304871236]


@pytest.mark.parametrize("number", _CPR_NUMBERS)
def test_a_number_that_reads_as_a_cpr_is_scrubbed(number: float) -> None:
    assert scrub_cpr(str(number)) != str(number)
    assert kept_json({"value": {"v": [number]}}, (), None) == '{"value":{"v":["<CPR?>"]}}'


def test_the_comparison_catches_a_weakened_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [*_records(19, 3_000), *(({"note": text}, ()) for text in _ESCAPED_CPRS)]
    monkeypatch.setattr(base, "cpr_candidates", lambda text: [])  # the search of a record of texts finds nothing
    assert _disagreements(records)[0]
    monkeypatch.undo()
    monkeypatch.setattr(base, "SHORTEST_CPR_TEXT", 12)  # texts of 7 to 11 characters taken for too short to hold one
    assert _disagreements(records)[0]
    monkeypatch.undo()
    assert _disagreements(records)[0] == []


def _contracts() -> list[tuple[str, ...]]:
    """Every header contract of the formats: each file's columns, each sheet's."""
    return [columns for center in FORMATS.values() for file in center.files
            for columns in (file.columns, *(sheet.columns for sheet in file.sheets)) if columns]


@pytest.mark.parametrize("columns", _contracts(), ids=lambda columns: columns[0])
def test_a_header_that_is_the_contract_exactly_passes_the_schema_too(columns: tuple[str, ...]) -> None:
    header_contract(list(columns)).validate(pd.DataFrame(columns=list(columns), dtype=str), lazy=True)
    check_columns("file.csv", list(columns), list(columns))
    with pytest.raises(FileRejected, match="out of order"):
        check_columns("file.csv", [*columns[1:], columns[0]], list(columns))


def test_the_leading_columns_of_a_row_are_those_of_its_whole_record() -> None:
    rng = random.Random(20)
    columns = ["record_id", "redcap_event_name", "x", "y", "cpr", "note", "z"]
    pieces = ["1", "a", "", "2304871236", "\n", "\r", "7,screening_arm_1,,,,,", "x y", ","]
    checked = 0
    for _ in range(5_000):
        values = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 3))) for _ in range(rng.randint(0, 9))]
        record = _record(columns, values, ",")
        for count in range(len(columns) + 1):
            leading = leading_columns(columns, values, ",", count)
            assert leading == {c: record[c] for c in columns[:count] if c in record}, (values, count)
            checked += len(leading)
    assert checked > 50_000


def test_the_candidates_letters_and_digits_are_the_patterns() -> None:
    """The candidate search's letters are those _CPR_LIKE's case-insensitive [A-Za-z] takes; in folded text every
    decimal digit is an ASCII one."""
    candidate, like = re.compile(f"[{CANDIDATE_LETTERS}]"), re.compile("[A-Za-z]", re.IGNORECASE)
    digit = re.compile(r"\d")
    for code in range(0x110000):
        char = chr(code)
        assert bool(candidate.fullmatch(char)) == bool(like.fullmatch(char)), hex(code)
        if digit.fullmatch(char):
            assert fold_text(char) in "0123456789", hex(code)


def _parsed(records: list[tuple[dict[str, Any], tuple[str, ...]]]) -> list[dict[str, Any]]:
    """The hostile records as a JSON parser gives them back (dates and other values as texts, tuples as lists;
    a record with an integer beyond 64 bits left out)."""
    parsed = []
    for record, _ in records:
        try:
            parsed.append(orjson.loads(orjson.dumps(record, default=str)))
        except TypeError:
            pass
    return parsed


def _parsed_disagreements(records: list[dict[str, Any]]) -> tuple[list[Any], int]:
    wrong, answered = [], 0
    for record in records:
        text = base.parsed_json_kept(record)
        if text is not None:
            answered += 1
            if text != _full_scrub(record, ()):
                wrong.append((record, text))
    return wrong, answered


def test_a_parsed_json_record_read_from_its_own_text_is_kept_as_the_full_scrub_keeps_it() -> None:
    records = [*_parsed(_records(21, 10_000)), *({"value": {"v": [n]}} for n in _CPR_NUMBERS),
               *({"note": text} for text in _ESCAPED_CPRS)]
    wrong, answered = _parsed_disagreements(records)
    assert wrong == []
    assert answered > 1_000
    assert sum(_full_scrub(r, ()) != orjson.dumps(r).decode() for r in records) > 1_000  # not vacuous


def test_the_comparison_catches_a_weakened_parsed_json_path(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [*_parsed(_records(22, 2_000)), *({"value": {"v": [n]}} for n in _CPR_NUMBERS),
               *({"note": text} for text in _ESCAPED_CPRS)]
    monkeypatch.setattr(base, "_JSON_ESCAPE", "\x01")  # an escaped line break read as two characters
    assert _parsed_disagreements(records)[0]
    monkeypatch.undo()
    monkeypatch.setattr(base, "_JSON_NUMBER", re.compile("(?!)"))  # numbers not asked (1.23456789e-05)
    assert _parsed_disagreements(records)[0]
    monkeypatch.undo()
    monkeypatch.setattr(base, "_CLEAN_TEXTS", {"230487-1236"})  # a remembered answer that is wrong is used
    assert _parsed_disagreements([{"note": "230487-1236"}])[0]
    monkeypatch.undo()
    assert _parsed_disagreements(records)[0] == []
