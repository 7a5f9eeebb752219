"""Asset checks: file contracts, the pandera schemas, reconciliation, FHIR validity, cross-center linkage.

Errors that make data unusable are blocking (downstream assets do not materialize in that run);
quarantine-level findings are warnings with counts and examples.
"""


from pathlib import Path

import dagster as dg

from dagster_project.assets import canonical_tables, fhir_resources, quarantine, staged_rows
from dagster_project.resources import InboxResource, WarehouseResource
from drg_etl.core.model import CANONICAL_TABLES
from drg_etl.quality.schemas import batch_failures, frames
from drg_etl.quality.thresholds import center_verdict
from drg_etl.sources.deliveries import discover


@dg.asset_check(asset=staged_rows, blocking=True, description="Every file of the center's new deliveries "
                "reads as its format (encoding, delimiter, columns, not truncated, workbook opens, R4 JSON).")
def file_contracts(context: dg.AssetCheckExecutionContext, inbox: InboxResource,
                   warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Blocking: a rejected delivery in the inbox stops the center's load here."""
    ids = [d.content_id() for d in discover(Path(inbox.path)) if d.center == context.partition_key]
    with warehouse.connection() as con:
        rejected = con.execute("""
            select distinct center || '/' || strftime(cutoff, '%Y-%m-%d') as delivery, file, rule_id, reason
            from quality.rejections where list_contains(?, delivery_id) order by all""", [ids]).df()
    rows = rejected.to_dict("records")
    return dg.AssetCheckResult(
        passed=not rows,
        metadata={"rejected files": len(rows), "rules": dg.MetadataValue.json(sorted({r["rule_id"] for r in rows})),
                  "rejections": dg.MetadataValue.json(rows)})


def _schema_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=canonical_tables, name=f"schema_{table}", blocking=True,
                    description=f"canonical.{table} of the center passes its pandera schema (drg_etl/core/model.py).")
    def check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connection() as con:
            facts = con.sql(f"select * from canonical.current_{table} where center = ?", params=[context.partition_key])
            rows, cases = batch_failures(table, frames(facts))
        examples = cases.head(10).astype(str).to_dict("records")
        return dg.AssetCheckResult(passed=len(cases) == 0, metadata={
            "rows": rows, "failure cases": len(cases), "examples": dg.MetadataValue.json(examples)})

    return check


SCHEMA_CHECKS = [_schema_check(table) for table in CANONICAL_TABLES]


@dg.asset_check(asset=canonical_tables, blocking=True,
                description="Per file of the deliveries in force: rows read = rows loaded + rows quarantined.")
def reconciliation(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Blocking: a record neither loaded nor quarantined is a lost record."""
    with warehouse.connection() as con:
        rows = con.execute("""
            select f.file, f.rows_read, f.rows_loaded, f.rows_quarantined
            from quality.delivery_files f join quality.deliveries_in_force d using (delivery_id)
            where d.center = ? order by f.file""", [context.partition_key]).fetchall()
    unbalanced = [f for f, read, ok, bad in rows if read != ok + bad]
    return dg.AssetCheckResult(passed=not unbalanced, metadata={
        "files": len(rows), "rows read": sum(r[1] for r in rows), "rows loaded": sum(r[2] for r in rows),
        "rows quarantined": sum(r[3] for r in rows), "out of balance": dg.MetadataValue.json(unbalanced)})


@dg.asset_check(asset=canonical_tables, blocking=False,
                description="Data-quality checks with thresholds (mappings/dq_thresholds.yaml, in the manner of "
                            "OHDSI's DataQualityDashboard): no error-severity rule of the center's delivery in force "
                            "fails on a larger share of rows than its threshold. Fails, without stopping the load.")
def dq_thresholds(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """A failing check of severity error is a failing asset check (ERROR); warnings show in the metadata."""
    with warehouse.connection() as con:
        passed, metadata = center_verdict(con, context.partition_key)
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={k: dg.MetadataValue.json(v) if isinstance(v, list) else v
                                         for k, v in metadata.items() if v is not None})


@dg.asset_check(asset=quarantine, blocking=False,
                description="Records quarantined (errors) or flagged (warnings), counted by rule with examples.")
def quarantine_findings(context: dg.AssetCheckExecutionContext,
                        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """A warning, never blocking: quarantine is where bad rows are meant to go."""
    with warehouse.connection() as con:
        by_rule = con.execute("""
            select q.rule_id, q.severity, count(*) from quality.open_quarantine q
            join quality.deliveries_in_force d using (delivery_id)
            where q.center = ? group by all order by 3 desc""",
                              [context.partition_key]).fetchall()
        examples = con.execute("""
            select q.file || ' row ' || q."row" || ': ' || q.message || ' [' || q.rule_id || ']'
            from quality.open_quarantine q join quality.deliveries_in_force d using (delivery_id)
            where q.center = ? order by q.file, q."row" limit 5""",
                               [context.partition_key]).fetchall()
    errors = sum(n for _, severity, n in by_rule if severity == "error")
    return dg.AssetCheckResult(
        passed=errors == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": errors, "flagged": sum(n for _, s, n in by_rule if s == "warning"),
                  "by rule": dg.MetadataValue.json({r: n for r, _, n in by_rule}),
                  "examples": dg.MetadataValue.json([e for (e,) in examples])})


@dg.asset_check(asset=fhir_resources, blocking=True,
                description="The FHIR layer is current, and its build validated every resource against the "
                            "FHIR R4 JSON Schema (and each shape with fhir.resources).")
def fhir_validity(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Blocking: an invalid resource must not reach the export (the build refuses one; this reads its record)."""
    with warehouse.connection() as con:
        build = con.execute("select mode, validation, patients, resources, invalid, built_at from quality.fhir_builds "
                            "order by built_at desc limit 1").fetchone()
        stale = con.execute("select count(*) from staging.fhir_dirty").fetchone()[0]
        stored = con.execute("select count(*) from fhir.resources").fetchone()[0]
    if build is None:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "the FHIR layer was never built"})
    mode, validation, patients, resources, invalid, built_at = build
    return dg.AssetCheckResult(passed=invalid == 0 and stale == 0, metadata={
        "last build": mode, "validation": validation, "patients rebuilt": patients,
        "resources validated": resources, "invalid": invalid, "resources stored": stored,
        "patients awaiting a rebuild": stale, "built at": str(built_at)})


@dg.asset_check(asset=fhir_resources, blocking=True,
                description="One Patient per person across centers; every reference to a Patient or Device resolves.")
def cross_center_linkage(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Blocking: a person split in two, or a dangling reference, breaks the national analysis."""
    with warehouse.connection() as con:
        persons = con.execute("select count(distinct patient_key) from canonical.current_patients").fetchone()[0]
        patients = con.execute("select count(*), count(distinct pseudonym) from fhir.patient_flat").fetchone()
        multi = con.execute("select count(*) from (select patient_key from canonical.current_patients "
                            "group by 1 having count(distinct center) > 1)").fetchone()[0]
        dangling = con.execute("""
            select count(*) from fhir.resources r
            where r.resource_type not in ('Patient', 'Organization')
              and r.patient_id not in (select id from fhir.resources where resource_type = 'Patient')""").fetchone()[0]
    passed = patients[0] == patients[1] == persons and dangling == 0
    return dg.AssetCheckResult(passed=passed, metadata={
        "persons": persons, "Patient resources": patients[0], "seen at several centers": multi,
        "resources with a dangling patient": dangling})


ALL_CHECKS = [file_contracts, *SCHEMA_CHECKS, reconciliation, dq_thresholds, quarantine_findings, fhir_validity,
              cross_center_linkage]
