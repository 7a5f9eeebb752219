-- rh (REDCap) keeps the generator on the implant form: the patient's first recorded explant removes it.
-- Run over one delivery's staged facts once it is read; $id is the delivery id.
update staging.pending_devices d set status = 'removed', status_date = e.day
from (select patient_key, arg_min(date, fact_seq) as day from staging.pending_procedures
      where delivery_id = $id and procedure = 'explant' group by patient_key) e
where d.delivery_id = $id and d.patient_key = e.patient_key and d.device_type = 'generator'
  and d.placed_date <= e.day;
