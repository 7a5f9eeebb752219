-- The follow-up windows (drg_etl/core/dates.py FOLLOW_UP_WINDOWS): $windows is a list of
-- {timepoint, low, high} structs, months after the first implant, inclusive.
create or replace temp table follow_up_windows as
select unnest($windows, recursive := true)
