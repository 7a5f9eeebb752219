-- SQL-on-FHIR style flattening of fhir.resources: one row per resource, the columns the
-- marts and the national analysis read. Codes are read from the project CodeSystem's coding
-- (every CodeableConcept carries one, beside its SNOMED CT / LOINC codes).
-- Extension URLs are under {canonical_base}, the project's canonical base (mappings/terminology.yaml),
-- filled in when the statements run. They are tables, rebuilt in the transaction that changes fhir.resources, so a query reads
-- flat columns instead of parsing JSON (the analysis at registry scale).

create or replace macro fhir_code(codes, concept) as
    split_part(list_filter(codes, lambda c: starts_with(c, concept || '/'))[1], '/', 2);

create or replace macro fhir_extension(res, ext_url, field) as
    json_extract_string(
        list_filter(json_extract(res, '$.extension[*]'), lambda e: json_extract_string(e, '$.url') = ext_url)[1],
        field);

create or replace macro fhir_ref(reference) as split_part(reference, '/', 2);

create or replace table fhir.patient_flat as
select
    id                                                              as patient_id,
    json_extract_string(resource, '$.identifier[0].value')           as pseudonym,
    json_extract_string(resource, '$.gender')                        as gender,
    cast(json_extract_string(resource, '$.birthDate') as integer)    as birth_year,
    fhir_ref(json_extract_string(resource, '$.managingOrganization.reference')) as managing_center
from fhir.resources
where resource_type = 'Patient';

create or replace table fhir.pain_condition_flat as
select
    id,
    fhir_ref(json_extract_string(resource, '$.subject.reference'))                           as patient_id,
    center,
    fhir_code(json_extract_string(resource, '$.code.coding[*].code'), 'diagnosis')           as diagnosis,
    fhir_code(json_extract_string(resource, '$.bodySite[0].coding[*].code'), 'pain_location') as pain_location
from fhir.resources
where resource_type = 'Condition'
  and json_extract_string(resource, '$.category[0].coding[0].code') = 'problem-list-item';

create or replace table fhir.procedure_flat as
select
    id,
    fhir_ref(json_extract_string(resource, '$.subject.reference'))                     as patient_id,
    center,
    fhir_code(json_extract_string(resource, '$.code.coding[*].code'), 'procedure')     as procedure,
    cast(coalesce(json_extract_string(resource, '$.performedDateTime'),
                  json_extract_string(resource, '$.performedPeriod.start')) as date)   as date,
    cast(json_extract_string(resource, '$.performedPeriod.end') as date)               as end_date,
    fhir_code(json_extract_string(resource, '$.outcome.coding[*].code'), 'trial_outcome') = 'true'
                                                                                       as trial_success
from fhir.resources
where resource_type = 'Procedure';

create or replace table fhir.device_flat as
select
    id,
    fhir_ref(json_extract_string(resource, '$.patient.reference'))                     as patient_id,
    center,
    fhir_code(json_extract_string(resource, '$.type.coding[*].code'), 'device_type')   as device_type,
    coalesce(fhir_code(json_extract_string(resource, '$.statusReason[0].coding[*].code'), 'lead_status'),
             'active')                                                                 as status,
    cast(fhir_extension(resource, '{canonical_base}/StructureDefinition/device-placed-date',
                        '$.valueDate') as date)                                        as placed_date,
    cast(fhir_extension(resource, '{canonical_base}/StructureDefinition/device-status-date',
                        '$.valueDate') as date)                                        as status_date,
    json_extract_string(resource, '$.property[0].valueCode[0].text')                   as level,
    json_extract_string(resource, '$.property[1].valueCode[0].text')                   as side,
    json_extract_string(resource, '$.deviceName[0].name')                              as model
from fhir.resources
where resource_type = 'Device';

create or replace table fhir.observation_flat as
select
    id,
    fhir_ref(json_extract_string(resource, '$.subject.reference'))                     as patient_id,
    center,
    fhir_code(json_extract_string(resource, '$.code.coding[*].code'), 'measure')       as measure,
    cast(json_extract_string(resource, '$.effectiveDateTime') as date)                 as date,
    cast(json_extract_string(resource, '$.valueQuantity.value') as double)             as value,
    fhir_code(fhir_extension(resource, '{canonical_base}/StructureDefinition/study-timepoint',
                             '$.valueCodeableConcept.coding[*].code'), 'timepoint')    as timepoint
from fhir.resources
where resource_type = 'Observation';

create or replace table fhir.complication_flat as
select
    id,
    fhir_ref(json_extract_string(resource, '$.subject.reference'))                     as patient_id,
    center,
    fhir_code(json_extract_string(resource, '$.code.coding[*].code'), 'complication')  as complication,
    cast(json_extract_string(resource, '$.onsetDateTime') as date)                     as date,
    case json_extract_string(resource, '$.clinicalStatus.coding[0].code')
        when 'active' then true when 'resolved' then false end                         as permanent,
                                                 -- permanence is an outcome: active = lasting harm
    fhir_ref(json_extract_string(resource, '$.evidence[0].detail[0].reference'))       as device_id
from fhir.resources
where resource_type = 'Condition'
  and json_extract_string(resource, '$.category[0].coding[0].code') = 'encounter-diagnosis';
