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
  and not regexp_matches(c.joined, $candidate)
  -- A record that holds its kept text itself (`kept`: a FHIR resource as orjson writes it, which the row reader
  -- keeps as it is when nothing in it needs scrubbing, drg_etl.sources.base.parsed_json_kept) is screened out when
  -- that text holds anything but printable ASCII, an escape, a number the scrubber would spell otherwise (an
  -- exponent, 16 digits, a small decimal), or a candidate outside the machine identifiers the scrubber passes: a
  -- UUID that stands between quotes, or after a resource type's slash, is replaced by a letter first (no
  -- candidate can reach into one across a quote or a letter and a slash).
  and (c.kept is null
       or not regexp_matches(
           regexp_replace(c.kept, '(["]|[A-Za-z]/)[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"', '\1U"',
                          'g'),
           '[^ -~]|[\\]|[0-9][eE]|[0-9]{16}|0[.]0000|' || $candidate));
