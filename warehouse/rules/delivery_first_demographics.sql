-- Of the demographics records of a patient that agree, delivery $id keeps the first.
delete from staging.pending_patients where delivery_id = $id and fact_seq not in (
    select min(fact_seq) from staging.pending_patients where delivery_id = $id group by patient_key)
