"""The analysis's SQL, rewritten for speed (issue 18: a bit mask per patient, one scan of the follow-up mart, the
flags' first explantation, the latest lead per level and side, aggregates for windows and distinct counts), against
the plain formulations it replaced, on random flat tables full of the cases a rewrite could get wrong: explants
before the implant or after the end, leads without a level, side, status or date, generators without a model or a
date, assessments outside every window, several official candidates, centers outside the vocabulary."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from drg_etl.analysis import national
from drg_etl.analysis.flags import Flags
from drg_etl.core.sql import read_sql
from drg_etl.pipeline.marts import bind, flags_query, study_parameters

#: warehouse/analysis/*.sql as they were before the rewrite (their header comments left out): the oracles.
ORIGINAL = {
    "by_center": """
select
    p.center,
    count(distinct p.patient_id) filter (
        where p.procedure = 'trial' and p.date between cast($study_start as date) and cast($study_end as date))
                                                                                                  as trial_patients,
    count(distinct p.patient_id) filter (
        where p.procedure = 'implant' and f.implanted
          and p.date between cast($study_start as date) and cast($study_end as date))     as implanted_patients
from fhir.procedure_flat p
join patient_flags f using (patient_id)
group by p.center
order by p.center
""",
    "follow_up": """
with
windows as (
    select unnest($window_names) as timepoint, unnest($window_low) as low_months,
           unnest($window_high) as high_months
),
due as (
    select f.patient_id, f.implant_center as center, w.timepoint
    from patient_flags f, windows w
    where f.implanted
      and f.first_implant + to_months(w.high_months) <= cast($observation_end as date)
      and (f.first_explant is null or f.first_explant >= f.first_implant + to_months(w.low_months))
),
assessed as (
    select distinct u.patient_id, u.timepoint
    from marts.follow_up u
    where u.timepoint is not null and u.date <= cast($observation_end as date)
)
select d.center, d.timepoint, count(*) as due, count(a.patient_id) as assessed
from due d left join assessed a using (patient_id, timepoint)
group by all
order by all
""",
    "survival": """
with
params as (
    select cast($observation_end as date) as obs_end
),
cohort as (
    select f.patient_id, f.first_implant
    from patient_flags f, params
    where f.implanted and f.first_implant <= params.obs_end
),
explant as (
    select c.patient_id, min(p.date) as explant_date
    from cohort c join fhir.procedure_flat p using (patient_id), params
    where p.procedure = 'explant' and p.date >= c.first_implant and p.date <= params.obs_end
    group by c.patient_id
),
defect as (
    select c.patient_id, min(x.date) as defect_date
    from cohort c join fhir.complication_flat x using (patient_id), params
    where list_contains($defect_types, x.complication)
      and x.date >= c.first_implant and x.date <= params.obs_end
    group by c.patient_id
),
timed as (
    select
        c.patient_id,
        c.first_implant,
        e.explant_date,
        d.defect_date,
        coalesce(e.explant_date, params.obs_end)                            as defect_censor_date,
        d.defect_date is not null
            and d.defect_date <= coalesce(e.explant_date, params.obs_end)   as defect_event,
        e.explant_date is not null                                          as explant_event,
        params.obs_end
    from cohort c
    left join explant e using (patient_id)
    left join defect d using (patient_id), params
)
select
    patient_id,
    first_implant,
    defect_event,
    datediff('day', first_implant,
             case when defect_event then defect_date else defect_censor_date end)  as defect_days,
    explant_event,
    datediff('day', first_implant, coalesce(explant_date, obs_end))               as explant_days
from timed
order by patient_id
""",
    "survival_leads": """
with
params as (
    select cast($observation_end as date) as obs_end
),
implanted as (
    select patient_id, first_implant from patient_flags where implanted
),
explant as (
    select i.patient_id, min(p.date) as explant_date
    from implanted i join fhir.procedure_flat p using (patient_id), params
    where p.procedure = 'explant' and p.date >= i.first_implant and p.date <= params.obs_end
    group by i.patient_id
),
leads as (
    select d.id, d.patient_id, d.level, d.side, d.placed_date, d.status,
           coalesce(d.status_date, d.placed_date) as status_date
    from fhir.device_flat d join implanted using (patient_id), params
    where d.device_type = 'lead' and d.placed_date <= params.obs_end
),
revision as (
    select
        l.id,
        case when list_contains($removed_statuses, l.status) and l.status_date <= params.obs_end
             then l.status_date end                                             as removed_date,
        (select min(r.placed_date) from leads r
         where r.patient_id = l.patient_id and r.level = l.level and r.side = l.side
           and r.placed_date > l.placed_date)                                   as replaced_date
    from leads l, params
)
select
    l.id,
    l.patient_id,
    l.placed_date,
    least(v.removed_date, v.replaced_date)                                      as revision_date,
    e.explant_date,
    coalesce(least(v.removed_date, v.replaced_date) < e.explant_date,
             least(v.removed_date, v.replaced_date) is not null)               as revised,
    list_contains($faulty_statuses, l.status) and l.status_date <= params.obs_end as faulty_at_end
from leads l
join revision v using (id)
left join explant e using (patient_id), params
order by l.patient_id, l.placed_date, l.id
""",
    "device_performance": """
with
ended as (
    select s.patient_id, s.first_implant, f.implant_center, s.explant_days as days,
           s.first_implant + to_days(cast(s.explant_days as integer)) as end_date
    from survival s join patient_flags f using (patient_id)
),
generator as (
    select patient_id, ipg_model
    from (
        select
            d.patient_id,
            coalesce(nullif(trim(d.model), ''), 'unknown')                             as ipg_model,
            row_number() over (partition by d.patient_id order by d.placed_date asc nulls last, d.id) as nth
        from fhir.device_flat d join ended c using (patient_id)
        where d.device_type = 'generator'
    )
    where nth = 1
),
defects as (
    select e.patient_id, count(*) as events
    from ended e join fhir.complication_flat x using (patient_id)
    where list_contains($defect_types, x.complication)
      and x.date >= e.first_implant and x.date <= e.end_date
    group by e.patient_id
)
select
    e.patient_id,
    coalesce(g.ipg_model, 'unknown')                                                   as ipg_model,
    e.implant_center                                                                   as center,
    e.days,
    coalesce(x.events, 0)                                                              as events
from ended e
left join generator g using (patient_id)
left join defects x using (patient_id)
order by e.patient_id
""",
    "outcome_pairs": """
select b.patient_id, b.measure, b.value as baseline, m.value as month12
from marts.follow_up b
join marts.follow_up m on m.patient_id = b.patient_id and m.measure = b.measure
join patient_flags f on f.patient_id = b.patient_id
where f.fully_functional
  and b.official and b.timepoint = 'baseline'
  and m.official and m.timepoint = 'month_12'
order by b.measure, b.patient_id
""",
}

CENTERS = ("auh", "ouh", "rh", "aauh", "elsewhere", None)
PROCEDURES = ("trial", "implant", "explant", "explant", "lead_replacement", None)
STATUSES = ("active", "fractured", "malfunction", "removed", "removed_fragment_retained", None)
COMPLICATIONS = ("lead_fracture", "lead_malfunction", "infection", "retained_fragment", "nerve_damage", None)
TIMEPOINTS = ("baseline", "month_3", "month_6", "month_12", "month_24", "month_36", "month_48", None)
ENDS = (dt.date(2019, 12, 31), dt.date(2017, 6, 30), dt.date(2016, 1, 15))


def _day(rng: random.Random, start: dt.date = dt.date(2012, 6, 1), days: int = 3200) -> dt.date | None:
    return None if rng.random() < 0.04 else start + dt.timedelta(days=rng.randrange(days))


def _after(rng: random.Random, base: dt.date, low: int, high: int, pool: list[dt.date]) -> dt.date:
    """A day from ``base`` + ``low`` to + ``high``, more often one of the patient's few days (``pool``) or an end, so
    that events of different tables fall on the same day."""
    pick = rng.random()
    if pick < 0.5:
        return rng.choice(pool)
    if pick < 0.6:
        return rng.choice(ENDS) + dt.timedelta(days=rng.choice((0, 0, 1)))
    return base + dt.timedelta(days=rng.randrange(low, high))


def _warehouse(seed: int, patients: int = 600) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse of random flat tables (few patients, many collisions of days)."""
    rng = random.Random(seed)
    con = duckdb.connect()
    con.execute("""
        create schema fhir; create schema marts;
        create table fhir.procedure_flat (id varchar, patient_id varchar, center varchar, procedure varchar, date date,
                                          end_date date, trial_success boolean);
        create table fhir.device_flat (id varchar, patient_id varchar, center varchar, device_type varchar,
                                       status varchar, placed_date date, status_date date, level varchar, side varchar,
                                       model varchar);
        create table fhir.complication_flat (id varchar, patient_id varchar, center varchar, complication varchar,
                                             date date, permanent boolean, device_id varchar);
        create table fhir.pain_condition_flat (id varchar, patient_id varchar, center varchar, diagnosis varchar,
                                               pain_location varchar);
        create table fhir.observation_flat (id varchar, patient_id varchar, center varchar, measure varchar, date date,
                                            value double, timepoint varchar);""")
    rows: dict[str, list[tuple[Any, ...]]] = {"procedure": [], "device": [], "complication": [], "pain": [],
                                              "observation": []}
    ids = iter(range(10**6))
    for p in range(patients):
        patient = f"{rng.getrandbits(64):016x}-{p:04d}"
        trial = _day(rng)
        center = rng.choice(CENTERS)
        if rng.random() < 0.9:
            rows["procedure"].append((f"p{next(ids)}", patient, center, "trial", trial, None, True))
        implant = None if trial is None or rng.random() < 0.2 else trial + dt.timedelta(days=rng.randrange(-20, 60))
        base = implant or trial or dt.date(2015, 1, 1)
        pool = [base + dt.timedelta(days=d) for d in (0, -1, 1, rng.randrange(-300, 0), *rng.sample(range(2, 2400), 2))]
        explanted = []
        for _ in range(rng.choice((0, 1, 2, 3, 4))):
            date = _day(rng) if implant is None else _after(rng, implant, -400, 2500, pool)
            procedure = rng.choice(PROCEDURES)
            rows["procedure"].append((f"p{next(ids)}", patient, rng.choice(CENTERS), procedure, date, None, None))
            if procedure == "explant" and date is not None:
                explanted.append(date)
        if implant is not None:
            rows["procedure"].append((f"p{next(ids)}", patient, rng.choice(CENTERS), "implant", implant, None, None))
        rows["pain"].append((f"c{next(ids)}", patient, center, "x", rng.choice(("lower_extremity", "upper_extremity"))))
        levels = [rng.choice(("T8", "T9", "L1", None)) for _ in range(2)]
        for _ in range(rng.choice((0, 1, 2, 2, 3, 5))):  # leads, often at the same level and side on the same day
            placed = None if rng.random() < 0.03 else _after(rng, base, 0, 3000, pool)
            status_date = None if rng.random() < 0.3 else _after(rng, base, -10, 2600, pool)
            rows["device"].append((f"d{next(ids):06d}", patient, center, "lead", rng.choice(STATUSES), placed,
                                   status_date, rng.choice(levels), rng.choice(("left", "right", None)),
                                   rng.choice(("Axium", None))))
        if explanted and rng.random() < 0.5:  # a lead replaced on an explantation's day (not before it)
            for placed in (base, rng.choice(explanted)):
                rows["device"].append((f"d{next(ids):06d}", patient, center, "lead", "active", placed, None, levels[0],
                                       "left", "Axium"))
        for _ in range(rng.choice((0, 1, 1, 2))):  # generators, some on the same day, without a date or model
            placed = None if rng.random() < 0.1 else rng.choice(pool[:3])
            rows["device"].append((f"d{rng.randrange(10**6):06d}", patient, center, "generator", "active", placed, None,
                                   None, None, rng.choice(("Axium", "Proclaim DRG", "Other", "", "  ", None))))
        for _ in range(rng.choice((0, 0, 1, 2, 4))):
            rows["complication"].append((f"x{next(ids)}", patient, center, rng.choice(COMPLICATIONS),
                                         _after(rng, base, -100, 2500, pool), rng.random() < 0.5, None))
        for _ in range(rng.choice((0, 3, 8, 15))):
            rows["observation"].append((f"o{next(ids)}", patient, center,
                                        rng.choice(("nrs_average", "nrs_worst", "pcs_total")),
                                        _after(rng, base, -120, 1500, pool),
                                        rng.choice((rng.randrange(11), round(rng.random() * 10, 1), 52.0)),
                                        rng.choice(TIMEPOINTS)))
    for table, name in (("procedure", "procedure_flat"), ("device", "device_flat"),
                        ("complication", "complication_flat"), ("pain", "pain_condition_flat"),
                        ("observation", "observation_flat")):
        width = len(rows[table][0])
        con.executemany(f"insert into fhir.{name} values ({', '.join('?' * width)})", rows[table])
    return con


def _marts(con: duckdb.DuckDBPyConnection, end: dt.date) -> None:
    """marts.patient_flags, marts.follow_up and marts.patient_course at ``end``, by the marts' own queries."""
    parameters = study_parameters(end)
    flags = read_sql("marts/patient_flags.sql")
    con.execute(f"create or replace table marts.patient_flags as {flags}", bind(flags, parameters))
    follow_up = "with patient_flags as (select * from marts.patient_flags) select * from (" \
        + read_sql("marts/follow_up.sql") + ")"
    con.execute(f"create or replace table marts.follow_up as {follow_up}", bind(follow_up, parameters))
    course = "with patient_flags as (select * from marts.patient_flags) select * from (" \
        + read_sql("marts/patient_course.sql") + ")"
    con.execute(f"create or replace table marts.patient_course as {course}", bind(course, parameters))


def _rows(con: duckdb.DuckDBPyConnection, sql: str, end: dt.date, survival: str | None = None,
          flags: str = "select * from marts.patient_flags") -> Counter[tuple]:
    """``sql``'s rows (as a multiset) over the flags at ``end`` (the query ``flags``), with survival.sql's rows
    ``survival`` in front."""
    statement = f"with patient_flags as ({flags})"
    if survival is not None:
        statement += f", survival as ({survival})"
    statement += f" select * from ({sql})"
    return Counter(con.execute(statement, bind(statement, study_parameters(end))).fetchall())


def _same_as_the_plain_sql(con: duckdb.DuckDBPyConnection, end: dt.date, flags: str, case: tuple) -> None:
    """Every rewritten analysis statement gives, over the flags ``flags`` at ``end``, what its plain formulation
    (ORIGINAL) gives over the same flags."""
    new = {name: read_sql(f"analysis/{name}.sql") for name in ORIGINAL}
    for name in ("by_center", "follow_up", "outcome_pairs"):
        assert _rows(con, new[name], end, flags=flags) == _rows(con, ORIGINAL[name], end, flags=flags), (name, case)
    # survival.sql now also gives the center of the first implant, the generator's model and the defects
    assert _rows(con, f"select * exclude (implant_center, ipg_model, defect_events) from ({new['survival']})", end,
                 flags=flags) == _rows(con, ORIGINAL["survival"], end, flags=flags), ("survival", case)
    counts = "select count(*), count(*) filter (where revised), count(*) filter (where faulty_at_end) from ({})"
    assert _rows(con, new["survival_leads"], end, flags=flags) \
        == _rows(con, counts.format(ORIGINAL["survival_leads"]), end, flags=flags), ("survival_leads", case)
    assert _rows(con, new["device_performance"], end, survival=new["survival"], flags=flags) \
        == _rows(con, ORIGINAL["device_performance"], end, survival=ORIGINAL["survival"], flags=flags), \
        ("device_performance", case)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_rewritten_sql_gives_what_the_plain_sql_gave(seed: int) -> None:
    con = _warehouse(seed)
    for end in ENDS:
        _marts(con, end)
        _same_as_the_plain_sql(con, end, "select * from marts.patient_flags", (seed, end))


@pytest.mark.parametrize("seed", [4, 5])
def test_the_course_mart_built_at_one_end_serves_every_other(seed: int) -> None:
    """``analyze --observation-end`` at a day the marts were not built for: the flags are the flags mart's own query
    at that day (marts.flags_query, as analysis.flags.flags_at runs it), marts.patient_course and marts.follow_up
    stay as built at the warehouse's end. Each statement still gives what the plain SQL gives over those flags, at
    earlier days and at a day after the last one the data reach."""
    con = _warehouse(seed)
    built = ENDS[0]
    _marts(con, built)
    latest = con.execute("select max(date) from (select date from fhir.procedure_flat union all "
                         "select date from fhir.complication_flat union all "
                         "select placed_date from fhir.device_flat)").fetchone()[0]
    assert latest > built  # the data reach past the day the marts were built for
    for end in (*ENDS[1:], latest + dt.timedelta(days=1)):
        sql, parameters = flags_query(end)
        con.execute(f"create or replace temp table flags_then as {sql}", parameters)
        moved = con.execute("select count(*) from flags_then t join marts.patient_flags f using (patient_id) "
                            "where t.still_implanted is distinct from f.still_implanted").fetchone()[0]
        assert moved > 0, end  # the flags at that day are not the mart's
        _same_as_the_plain_sql(con, end, "select * from flags_then", (seed, end))


def test_the_random_warehouse_has_the_cases_the_rewrites_turn_on() -> None:
    """Explants before the first implant and on its day, leads replaced and removed at a level and side, ties of
    generators."""
    con = _warehouse(1)
    _marts(con, ENDS[0])
    early = con.execute("select count(*) from marts.patient_flags where first_explant < first_implant").fetchone()[0]
    same_day = con.execute("select count(*) from marts.patient_flags where first_explant = first_implant").fetchone()[0]
    revised = _rows(con, "select count(*) filter (where revised) from (" + ORIGINAL["survival_leads"] + ")", ENDS[0])
    ties = con.execute("""select count(*) from (select patient_id, placed_date from fhir.device_flat
                          where device_type = 'generator' group by all having count(*) > 1)""").fetchone()[0]
    assert early > 0 and same_day > 0 and next(iter(revised))[0] > 10 and ties > 0


def test_the_means_from_pairs_counted_per_value_are_the_one_by_one_means() -> None:
    """outcomes_12m sums the pairs counted per distinct value (national._exact_sum): equal to _outcome's sum of
    Decimal(str(v)) one by one, or declined (None) where a partial sum could round in the decimal context."""
    rng = random.Random(5)
    declined = 0
    for _ in range(400):
        kind = rng.choice(("scores", "fractions", "wide"))
        values = [rng.choice((rng.randrange(11), round(rng.random() * 10, 1))) if kind == "scores"
                  else rng.random() * 100 if kind == "fractions"
                  else rng.choice((rng.random() * 1e-9, 123456789.123456, rng.random() * 1e12))
                  for _ in range(rng.randint(1, 400))]
        got = national._exact_sum(list(Counter(values).items()))
        if got is None:
            declined += 1
            continue
        assert got == sum(Decimal(str(v)) for v in values)
    assert 0 < declined < 400


@pytest.mark.parametrize("patients", [300, 3000])
def test_outcomes_from_counted_pairs_are_the_outcomes_of_the_pairs(patients: int) -> None:
    """outcomes_12m (counted pairs; the pairs one by one where the test has a p) against _outcome over the pairs
    of the plain SQL in the order of the patients, with up to 1,000 and with more than 1,000 differences."""
    rng = random.Random(patients)
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("create table marts.patient_flags (patient_id varchar, fully_functional boolean)")
    con.execute("create table marts.follow_up (patient_id varchar, measure varchar, timepoint varchar, value double, "
                "official boolean, date date)")
    flags, rows = [], []
    for p in range(patients):
        patient = f"{rng.getrandbits(32):08x}-{p:05d}"
        flags.append((patient, rng.random() < 0.8))
        for measure in ("nrs_average", "nrs_worst", "pcs_total"):
            for timepoint in ("baseline", "month_12", "month_3"):
                if rng.random() < 0.85:
                    value = rng.randrange(11) if measure == "nrs_worst" else round(rng.random() * 10, 1)
                    rows.append((patient, measure, timepoint, float(value), True, None))
                if rng.random() < 0.2:
                    rows.append((patient, measure, timepoint, 5.0, False, None))  # not official
    con.executemany("insert into marts.patient_flags values (?, ?)", flags)
    con.executemany("insert into marts.follow_up values (?, ?, ?, ?, ?, ?)", rows)
    con.execute("""create table marts.patient_course as  -- its pairs, by the plain join of the mart with itself
        select b.patient_id, list_sort(list({'measure': b.measure, 'baseline': b.value, 'month12': m.value})) as pairs
        from marts.follow_up b join marts.follow_up m on m.patient_id = b.patient_id and m.measure = b.measure
        where b.official and b.timepoint = 'baseline' and m.official and m.timepoint = 'month_12'
        group by b.patient_id""")
    flagged = Flags("select * from marts.patient_flags", ENDS[0])
    pairs: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in ("nrs_average", "nrs_worst", "pcs_total")}
    statement = "with patient_flags as (select * from marts.patient_flags) select measure, baseline, month12 from (" \
        + ORIGINAL["outcome_pairs"] + ")"
    for measure, baseline, month12 in con.execute(statement).fetchall():
        pairs[measure][0].append(baseline)
        pairs[measure][1].append(month12)
    expected = {m: national._outcome(*pairs[m]) for m in pairs}
    assert national.outcomes_12m(con, flagged) == expected
    assert any(o["p_value"] is None for o in expected.values()) == (patients > 1000)
