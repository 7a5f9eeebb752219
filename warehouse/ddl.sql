-- The drg-etl warehouse: one DuckDB file, four schemas.
--   staging    source records as delivered (CPR replaced by the pseudonym), one row per record
--   canonical  the canonical model, every row with its lineage (delivery, file, row)
--   quality    deliveries, files, the quarantine, rule results, loads, rejections
-- Views canonical.current_* show the deliveries in force (one per center, the latest cutoff).
-- The canonical tables themselves are declared once, in drg_etl/core/model.py.

create schema if not exists staging;
create schema if not exists canonical;
create schema if not exists quality;

create table if not exists quality.rules (
    rule_id        varchar primary key,
    severity       varchar not null,
    kahn_category  varchar not null,
    description    varchar not null
);

-- Facts about the warehouse itself: the pseudonym key's fingerprint (a keyed hash, never the key).
create table if not exists quality.settings (
    name           varchar primary key,
    value          varchar not null
);

create table if not exists quality.loads (
    load_id        varchar primary key,
    started_at     timestamp not null,
    finished_at    timestamp,
    seconds        double,
    code_version   varchar not null,
    inbox          varchar not null,
    loaded         integer,
    skipped        integer,
    rejected       integer
);

create table if not exists quality.deliveries (
    delivery_id    varchar primary key,   -- SHA-256 over center, cutoff and the files' contents
    center         varchar not null,
    cutoff         date not null,
    status         varchar not null,      -- in_force | superseded
    load_id        varchar not null,
    loaded_at      timestamp not null,
    code_version   varchar not null,
    superseded_by  varchar
);

create table if not exists quality.delivery_files (
    delivery_id       varchar not null,
    file              varchar not null,   -- a file, or a workbook sheet as file#sheet
    sha256            varchar,
    rows_read         integer not null,
    rows_loaded       integer not null,
    rows_quarantined  integer not null,
    rows_ignored      integer not null,   -- records the format says are not records (REDCap's empty forms)
    primary key (delivery_id, file)
);

create table if not exists quality.rejections (
    load_id        varchar not null,
    delivery_id    varchar not null,
    center         varchar not null,
    cutoff         date not null,
    file           varchar not null,
    rule_id        varchar not null,
    reason         varchar not null,
    rejected_at    timestamp not null
);

create table if not exists quality.quarantine (
    delivery_id    varchar not null,
    center         varchar not null,
    cutoff         date not null,
    file           varchar not null,
    "row"          integer not null,
    resource_id    varchar,
    column_name    varchar,
    rule_id        varchar not null,
    severity       varchar not null,      -- error: quarantined; warning: loaded and flagged
    kahn_category  varchar not null,
    message        varchar not null,
    patient_key    varchar,               -- the pseudonym; never the CPR
    record         json                   -- the source record, its CPR replaced by the pseudonym
);

-- Records a national rule quarantined and a later delivery set right (an implant whose trial
-- arrived later, from another center): released, with the delivery and load that released them.
create table if not exists quality.releases (
    delivery_id    varchar not null,
    file           varchar not null,
    "row"          integer not null,
    rule_id        varchar not null,
    released_by    varchar not null,      -- the delivery whose write released it
    load_id        varchar not null,
    released_at    timestamp not null
);

-- The quarantine without the records a later delivery released.
create or replace view quality.open_quarantine as
    select q.* from quality.quarantine q
    where not exists (select 1 from quality.releases r where r.delivery_id = q.delivery_id and r.file = q.file
                      and r."row" = q."row" and r.rule_id = q.rule_id);

create table if not exists quality.rule_results (
    load_id        varchar not null,
    delivery_id    varchar not null,
    rule_id        varchar not null,
    severity       varchar not null,
    kahn_category  varchar not null,
    failures       integer not null
);

create table if not exists staging.source_records (
    delivery_id    varchar not null,
    file           varchar not null,
    "row"          integer not null,
    record         json not null
);

-- The canonical tables (canonical.*), their staging twins (staging.pending_*) and the views
-- canonical.current_* are generated from the one declaration of the model, drg_etl/core/model.py.

-- A delivery read and checked but not yet written: its facts wait in staging.pending_<table>,
-- its findings, per-file counts, the records that contributed a fact, and its source records
-- here. Writing moves them, in one transaction, into canonical.* and quality.*.
create table if not exists staging.pending_deliveries (
    delivery_id    varchar primary key,
    center         varchar not null,
    cutoff         date not null,
    load_id        varchar not null,
    staged_at      timestamp not null
);

create table if not exists staging.pending_issues (
    delivery_id    varchar not null,
    center         varchar not null,
    cutoff         date not null,
    file           varchar not null,
    "row"          integer not null,
    resource_id    varchar,
    column_name    varchar,
    rule_id        varchar not null,
    severity       varchar not null,
    kahn_category  varchar not null,
    message        varchar not null,
    patient_key    varchar
);

create table if not exists staging.pending_files (
    delivery_id    varchar not null,
    file           varchar not null,
    sha256         varchar,
    rows_read      integer not null,
    rows_ignored   integer not null
);

create table if not exists staging.pending_contributed (
    delivery_id    varchar not null,
    file           varchar not null,
    "row"          integer not null
);

create table if not exists staging.pending_source_records (
    delivery_id    varchar not null,
    file           varchar not null,
    "row"          integer not null,
    record         json not null
);

-- Patients whose FHIR resources must be rebuilt: marked in the transaction that writes or
-- supersedes a delivery, cleared in the one that rebuilds them (the FHIR layer is incremental).
create table if not exists staging.fhir_dirty (
    patient_key    varchar primary key
);

-- The FHIR layer: the national data set as R4 resources, rebuilt from the deliveries in force
-- after each load (ids are deterministic, so a rebuild gives the same resources).
create schema if not exists fhir;
-- fhir.resources is created by drg_etl/pipeline/warehouse.py (fhir_resources_ddl): the rebuild of the layer
-- creates its successor with the same definition.

-- Each build of the FHIR layer: how many patients and resources, validated by what.
create table if not exists quality.fhir_builds (
    built_at       timestamp not null,
    mode           varchar not null,      -- full | incremental
    validation     varchar not null,      -- schema (R4 JSON Schema, every resource) | strict (also fhir.resources)
    patients       integer not null,
    resources      integer not null,
    invalid        integer not null,
    seconds        double not null
);
