"""pandera models of the canonical tables: what a fact must be before it is written.

The readers' row rules should already have caught every bad value; these models are the
contract of the canonical layer. They validate lazily, and each failing fact goes to
quarantine under ``canonical.schema`` with the check that failed, never silently dropped.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from drg_etl import vocabulary
from drg_etl.levels import SPINAL_LEVELS
from drg_etl.sources.base import CANONICAL_TABLES, Issue, StagedDelivery


class _Lineage(pa.DataFrameModel):
    center: Series[str] = pa.Field(isin=list(vocabulary.CENTERS))
    source_file: Series[str]
    source_row: Series[int] = pa.Field(ge=0)
    patient_key: Series[str] = pa.Field(str_length={"min_value": 64, "max_value": 64})

    class Config:
        strict = False
        coerce = True


class Patients(_Lineage):
    """One patient's demographics as a center records them."""

    sex: Series[str] = pa.Field(isin=list(vocabulary.SEXES))
    birth_year: Series[int] = pa.Field(ge=1850, le=2100)
    pain_location: Series[str] = pa.Field(isin=list(vocabulary.PAIN_LOCATIONS))
    diagnosis: Series[str] = pa.Field(isin=list(vocabulary.DIAGNOSES))


class Procedures(_Lineage):
    """A procedure; a trial carries its end date and verdict."""

    procedure: Series[str] = pa.Field(isin=list(vocabulary.PROCEDURES))
    date: Series[pd.Timestamp]

    @pa.dataframe_check(name="trial.has_end_and_verdict")
    def trials_are_complete(cls, frame: pd.DataFrame) -> Series[bool]:
        """A trial has an end date and a verdict."""
        trial = frame["procedure"] == "trial"
        return ~trial | (frame["end_date"].notna() & frame["trial_success"].notna())


class Devices(_Lineage):
    """A generator or lead; a lead has a level and side."""

    device_type: Series[str] = pa.Field(isin=list(vocabulary.DEVICE_TYPES))
    serial: Series[str]
    status: Series[str] = pa.Field(isin=list(vocabulary.LEAD_STATUSES))
    level: Series[str] = pa.Field(isin=list(SPINAL_LEVELS), nullable=True)
    side: Series[str] = pa.Field(isin=["left", "right"], nullable=True)

    @pa.dataframe_check(name="lead.has_level_and_side")
    def leads_are_placed(cls, frame: pd.DataFrame) -> Series[bool]:
        """A lead has a level and a side."""
        lead = frame["device_type"] == "lead"
        return ~lead | (frame["level"].notna() & frame["side"].notna())


class Measurements(_Lineage):
    """One score at one date, with the study timepoint where the source gives one."""

    date: Series[pd.Timestamp]
    timepoint: Series[str] = pa.Field(isin=list(vocabulary.TIMEPOINTS), nullable=True)
    measure: Series[str] = pa.Field(isin=list(vocabulary.MEASURES))
    value: Series[float] = pa.Field(ge=0, le=52)

    @pa.dataframe_check(name="nrs.range")
    def nrs_in_range(cls, frame: pd.DataFrame) -> Series[bool]:
        """NRS scores are 0-10."""
        return (frame["measure"] == "pcs_total") | (frame["value"] <= 10)


class Complications(_Lineage):
    """A complication."""

    date: Series[pd.Timestamp]
    complication: Series[str] = pa.Field(isin=list(vocabulary.COMPLICATIONS))
    permanent: Series[bool] = pa.Field(nullable=True)


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "patients": Patients, "procedures": Procedures, "devices": Devices, "measurements": Measurements,
    "complications": Complications,
}


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Give a canonical frame the types the models expect (dates, nullable booleans)."""
    frame = frame.copy()
    for column in ("date", "end_date", "placed_date", "status_date"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column])
    if "permanent" in frame:
        frame["permanent"] = frame["permanent"].astype("boolean")
    return frame


def schema_failures(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The failure cases of a canonical table against its model (empty when it passes)."""
    if frame.empty:
        return pd.DataFrame(columns=["index", "column", "check", "failure_case"])
    try:
        MODELS[table].validate(prepare(frame), lazy=True)
    except SchemaErrors as exc:
        return exc.failure_cases
    return pd.DataFrame(columns=["index", "column", "check", "failure_case"])


def validate_canonical(staged: StagedDelivery) -> int:
    """Validate each canonical table; quarantine failing facts; return how many failed."""
    failed_total = 0
    for table in CANONICAL_TABLES:
        facts = staged.facts[table]
        if not facts:
            continue
        cases = schema_failures(table, pd.DataFrame(facts))
        if len(cases):
            bad_index = set(cases["index"].dropna().astype(int))
            if cases["index"].isna().any():  # a whole-column failure: every fact of the table
                bad_index = set(range(len(facts)))
            for i in sorted(bad_index):
                fact = facts[i]
                check = cases[cases["index"] == i]
                what = "; ".join(f"{c}: {k}" for c, k in zip(check["column"], check["check"], strict=True)) or \
                    "schema failure"
                staged.issues.append(Issue(staged.delivery.center, staged.delivery.cutoff.isoformat(),
                                           fact["source_file"], fact["source_row"], None, "canonical.schema",
                                           f"{table} fact breaks the canonical schema ({what})",
                                           fact["patient_key"]))
            staged.facts[table] = [f for i, f in enumerate(facts) if i not in bad_index]
            failed_total += len(bad_index)
    return failed_total
