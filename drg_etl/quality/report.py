"""The data-quality report read back from the warehouse (``drg-etl quality``)."""

from __future__ import annotations

from typing import Any

import duckdb

from drg_etl.quality.thresholds import check_history, latest_checks

EXAMPLES_PER_RULE = 3


def quality_report(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Files with their counts (and rejected files), rules with counts and examples, the reconciliation,
    the threshold checks of every delivery (``checks``) and per center those of its delivery in force
    (``checks_summary``; empty until checks were recorded, quality/thresholds.py)."""
    files = con.execute("""
        select d.center, strftime(d.cutoff, '%Y-%m-%d') as delivery, f.file, f.rows_read, f.rows_loaded,
               f.rows_quarantined, f.rows_ignored, d.status, false as rejected, null as reason, null as rule_id
        from quality.delivery_files f join quality.deliveries d using (delivery_id)
        union all
        select center, strftime(cutoff, '%Y-%m-%d'), file, null, null, null, null, 'rejected', true, reason, rule_id
        from quality.rejections
        order by 1, 2, 3
    """).df()
    rules = con.execute("""
        select q.center, strftime(q.cutoff, '%Y-%m-%d') as delivery, q.file, q.rule_id, q.severity, q.kahn_category,
               count(*) as count
        from quality.open_quarantine q join quality.deliveries d using (delivery_id)
        group by all order by q.rule_id, q.center, q.file
    """).df()
    totals = con.execute("""
        select rule_id, severity, kahn_category, count(*) as count
        from quality.open_quarantine group by all order by rule_id
    """).df()
    examples = con.execute(f"""
        select rule_id, center, strftime(cutoff, '%Y-%m-%d') as delivery, file, "row", column_name, message
        from (select *, row_number() over (partition by rule_id order by center, file, "row") as n
              from quality.open_quarantine)
        where n <= {EXAMPLES_PER_RULE} order by rule_id, n
    """).df()
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for e in examples.to_dict("records"):
        by_rule.setdefault(e.pop("rule_id"), []).append(e)
    released = con.execute("""
        select d.center, strftime(d.cutoff, '%Y-%m-%d') as delivery, r.file, r."row", r.rule_id, r.released_by,
               strftime(r.released_at, '%Y-%m-%dT%H:%M:%S') as released_at
        from quality.releases r join quality.deliveries d using (delivery_id) order by all""").df()
    file_rows = [_clean(r) for r in files.to_dict("records")]
    loaded = [f for f in file_rows if not f["rejected"]]
    return {
        "files": file_rows,
        "rules": [dict(_clean(r), examples=by_rule.get(r["rule_id"], [])) for r in totals.to_dict("records")],
        "rules_by_file": [_clean(r) for r in rules.to_dict("records")],
        "released": [_clean(r) for r in released.to_dict("records")],
        "reconciliation": {
            "rows_read": sum(f["rows_read"] for f in loaded),
            "rows_loaded": sum(f["rows_loaded"] for f in loaded),
            "rows_quarantined": sum(f["rows_quarantined"] for f in loaded),
            "balanced": all(f["rows_read"] == f["rows_loaded"] + f["rows_quarantined"] for f in loaded),
            "files_out_of_balance": [f"{f['center']}/{f['delivery']} {f['file']}" for f in loaded
                                     if f["rows_read"] != f["rows_loaded"] + f["rows_quarantined"]],
        },
        "checks": check_history(con),
        "checks_summary": checks_summary(con),
    }


def checks_summary(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per center, the checks of its latest delivery in force: how many, how many failed, failed errors."""
    by_center: dict[str, dict[str, Any]] = {}
    for c in latest_checks(con):
        s = by_center.setdefault(c["center"], {"center": c["center"], "delivery": c["delivery"], "checks": 0,
                                               "failed": 0, "failed_errors": 0, "failed_rules": []})
        s["checks"] += 1
        if not c["passed"]:
            s["failed"] += 1
            s["failed_errors"] += int(c["severity"] == "error")
            s["failed_rules"].append(c["rule_id"])
    return [dict(s, passed=s["failed_errors"] == 0) for s in by_center.values()]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and value != value:  # NaN from a null
            value = None
        out[key] = value
    return out
