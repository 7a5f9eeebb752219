"""Benchmark memory against findings: a load of the demo padded with junk rows against a clean load.

Usage: python benchmarks/bench_junk_rows.py [--junk N] [--workdir DIR] [--json-out FILE]

Generates the demo cohort (--clean), loads it (the baseline), then loads a copy whose auh PROM file carries
N more records that each break a rule (an impossible date and scores out of range: every one is quarantined
with its findings). Each load runs as its own ``drg-etl load`` process; its peak RSS comes from ``os.wait4``.
Memory is meant to be bounded by the batch size, not by the number of findings: the target is a padded
load's peak within 1.5x of the clean load's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import CLI, run

TARGET_RATIO = 1.5


def pad_prom(inbox: Path, junk: int) -> int:
    """Append ``junk`` records to auh's prom.csv (Windows-1252, ';', CRLF) that each break the row rules."""
    prom = next(inbox.glob("auh/*/prom.csv"))
    cpr = prom.read_bytes().split(b"\r\n")[1].split(b";")[0]  # a patient of the delivery: the rows name someone
    line = cpr + b";31-02-2016;3m;11,5;12;60\r\n"
    with prom.open("ab") as handle:
        chunk = line * 10_000
        for _ in range(junk // 10_000):
            handle.write(chunk)
        handle.write(line * (junk % 10_000))
    return prom.stat().st_size


def main() -> None:
    """Run the two loads and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junk", type=int, default=1_000_000, help="junk records to add (default 1,000,000)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="drg-junk-"))
    work.mkdir(parents=True, exist_ok=True)
    clean, padded = work / "clean", work / "padded"
    for folder in (clean, padded):
        shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([*CLI, "generate", "--out", str(clean / "inbox"), "--clean"], check=True, capture_output=True)
    shutil.copytree(clean / "inbox", padded / "inbox")
    size = pad_prom(padded / "inbox", args.junk)
    logs = work / "logs"
    baseline = run("load clean", [*CLI, "load", str(clean / "inbox"), "--warehouse", str(clean / "w.duckdb")],
                   logs, work)
    try:
        junk = run("load padded", [*CLI, "load", str(padded / "inbox"), "--warehouse", str(padded / "w.duckdb")],
                   logs, work)
    except Exception as exc:  # a load that fails is a figure too: print it
        print(f"padded load failed: {exc}")
        raise
    ratio = junk["peak_rss_mib"] / baseline["peak_rss_mib"]
    figures = {"junk_records": args.junk, "prom_csv_bytes": size, "clean": baseline, "padded": junk,
               "peak_ratio": round(ratio, 2), "target_ratio": TARGET_RATIO, "met": ratio <= TARGET_RATIO}
    print(f"clean load:  {baseline['wall_s']:.1f} s, peak {baseline['peak_rss_mib']:.0f} MiB")
    print(f"+{args.junk:,} junk records ({size / 2**20:.0f} MB prom.csv): {junk['wall_s']:.1f} s, "
          f"peak {junk['peak_rss_mib']:.0f} MiB")
    print(f"peak ratio {ratio:.2f} (target <= {TARGET_RATIO}): {'met' if ratio <= TARGET_RATIO else 'MISSED'}")
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
