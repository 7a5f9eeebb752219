"""The canonical model, declared once.

Every reader maps its format onto these five tables; from this one declaration follow
the warehouse DDL (``canonical.*`` and the staging tables that hold a delivery before it is
written), the pandera schemas of the canonical layer (:mod:`drg_etl.quality.schemas`) and the columns
a reader's fact must carry (:meth:`Table.check_fact`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drg_etl.core import vocabulary
from drg_etl.core.levels import SPINAL_LEVELS

if TYPE_CHECKING:  # the row checks take frames; the model itself needs no pandas (analyze never imports it)
    import pandas as pd

RowCheck = Callable[["pd.DataFrame"], "pd.Series[bool]"]


@dataclass(frozen=True)
class Column:
    """One column: its DuckDB type, whether it may be null, and the values it may take."""

    name: str
    sql_type: str
    nullable: bool = True
    isin: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    length: int | None = None
    # Text a delivery writes as it likes: "identifier" (a CPR number in it quarantines the record) or
    # "free_text" (a CPR number in it is scrubbed, with a warning); None for coded and typed values.
    text: str | None = None
    doc: str = ""  # what the column holds, for the warehouse's data dictionary
    # DuckDB's compression for the column when its own choice is poor: "zstd" for long JSON texts (DuckDB's default,
    # dictionary and FSST, keeps them at 40% of their size; zstd at 8%, and writes them faster). None: DuckDB chooses.
    compression: str | None = None

    def ddl(self) -> str:
        """The column as it appears in ``create table``."""
        quoted = f'"{self.name}"' if self.name in {"row", "date", "value"} else self.name
        compressed = f" using compression {self.compression}" if self.compression else ""
        return f"{quoted} {self.sql_type}{compressed}" + ("" if self.nullable else " not null")


@dataclass(frozen=True)
class Table:
    """A canonical table: the fact columns a reader fills, after the lineage every row carries."""

    name: str
    description: str
    columns: tuple[Column, ...]
    row_checks: Mapping[str, RowCheck] = field(default_factory=dict)
    # The columns that name one fact of a patient at a center (its FHIR resource's natural key): two facts of a
    # delivery with the same identity are one fact given twice (drg_etl/quality/identity.py).
    identity: tuple[str, ...] = ()

    @functools.cached_property
    def fact_columns(self) -> tuple[str, ...]:
        """The columns a reader's fact carries (lineage excluded)."""
        return tuple(c.name for c in self.columns)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Lineage, then the fact columns: the columns of ``canonical.<name>``."""
        return (*LINEAGE, *self.columns)

    def ddl(self, schema: str = "canonical", prefix: str = "", extra: tuple[Column, ...] = ()) -> str:
        """``create table if not exists`` for this table in ``schema``."""
        columns = ",\n    ".join(c.ddl() for c in (*self.all_columns, *extra))
        return f"create table if not exists {schema}.{prefix}{self.name} (\n    {columns}\n);"

    def check_fact(self, values: Mapping[str, Any]) -> None:
        """Raise when a reader's values (all but the patient key) are not exactly this table's (a reader defect)."""
        expected = self.reader_columns
        if values.keys() != expected:
            raise TypeError(f"a {self.name} fact carries {sorted(expected)}; missing {sorted(expected - values.keys())}"
                            f", extra {sorted(values.keys() - expected)}")

    @functools.cached_property
    def identifier_columns(self) -> tuple[str, ...]:
        """Columns that identify a thing in the source's own words (a serial, a model, a device reference)."""
        return tuple(c.name for c in self.columns if c.text == "identifier")

    @functools.cached_property
    def free_text_columns(self) -> tuple[str, ...]:
        """Columns of free text (a note, a reason)."""
        return tuple(c.name for c in self.columns if c.text == "free_text")

    @functools.cached_property
    def fact_values(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """A reader's values (a mapping by column) as a tuple in the fact's order, the patient key left out."""
        getter = operator.itemgetter(*self.fact_columns[1:])
        return getter if len(self.fact_columns) > 2 else lambda values: (getter(values),)

    @functools.cached_property
    def text_columns(self) -> tuple[str, ...]:
        """The identifier columns, then the free-text columns."""
        return (*self.identifier_columns, *self.free_text_columns)

    @functools.cached_property
    def reader_columns(self) -> frozenset[str]:
        """The fact columns a reader gives by name (the patient key comes from the record's CPR)."""
        return frozenset(self.fact_columns) - {"patient_key"}


LINEAGE: tuple[Column, ...] = (
    Column("delivery_id", "varchar", nullable=False,
           doc="the delivery the row came from (quality.deliveries): SHA-256 over center, cutoff and files"),
    Column("center", "varchar", nullable=False, isin=vocabulary.CENTERS, doc="the center that delivered the row"),
    Column("cutoff", "date", nullable=False, doc="the delivery's cutoff: the day the center's extract holds at"),
    Column("source_file", "varchar", nullable=False,
           doc="the file (or workbook sheet, as file#sheet) of the delivery the row was read from"),
    Column("source_row", "integer", nullable=False, low=0,
           doc="the record's row in that file (the header is row 1; NDJSON: the line)"),
)
PATIENT_KEY = Column("patient_key", "varchar", nullable=False, length=64,
                     doc="the patient's pseudonym: a keyed hash (HMAC-SHA-256) of the CPR number, never the CPR")


# The row checks compare texts that may be null: a null is unequal to any text (as Python's None is), whether the
# frame's texts are Python objects or pandas' Arrow-backed strings (whose comparisons give NA for a null).
def _trial_is_complete(frame: pd.DataFrame) -> pd.Series:
    return frame["procedure"].ne("trial").fillna(True) | (frame["end_date"].notna() & frame["trial_success"].notna())


def _lead_is_placed(frame: pd.DataFrame) -> pd.Series:
    return frame["device_type"].ne("lead").fillna(True) | (frame["level"].notna() & frame["side"].notna())


def _nrs_in_range(frame: pd.DataFrame) -> pd.Series:
    return frame["measure"].eq("pcs_total").fillna(False) | (frame["value"] <= 10)


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("patients", "One patient's demographics as a center records them.", (
        PATIENT_KEY,
        Column("sex", "varchar", nullable=False, isin=vocabulary.SEXES, doc="the patient's sex"),
        Column("birth_year", "integer", nullable=False, low=1850, high=2100, doc="the year of birth"),
        Column("pain_location", "varchar", nullable=False, isin=vocabulary.PAIN_LOCATIONS,
               doc="the primary pain location"),
        Column("diagnosis", "varchar", nullable=False, isin=vocabulary.DIAGNOSES,
               doc="the pain diagnosis (CRPS type 1 or 2, neuropathic pain by cause, or other)"),
        Column("recorded_sex", "varchar", doc="the sex as the center recorded it, before mapping"),
    )),
    Table("procedures", "A procedure; a trial carries its end date and verdict.", (
        PATIENT_KEY,
        Column("procedure", "varchar", nullable=False, isin=vocabulary.PROCEDURES, doc="the kind of procedure"),
        Column("date", "date", nullable=False, doc="the day of the procedure (a trial: its start)"),
        Column("end_date", "date", doc="a trial: the day it ended"),
        Column("trial_success", "boolean", doc="a trial: whether it succeeded (the patient went on to an implant)"),
        Column("device_ref", "varchar", text="identifier",
               doc="the device the procedure concerns, in the source's own reference (canonical.devices)"),
        Column("reason", "varchar", text="free_text", doc="free text: why, as the center wrote it"),
    ), {"trial.has_end_and_verdict": _trial_is_complete}, ("procedure", "date", "device_ref")),
    Table("devices", "A generator or lead; a lead has a level and side.", (
        PATIENT_KEY,
        Column("device_ref", "varchar", nullable=False, text="identifier",
               doc="the device's reference in the source (unique per patient and center)"),
        Column("device_type", "varchar", nullable=False, isin=vocabulary.DEVICE_TYPES,
               doc="generator (the pulse generator) or lead"),
        Column("model", "varchar", text="identifier", doc="the manufacturer's model"),
        Column("serial", "varchar", nullable=False, text="identifier", doc="the manufacturer's serial number"),
        Column("placed_date", "date", doc="the day the device was implanted"),
        Column("level", "varchar", isin=tuple(SPINAL_LEVELS), doc="a lead: the spinal level (C1-S5)"),
        Column("side", "varchar", isin=("left", "right"), doc="a lead: the side"),
        Column("status", "varchar", nullable=False, isin=vocabulary.LEAD_STATUSES,
               doc="the device's status as last recorded"),
        Column("status_date", "date", doc="the day of that status"),
    ), {"lead.has_level_and_side": _lead_is_placed}, ("device_ref",)),
    Table("measurements", "One score at one date, with the study timepoint where the source gives one.", (
        PATIENT_KEY,
        Column("date", "date", nullable=False, doc="the day of the assessment"),
        Column("timepoint", "varchar", isin=vocabulary.TIMEPOINTS,
               doc="the study timepoint the source labelled it with (null: none given)"),
        Column("measure", "varchar", nullable=False, isin=vocabulary.MEASURES,
               doc="the score: NRS pain (0-10) on average or at worst, or the Pain Catastrophizing Scale (0-52)"),
        Column("value", "double", nullable=False, low=0, high=52, doc="the score's value"),
    ), {"nrs.range": _nrs_in_range}, ("date", "measure", "timepoint")),
    Table("complications", "A complication.", (
        PATIENT_KEY,
        Column("date", "date", nullable=False, doc="the day of the complication"),
        Column("complication", "varchar", nullable=False, isin=vocabulary.COMPLICATIONS,
               doc="the kind of complication"),
        Column("permanent", "boolean", doc="whether the harm is lasting (null: not recorded)"),
        Column("device_ref", "varchar", text="identifier",
               doc="the device the complication concerns, where the source names it (canonical.devices)"),
        Column("note", "varchar", text="free_text", doc="free text: the center's note"),
    ), {}, ("date", "complication", "device_ref")),
)}
CANONICAL_TABLES: tuple[str, ...] = tuple(TABLES)
# a fact's position in its delivery (staging only)
FACT_ORDER = Column("fact_seq", "integer", nullable=False, doc="the fact's position in its staged delivery")
# Facts a national rule held back, with the check that held them: re-examined when later deliveries arrive.
HELD = (Column("national_check", "varchar", nullable=False, doc="the national check that holds the fact back"),
        Column("rule_id", "varchar", nullable=False, doc="the rule it broke (quality.rules)"))


@dataclass(frozen=True)
class CanonicalCopy:
    """A table per canonical table elsewhere (``<schema>.<prefix><name>``): its extra columns and what it holds."""

    schema: str
    prefix: str
    extra: tuple[Column, ...]
    description: str  # what a row is; "{table}" stands for canonical.<name>


CANONICAL_COPIES: tuple[CanonicalCopy, ...] = (
    CanonicalCopy("canonical", "", (), "{description} One row per fact as delivered, of every written delivery "
                  "(in force or superseded); canonical.current_{name} keeps the deliveries in force."),
    CanonicalCopy("staging", "pending_", (FACT_ORDER,), "The facts of staged deliveries not yet written, as they "
                  "will enter canonical.{name}."),
    CanonicalCopy("quality", "held_", HELD, "Facts for canonical.{name} a national rule holds back (re-examined "
                  "when later deliveries arrive), with the check that holds them."),
    CanonicalCopy("staging", "pending_held_", HELD, "The held facts of staged deliveries, as they will enter "
                  "quality.held_{name}."),
)
CURRENT_VIEW = "{description} The facts of the deliveries in force only: canonical.{name} semi-joined with " \
               "quality.deliveries_in_force. What an analysis of the current data reads."


def canonical_ddl() -> str:
    """The DDL of ``canonical.*``, of the staging tables that hold facts of deliveries not yet written, and of
    the tables of facts held back by a national rule (``quality.held_*``, ``staging.pending_held_*``), and the
    views of the facts in force (``canonical.current_*``, over ``quality.deliveries_in_force``)."""
    statements = [t.ddl(copy.schema, copy.prefix, copy.extra) for copy in CANONICAL_COPIES for t in TABLES.values()]
    statements += [f"create or replace view canonical.current_{name} as select t.* from canonical.{name} t "
                   "semi join quality.deliveries_in_force using (delivery_id);" for name in TABLES]
    return "\n".join(statements)
