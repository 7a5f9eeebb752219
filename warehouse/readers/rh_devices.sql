-- rh read as a set (drg_etl.sources.columnar; see rh_clean.sql): the devices facts of the clean records: the
-- implantation's pulse generator (rh._implant) and a lead (rh._lead). $template, $generator_slot and $lead_slot:
-- the format's device reference (drg_etl.core.formats), filled as str.format fills it (the clean records' ids
-- and instances hold no brace).
select row, 0 as k, patient_key,
       replace(replace($template, '{record_id}', record_id), '{slot}', $generator_slot) as device_ref,
       'generator' as device_type, v_ipg_model as model, v_ipg_serial as serial, v_implant_day as placed_date,
       null::varchar as level, null::varchar as side, 'active' as status, v_implant_day as status_date
from clean where list_contains(forms, 'implant')
union all
select row, 0, patient_key,
       replace(replace($template, '{record_id}', record_id), '{slot}',
               replace($lead_slot, '{n}', redcap_repeat_instance)),
       'lead', null, v_lead_serial, v_lead_day, v_lead_level, v_lead_side, v_lead_status, v_lead_status_day
from clean where list_contains(forms, 'lead')
