-- National rule followup_implant: a follow-up measurement at a study timepoint lies in its window
-- (follow_up_windows: timepoint, low, high months, inclusive) after the patient's first implant at any center.
-- Finds the measurements among rule_candidates that break it, each record judged against its rule_scope (the
-- procedures that count for it): dates.out_of_order before the first implant or with none, else
-- followup.outside_window; one finding per record, its first by fact_seq. Flags and releases alike
-- (see national_implant_trial.sql).
create or replace temp table rule_findings as
with first_implants as (
    select delivery_id, source_file, source_row, min(date) as first from rule_scope
    where procedure = 'implant' group by all),
judged as (
    select m.delivery_id, m.center, m.cutoff, m.source_file, m.source_row, m.patient_key, m.fact_seq,
           'date' as column_name,
           case when i.first is null or m.date < i.first then 'dates.out_of_order'
                when m.date < i.first + to_months(w.low) or m.date > i.first + to_months(w.high)
                    then 'followup.outside_window' end as rule_id,
           case when i.first is null or m.date < i.first
                    then m.timepoint || ' follow-up on ' || strftime(m.date, '%Y-%m-%d') || ' before the implant ('
                         || coalesce(strftime(i.first, '%Y-%m-%d'), 'none') || ')'
                else m.timepoint || ' follow-up on ' || strftime(m.date, '%Y-%m-%d')
                     || ' is outside its window after the implant on ' || strftime(i.first, '%Y-%m-%d') end as message
    from rule_candidates m join follow_up_windows w using (timepoint)
    left join first_implants i using (delivery_id, source_file, source_row))
select * exclude (fact_seq) from judged where rule_id is not null
qualify row_number() over (partition by delivery_id, source_file, source_row order by fact_seq) = 1
