"""The kept source record's fast path (nothing to scrub, found on one JSON probe) gives the full scrub's text, byte for
byte, on hostile records: CPR numbers split by escaped characters, numbers Python and JSON write differently, dates,
nested keys, subclasses, values JSON does not know. The comparison can fail: a weakened fast path is caught."""

from __future__ import annotations

import datetime as dt
import enum
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from drg_etl.core.cpr import scrub_cpr
from drg_etl.sources import base
from drg_etl.sources.base import scrubbed_json, unscrubbed_json

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


_UNESCAPED = [p for p in _PIECES if json.dumps(p) == f'"{p}"']  # a record of these may pass the probe


def _text(rng: random.Random) -> str:
    pieces = _PIECES if rng.random() < 0.2 else _UNESCAPED
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


def _full_scrub(record: dict[str, Any], cpr_columns: tuple[str, ...]) -> str | type[Exception]:
    try:
        return scrubbed_json(record, cpr_columns, PSEUDONYM)
    except (TypeError, ValueError) as exc:  # orjson's error is a TypeError: the fast path must raise it too
        return type(exc)


def _disagreements(records: list[tuple[dict[str, Any], tuple[str, ...]]],
                   fast: Callable[..., str | None] = unscrubbed_json) -> tuple[list[Any], int, int]:
    """Records on which the fast path's text differs from the full scrub's; how many it answered; how many the full
    scrub changed."""
    wrong, answered, scrubbed = [], 0, 0
    for record, cpr_columns in records:
        full = _full_scrub(record, cpr_columns)
        plain = {k: (PSEUDONYM if k in cpr_columns else v) for k, v in record.items()}
        try:
            scrubbed += isinstance(full, str) and full != orjson.dumps(plain, default=str).decode()
        except TypeError:
            pass
        text = fast(record, cpr_columns, PSEUDONYM)
        if text is None:
            continue
        answered += 1
        if text != full:
            wrong.append((record, text, full))
    return wrong, answered, scrubbed


def test_the_fast_path_and_the_full_scrub_agree_on_hostile_records() -> None:
    wrong, answered, scrubbed = _disagreements(_records(18, 10_000))
    assert wrong == []
    assert answered > 1_000 and scrubbed > 1_000  # both paths are exercised: the comparison is not vacuous


_ESCAPED_CPRS = ["230487\n1236", "230487\r\n1236", "230487\t1236", "230487\x0b1236", "23\n04\n87\n12\n36",
                 "cpr:\n230487-1236"]


@pytest.mark.parametrize("text", _ESCAPED_CPRS)
def test_a_cpr_split_by_a_character_json_escapes_goes_to_the_full_scrub(text: str) -> None:
    assert scrub_cpr(text) != text
    record = {"note": text, "nested": {"deeper": [text]}}
    assert unscrubbed_json(record, (), None) is None
    assert text not in json.loads(scrubbed_json(record, (), None))["note"]


@pytest.mark.parametrize("number", [1.23456789e-05, 1.2345678901e20, 2304871236, 2304871236.0, -2304871236])
def test_a_number_that_reads_as_a_cpr_goes_to_the_full_scrub(number: float) -> None:
    assert scrub_cpr(str(number)) != str(number)
    assert unscrubbed_json({"value": {"v": [number]}}, (), None) is None


def test_the_comparison_catches_a_weakened_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [*_records(19, 3_000), *(({"note": text}, ()) for text in _ESCAPED_CPRS),
               ({"value": 1.23456789e-05}, ())]
    # a probe written by orjson: 1.23456789e-05 reads as 0.0000123456789, in which the scrubber finds nothing
    monkeypatch.setattr(base, "json", type("OrjsonProbe", (), {"dumps": staticmethod(
        lambda value, **_: orjson.dumps(value, default=lambda v: None).decode())}))
    assert _disagreements(records)[0]
    monkeypatch.undo()
    # escapes let through: a line break between a CPR number's digits is two characters, "\" and "n"
    monkeypatch.setattr(base, "_JSON_ESCAPE", "\x00")
    assert _disagreements(records)[0]
    monkeypatch.undo()
    assert _disagreements(records)[0] == []
