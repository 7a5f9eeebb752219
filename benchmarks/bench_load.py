"""Benchmark the load: generate N trial patients, load them, print time, peak memory and rows.

Usage: python benchmarks/bench_load.py [N ...]   (default: 2000 10000); one process per N.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(n: int) -> None:
    """Generate and load N trial patients; print the figures."""
    from drg_etl.load import load_inbox
    from drg_etl.synth.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "inbox", seed=1, patients=n)
        start = time.perf_counter()
        report = load_inbox(Path(tmp) / "inbox", Path(tmp) / "w.duckdb", b"benchmark-key-0123456789")
        seconds = time.perf_counter() - start
        size = (Path(tmp) / "w.duckdb").stat().st_size
    rows = sum(f.rows_read for f in report.files)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"patients={n:>7} rows_read={rows:>8} seconds={seconds:7.1f} rows_per_s={rows / seconds:8.0f} "
          f"peak_rss_mib={peak_mib:6.0f} warehouse_mib={size / 2**20:6.1f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        run_one(int(sys.argv[2]))
    else:
        for n in [int(a) for a in sys.argv[1:]] or [2000, 10000]:
            subprocess.run([sys.executable, __file__, "--one", str(n)], check=True)
