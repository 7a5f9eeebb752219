"""Every table of the warehouse, declared once.

The canonical tables (and their staging and held twins) follow from the canonical model
(:mod:`drg_etl.core.model`); every other table is declared here: the quality tables (the rule
catalogue, settings, loads, deliveries, their files, rejections, the quarantine, releases, the
data-quality check results, the FHIR builds), the staging tables a delivery waits in before it is
written (twins of the quality tables where they hold the same record), and the FHIR layer's table.
The DDL of the whole warehouse is generated from these declarations (:func:`warehouse_ddl`); rows
go in by column name (:func:`insert_row`, or ``insert ... by name``), never by position.

The views over them live in ``warehouse/views.sql``: ``quality.deliveries_in_force`` (the one
place that knows what "in force" means), ``quality.open_quarantine`` and ``canonical.current_*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import duckdb

from drg_etl.core.model import CANONICAL_TABLES, Column, canonical_ddl
from drg_etl.core.sql import read_sql
from drg_etl.core.vocabulary import CODES_BY_COLUMN

SCHEMAS = ("staging", "canonical", "quality", "fhir", "marts")

# The status of a written delivery (quality.deliveries.status): a center's newest is in force, the rest superseded.
IN_FORCE, SUPERSEDED = "in_force", "superseded"


@dataclass(frozen=True)
class WarehouseTable:
    """One table of the warehouse: where it lives, what a row is, its columns."""

    schema: str
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    # Whether the primary key is an index DuckDB keeps. An index is held in memory while the load fills its table
    # (about 90 MiB a million 36-character ids): the marts of every assessment, lead and patient at a million
    # patients would hold theirs past the memory cap. Such a key holds by construction instead (said in the table's
    # description, held by a test) and is the release's key all the same.
    key_indexed: bool = True

    @property
    def qualified(self) -> str:
        """``schema.name``."""
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns' names, in order."""
        return tuple(c.name for c in self.columns)

    def ddl(self, name: str | None = None) -> str:
        """``create table if not exists`` for this table (or for a successor of it named ``name``)."""
        parts = [c.ddl() for c in self.columns]
        if self.primary_key and self.key_indexed:
            parts.append(f"primary key ({', '.join(_quoted(c) for c in self.primary_key)})")
        body = ",\n    ".join(parts)
        return f"create table if not exists {self.schema}.{name or self.name} (\n    {body}\n);"

    def twin(self, schema: str, name: str, description: str, *, without: tuple[str, ...] = (),
             primary_key: tuple[str, ...] = ()) -> WarehouseTable:
        """A table of the same record elsewhere (a staging twin), without some columns."""
        unknown = set(without) - set(self.column_names)
        if unknown:
            raise ValueError(f"{self.qualified} has no columns {sorted(unknown)}")
        return WarehouseTable(schema, name, description, tuple(c for c in self.columns if c.name not in without),
                              primary_key)


def _quoted(name: str) -> str:
    return f'"{name}"'


# What a column of a name that recurs across the quality and staging tables holds, unless its table says otherwise.
COMMON_DOCS = {
    "load_id": "the load (quality.loads)",
    "delivery_id": "the delivery (quality.deliveries): SHA-256 over center, cutoff and the files' contents",
    "center": "the center",
    "cutoff": "the delivery's cutoff: the day the center's extract holds at",
    "file": "the delivery's file, or a workbook sheet as file#sheet",
    "row": "the record's row in its file (the header is row 1; NDJSON: the line)",
    "rule_id": "the data-quality rule (quality.rules)",
    "kahn_category": "the rule's category in Kahn et al. 2016's harmonised terms",
    "code_version": "the drg-etl version that wrote it",
    "patient_key": "the pseudonym (a keyed hash of the CPR number); never the CPR number",
    "record": "the source record as JSON, its CPR replaced by the pseudonym",
}
# The values a column of these tables takes, where it is coded.
SEVERITIES, KAHN_CATEGORIES = CODES_BY_COLUMN["severity"], CODES_BY_COLUMN["kahn_category"]


def _col(name: str, sql_type: str, doc: str = "", *, nullable: bool = True,
         isin: tuple[str, ...] | None = None) -> Column:
    return Column(name, sql_type, nullable=nullable, doc=doc or COMMON_DOCS.get(name, ""), isin=isin)


def _req(name: str, sql_type: str, doc: str = "", *, isin: tuple[str, ...] | None = None) -> Column:
    return _col(name, sql_type, doc, nullable=False, isin=isin)


RULES = WarehouseTable("quality", "rules", "The catalogue of data-quality rules (drg_etl/core/rules.py).", (
    _req("rule_id", "varchar", "stable id, never reused"),
    _req("severity", "varchar", "error: the record is quarantined; warning: loaded and flagged", isin=SEVERITIES),
    _req("kahn_category", "varchar", "the rule's category (Kahn et al. 2016)", isin=KAHN_CATEGORIES),
    _req("description", "varchar", "what the rule checks"),
), ("rule_id",))

SETTINGS = WarehouseTable("quality", "settings", "Facts about the warehouse itself: the pseudonym key's "
                          "fingerprint (a keyed hash, never the key).", (
    _req("name", "varchar", "the setting"),
    _req("value", "varchar", "its value"),
), ("name",))

FILE_HASHES = WarehouseTable("quality", "file_hashes", "The SHA-256 of each delivery file a load read, by the "
                             "file's fingerprint: a later load knows an unchanged file without reading it again "
                             "(drg_etl/core/file_hashes.py). A changed file has another fingerprint and is read.", (
    _req("path", "varchar", "the file's resolved path"),
    _req("size", "ubigint", "its size in bytes"),
    _req("mtime_ns", "bigint", "its modification time, nanoseconds since 1970"),
    _req("ctime_ns", "bigint", "its change time (any write to it changes this), nanoseconds since 1970"),
    _req("inode", "ubigint", "its inode number"),
    _req("device", "ubigint", "the device of its file system"),
    _req("sha256", "varchar", "the SHA-256 of its content, hex"),
), ("path",))

LOADS = WarehouseTable("quality", "loads", "Each load: when, how long, by which code, from which inbox.", (
    _req("load_id", "varchar"),
    _req("started_at", "timestamp", "when the load began (UTC)"),
    _col("finished_at", "timestamp", "when it finished (null: it did not)"),
    _col("seconds", "double", "how long it took"),
    _req("code_version", "varchar"),
    _req("inbox", "varchar", "the inbox folder it read"),
    _col("loaded", "integer", "deliveries written"),
    _col("skipped", "integer", "deliveries already loaded"),
    _col("rejected", "integer", "deliveries rejected whole"),
), ("load_id",))

DELIVERIES = WarehouseTable("quality", "deliveries", "Each written delivery; one per center is in force.", (
    _req("delivery_id", "varchar", "SHA-256 over center, cutoff and the files' contents"),
    _req("center", "varchar"),
    _req("cutoff", "date"),
    _req("status", "varchar", "in force (the center's newest) or superseded", isin=(IN_FORCE, SUPERSEDED)),
    _req("load_id", "varchar"),
    _req("loaded_at", "timestamp", "when it was written (UTC)"),
    _req("code_version", "varchar"),
    _col("superseded_by", "varchar", "the delivery that superseded it"),
), ("delivery_id",))

DELIVERY_FILES = WarehouseTable("quality", "delivery_files", "Per file of a written delivery: rows read = loaded + "
                                "quarantined (reconciled before the write).", (
    _req("delivery_id", "varchar"),
    _req("file", "varchar", "a file, or a workbook sheet as file#sheet"),
    _col("sha256", "varchar", "SHA-256 of the file's bytes"),
    _req("rows_read", "integer", "records read (data lines, sheet rows, REDCap rows, NDJSON lines)"),
    _req("rows_loaded", "integer", "records loaded"),
    _req("rows_quarantined", "integer", "records quarantined (an error rule failed)"),
    _req("rows_ignored", "integer", "records the format says are not records (REDCap's empty forms)"),
), ("delivery_id", "file"))

REJECTIONS = WarehouseTable("quality", "rejections", "Deliveries rejected whole, with the file and rule that "
                            "rejected them; the center's previous delivery stays in force.", (
    _req("load_id", "varchar"),
    _req("delivery_id", "varchar"),
    _req("center", "varchar"),
    _req("cutoff", "date"),
    _req("file", "varchar"),
    _req("rule_id", "varchar"),
    _req("reason", "varchar", "why the delivery was rejected"),
    _req("rejected_at", "timestamp", "when (UTC)"),
))

QUARANTINE = WarehouseTable("quality", "quarantine", "Every finding: a rule broken by a record (errors are "
                            "quarantined, warnings loaded and flagged), with the record as delivered.", (
    _req("delivery_id", "varchar"),
    _req("center", "varchar"),
    _req("cutoff", "date"),
    _req("file", "varchar"),
    _req("row", "integer", "the record's row in its file (the header is row 1; NDJSON: the line)"),
    _col("resource_id", "varchar", "an NDJSON resource's id"),
    _col("column_name", "varchar", "the column the finding concerns (null: the whole record)"),
    _req("rule_id", "varchar"),
    _req("severity", "varchar", "error: quarantined; warning: loaded and flagged", isin=SEVERITIES),
    _req("kahn_category", "varchar", isin=KAHN_CATEGORIES),
    _req("message", "varchar", "what is wrong, in words"),
    _col("patient_key", "varchar", "the pseudonym; never the CPR number"),
    _col("record", "json", "the source record, its CPR replaced by the pseudonym"),
))

RELEASES = WarehouseTable("quality", "releases", "Records a national rule quarantined and a later delivery set "
                          "right (an implant whose trial arrived later, from another center).", (
    _req("delivery_id", "varchar"),
    _req("file", "varchar"),
    _req("row", "integer"),
    _req("rule_id", "varchar"),
    _req("released_by", "varchar", "the deliveries whose write released it"),
    _req("load_id", "varchar"),
    _req("released_at", "timestamp", "when (UTC)"),
))

CHECK_RESULTS = WarehouseTable("quality", "check_results", "Every rule as a thresholded check of every written "
                               "delivery, kept as history (drg_etl/quality/thresholds.py).", (
    _req("load_id", "varchar"),
    _req("delivery_id", "varchar"),
    _req("center", "varchar"),
    _req("cutoff", "date"),
    _req("rule_id", "varchar"),
    _req("severity", "varchar", "from the rule catalogue", isin=SEVERITIES),
    _req("kahn_category", "varchar", isin=KAHN_CATEGORIES),
    _req("rows_checked", "integer", "rows read of the delivery's files"),
    _req("rows_failed", "integer", "distinct records of the delivery the rule flagged"),
    _req("share_failed", "double", "rows_failed / rows_checked (0 when nothing was checked)"),
    _req("threshold", "double", "share 0-1 (mappings/dq_thresholds.yaml)"),
    _req("passed", "boolean", "share_failed <= threshold"),
    _req("checked_at", "timestamp", "when (UTC)"),
))

FHIR_BUILDS = WarehouseTable("quality", "fhir_builds", "Each build of the FHIR layer: how many patients and "
                             "resources, validated by what.", (
    _req("built_at", "timestamp", "when (UTC)"),
    _req("mode", "varchar", "full (every patient) or incremental (the patients that changed)",
         isin=("full", "incremental")),
    _req("validation", "varchar", "schema (R4 JSON Schema, every resource) or strict (also fhir.resources)",
         isin=("schema", "strict")),
    _req("patients", "integer", "patients whose resources were built"),
    _req("resources", "integer", "resources built"),
    _req("invalid", "integer", "resources that failed validation"),
    _req("seconds", "double", "how long it took"),
))

SOURCE_RECORDS = WarehouseTable("staging", "source_records", "Source records as delivered (CPR replaced by the "
                                "pseudonym), one row per record.", (
    _req("delivery_id", "varchar"),
    _req("file", "varchar"),
    _req("row", "integer"),
    replace(_req("record", "json"), compression="zstd"),
))

# A delivery read and checked but not yet written waits in the staging.pending_* tables; the write moves it, in
# one transaction, into canonical.* and quality.*.
PENDING_DELIVERIES = WarehouseTable("staging", "pending_deliveries", "Deliveries staged and checked, waiting to be "
                                    "written.", (
    _req("delivery_id", "varchar"),
    _req("center", "varchar"),
    _req("cutoff", "date"),
    _req("load_id", "varchar"),
    _req("staged_at", "timestamp", "when (UTC)"),
), ("delivery_id",))
PENDING_ISSUES = QUARANTINE.twin("staging", "pending_issues", "The findings of staged deliveries.",
                                 without=("record",))
PENDING_FILES = DELIVERY_FILES.twin("staging", "pending_files", "Per file of a staged delivery: rows read.",
                                   without=("rows_loaded", "rows_quarantined"))
PENDING_CONTRIBUTED = WarehouseTable("staging", "pending_contributed", "The records of a staged delivery that gave "
                                     "a fact (loaded unless they also broke an error rule).", (
    _req("delivery_id", "varchar"),
    _req("file", "varchar"),
    _req("row", "integer"),
))
PENDING_SOURCE_RECORDS = SOURCE_RECORDS.twin("staging", "pending_source_records",
                                             "The source records of staged deliveries.")
FHIR_DIRTY = WarehouseTable("staging", "fhir_dirty", "Patients whose FHIR resources must be rebuilt: marked in the "
                            "transaction that writes or supersedes a delivery, cleared by the rebuild.", (
    _req("patient_key", "varchar"),
), ("patient_key",))

FHIR_RESOURCES = WarehouseTable("fhir", "resources", "The FHIR layer: the national data set as R4 resources, "
                                "rebuilt from the deliveries in force (ids are deterministic). No primary key: an "
                                "index would be rewritten at every checkpoint of a rebuild; the rebuild checks "
                                "(resource_type, id) unique itself (drg_etl/fhir/store.py).", (
    _req("resource_type", "varchar", "the FHIR resource type (Patient, Condition, Procedure, Device, ...)"),
    _req("id", "varchar", "the resource's logical id: a UUID v5 of its type and natural key"),
    _col("patient_id", "varchar", "the Patient resource's id (the patient's own, for a Patient)"),
    _col("center", "varchar"),
    replace(_req("resource", "json", "compact JSON, as the export writes it"), compression="zstd"),
))

# -- the views of warehouse/views.sql, declared for the data dictionary: their columns are their tables' --
DELIVERIES_IN_FORCE = DELIVERIES.twin("quality", "deliveries_in_force", "The deliveries in force: per center the "
                                      "newest written delivery (the one place that says what in force means).")
OPEN_QUARANTINE = QUARANTINE.twin("quality", "open_quarantine", "The quarantine without the records a later "
                                  "delivery released (quality.releases).")
WAREHOUSE_VIEWS: tuple[WarehouseTable, ...] = (DELIVERIES_IN_FORCE, OPEN_QUARANTINE)

# -- the marts: the analysts' tables, rebuilt by drg_etl/pipeline/marts.py after every FHIR build (both doors) --
MART_PATIENT_FLAGS_TABLE = WarehouseTable(
    "marts", "patient_flags", "One row per trial patient (analysis.md): the national analysis's flags at the "
                              "warehouse's observation end (the latest cutoff in force).", (
        _req("patient_id", "varchar", "the Patient's id in the FHIR layer (from the keyed CPR pseudonym)"),
        _req("observation_end", "date", "the day the flags hold at: the latest cutoff among the deliveries in force"),
        _req("first_trial", "date", "the first trial stimulation's start in the study window"),
        _col("trial_center", "varchar", "the center of that first trial"),
        _col("pain_location", "varchar", "the primary pain location"),
        _col("first_implant", "date", "the first full implantation in the study window, at any center"),
        _col("implant_center", "varchar", "the center of that first implantation"),
        _col("first_explant", "date", "the first explantation of the complete system, on or before the "
                                      "observation end"),
        _req("implanted", "boolean", "an implantation in the study window"),
        _req("still_implanted", "boolean", "implanted, and no explantation on or before the observation end"),
        _req("fully_functional", "boolean", "still implanted and no lead faulty without a later replacement"),
        _req("lead_defect", "boolean", "implanted, with a lead fracture or malfunction complication"),
        _req("retained_fragment", "boolean", "implanted, with a retained lead fragment complication"),
        _req("permanent_nerve_damage", "boolean", "implanted, with nerve damage recorded as permanent"),
    ), ("patient_id",))
MART_FOLLOW_UP_TABLE = WarehouseTable(
    "marts", "follow_up", "One row per assessment (Observation) of a trial patient, with its resolved timepoint: "
                          "the source's label, or the window its date falls in (analysis.md). Key observation_id, "
                          "without an index: one row per Observation, whose ids the FHIR build keeps unique.", (
        _req("observation_id", "varchar", "the Observation's id in the FHIR layer"),
        _req("patient_id", "varchar", "the Patient's id in the FHIR layer"),
        _req("center", "varchar", "the center that recorded the assessment"),
        _req("measure", "varchar", "the measure"),
        _req("date", "date", "the day of the assessment"),
        _req("value", "double", "the score"),
        _col("timepoint_label", "varchar", "the timepoint the source labelled it with (null: the source has none)"),
        _col("timepoint", "varchar", "the resolved timepoint: the label, else the window of the date (baseline: "
                                     "90 days before the first trial; month_3 2-4, month_6 5-8, month_12 9-15, "
                                     "month_24 18-30, month_36 31-42 months after the first implant); null: none"),
        _col("resolved_by", "varchar", "label or date_window (null: no timepoint)"),
        _req("official", "boolean", "the assessment the analysis uses for its patient, measure and timepoint "
                                    "(baseline: the latest; later ones: the closest to the timepoint)"),
    ), ("observation_id",), key_indexed=False)
MART_PATIENT_COURSE_TABLE = WarehouseTable(
    "marts", "patient_course", "One row per trial patient: the per-patient figures the national analysis groups, as "
                               "dates that hold at any observation end (the analysis compares them with its own). "
                               "Key patient_id, without an index: one row per row of marts.patient_flags.", (
        _req("patient_id", "varchar", "the Patient's id in the FHIR layer"),
        _req("implanted", "boolean", "an implantation in the study window"),
        _col("first_implant", "date", "the first full implantation in the study window, at any center"),
        _col("implant_center", "varchar", "the center of that first implantation"),
        _col("first_explant", "date", "the first explantation of the complete system (any day)"),
        _col("explant_after_implant", "date", "the first explantation of the complete system on or after the first "
                                              "implantation"),
        _req("defect_dates", "date[]", "the days of the lead fracture or malfunction complications on or after the "
                                       "first implantation, ascending"),
        _req("ipg_model", "varchar", "the model of the first pulse generator (the earliest placed, then the smallest "
                                     "id); unknown: no model or no generator"),
        _req("centers", "struct(center varchar, trial boolean, implant boolean)[]",
             "per center of the patient's procedures: whether a trial and an implantation there lie in the study "
             "window"),
        _req("windows", "struct(timepoint varchar, opens date, closes date, first_assessed date)[]",
             "implanted: per follow-up timepoint after the implant, its window's first and last day and the day of "
             "the first assessment (any measure) resolved to it in marts.follow_up"),
        _req("pairs", "struct(measure varchar, baseline double, month12 double)[]",
             "per measure with both: the official baseline and 12-month values (marts.follow_up)"),
        _req("leads", "struct(placed_date date, status varchar, status_date date, next_placed_date date)[]",
             "per lead: its placement, status, the day of that status and the first lead placed after it at its "
             "level and side (null: none, or no level or side)"),
    ), ("patient_id",), key_indexed=False)
MART_LEAD_HISTORY_TABLE = WarehouseTable(
    "marts", "lead_history", "One row per lead (Device) of a patient: placement, status, state at the observation "
                             "end, repair, and the complications the source links to it. Key device_id, without "
                             "an index: one row per lead Device, whose ids the FHIR build keeps unique.", (
        _req("device_id", "varchar", "the Device's id in the FHIR layer"),
        _req("patient_id", "varchar", "the Patient's id in the FHIR layer"),
        _req("center", "varchar", "the center that placed the lead"),
        _col("level", "varchar", "the spinal level (C1-S5)"),
        _col("side", "varchar", "left or right"),
        _col("placed_date", "date", "the day the lead was placed"),
        _col("status", "varchar", "the lead's status as last recorded: active, fractured, malfunction, removed, "
                                  "removed_fragment_retained"),
        _col("status_date", "date", "the day of that status"),
        _req("state_at_end", "varchar", "working, faulty or removed at the observation end"),
        _col("replaced_date", "date", "for a faulty lead: the first lead placed later at its level and side"),
        _req("defect_complications", "integer", "lead fracture or malfunction complications that name this lead"),
        _col("first_defect_date", "date", "the first of them"),
    ), ("device_id",), key_indexed=False)
MART_QUALITY_BY_RULE_TABLE = WarehouseTable(
    "marts", "quality_by_rule", "The data-quality summary: records quarantined per center and rule, among the "
                                "deliveries in force.", (
        _req("center", "varchar", "the center"),
        _req("rule_id", "varchar", "the rule (quality.rules)"),
        _req("severity", "varchar", "error or warning"),
        _req("kahn_category", "varchar", "conformance, completeness or plausibility (Kahn et al. 2016)"),
        _req("records", "bigint", "the records it flagged"),
    ), ("center", "rule_id"))
MARTS: tuple[WarehouseTable, ...] = (MART_PATIENT_FLAGS_TABLE, MART_FOLLOW_UP_TABLE, MART_LEAD_HISTORY_TABLE,
                                     MART_QUALITY_BY_RULE_TABLE, MART_PATIENT_COURSE_TABLE)
MART_PATIENT_FLAGS, MART_FOLLOW_UP, MART_LEAD_HISTORY, MART_QUALITY_BY_RULE, MART_PATIENT_COURSE = (
    t.qualified for t in MARTS)

WAREHOUSE_TABLES: tuple[WarehouseTable, ...] = (
    RULES, SETTINGS, FILE_HASHES, LOADS, DELIVERIES, DELIVERY_FILES, REJECTIONS, QUARANTINE, RELEASES, CHECK_RESULTS,
    FHIR_BUILDS, SOURCE_RECORDS, PENDING_DELIVERIES, PENDING_ISSUES, PENDING_FILES, PENDING_CONTRIBUTED,
    PENDING_SOURCE_RECORDS, FHIR_DIRTY, FHIR_RESOURCES)
# Every staging table a delivery's rows wait in until the write: the declared ones and the canonical twins.
PENDING: tuple[str, ...] = (*(t.name for t in WAREHOUSE_TABLES if t.name.startswith("pending_")),
                            *(f"pending_{t}" for t in CANONICAL_TABLES),
                            *(f"pending_held_{t}" for t in CANONICAL_TABLES))
# Tables of earlier versions that nothing reads any more.
# marts.national_analysis: once written by the Dagster asset alone (the figures are its metadata now).
DROPPED = ("quality.rule_results", "marts.national_analysis")


def warehouse_ddl() -> str:
    """The DDL of the whole warehouse: schemas, these tables, the canonical tables and twins, the views."""
    statements = [f"create schema if not exists {s};" for s in SCHEMAS]
    statements += [t.ddl() for t in WAREHOUSE_TABLES]
    statements += [f"drop table if exists {t};" for t in DROPPED]
    statements.append(read_sql("views.sql"))
    statements.append(canonical_ddl())
    return "\n".join(statements)


def fhir_resources_ddl(name: str = "resources") -> str:
    """The FHIR layer's table (``fhir.resources``, or its successor ``name`` during a full rebuild)."""
    return FHIR_RESOURCES.ddl(name)


def insert_row(con: duckdb.DuckDBPyConnection, table: WarehouseTable, values: Mapping[str, Any]) -> None:
    """Insert one row by column name (columns left out are null); a name the table lacks is a TypeError."""
    unknown = set(values) - set(table.column_names)
    if unknown:
        raise TypeError(f"{table.qualified} has no columns {sorted(unknown)}")
    names = ", ".join(_quoted(c) for c in values)
    marks = ", ".join("?" for _ in values)
    con.execute(f"insert into {table.qualified} ({names}) values ({marks})", list(values.values()))


def insert_rows(con: duckdb.DuckDBPyConnection, table: WarehouseTable, rows: list[Mapping[str, Any]]) -> None:
    """Insert many rows by column name (every row with the same columns)."""
    if not rows:
        return
    columns = list(rows[0])
    unknown = set(columns) - set(table.column_names)
    if unknown:
        raise TypeError(f"{table.qualified} has no columns {sorted(unknown)}")
    names = ", ".join(_quoted(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    con.executemany(f"insert into {table.qualified} ({names}) values ({marks})",
                    [[row[c] for c in columns] for row in rows])

