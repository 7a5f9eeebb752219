"""Benchmark the pipeline end to end through the ``drg-etl`` CLI, one subprocess per stage.

Usage: python benchmarks/bench_pipeline.py [--patients N [N ...]] [--workdir DIR] [--keep] [--json-out FILE] [--seed S]
       [--load-only N [--inbox DIR]]

Per N: generate, load (in a process of its own running ``load_inbox``, the function ``drg-etl load`` calls, which
reports when each stage began: the per-stage split), the same load again with nothing new, analyze (plus the analysis
query timed in-process) and export-fhir; then the incremental scenario: load three centers, add a one-center ``rh``
delivery of a small second cohort (~1% of N), then re-deliver ``ouh`` from that cohort with a later cutoff, which
supersedes ouh's delivery in force. ``--load-only N`` runs just generate, load and the no-op load (a million patients:
the incremental scenario would take as long again) and reports the warehouse's size; with ``--inbox DIR`` it loads
the deliveries there (kept) instead of generating them. Each stage's wall time and
peak RSS come from ``os.wait4`` on its own process (``ru_maxrss`` also covers children it reaped). A given --workdir
is kept; the default temporary one is removed unless --keep or a stage fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

KEY = "9c41d7e0b25a4f38a6e1d09c7b3f52e8d4a0c6b19e7f3a25c8d0b4e61f9a7c33"  # fixed benchmark key (hex), never a real one
CLI = ([sys.executable, "-m", "drg_etl.entry"] if importlib.util.find_spec("drg_etl.entry")
       else [str(Path(sys.executable).with_name("drg-etl"))])
QUERY_PROBE = """import json, pathlib, sys, time, duckdb
from drg_etl.analysis.national import national_analysis
con = duckdb.connect(sys.argv[1], read_only=True)
start = time.perf_counter()
national_analysis(con)
pathlib.Path(sys.argv[2]).write_text(json.dumps({"query_s": time.perf_counter() - start}))
"""  # the result goes to a file: DuckDB may draw a progress bar on stdout during long queries
LOAD_PROBE = """import json, pathlib, sys, time
from drg_etl.core.pseudonym import key_from_environment
from drg_etl.pipeline.load import load_inbox
start = time.perf_counter()
marks = []
report = load_inbox(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), key_from_environment(),
                    progress=lambda text: marks.append((text, time.perf_counter() - start)))
marks.append(("done", time.perf_counter() - start))
pathlib.Path(sys.argv[3]).write_text(json.dumps({"marks": marks, "exit": report.exit_code}))
"""  # the library's load with the CLI's progress messages timed; the key comes in the environment, as the CLI's
LATER_CUTOFF = "2020-06-30"


class StageFailed(RuntimeError):
    """A stage's process exited non-zero."""


def run(label: str, argv: list[str], logs: Path, cwd: Path) -> dict[str, Any]:
    """Run one stage as a child process; return its wall seconds and peak RSS (MiB), or raise StageFailed."""
    logs.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"\W+", "_", label).strip("_")
    out, err = logs / f"{stem}.stdout", logs / f"{stem}.stderr"
    env = {**os.environ, "DRG_ETL_PSEUDONYM_KEY": KEY}
    with out.open("wb") as o, err.open("wb") as e:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=o, stderr=e, env=env, cwd=cwd)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen so it does not wait again
    if child.returncode != 0:
        tail = "\n".join((err.read_text(errors="replace") or out.read_text(errors="replace")).splitlines()[-30:])
        raise StageFailed(f"stage {label!r} exited {child.returncode}: {' '.join(argv)}\n{tail}")
    return {"stage": label, "wall_s": round(wall, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def query(warehouse: Path, sql: str) -> int:
    """One number from the warehouse, opened read-only."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return int(con.execute(sql).fetchone()[0] or 0)


def rows_read(warehouse: Path) -> int:
    """Records read by all loads so far."""
    return query(warehouse, "select sum(rows_read) from quality.delivery_files")


def with_items(stage: dict[str, Any], items: int | None, unit: str | None) -> dict[str, Any]:
    """Add an item count and its rate per second of the stage's wall time."""
    rate = round(items / stage["wall_s"], 1) if items is not None and stage["wall_s"] > 0 else None
    return {**stage, "items": items, "unit": unit, "items_per_s": rate}


def split(marks: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds per stage of a load, from the times its progress messages were given."""
    stages: dict[str, float] = {}
    for (text, at), (_, until) in itertools.pairwise(marks):
        name = "read + stage" if text.startswith(("reading", "staging")) else text
        stages[name] = round(stages.get(name, 0.0) + until - at, 3)
    return stages


def bench_load(n: int, seed: int, root: Path, given: Path | None = None
               ) -> tuple[Path, list[dict[str, Any]], dict[str, Any]]:
    """Generate N patients (or take the deliveries ``given``), load them (timed stage by stage) and load again with
    nothing new."""
    work = root / f"n{n}"
    shutil.rmtree(work, ignore_errors=True)
    inbox, logs, full = given or work / "inbox", work / "logs", work / "full.duckdb"
    gen = None if given else run("generate", [*CLI, "generate", "--out", str(inbox), "--patients", str(n),
                                              "--seed", str(seed)], logs, work)
    load = run("load", [sys.executable, "-c", LOAD_PROBE, str(inbox), str(full), str(logs / "load.json")],
               logs, work)
    probe = json.loads((logs / "load.json").read_text())
    records, resources = rows_read(full), query(full, "select count(*) from fhir.resources")
    noop = run("load, nothing new", [*CLI, "load", str(inbox), "--warehouse", str(full)], logs, work)
    stages = [*([] if gen is None else [with_items(gen, records, "records")]),
              {**with_items(load, records, "records"), "split_s": split(probe["marks"]),
               "fhir_resources": resources, "warehouse_mib": round(full.stat().st_size / 2**20, 1)},
              with_items(noop, None, None)]
    return work, stages, {"records": records, "resources": resources, "load": load}


def bench_one(n: int, seed: int, root: Path) -> dict[str, Any]:
    """All stages and the incremental scenario for one cohort size."""
    work, stages, facts = bench_load(n, seed, root)
    inbox, logs, full, fhir = work / "inbox", work / "logs", work / "full.duckdb", work / "fhir"
    records, resources, load = facts["records"], facts["resources"], facts["load"]
    notes: list[str] = []
    analyze = run("analyze", [*CLI, "analyze", "--warehouse", str(full), "--json"], logs, work)
    probe = run("analyze query", [sys.executable, "-c", QUERY_PROBE, str(full), str(logs / "query.json")], logs, work)
    query_s = json.loads((logs / "query.json").read_text())["query_s"]
    stages.append(with_items({**analyze, "query_s": round(query_s, 3)}, resources, "fhir resources"))
    stages.append(with_items({**probe, "wall_s": round(query_s, 3), "process_wall_s": probe["wall_s"]},
                             resources, "fhir resources"))
    export = run("export", [*CLI, "export-fhir", "--warehouse", str(full), "--out", str(fhir)], logs, work)
    lines = sum(sum(1 for line in p.open("rb") if line.strip()) for p in fhir.glob("*.ndjson"))
    stages.append(with_items(export, lines, "resources"))
    if lines != resources:
        notes.append(f"export wrote {lines} NDJSON lines but fhir.resources holds {resources} rows")

    # Incremental: the N cohort without rh, then a small cohort's rh delivery (~1% of N) on top.
    incr, small, held = work / "incremental.duckdb", work / "small_inbox", work / "held_out"
    held.mkdir()
    shutil.move(inbox / "rh", held / "rh")
    three = run("load (3 centers)", [*CLI, "load", str(inbox), "--warehouse", str(incr)], logs, work)
    before = rows_read(incr)
    stages.append(with_items(three, before, "records"))
    m = max(n // 100, 50)
    small_gen = run(f"generate small ({m})", [*CLI, "generate", "--out", str(small), "--patients", str(m),
                                              "--seed", str(seed + 1)], logs, work)
    stages.append(with_items(small_gen, None, None))
    # The rh data file embeds the cutoff (DRGDK_DATA_<cutoff>.csv), so its folder is copied under its own name.
    (rh,) = (small / "rh").iterdir()
    shutil.copytree(rh, inbox / "rh" / rh.name)
    variants = [("incremental rh (~1%)", "rh", None)]
    # ouh's workbook name (DRG_registrering.xlsx) does not embed the cutoff, so a later cutoff folder is valid.
    ouh = sorted((small / "ouh").iterdir())
    if len(ouh) == 1 and not any(ouh[0].name in p.name for p in ouh[0].iterdir()):
        variants.append(("superseding ouh (~1%)", "ouh", LATER_CUTOFF))
    else:
        notes.append("superseding ouh skipped: the small cohort's ouh delivery names its cutoff in a file name")
    ratios = {}
    for label, center, cutoff in variants:
        if cutoff:
            shutil.copytree(ouh[0], inbox / center / cutoff)
        stage = run(label, [*CLI, "load", str(inbox), "--warehouse", str(incr)], logs, work)
        after = rows_read(incr)
        stages.append({**with_items(stage, after - before, "records"),
                       "fhir_resources_after": query(incr, "select count(*) from fhir.resources")})
        ratios[label] = {"wall": round(stage["wall_s"] / load["wall_s"], 3),
                         "records": round((after - before) / records, 4)}
        before = after
    if len(variants) == 2:
        superseded = query(incr, "select count(*) from quality.deliveries where center = 'ouh' "
                                 f"and status = 'superseded' and cutoff < date '{LATER_CUTOFF}'")
        if superseded != 1:
            notes.append(f"expected ouh's first delivery to be superseded; {superseded} superseded ouh deliveries")
        notes.append("the superseding ouh delivery replaces all of ouh's data in force, so FHIR resources went from "
                     f"{stages[-2]['fhir_resources_after']} to {stages[-1]['fhir_resources_after']}")
    return {"patients": n, "small_cohort_patients": m, "stages": stages, "ratio_to_full_load": ratios,
            "notes": notes}


def table(runs: list[dict[str, Any]]) -> str:
    """The plain-text table of every stage of every N."""
    head = f"{'N':>8}  {'stage':<24} {'wall s':>9} {'peak RSS MiB':>12} {'items':>10} {'items/s':>10}"
    lines = [head, "-" * len(head)]
    for r in runs:
        for s in r["stages"]:
            items = "" if s["items"] is None else str(s["items"])
            rate = "" if s["items_per_s"] is None else f"{s['items_per_s']:.0f}"
            lines.append(f"{r['patients']:>8}  {s['stage']:<24} {s['wall_s']:>9.2f} {s['peak_rss_mib']:>12.1f} "
                         f"{items:>10} {rate:>10}")
        for s in r["stages"]:
            if "split_s" in s:
                parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in s["split_s"].items())
                lines.append(f"{'':>8}  load split (s): {parts}; warehouse {s['warehouse_mib']:.0f} MiB")
        for label, ratio in r.get("ratio_to_full_load", {}).items():
            lines.append(f"{'':>8}  {label}: {ratio['records']:.2%} of the full load's records in "
                         f"{ratio['wall']:.1%} of its wall time")
        lines += [f"{'':>8}  note: {note}" for note in r.get("notes", [])]
    lines.append("'analyze query' wall s: national_analysis(con) alone, in a fresh process (JSON: process_wall_s).")
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run every N, print the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="*", default=[10000, 100000], metavar="N",
                        help="cohort sizes to run every stage for (none: only --load-only)")
    parser.add_argument("--workdir", type=Path, help="work folder (kept); default: a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    parser.add_argument("--seed", type=int, default=2021, help="seed of the N cohort; the small one uses seed+1")
    parser.add_argument("--load-only", type=int, nargs="*", default=[], metavar="N",
                        help="cohort sizes to generate and load only (with the no-op load), e.g. 1000000")
    parser.add_argument("--inbox", type=Path, help="with one --load-only N: load these deliveries (kept) instead of "
                                                   "generating them (e.g. what `drg-etl generate --patients N` wrote)")
    args = parser.parse_args()
    if args.inbox is not None and len(args.load_only) != 1:
        parser.error("--inbox needs exactly one --load-only N")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="drg-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.inbox is not None and args.inbox.resolve().is_relative_to((root / f"n{args.load_only[0]}").resolve()):
        parser.error(f"--inbox {args.inbox} lies in the work folder the benchmark clears first; move it out")
    machine = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
               "cli": " ".join(CLI), "workdir": str(root)}
    print(f"cores: {machine['cpu_count']}  python: {machine['python']}  platform: {machine['platform']}", flush=True)
    runs = []
    try:
        for n in args.patients:
            print(f"N={n} ...", flush=True)
            runs.append(bench_one(n, args.seed, root))
        for n in args.load_only:
            print(f"N={n} (generate and load only) ...", flush=True)
            work, stages, _ = bench_load(n, args.seed, root, args.inbox)
            runs.append({"patients": n, "stages": stages, **({"inbox": str(args.inbox)} if args.inbox else {})})
            shutil.rmtree(work / "inbox", ignore_errors=True)  # a million patients' deliveries: gigabytes
    except StageFailed as exc:
        if runs:
            print(table(runs))
        sys.exit(f"benchmark failed: {exc}\n(work folder and logs kept under {root})")
    if args.workdir is None and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(table(runs))
    result = json.dumps({"machine": machine, "runs": runs}, indent=2)
    print(result)
    if args.json_out:
        args.json_out.write_text(result + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
