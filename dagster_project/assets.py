"""Assets, one per stage. Per-center stages are partitioned by center; national stages are not.

Every asset calls the library (drg_etl); nothing here transforms data itself.
"""


from pathlib import Path

import dagster as dg

from dagster_project.resources import (
    ExportResource,
    InboxResource,
    LoadRunResource,
    PseudonymKeyResource,
    WarehouseResource,
)
from drg_etl.analysis.national import national_analysis as compute_national_analysis
from drg_etl.core.model import CANONICAL_TABLES
from drg_etl.core.vocabulary import CENTERS
from drg_etl.fhir.export import export_fhir
from drg_etl.fhir.store import refresh_fhir
from drg_etl.pipeline.load import stage_center, write_center
from drg_etl.pipeline.marts import refresh_marts
from drg_etl.pipeline.warehouse import known_delivery
from drg_etl.report.data import read_report_data
from drg_etl.report.html import write_report
from drg_etl.sources.deliveries import discover

CENTER_PARTITIONS = dg.StaticPartitionsDefinition(list(CENTERS))
POOL = "drg_warehouse"  # one writer at a time: DuckDB allows a single writing process


def _md_table(rows: list[dict], limit: int = 20) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_none_")
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n... {len(rows) - limit} more")
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(partitions_def=CENTER_PARTITIONS, group_name="center_load", kinds={"file"}, pool=POOL)
def delivery_files(context: dg.AssetExecutionContext, inbox: InboxResource,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The center's delivery folders in the inbox, their files and SHA-256, and which are new."""
    center = context.partition_key
    deliveries = [d for d in discover(Path(inbox.path)) if d.center == center]
    rows = []
    with warehouse.connection() as con:
        for d in deliveries:
            rows.append({"delivery": d.label, "files": len(d.file_hashes()), "new": not known_delivery(con,
                                                                                                   d.content_id())})
    return dg.MaterializeResult(metadata={"deliveries": len(rows), "new deliveries": sum(r["new"] for r in rows),
                                          "folders": _md_table(rows)})


@dg.asset(partitions_def=CENTER_PARTITIONS, group_name="center_load", deps=[delivery_files], kinds={"duckdb"},
          pool=POOL)
def staged_rows(context: dg.AssetExecutionContext, inbox: InboxResource, warehouse: WarehouseResource,
                pseudonym_key: PseudonymKeyResource, load_run: LoadRunResource) -> dg.MaterializeResult:
    """The center's new deliveries read under their file contracts and row rules, pseudonymised, staged."""
    center = context.partition_key
    with warehouse.connection() as con:
        result = stage_center(Path(inbox.path), center, con, pseudonym_key.pseudonymizer(),
                              load_run.id_for(context))
        files = con.execute("""
            select d.center || '/' || strftime(d.cutoff, '%Y-%m-%d') as delivery, f.file, f.rows_read as "rows read",
                   (select count(*) from staging.pending_issues i
                    where i.delivery_id = f.delivery_id and i.file = f.file) as findings
            from staging.pending_files f join staging.pending_deliveries d using (delivery_id)
            where d.center = ? order by all""", [center]).df().to_dict("records")
    return dg.MaterializeResult(metadata={
        "staged deliveries": len(result.staged), "already loaded": len(result.skipped),
        "rejected files": len(result.rejected), "rows read": sum(f["rows read"] for f in files),
        "files": _md_table(files), "rejections": _md_table(result.rejected)})


@dg.asset(partitions_def=CENTER_PARTITIONS, group_name="center_load", deps=[staged_rows], kinds={"duckdb"},
          pool=POOL)
def canonical_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                     load_run: LoadRunResource) -> dg.MaterializeResult:
    """The canonical tables of the center's deliveries, checked nationally, reconciled, written."""
    center = context.partition_key
    with warehouse.connection() as con:
        written = write_center(con, center, load_run.id_for(context))
        counts = {t: con.execute(f"select count(*) from canonical.current_{t} where center = ?", [center]
                                 ).fetchone()[0] for t in CANONICAL_TABLES}
        preview = con.execute("select patient_key[:12] as patient, date, timepoint, measure, value "
                              "from canonical.current_measurements where center = ? order by date limit 10",
                              [center]).df().to_dict("records")
    return dg.MaterializeResult(metadata={"written deliveries": dg.MetadataValue.json(written),
                                          **{f"rows: {t}": n for t, n in counts.items()},
                                          "preview: measurements": _md_table(preview)})


@dg.asset(partitions_def=CENTER_PARTITIONS, group_name="center_load", deps=[canonical_tables], kinds={"duckdb"},
          pool=POOL)
def quarantine(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The center's quarantined and flagged records in force, with their rules."""
    center = context.partition_key
    with warehouse.connection() as con:
        by_rule = con.execute("""
            select q.rule_id, q.severity, count(*) as records from quality.open_quarantine q
            join quality.deliveries_in_force d using (delivery_id)
            where q.center = ? group by all order by records desc""", [center]
                              ).df().to_dict("records")
        examples = con.execute("""
            select q.file, q."row", q.column_name, q.rule_id, q.message from quality.open_quarantine q
            join quality.deliveries_in_force d using (delivery_id)
            where q.center = ? order by q.file, q."row" limit 10""", [center]
                               ).df().to_dict("records")
    return dg.MaterializeResult(metadata={"findings": sum(r["records"] for r in by_rule),
                                          "by rule": _md_table(by_rule), "examples": _md_table(examples)})


@dg.asset(group_name="national", deps=[canonical_tables], kinds={"duckdb"}, pool=POOL)
def fhir_resources(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The national data set as FHIR R4 resources, rebuilt for the patients the latest writes touched."""
    with warehouse.connection() as con:
        counts = refresh_fhir(con)
        mode, patients, seconds = con.execute("select mode, patients, seconds from quality.fhir_builds "
                                              "order by built_at desc limit 1").fetchone()
    return dg.MaterializeResult(metadata={"resources": sum(counts.values()), "build": mode,
                                          "patients rebuilt": patients, "seconds": seconds, **counts})


@dg.asset(group_name="national", deps=[fhir_resources], kinds={"duckdb"}, pool=POOL)
def warehouse_marts(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Marts over the FHIR layer's flat tables: per-patient analysis flags and the data-quality summary."""
    with warehouse.connection() as con:
        rows = refresh_marts(con)
    return dg.MaterializeResult(metadata={f"rows: marts.{t}": n for t, n in rows.items()})


@dg.asset(group_name="national", deps=[warehouse_marts], kinds={"duckdb"}, pool=POOL)
def national_analysis(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The national analysis of analysis.md, computed by SQL over the FHIR layer's flat tables."""
    with warehouse.connection() as con:
        figures = compute_national_analysis(con)
    cohort = figures["cohort"]
    return dg.MaterializeResult(metadata={
        "trial patients": cohort["trial_patients"], "implanted patients": cohort["implanted_patients"],
        "fully functional %": cohort["fully_functional_pct"] or 0.0, "figures": dg.MetadataValue.json(figures)})


@dg.asset(group_name="national", deps=[fhir_resources], kinds={"file"}, pool=POOL)
def fhir_export(warehouse: WarehouseResource, export: ExportResource) -> dg.MaterializeResult:
    """FHIR R4 Bulk Data NDJSON files and manifest.json."""
    with warehouse.connection() as con:
        manifest = export_fhir(con, Path(export.path))
    return dg.MaterializeResult(metadata={"folder": dg.MetadataValue.path(export.path),
                                          **{o["type"]: o["count"] for o in manifest["output"]}})


@dg.asset(group_name="national", deps=[national_analysis], kinds={"html"}, pool=POOL)
def national_report(warehouse: WarehouseResource, export: ExportResource) -> dg.MaterializeResult:
    """The national report: one self-contained HTML page (drg-etl report), in the FHIR export's folder (never in
    the working folder, which may be the checkout)."""
    page = Path(export.path) / "national-report.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    with warehouse.connection() as con:
        write_report(read_report_data(con), page)
    return dg.MaterializeResult(metadata={"report": dg.MetadataValue.path(str(page)),
                                          "bytes": page.stat().st_size})


CENTER_ASSETS = [delivery_files, staged_rows, canonical_tables, quarantine]
NATIONAL_ASSETS = [fhir_resources, warehouse_marts, national_analysis, fhir_export, national_report]
