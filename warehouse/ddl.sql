-- The drg-etl warehouse: one DuckDB file, four schemas.
--   staging    source records as delivered (CPR replaced by the pseudonym), one row per record
--   canonical  the canonical model, every row with its lineage (delivery, file, row)
--   quality    deliveries, files, the quarantine, rule results, loads, rejections
-- Views canonical.current_* show the deliveries in force (one per center, the latest cutoff).

create schema if not exists staging;
create schema if not exists canonical;
create schema if not exists quality;

create table if not exists quality.rules (
    rule_id        varchar primary key,
    severity       varchar not null,
    kahn_category  varchar not null,
    description    varchar not null
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

create table if not exists canonical.patients (
    delivery_id varchar not null, center varchar not null, cutoff date not null,
    source_file varchar not null, source_row integer not null,
    patient_key varchar not null, sex varchar not null, birth_year integer not null,
    pain_location varchar not null, diagnosis varchar not null, recorded_sex varchar
);

create table if not exists canonical.procedures (
    delivery_id varchar not null, center varchar not null, cutoff date not null,
    source_file varchar not null, source_row integer not null,
    patient_key varchar not null, procedure varchar not null, date date not null, end_date date,
    trial_success boolean, device_ref varchar, reason varchar
);

create table if not exists canonical.devices (
    delivery_id varchar not null, center varchar not null, cutoff date not null,
    source_file varchar not null, source_row integer not null,
    patient_key varchar not null, device_ref varchar not null, device_type varchar not null, model varchar,
    serial varchar not null, placed_date date, level varchar, side varchar, status varchar not null,
    status_date date
);

create table if not exists canonical.measurements (
    delivery_id varchar not null, center varchar not null, cutoff date not null,
    source_file varchar not null, source_row integer not null,
    patient_key varchar not null, date date not null, timepoint varchar, measure varchar not null,
    value double not null
);

create table if not exists canonical.complications (
    delivery_id varchar not null, center varchar not null, cutoff date not null,
    source_file varchar not null, source_row integer not null,
    patient_key varchar not null, date date not null, complication varchar not null, permanent boolean,
    device_ref varchar, note varchar
);

create or replace view canonical.current_patients as
    select t.* from canonical.patients t join quality.deliveries d using (delivery_id) where d.status = 'in_force';
create or replace view canonical.current_procedures as
    select t.* from canonical.procedures t join quality.deliveries d using (delivery_id) where d.status = 'in_force';
create or replace view canonical.current_devices as
    select t.* from canonical.devices t join quality.deliveries d using (delivery_id) where d.status = 'in_force';
create or replace view canonical.current_measurements as
    select t.* from canonical.measurements t join quality.deliveries d using (delivery_id) where d.status = 'in_force';
create or replace view canonical.current_complications as
    select t.* from canonical.complications t join quality.deliveries d using (delivery_id) where d.status = 'in_force';

-- The FHIR layer: the national data set as R4 resources, rebuilt from the deliveries in force
-- after each load (ids are deterministic, so a rebuild gives the same resources).
create schema if not exists fhir;
create table if not exists fhir.resources (
    resource_type  varchar not null,
    id             varchar not null,
    patient_id     varchar,
    center         varchar,
    resource       json not null,
    primary key (resource_type, id)
);
