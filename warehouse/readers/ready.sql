-- The records of a chunk (drg_etl.sources.columnar) that SQL may read.
-- `chunk` holds the rows: their fields as text (but the CPR number's), `joined` (those fields joined by a
-- character no CPR candidate holds), the patient (pseudonym, sex, birth year; null: the row reader reads the
-- record) and `record` (every field, the CPR number's replaced by the pseudonym; kept as JSON for the records SQL
-- reads: the row reader's text exactly, by the screen below).
-- A record is screened out (left to the row reader) when its texts hold anything but printable ASCII and
-- letters, a quote or a backslash (so the JSON is the row reader's text exactly and folding a text changes
-- nothing), or what may be a CPR number ($candidate: drg_etl.core.cpr's candidates, in RE2).
-- This gives `screened`, their rows (the screen run once); drg_etl.sources.columnar then makes `ready` a view of
-- their fields, read from `chunk` as the queries run (no copy of the texts).
create or replace temp table screened as
select row
from chunk c
where c.patient_key is not null
  and not regexp_matches(c.joined, '[^ -~\p{L}]|["\\]')
  and not regexp_matches(c.joined, $candidate);
