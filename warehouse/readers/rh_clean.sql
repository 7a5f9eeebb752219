-- rh's REDCap export read as a set (drg_etl.sources.columnar): the records rh.read_rh's row reader (the record's
-- checks, then its instruments' readers: rh._demographics, _prom, _trial, _implant, _lead, _surgery, _complication)
-- reads without a finding, with the values their facts take. `ready` holds the screened records: their fields, the
-- patient (the screening row's own CPR number; the other rows' from the record's screening row), `prom_filled` (the
-- prom instrument holds a value) and `checks` (comp_type's checkbox columns in the dictionary's order, joined by
-- '|'). Each probe relation (raw, ok, value; given: ok and a value) is the row reader's verdict on a column's
-- distinct texts (value null: empty): `code_<field>` decodes a coded field through the delivered dictionary and the
-- map, `day` reads every date column, `item` every PCS item. `event_forms` and `timepoints` are the project's events
-- (their instruments, a list) and the map's timepoints; `checkbox` the comp_type choices in the dictionary's order
-- (position, ok, value). A record id or repeat instance that a device reference could not hold as it is, is left to
-- the row reader.
with records as (
    select c.*, ef.forms as event_instruments
    from ready c
    left join event_forms ef on ef.event = c.redcap_event_name
),
judged as (
    select r.*,
           case when r.redcap_repeat_instrument <> '' then [r.redcap_repeat_instrument]
                else r.event_instruments end as forms,
           -- demographics
           sex.given and loc.given and dx.given
             and r.patient_sex is not null and sex.value = r.patient_sex as demographics_ok,
           sex.value as v_recorded_sex, loc.value as v_pain_location, dx.value as v_diagnosis,
           -- prom
           not r.prom_filled or (prom_day.given and avg.ok and worst.ok and total.ok
             and i1.ok and i2.ok and i3.ok and i4.ok and i5.ok and i6.ok and i7.ok and i8.ok and i9.ok and i10.ok
             and i11.ok and i12.ok and i13.ok and tp.timepoint is not null
             and (total.value is null or i1.value is null or i2.value is null or i3.value is null
                  or i4.value is null or i5.value is null or i6.value is null or i7.value is null
                  or i8.value is null or i9.value is null or i10.value is null or i11.value is null
                  or i12.value is null or i13.value is null
                  or i1.value + i2.value + i3.value + i4.value + i5.value + i6.value + i7.value + i8.value
                     + i9.value + i10.value + i11.value + i12.value + i13.value = total.value)) as prom_ok,
           prom_day.value as v_prom_date, tp.timepoint as v_timepoint, avg.value as v_nrs_average, worst.value as v_nrs_worst,
           total.value as v_pcs_total,
           -- trial
           trial_start.given and trial_end.given
             and success.given as trial_ok,
           trial_start.value as v_trial_start_day, trial_end.value as v_trial_end_day, success.value as v_trial_success,
           -- implant
           implant_day.given and model.given
             and ipg_serial.given as implant_ok,
           implant_day.value as v_implant_day, model.value as v_ipg_model, ipg_serial.value as v_ipg_serial,
           -- lead
           lead_day.given and level.given
             and side.given and lead_serial.given
             and status.given and status_day.given
             and regexp_full_match(r.redcap_repeat_instance, '[0-9]+') as lead_ok,
           lead_day.value as v_lead_day, level.value as v_lead_level, side.value as v_lead_side,
           lead_serial.value as v_lead_serial, status.value as v_lead_status, status_day.value as v_lead_status_day,
           -- surgery
           surg_day.given and surg_type.given
             and regexp_full_match(r.surg_reason, '|[!-~]|[!-~].*[!-~]') as surgery_ok,
           surg_day.value as v_surg_day, surg_type.value as v_surg_type,
           -- complication: every checkbox empty, 0 or 1; at least one checked; each checked choice known
           comp_day.given and permanent.ok
             and regexp_full_match(r.checks, $checks_pattern)
             and list_count(list_filter(string_split(r.checks, '|'), lambda v: v = '1')) > 0
             and not exists (select 1 from checkbox b
                             where not b.ok and string_split(r.checks, '|')[b.position + 1] = '1')
             and regexp_full_match(r.comp_note, '|[!-~]|[!-~].*[!-~]') as complication_ok,
           comp_day.value as v_comp_day, permanent.value as v_permanent
    from records r
    join code_sex sex on sex.raw = r.sex
    join code_pain_location loc on loc.raw = r.pain_location
    join code_diagnosis dx on dx.raw = r.diagnosis
    join day prom_day on prom_day.raw = r.prom_date
    join nrs_avg avg on avg.raw = r.nrs_avg
    join nrs_worst worst on worst.raw = r.nrs_worst
    join pcs_total total on total.raw = r.pcs_total
    join item i1 on i1.raw = r.pcs_01
    join item i2 on i2.raw = r.pcs_02
    join item i3 on i3.raw = r.pcs_03
    join item i4 on i4.raw = r.pcs_04
    join item i5 on i5.raw = r.pcs_05
    join item i6 on i6.raw = r.pcs_06
    join item i7 on i7.raw = r.pcs_07
    join item i8 on i8.raw = r.pcs_08
    join item i9 on i9.raw = r.pcs_09
    join item i10 on i10.raw = r.pcs_10
    join item i11 on i11.raw = r.pcs_11
    join item i12 on i12.raw = r.pcs_12
    join item i13 on i13.raw = r.pcs_13
    left join timepoints tp on tp.event = r.redcap_event_name
    join day trial_start on trial_start.raw = r.trial_start
    join day trial_end on trial_end.raw = r.trial_end
    join code_trial_success success on success.raw = r.trial_success
    join day implant_day on implant_day.raw = r.implant_date
    join code_ipg_model model on model.raw = r.ipg_model
    join serial ipg_serial on ipg_serial.raw = r.ipg_serial
    join day lead_day on lead_day.raw = r.lead_date
    join lead_level level on level.raw = r.lead_level
    join code_lead_side side on side.raw = r.lead_side
    join serial lead_serial on lead_serial.raw = r.lead_serial
    join code_lead_status status on status.raw = r.lead_status
    join day status_day on status_day.raw = r.lead_status_date
    join day surg_day on surg_day.raw = r.surg_date
    join code_surg_type surg_type on surg_type.raw = r.surg_type
    join day comp_day on comp_day.raw = r.comp_date
    join code_comp_permanent permanent on permanent.raw = r.comp_permanent
    where regexp_full_match(r.record_id, '[A-Za-z0-9_.-]+')
)
select row, patient_key, patient_sex, birth_year, forms, prom_filled, record_id, redcap_repeat_instance,
       surg_reason, comp_note, checks, columns('^v_')  -- what the fact queries read, not the whole record
from judged
where forms is not null and len(forms) > 0
  and list_bool_and(list_transform(forms, lambda f: f in ('demographics', 'prom', 'trial', 'implant', 'lead', 'surgery',
                                                      'complication')))
  and (not list_contains(forms, 'demographics') or demographics_ok)
  and (not list_contains(forms, 'prom') or prom_ok)
  and (not list_contains(forms, 'trial') or trial_ok)
  and (not list_contains(forms, 'implant') or implant_ok)
  and (not list_contains(forms, 'lead') or lead_ok)
  and (not list_contains(forms, 'surgery') or surgery_ok)
  and (not list_contains(forms, 'complication') or complication_ok)
  and (len(forms) > 1 or forms[1] <> 'prom' or prom_filled)  -- an empty prom row is not a record (rh._empty)
