-- The audit record of each released record: which write ($released_by, $load_id) released it, and when.
insert into quality.releases by name
select delivery_id, source_file as file, source_row as "row", rule_id, $released_by as released_by,
       $load_id as load_id, $released_at as released_at
from released
