"""Benchmark the generator: wall time, peak memory and output size for a scaled cohort.

Usage: python benchmarks/bench_generate.py [N ...]   (default: 1000 10000)
Prints one line per N; memory is the process's peak resident set, so run one N per
process to compare sizes fairly (the script re-executes itself per N).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(n: int) -> None:
    """Generate N trial patients into a temporary inbox and print the figures."""
    from drg_etl.synth.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = generate(Path(tmp) / "inbox", seed=1, patients=n)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"patients={n:>7} persons={result.persons:>7} defects={result.defects:>6} "
          f"seconds={seconds:8.1f} persons_per_s={result.persons / seconds:8.0f} "
          f"peak_rss_mib={peak_mib:7.0f} output_mib={size / 2**20:8.1f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        run_one(int(sys.argv[2]))
    else:
        for n in [int(a) for a in sys.argv[1:]] or [1000, 10000]:
            subprocess.run([sys.executable, __file__, "--one", str(n)], check=True)
