"""Data-quality checks with thresholds and history, in the manner of OHDSI's DataQualityDashboard.

After a delivery is written, every rule of the catalogue (core/rules.py) becomes one check
of it in ``quality.check_results``: the share of the delivery's rows the rule flagged, against
the rule's threshold from ``mappings/dq_thresholds.yaml`` (a share 0-1; overridable per rule by
the YAML file ``DRG_ETL_DQ_THRESHOLDS`` names). A check passes when ``share_failed <= threshold``.
Rules with no failures get a row too, so a center's trend shows across its deliveries.

* ``rows_checked``: the rows read of the delivery's files (``quality.delivery_files``), the same
  for every rule (file-level rules: the delivery's total rows read).
* ``rows_failed``: the distinct records (file, row) of the delivery in ``quality.quarantine``
  for the rule, as written (a record a later delivery released still counts: history is kept).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import yaml

from drg_etl.core.errors import MappingSpecError, UsageError
from drg_etl.core.paths import MAPPINGS_DIR
from drg_etl.core.rules import RULES
from drg_etl.core.tables import CHECK_RESULTS, insert_rows

THRESHOLDS_FILE = MAPPINGS_DIR / "dq_thresholds.yaml"
THRESHOLDS_VARIABLE = "DRG_ETL_DQ_THRESHOLDS"

def _read(path: Path) -> tuple[float | None, dict[str, float]]:
    """The ``default`` (or None) and the per-rule ``thresholds`` of one YAML file, validated."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MappingSpecError(f"{path}: cannot read the thresholds: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("thresholds") or {}, dict):
        raise MappingSpecError(f"{path}: expected a mapping with 'default' and 'thresholds'")
    unknown = sorted(set(spec.get("thresholds") or {}) - set(RULES))
    if unknown:
        raise MappingSpecError(f"{path}: thresholds for rules not in the catalogue: {unknown}")
    entries = {"default": spec["default"]} if "default" in spec else {}
    entries.update(spec.get("thresholds") or {})
    for key, value in entries.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise MappingSpecError(f"{path}: {key}: {value!r} is not a share from 0 to 1 (5 % is 0.05)")
    default = entries.pop("default", None)
    return (None if default is None else float(default)), {k: float(v) for k, v in entries.items()}


LIMITS_FILE = MAPPINGS_DIR / "load_limits.yaml"
LIMITS_VARIABLE = "DRG_ETL_LOAD_LIMITS"


def superseding_limit(path: Path | None = None) -> float:
    """The share of a superseding delivery's records that may go to quarantine (mappings/load_limits.yaml,
    or the file ``DRG_ETL_LOAD_LIMITS`` names)."""
    if path is None and os.environ.get(LIMITS_VARIABLE):
        path = Path(os.environ[LIMITS_VARIABLE])
        if not path.is_file():
            raise UsageError(f"{LIMITS_VARIABLE}: no limits file at {path}")
    path = path or LIMITS_FILE
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MappingSpecError(f"{path}: cannot read the load limits: {exc}") from exc
    share = spec.get("superseding_max_quarantined_share") if isinstance(spec, dict) else None
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise MappingSpecError(f"{path}: superseding_max_quarantined_share must be a share from 0 to 1, "
                               f"not {share!r}")
    return float(share)


def load_thresholds(path: Path | None = None, override: Path | None = None) -> dict[str, float]:
    """The threshold of every rule of the catalogue: ``path`` (default mappings/dq_thresholds.yaml),
    its entries replaced by those of ``override`` (default: the file ``DRG_ETL_DQ_THRESHOLDS`` names)."""
    default, thresholds = _read(path or THRESHOLDS_FILE)
    if override is None and os.environ.get(THRESHOLDS_VARIABLE):
        override = Path(os.environ[THRESHOLDS_VARIABLE])
    if override is not None:
        if not override.is_file():
            raise UsageError(f"{THRESHOLDS_VARIABLE}: no thresholds file at {override}")
        other_default, other = _read(override)
        default = default if other_default is None else other_default
        thresholds.update(other)
    return {rule_id: thresholds.get(rule_id, default or 0.0) for rule_id in RULES}


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where schema_name = 'quality' "
                            "and table_name = 'check_results'").fetchone()[0])


def record_checks(con: duckdb.DuckDBPyConnection, delivery_id: str, load_id: str, *,
                  thresholds: Mapping[str, float] | None = None) -> int:
    """Write one check per rule of the catalogue for a written delivery; return the rows written.

    Idempotent: the delivery's earlier rows of the same load are replaced. Runs no transaction of
    its own, so it can run inside the write's.
    """
    found = con.execute("select center, cutoff from quality.deliveries where delivery_id = ?", [delivery_id]).fetchone()
    if found is None:
        raise ValueError(f"no written delivery {delivery_id} in quality.deliveries")
    center, cutoff = found
    limits = thresholds if thresholds is not None else load_thresholds()
    checked = con.execute("select coalesce(sum(rows_read), 0) from quality.delivery_files where delivery_id = ?",
                          [delivery_id]).fetchone()[0]
    failed = dict(con.execute('select rule_id, count(distinct (file, "row")) from quality.quarantine '
                              "where delivery_id = ? group by rule_id", [delivery_id]).fetchall())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    for rule in RULES.values():
        n = int(failed.get(rule.rule_id, 0))
        share = n / checked if checked else float(n > 0)
        threshold = float(limits.get(rule.rule_id, 0.0))
        rows.append({"load_id": load_id, "delivery_id": delivery_id, "center": center, "cutoff": cutoff,
                     "rule_id": rule.rule_id, "severity": rule.severity, "kahn_category": rule.kahn_category,
                     "rows_checked": int(checked), "rows_failed": n, "share_failed": share, "threshold": threshold,
                     "passed": share <= threshold, "checked_at": now})
    con.execute("delete from quality.check_results where delivery_id = ? and load_id = ?", [delivery_id, load_id])
    insert_rows(con, CHECK_RESULTS, rows)
    return len(rows)


SELECT = """
    select c.center, strftime(c.cutoff, '%Y-%m-%d') as delivery, c.rule_id, c.severity, c.kahn_category,
           c.rows_checked, c.rows_failed, c.share_failed, c.threshold, c.passed, d.status, c.delivery_id, c.load_id,
           strftime(c.checked_at, '%Y-%m-%dT%H:%M:%S') as checked_at
    from quality.check_results c left join quality.deliveries d using (delivery_id)"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str,
          params: list[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def check_history(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every check of every delivery (in force or superseded), ordered by center, rule, cutoff."""
    if not _has_table(con):
        return []
    return _rows(con, f"{SELECT} order by c.center, c.rule_id, c.cutoff, c.checked_at, c.load_id")


def latest_checks(con: duckdb.DuckDBPyConnection, center: str | None = None) -> list[dict[str, Any]]:
    """The checks of each center's latest delivery in force, as last recorded (of ``center`` only, if given)."""
    if not _has_table(con):
        return []
    return _rows(con, f"""{SELECT}
        where d.delivery_id in (select delivery_id from quality.deliveries_in_force)
          and ($center is null or c.center = $center)
          and d.cutoff = (select max(cutoff) from quality.deliveries_in_force where center = c.center)
        qualify c.checked_at = max(c.checked_at) over (partition by c.delivery_id)
        order by c.center, c.severity, c.rule_id""", {"center": center})


def failing_checks(con: duckdb.DuckDBPyConnection, center: str | None = None) -> list[dict[str, Any]]:
    """The failed checks (with their severity) of each center's latest delivery in force."""
    return [c for c in latest_checks(con, center) if not c["passed"]]


def center_verdict(con: duckdb.DuckDBPyConnection, center: str) -> tuple[bool, dict[str, Any]]:
    """A center's verdict for a Dagster asset check: it fails when a check of severity ``error`` of its
    latest delivery in force failed; failed warnings are reported only. JSON-ready metadata."""
    checks = latest_checks(con, center)
    if not checks:
        in_force = con.execute("select count(*) from quality.deliveries_in_force where center = ?",
                               [center]).fetchone()[0]
        reason = "no checks recorded for the delivery in force" if in_force else "no delivery in force"
        return not in_force, {"delivery": None, "checks": 0, "reason": reason}
    failed = [c for c in checks if not c["passed"]]
    errors = [{k: c[k] for k in ("rule_id", "kahn_category", "rows_failed", "rows_checked", "share_failed",
                                 "threshold")} for c in failed if c["severity"] == "error"]
    return not errors, {"delivery": checks[0]["delivery"], "checks": len(checks), "failed": len(failed),
                        "failed errors": errors,
                        "failed warnings": [c["rule_id"] for c in failed if c["severity"] != "error"]}
