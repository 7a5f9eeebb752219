-- A released record whose every error is now released moves, in its file's counts, from quarantined to loaded.
with rows as (select distinct delivery_id, source_file as file, source_row as "row" from released),
still as (
    select distinct q.delivery_id, q.file, q."row" from quality.quarantine q semi join rows r
        using (delivery_id, file, "row")
    where q.severity = 'error' and not exists (
        select 1 from quality.releases x where x.delivery_id = q.delivery_id and x.file = q.file
          and x."row" = q."row" and x.rule_id = q.rule_id)),
moved as (select delivery_id, file, count(*) as n from rows anti join still using (delivery_id, file, "row")
          group by all)
update quality.delivery_files f set rows_loaded = f.rows_loaded + m.n, rows_quarantined = f.rows_quarantined - m.n
from moved m where f.delivery_id = m.delivery_id and f.file = m.file
