"""analyze starts without the heavy numerical libraries (issue 18): SciPy, NumPy's BLAS start-up, lifelines and
pandas are the tests' oracles, not analyze's path. (NumPy is imported only for the Wilcoxon test's float path, at
61 to 1,000 pairs of a measure, which the demo's cohort has.)"""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import Loaded

PROBE = """
import json, sys
from drg_etl.entry import main
sys.argv = ["drg-etl", "analyze", "--warehouse", sys.argv[1], "--json"]
try:
    main()
finally:
    sys.stderr.write(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_analyze_imports_no_scipy_lifelines_or_pandas(loaded_demo: Loaded) -> None:
    run = subprocess.run([sys.executable, "-c", PROBE, str(loaded_demo.warehouse)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["cohort"]["trial_patients"] > 0
    modules = set(json.loads(run.stderr.splitlines()[-1]))
    assert not modules & {"scipy", "lifelines", "pandas", "matplotlib"}, modules & {"scipy", "lifelines", "pandas"}
