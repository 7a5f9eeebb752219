"""The pipeline's shape: a library that stands alone, nothing executable between stages, one model, bounded batches."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from helpers import TEST_KEY, Generated, Loaded, current_rows, reading

import drg_etl
from drg_etl.core.model import TABLES
from drg_etl.pipeline.load import load_inbox
from drg_etl.quality.schemas import schema, schema_failures
from drg_etl.sources import base

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = Path(drg_etl.__file__).parent


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_the_library_never_imports_dagster_or_the_code_location() -> None:
    imported = _imports(LIBRARY)
    assert not {n for n in imported if n.split(".")[0] in {"dagster", "dagster_project"}}
    code = ("import sys, drg_etl.cli, drg_etl.pipeline.load, drg_etl.fhir.store; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_project')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_nothing_executable_crosses_stages() -> None:
    for folder in (LIBRARY, ROOT / "dagster_project"):
        assert not {n for n in _imports(folder) if n.split(".")[0] in {"pickle", "marshal", "shelve", "dill"}}


def test_a_planted_pickle_beside_the_warehouse_is_never_read(demo_clean: Generated, tmp_path: Path) -> None:
    """The old loader unpickled every file in <warehouse>.staged/; nothing beside the warehouse is read now."""
    warehouse = tmp_path / "w.duckdb"
    marker = tmp_path / "pwned"
    staged = tmp_path / "w.duckdb.staged"
    staged.mkdir()
    payload = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')"
    # a pickle that runs code when loaded (built by hand: the test itself must not import pickle)
    staged.joinpath("auh.pickle").write_bytes(
        b"cbuiltins\nexec\n(" + b"V" + payload.encode() + b"\ntR.")
    report = load_inbox(demo_clean.inbox, warehouse, TEST_KEY)
    assert not marker.exists()
    assert len(report.loaded) == 4
    assert [p.name for p in staged.iterdir()] == ["auh.pickle"], "the planted file is neither read nor removed"
    assert {p.name for p in tmp_path.iterdir()} <= {"w.duckdb", "w.duckdb.wal", "w.duckdb.tmp", "w.duckdb.staged"}


def test_every_warehouse_table_of_the_model_has_the_models_columns(loaded_demo: Loaded) -> None:
    con = duckdb.connect(str(loaded_demo.warehouse), read_only=True)
    try:
        for name, table in TABLES.items():
            declared = [(c.name, c.sql_type.upper(), c.nullable) for c in table.all_columns]
            for schema_name, table_name, extra in (("canonical", name, []),
                                                   ("staging", f"pending_{name}", [("fact_seq", "INTEGER", False)])):
                found = con.execute(
                    "select column_name, data_type, is_nullable = 'YES' from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema_name, table_name]).fetchall()
                assert found == declared + extra, f"{schema_name}.{table_name}"
    finally:
        con.close()


def test_the_pandera_schemas_follow_the_model() -> None:
    for name, table in TABLES.items():
        columns = schema(name).columns
        assert list(columns) == [c.name for c in table.all_columns]
        for column in table.all_columns:
            assert columns[column.name].nullable == column.nullable, (name, column.name)
        assert {c.name for c in schema(name).checks} == set(table.row_checks)


def test_a_schema_check_of_the_model_catches_a_bad_value() -> None:
    frame = pd.DataFrame([{"delivery_id": "d", "center": "auh", "cutoff": pd.Timestamp("2019-12-31"),
                           "source_file": "f", "source_row": 2, "patient_key": "a" * 64, "date": "2019-01-01",
                           "timepoint": "month_12", "measure": "nrs_average", "value": 11.0}])
    failures = schema_failures("measurements", frame)
    assert "nrs.range" in set(failures["check"])


def _measurements(dates: list[str], unit: str, value: float = 3.0) -> pd.DataFrame:
    """A frame of measurements with its date columns in ``unit`` (DuckDB's dates come as microseconds)."""
    n = len(dates)
    return pd.DataFrame({"delivery_id": ["d"] * n, "center": ["auh"] * n,
                         "cutoff": pd.Series(["2019-12-31"] * n, dtype=f"datetime64[{unit}]"), "source_file": ["f"] * n,
                         "source_row": range(2, 2 + n), "patient_key": ["a" * 64] * n,
                         "date": pd.Series(dates, dtype=f"datetime64[{unit}]"), "timepoint": ["month_12"] * n,
                         "measure": ["nrs_average"] * n, "value": [value] * n})


def test_a_schema_checks_dates_as_duckdb_gives_them_as_it_checks_them_coerced() -> None:
    """Dates in microseconds are given the schema's type without pandera's coercion, with the same verdicts; a date
    that type cannot hold is still a failure case of the coercion, never an error."""
    for dates, value in ((["2019-01-01", "2018-05-05"], 3.0), (["2019-01-01", "2018-05-05"], 11.0)):
        as_duckdb = schema_failures("measurements", _measurements(dates, "us", value))
        coerced = schema_failures("measurements", _measurements(dates, "us", value).astype({"date": object}))
        assert as_duckdb.to_dict("records") == coerced.to_dict("records")
    assert set(schema_failures("measurements", _measurements(["2019-01-01"], "us", 11.0))["check"]) == {"nrs.range"}
    far = schema_failures("measurements", _measurements(["2019-01-01", "9999-12-31"], "us"))
    assert far["check"].tolist() == ["coerce_dtype('datetime64[ns]')"] and far["column"].tolist() == ["date"]


def test_a_reader_fact_must_carry_exactly_the_models_columns() -> None:
    with pytest.raises(TypeError, match="missing \\['value'\\]"):
        TABLES["measurements"].check_fact({"date": None, "timepoint": None, "measure": "nrs_average"})
    with pytest.raises(TypeError, match="extra \\['colour'\\]"):
        TABLES["complications"].check_fact({"date": None, "complication": "other", "permanent": None,
                                            "device_ref": None, "note": None, "colour": "red"})


def _snapshot(path: Path) -> dict[str, list[tuple]]:
    """The rows in force, the quarantine, the files' counts and the FHIR resources of a warehouse."""
    out = current_rows(path)
    with reading(path) as con:
        out["quarantine"] = con.execute(
            'select center, file, "row", column_name, rule_id, severity, message, patient_key, record::varchar '
            "from quality.quarantine order by all").fetchall()
        out["files"] = con.execute("select file, rows_read, rows_loaded, rows_quarantined, rows_ignored "
                                   "from quality.delivery_files order by all").fetchall()
        out["fhir"] = con.execute("select id, resource::varchar from fhir.resources order by all").fetchall()
    return out


def test_small_batches_give_the_same_warehouse(loaded_demo: Loaded, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers stream bounded batches: a batch of 7 records (many flushes per file) changes nothing."""
    monkeypatch.setattr(base, "BATCH_RECORDS", 7)
    load_inbox(loaded_demo.gen.inbox, tmp_path / "small.duckdb", TEST_KEY)
    assert _snapshot(tmp_path / "small.duckdb") == _snapshot(loaded_demo.warehouse)


def test_deliveries_read_by_worker_processes_give_the_same_warehouse(loaded_demo: Loaded, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Large loads read each delivery in a worker process (drg_etl/pipeline/parallel.py): nothing may change."""
    from drg_etl.pipeline import parallel

    monkeypatch.setattr(parallel, "PARALLEL_BYTES", 0)
    monkeypatch.setenv(parallel.WORKERS_VARIABLE, "2")
    load_inbox(loaded_demo.gen.inbox, tmp_path / "parallel.duckdb", TEST_KEY)
    assert _snapshot(tmp_path / "parallel.duckdb") == _snapshot(loaded_demo.warehouse)
    assert not any(parallel.KEY_HANDOVER in k for k in __import__("os").environ)


def test_the_loader_stages_each_delivery_as_its_worker_finishes(loaded_demo: Loaded, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging follows the workers (the smallest deliveries are read last but staged when done): the centers are
    staged in the order their workers finished, and the warehouse equals the serial load's."""
    from drg_etl.pipeline import parallel

    monkeypatch.setattr(parallel, "PARALLEL_BYTES", 0)
    marks: list[str] = []
    finished: list[str] = []
    original = parallel._Workers._drive

    def recording(self: parallel._Workers) -> None:
        put = self.finished.put
        self.finished.put = lambda item: (finished.append(item[0].center), put(item))  # type: ignore[method-assign]
        original(self)

    monkeypatch.setattr(parallel._Workers, "_drive", recording)
    monkeypatch.setenv(parallel.WORKERS_VARIABLE, "2")
    load_inbox(loaded_demo.gen.inbox, tmp_path / "w.duckdb", TEST_KEY, progress=marks.append)
    assert [m.split()[1] for m in marks if m.startswith("staging ")] == finished
    assert sorted(finished) == ["aauh", "auh", "ouh", "rh"]
    assert _snapshot(tmp_path / "w.duckdb") == _snapshot(loaded_demo.warehouse)


def test_a_reading_worker_that_dies_stops_the_load_and_the_next_load_loads_everything(
        demo_clean: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that exits with an error (here: not Python at all) stops the load with its last words; the workers
    still reading are stopped, and the next load reads every delivery again."""
    from drg_etl.pipeline import parallel

    monkeypatch.setattr(parallel, "PARALLEL_BYTES", 0)
    monkeypatch.setenv(parallel.WORKERS_VARIABLE, "2")
    path = tmp_path / "w.duckdb"
    with monkeypatch.context() as broken:
        broken.setattr(parallel.sys, "executable", "/bin/sh")  # `sh -m drg_etl.pipeline.reader`: an illegal option
        with pytest.raises(parallel.WorkerFailed, match=r"reading \w+/2019-12-31 failed in its worker \(exit 2\)"):
            load_inbox(demo_clean.inbox, path, TEST_KEY)
    report = load_inbox(demo_clean.inbox, path, TEST_KEY)
    assert len(report.loaded) == 4 and report.rejected == []


def test_a_worker_that_cannot_start_stops_the_load_instead_of_waiting(demo_clean: Generated, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from drg_etl.pipeline import parallel

    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError("no more processes")

    monkeypatch.setattr(parallel, "PARALLEL_BYTES", 0)
    monkeypatch.setenv(parallel.WORKERS_VARIABLE, "2")
    monkeypatch.setattr(parallel.subprocess, "Popen", no_process)
    with pytest.raises(parallel.WorkerFailed, match="starting a reading worker failed: OSError: no more processes"):
        load_inbox(demo_clean.inbox, tmp_path / "w.duckdb", TEST_KEY)


def test_a_worker_reports_a_rejected_delivery_like_the_loader(demo_clean: Generated, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from drg_etl.pipeline import parallel

    monkeypatch.setattr(parallel, "PARALLEL_BYTES", 0)
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    with (inbox / "aauh" / "2019-12-31" / "Observation.ndjson").open("a", encoding="utf-8") as handle:
        handle.write('{"resourceType": "Observation", "id": "x1", \n')
    report = load_inbox(inbox, tmp_path / "w.duckdb", TEST_KEY)
    assert report.rejected == ["aauh/2019-12-31"] and len(report.loaded) == 3
    assert [(f.file, f.rule_id) for f in report.files if f.rejected] == [("Observation.ndjson", "file.ndjson")]


def test_what_a_checked_frame_leaves_in_cycles_is_freed_before_the_next_frame() -> None:
    """The canonical check reads a delivery in frames (quality.schemas.frames); objects that refer to each other
    and hold a checked frame (pandera's and pandas' leave such) are collected before the next frame is read, not
    when Python's collector gets to them (at a million patients the load's process grew by 80 MiB a frame)."""
    import gc
    import weakref

    from drg_etl.quality.schemas import frames

    class Left:
        """What a check leaves behind: an object in a cycle that holds the frame."""

    relation = duckdb.connect().sql("select range as n from range(3 * 2048)")
    batches = frames(relation, rows=2048)
    was_enabled = gc.isenabled()
    gc.disable()  # no collection but the one frames() makes
    try:
        left = Left()
        left.itself, left.frame = left, next(batches)
        freed = weakref.ref(left)
        del left
        assert freed() is not None  # a cycle: not freed by its count of references
        assert len(next(batches)) == 2048
        assert freed() is None
    finally:
        if was_enabled:
            gc.enable()


HOSTILE_FACTS = {  # canonical facts as a staged delivery may hold them, each row breaking the schema its own way
    "procedures": """select * from (values
        ('d', 'auh', date '2019-12-31', 'f', 2, repeat('a', 64), 'trial', date '2019-01-01', date '2019-01-08', true,
         null, null),
        ('d', 'auh', date '2019-12-31', 'f', 3, repeat('a', 64), 'trial', date '2019-01-01', null, null, null, null),
        ('d', 'auh', date '2019-12-31', 'f', 4, repeat('a', 64), null, date '2019-01-01', null, null, null, null),
        ('d', 'auh', date '2019-12-31', 'f', 5, 'short', 'implant', date '2019-01-01', null, null, null, null),
        ('d', 'auh', date '2019-12-31', 'f', 6, repeat('a', 64), 'cure', null, null, null, null, 'æøå'))
        t(delivery_id, center, cutoff, source_file, source_row, patient_key, procedure, date, end_date,
          trial_success, device_ref, reason)""",
    "measurements": """select * from (values
        ('d', 'auh', date '2019-12-31', 'f', 2, repeat('a', 64), date '2019-01-01', 'month_12', 'nrs_average', 3.0),
        ('d', 'auh', date '2019-12-31', 'f', 3, repeat('a', 64), date '2019-01-01', 'month_12', 'nrs_average', 11.0),
        ('d', 'auh', date '2019-12-31', 'f', 4, repeat('a', 64), date '2019-01-01', null, null, 11.0),
        ('d', 'auh', date '2019-12-31', 'f', 5, repeat('a', 64), date '2019-01-01', 'month_99', 'pcs_total', 60.0),
        ('d', 'auh', date '2019-12-31', 'f', -1, null, null, 'month_12', 'nrs_worst', null))
        t(delivery_id, center, cutoff, source_file, source_row, patient_key, date, timepoint, measure, value)""",
}


@pytest.mark.parametrize("table", sorted(HOSTILE_FACTS))
def test_the_canonical_check_of_arrow_backed_frames_finds_what_it_finds_in_python_objects(table: str) -> None:
    """The canonical check reads a delivery's facts as Arrow-backed frames (quality.schemas.frames): every value
    a schema check, a null or a row check (whose texts compare as None would) finds there, it finds in the frame of
    Python objects DuckDB's pandas output gives."""
    from drg_etl.quality.schemas import frames

    con = duckdb.connect()
    con.execute(f"create table facts as {HOSTILE_FACTS[table]}")
    (arrow_frame,) = frames(con.sql("select * from facts order by source_row"))
    assert isinstance(arrow_frame["patient_key"].dtype, pd.StringDtype)
    objects = con.execute("select * from facts order by source_row").fetch_df()

    def cases(frame: pd.DataFrame) -> list[tuple[object, str, str]]:
        found = schema_failures(table, frame)
        return sorted({(str(i), str(c), str(k)) for i, c, k in zip(found["index"], found["column"], found["check"],
                                                                    strict=True)})

    found = cases(arrow_frame)
    assert found == cases(objects)
    assert {check for _, _, check in found} >= set(TABLES[table].row_checks)  # the row checks too
    assert len({index for index, _, _ in found}) >= 4  # and every hostile row
