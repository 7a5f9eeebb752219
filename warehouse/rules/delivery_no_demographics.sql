-- Within-delivery rule patient.no_demographics: a record with facts of a patient the delivery has no demographics
-- record of (a record blamed once, for its first fact in the model's order of tables). Delivery $id; findings
-- into delivery_findings; $patient_column names the column that says who the patient is, in the center's terms. One branch per table of drg_etl/core/model.py but patients, in its order.
create or replace temp table delivery_findings as
with known as (select distinct patient_key from staging.pending_patients where delivery_id = $id),
facts as (
    select source_file, source_row, patient_key, 0 as table_order, fact_seq from staging.pending_procedures
    where delivery_id = $id
    union all
    select source_file, source_row, patient_key, 1 as table_order, fact_seq from staging.pending_devices
    where delivery_id = $id
    union all
    select source_file, source_row, patient_key, 2 as table_order, fact_seq from staging.pending_measurements
    where delivery_id = $id
    union all
    select source_file, source_row, patient_key, 3 as table_order, fact_seq from staging.pending_complications
    where delivery_id = $id)
select source_file, source_row, patient_key, $patient_column as column_name, 'patient.no_demographics' as rule_id,
       'the delivery has no demographics record of this patient' as message
from facts anti join known using (patient_key)
qualify row_number() over (partition by source_file, source_row order by table_order, fact_seq) = 1
