"""The rh reader reads a REDCap project as REDCap writes it: implicit yes/no choices, display-only fields,
data access groups."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import TEST_KEY, Loaded, current_rows, reading

from drg_etl.pipeline.load import load_inbox

DICTIONARY = "DRGDK_DataDictionary.csv"


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text("utf-8-sig"))))


def _write(path: Path, rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))


def as_yesno(folder: Path) -> None:
    """trial_success as REDCap's yesno field: no choices in the dictionary (1 Yes, 0 No are implied)."""
    rows = _rows(folder / DICTIONARY)
    for row in rows:
        if row[0] == "trial_success":
            row[3], row[5] = "yesno", ""
    _write(folder / DICTIONARY, rows)


def as_truefalse(folder: Path) -> None:
    """comp_permanent as REDCap's truefalse field (1 True, 0 False), its choices column left as it was."""
    rows = _rows(folder / DICTIONARY)
    for row in rows:
        if row[0] == "comp_permanent":
            row[3] = "truefalse"
    _write(folder / DICTIONARY, rows)


def with_descriptive_field(folder: Path) -> None:
    """A display-only field, which REDCap never exports."""
    rows = _rows(folder / DICTIONARY)
    at = next(i for i, r in enumerate(rows) if r[1] == "trial")
    rows.insert(at, ["trial_info", "trial", "", "descriptive", "Trial stimulation runs 7-14 days", *[""] * 13])
    _write(folder / DICTIONARY, rows)


def with_data_access_groups(folder: Path) -> None:
    """An export of a project with data access groups: redcap_data_access_group after the keys."""
    data = next(folder.glob("DRGDK_DATA_*.csv"))
    rows = _rows(data)
    rows = [[*r[:4], "redcap_data_access_group" if i == 0 else "rigshospitalet", *r[4:]] for i, r in enumerate(rows)]
    _write(data, rows)


def _rh(path: Path) -> dict[str, list[tuple]]:
    """rh's rows in force and its quarantine."""
    out = current_rows(path, "rh")
    with reading(path) as con:
        out["quarantine"] = con.execute("select file, \"row\", rule_id from quality.quarantine where center = 'rh' "
                                        "order by all").fetchall()
    return out


@pytest.mark.parametrize("change", [as_yesno, as_truefalse, with_descriptive_field, with_data_access_groups])
def test_a_project_written_the_redcap_way_reads_the_same(change: Callable[[Path], None], loaded_clean: Loaded,
                                                         tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(loaded_clean.gen.inbox, inbox)
    change(inbox / "rh" / "2019-12-31")
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.rejected == []
    changed, expected = _rh(tmp_path / "w.duckdb"), _rh(loaded_clean.warehouse)
    assert changed == expected
    assert len(expected["procedures"]) > 10 and expected["quarantine"] == []
