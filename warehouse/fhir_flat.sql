-- SQL-on-FHIR style flattening of fhir.resources: one row per resource, the columns the
-- marts and the national analysis read. Codes are read from the project CodeSystem's coding
-- (every CodeableConcept carries one, beside its SNOMED CT / LOINC codes).
-- Extension URLs are under {canonical_base}, the project's canonical base (mappings/terminology.yaml),
-- filled in when the statements run. They are tables, rebuilt in the transaction that changes fhir.resources, so a query reads
-- flat columns instead of parsing JSON (the analysis at registry scale).
-- Each statement parses a resource once: json_transform reads the elements it names into a struct (a path
-- json_extract_string reads would parse the resource again for every column: twice the time at registry scale).

create or replace macro fhir_code(codings, concept) as
    split_part(list_filter(list_transform(codings, lambda c: c.code),
                           lambda c: starts_with(c, concept || '/'))[1], '/', 2);

create or replace macro fhir_extension(extensions, ext_url) as
    list_filter(extensions, lambda e: e.url = ext_url)[1];

create or replace macro fhir_ref(reference) as split_part(reference, '/', 2);

create or replace table fhir.patient_flat as
select
    id                                                              as patient_id,
    r.identifier[1].value                                           as pseudonym,
    r.gender                                                        as gender,
    cast(r.birthDate as integer)                                    as birth_year,
    fhir_ref(r.managingOrganization.reference)                      as managing_center
from (select id, json_transform(resource, '{"identifier": [{"value": "VARCHAR"}], "gender": "VARCHAR",
          "birthDate": "VARCHAR", "managingOrganization": {"reference": "VARCHAR"}}') as r
      from fhir.resources where resource_type = 'Patient');

create or replace table fhir.pain_condition_flat as
select
    id,
    fhir_ref(r.subject.reference)                                   as patient_id,
    center,
    fhir_code(r.code.coding, 'diagnosis')                           as diagnosis,
    fhir_code(r.bodySite[1].coding, 'pain_location')                as pain_location
from (select id, center, json_transform(resource, '{"subject": {"reference": "VARCHAR"},
          "code": {"coding": [{"code": "VARCHAR"}]}, "bodySite": [{"coding": [{"code": "VARCHAR"}]}],
          "category": [{"coding": [{"code": "VARCHAR"}]}]}') as r
      from fhir.resources where resource_type = 'Condition')
where r.category[1].coding[1].code = 'problem-list-item';

create or replace table fhir.procedure_flat as
select
    id,
    fhir_ref(r.subject.reference)                                   as patient_id,
    center,
    fhir_code(r.code.coding, 'procedure')                           as procedure,
    cast(coalesce(r.performedDateTime, r.performedPeriod.start) as date) as date,
    cast(r.performedPeriod."end" as date)                           as end_date,
    fhir_code(r.outcome.coding, 'trial_outcome') = 'true'           as trial_success
from (select id, center, json_transform(resource, '{"subject": {"reference": "VARCHAR"},
          "code": {"coding": [{"code": "VARCHAR"}]}, "performedDateTime": "VARCHAR",
          "performedPeriod": {"start": "VARCHAR", "end": "VARCHAR"}, "outcome": {"coding": [{"code": "VARCHAR"}]}}') as r
      from fhir.resources where resource_type = 'Procedure');

create or replace table fhir.device_flat as
select
    id,
    fhir_ref(r.patient.reference)                                   as patient_id,
    center,
    fhir_code(r.type.coding, 'device_type')                         as device_type,
    coalesce(fhir_code(r.statusReason[1].coding, 'lead_status'), 'active') as status,
    cast(fhir_extension(r.extension, '{canonical_base}/StructureDefinition/device-placed-date').valueDate
         as date)                                                   as placed_date,
    cast(fhir_extension(r.extension, '{canonical_base}/StructureDefinition/device-status-date').valueDate
         as date)                                                   as status_date,
    r.property[1].valueCode[1].text                                 as level,
    r.property[2].valueCode[1].text                                 as side,
    r.deviceName[1].name                                            as model
from (select id, center, json_transform(resource, '{"patient": {"reference": "VARCHAR"},
          "type": {"coding": [{"code": "VARCHAR"}]}, "statusReason": [{"coding": [{"code": "VARCHAR"}]}],
          "extension": [{"url": "VARCHAR", "valueDate": "VARCHAR"}], "property": [{"valueCode": [{"text": "VARCHAR"}]}],
          "deviceName": [{"name": "VARCHAR"}]}') as r
      from fhir.resources where resource_type = 'Device');

create or replace table fhir.observation_flat as
select
    id,
    fhir_ref(r.subject.reference)                                   as patient_id,
    center,
    fhir_code(r.code.coding, 'measure')                             as measure,
    cast(r.effectiveDateTime as date)                               as date,
    cast(r.valueQuantity.value as double)                           as value,
    fhir_code(fhir_extension(r.extension, '{canonical_base}/StructureDefinition/study-timepoint')
              .valueCodeableConcept.coding, 'timepoint')            as timepoint
from (select id, center, json_transform(resource, '{"subject": {"reference": "VARCHAR"},
          "code": {"coding": [{"code": "VARCHAR"}]}, "effectiveDateTime": "VARCHAR", "valueQuantity": {"value": "VARCHAR"},
          "extension": [{"url": "VARCHAR", "valueCodeableConcept": {"coding": [{"code": "VARCHAR"}]}}]}') as r
      from fhir.resources where resource_type = 'Observation');

create or replace table fhir.complication_flat as
select
    id,
    fhir_ref(r.subject.reference)                                   as patient_id,
    center,
    fhir_code(r.code.coding, 'complication')                        as complication,
    cast(r.onsetDateTime as date)                                   as date,
    case r.clinicalStatus.coding[1].code
        when 'active' then true when 'resolved' then false end      as permanent,
                                                 -- permanence is an outcome: active = lasting harm
    fhir_ref(r.evidence[1].detail[1].reference)                     as device_id
from (select id, center, json_transform(resource, '{"subject": {"reference": "VARCHAR"},
          "code": {"coding": [{"code": "VARCHAR"}]}, "onsetDateTime": "VARCHAR",
          "clinicalStatus": {"coding": [{"code": "VARCHAR"}]}, "evidence": [{"detail": [{"reference": "VARCHAR"}]}],
          "category": [{"coding": [{"code": "VARCHAR"}]}]}') as r
      from fhir.resources where resource_type = 'Condition')
where r.category[1].coding[1].code = 'encounter-diagnosis';
