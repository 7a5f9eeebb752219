-- A chunk's facts in reading order (drg_etl.sources.columnar): those the SQL read (`facts`) and those the row
-- reader read (`odd_facts`), each numbered by its place in the delivery ($offset: the facts read before).
select $center as center, $file as source_file, row as source_row, * exclude (row, k),
       $offset + row_number() over (order by row, k) - 1 as fact_seq
from (select * from facts union all by name select * from odd_facts)
