"""Every current DuckDB client opens the warehouse: DuckDB 1.4 (the LTS line of R's duckdb, the ODBC driver used from
Stata and SAS, DBeaver) reads the file the pinned DuckDB writes, and finds the same rows.

`.ci/run` installs DuckDB 1.4 into a throwaway folder and names it in DRG_ETL_OLD_DUCKDB; a checkout without that
client (a user's fresh clone) skips, saying how to run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from helpers import Loaded

OLD_DUCKDB = os.environ.get("DRG_ETL_OLD_DUCKDB", "")
QUERIES = {
    "patients": "select count(*) from canonical.current_patients",
    "resources": "select count(*) from fhir.resources",
    "in force": "select count(*) from quality.deliveries_in_force",
    "quarantine": "select count(*) from quality.open_quarantine",
    "flat": "select count(*), count(distinct patient_id) from fhir.procedure_flat",
    "flags": "select count(*), count(*) filter (where fully_functional) from marts.patient_flags",
    "pairs": """select count(*), round(avg(b.value), 1), round(avg(m.value), 1)
        from marts.follow_up b join marts.follow_up m using (patient_id, measure)
        join marts.patient_flags f using (patient_id)
        where f.fully_functional and b.measure = 'nrs_average' and b.official and b.timepoint = 'baseline'
          and m.official and m.timepoint = 'month_12'""",
    "lead history": "select count(*), sum(defect_complications) from marts.lead_history",
    "patient course": """select count(*), sum(len(centers)), sum(len(windows)), sum(len(pairs)), sum(len(defect_dates)),
        sum(len([l for l in leads if l.next_placed_date is not null])), cast(max(windows[1].closes) as varchar),
        sum(len([p for p in pairs if p.baseline > p.month12])) from marts.patient_course""",
    "comments": "select count(*), count(comment) from duckdb_columns() where schema_name in "
                "('canonical', 'quality', 'fhir', 'marts')",
}
PROBE = """import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps({"version": duckdb.__version__,
                  **{k: list(con.execute(q).fetchone()) for k, q in json.loads(sys.argv[2]).items()}}))"""


@pytest.mark.skipif(not OLD_DUCKDB, reason="no older DuckDB client: `pip install --target DIR duckdb==1.4.3` and "
                                           "set DRG_ETL_OLD_DUCKDB=DIR (.ci/run does)")
def test_duckdb_1_4_opens_the_warehouse_and_reads_the_same_rows(loaded_clean: Loaded) -> None:
    older = subprocess.run([sys.executable, "-c", PROBE, str(loaded_clean.warehouse), json.dumps(QUERIES)],
                           env={**os.environ, "PYTHONPATH": OLD_DUCKDB}, capture_output=True, text=True, timeout=120,
                           cwd=Path(OLD_DUCKDB))
    assert older.returncode == 0, older.stderr
    found = json.loads(older.stdout)
    assert found.pop("version").startswith("1.4.")
    with duckdb.connect(str(loaded_clean.warehouse), read_only=True) as con:
        assert found == {k: list(con.execute(q).fetchone()) for k, q in QUERIES.items()}
