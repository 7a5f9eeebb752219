-- The released records' procedures are no longer held by the rule $check.
delete from quality.held_procedures h using released r
where h.national_check = $check and h.delivery_id = r.delivery_id
  and h.source_file = r.source_file and h.source_row = r.source_row
