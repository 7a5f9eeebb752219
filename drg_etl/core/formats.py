"""Each center's delivery format, declared once (extracts.md): what the reader reads and the generator writes.

One :class:`CenterFormat` per center in :data:`FORMATS`: its files (a workbook's sheets), which
of them must hold records, each file's column contract, the text encoding, delimiter and line
end of a CSV file, the SQL step run over a delivery's staged facts once it is read, and how
the center's devices are named in ``device_ref``. The readers (drg_etl/sources), the inbox
survey, rekey and the generator's renderers (drg_etl/synth/render) all take these from here.

Every file and sheet has a ``role``: what it holds (``patients``, ``treatments``, a FHIR
resource type, ...). Code names a file by its role, never by its name, so a renamed file is
changed here alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import string
from dataclasses import dataclass
from typing import Literal

ByteOrderMark = Literal["required", "optional", "absent"]
FileKind = Literal["csv", "xlsx", "ndjson"]


@dataclass(frozen=True)
class CsvDialect:
    """How a delimited text file is written.

    ``line_end``: what every line, the last one included, ends with (a file whose last line does
    not is truncated); None where the format does not fix it (REDCap's exports).
    ``byte_order_mark``: whether the file starts with a UTF-8 byte order mark.
    """

    encoding: str
    delimiter: str
    line_end: str | None = None
    byte_order_mark: ByteOrderMark = "absent"

    @property
    def python_encoding(self) -> str:
        """The codec that reads the file's text (a UTF-8 byte order mark is dropped)."""
        return "utf-8-sig" if self.encoding == "utf-8" and self.byte_order_mark != "absent" else self.encoding


@dataclass(frozen=True)
class Sheet:
    """One sheet of a workbook: its name, its header row's columns, and whether it must hold records."""

    role: str
    name: str
    columns: tuple[str, ...]
    holds_records: bool = False


@dataclass(frozen=True)
class SourceFile:
    """One file of a delivery.

    ``name`` may hold ``{cutoff}`` (the delivery's ISO date). ``columns`` is the header contract of
    a CSV file: exactly these, in this order; where ``further_columns_from`` names another file
    (by role), only the leading columns are fixed and that file implies the rest (REDCap's
    export, whose columns follow from its data dictionary). ``holds_records``: a delivery whose
    file holds none is rejected (without patients or treatments it would supersede the center's
    previous delivery with nothing).
    """

    role: str
    name: str
    kind: FileKind
    dialect: CsvDialect | None = None
    columns: tuple[str, ...] = ()
    further_columns_from: str | None = None
    sheets: tuple[Sheet, ...] = ()
    holds_records: bool = False
    resource_type: str | None = None

    def file_name(self, cutoff: dt.date) -> str:
        """The file's name in the delivery of ``cutoff``."""
        return self.name.format(cutoff=cutoff.isoformat())

    def sheet(self, role: str) -> Sheet:
        """A sheet of the workbook by its role."""
        return next(s for s in self.sheets if s.role == role)


@dataclass(frozen=True)
class DeviceReference:
    """How a center names a device in ``device_ref``: ``template`` filled with the source's own reference.

    ``{slot}``, where the template has it, is the generator's or a lead's place in the record
    (``generator_slot``, ``lead_slot`` with ``{n}`` the lead's number). ``{patient}`` is the
    first ``pseudonym_chars`` characters of the patient's pseudonym (a workbook without device
    ids): rekey rewrites it when the key changes.
    """

    template: str
    generator_slot: str | None = None
    lead_slot: str | None = None
    pseudonym_chars: int = 0

    @functools.cached_property
    def parts(self) -> tuple[str, ...]:
        """The template's fields in order."""
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)

    def make(self, **parts: object) -> str:
        """The reference of a device from the parts the template names."""
        if set(parts) != set(self.parts):
            raise ValueError(f"{self.template} takes {list(self.parts)}, not {sorted(parts)}")
        if "patient" in parts:
            parts["patient"] = str(parts["patient"])[:self.pseudonym_chars]
        return self.template.format(**parts)

    def generator(self, **parts: object) -> str:
        """The reference of the record's pulse generator."""
        return self.make(slot=self.generator_slot, **parts)

    def lead(self, number: object, **parts: object) -> str:
        """The reference of the record's lead ``number`` (a workbook slot, a REDCap repeat instance)."""
        return self.make(slot=str(self.lead_slot).format(n=number), **parts)

    def pseudonym_span(self) -> tuple[str, int, int] | None:
        """Where a pseudonym's prefix sits in every reference: the text before it and its 1-based start and
        length (for SQL's ``substr``); None when the references hold no pseudonym."""
        if "patient" not in self.parts:
            return None
        head = self.template[:self.template.index("{patient}")]
        if "{" in head:
            raise ValueError(f"{self.template}: the pseudonym must be the first part of the reference")
        return head, len(head) + 1, self.pseudonym_chars


@dataclass(frozen=True)
class RedcapEvent:
    """An event of a REDCap project and the (non-repeating) instruments filled in at it."""

    name: str
    instruments: tuple[str, ...]


@dataclass(frozen=True)
class RedcapProject:
    """What a REDCap project's design fixes beyond its data dictionary: the events and their instruments.

    Rows of the repeating instruments name their instrument in ``redcap_repeat_instrument``.
    """

    events: tuple[RedcapEvent, ...]
    data_access_group: str = "redcap_data_access_group"  # exported after the keys in a project with DAGs

    def instruments_at(self, event: str) -> tuple[str, ...] | None:
        """The instruments of an event; None when the project has no such event."""
        return next((e.instruments for e in self.events if e.name == event), None)


@dataclass(frozen=True)
class CenterFormat:
    """One center's delivery format: files, columns, text, post-read step and device references.

    ``post_read``: a SQL file under ``warehouse/`` run over the delivery's staged facts once the
    reader is done, for steps that need the whole delivery; it takes the delivery id as ``$id``.
    """

    center: str
    files: tuple[SourceFile, ...]
    device_ref: DeviceReference
    patient_column: str  # the column that says whose record it is (findings about the patient name it)
    post_read: str | None = None
    redcap: RedcapProject | None = None

    def file(self, role: str) -> SourceFile:
        """A file by its role."""
        return next(f for f in self.files if f.role == role)

    def file_names(self, cutoff: dt.date) -> list[str]:
        """The files a delivery of ``cutoff`` consists of, in the declared order."""
        return [f.file_name(cutoff) for f in self.files]

    def files_with_records(self, cutoff: dt.date) -> list[str]:
        """The files (a workbook's sheets as ``<workbook>#<sheet>``) that must hold records."""
        out = []
        for f in self.files:
            if f.holds_records:
                out.append(f.file_name(cutoff))
            out += [sheet_file(f.file_name(cutoff), s.name) for s in f.sheets if s.holds_records]
        return out


def sheet_file(workbook: str, sheet: str) -> str:
    """How a workbook's sheet is named as a file of its own (counts, issues): ``<workbook>#<sheet>``."""
    return f"{workbook}#{sheet}"


# -- auh: five Windows-1252 CSV files -------------------------------------------------------
AUH_TEXT = CsvDialect(encoding="cp1252", delimiter=";", line_end="\r\n")

# -- ouh: one workbook; the Treatment sheet repeats its lead and revision columns -----------
OUH_LEAD_SLOTS, OUH_REVISION_SLOTS = 4, 3
OUH_FOLLOW_UP = ("baseline", "3m", "6m", "12m", "24m", "36m")  # the Follow-up sheet's timepoint suffixes
OUH_FOLLOW_UP_MEASURES = ("Date", "NRS avg", "NRS worst", "PCS")


def _ouh_treatment_columns() -> tuple[str, ...]:
    columns = ["CPR-nr", "Trial start", "Trial end", "Trial outcome", "Implant date", "IPG model", "IPG serial"]
    for n in range(1, OUH_LEAD_SLOTS + 1):
        columns += [f"Lead {n} level", f"Lead {n} serial", f"Lead {n} status"]
    for n in range(1, OUH_REVISION_SLOTS + 1):
        columns += [f"Revision {n} date", f"Revision {n} type", f"Revision {n} lead"]
    return (*columns, "Explant date", "Explant reason")


# -- rh: a REDCap project's raw export and its data dictionary --------------------------------
REDCAP_KEYS = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")
REDCAP_DICTIONARY_COLUMNS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
)
# The same columns as REDCap's API exports the metadata (content=metadata), one to one and in this order
# (REDCap API documentation, "Export Metadata (Data Dictionary)"; PyCap's Project.export_metadata): a pull
# writes the web export's headers above from these.
REDCAP_API_METADATA_COLUMNS = (
    "field_name", "form_name", "section_header", "field_type", "field_label", "select_choices_or_calculations",
    "field_note", "text_validation_type_or_show_slider_number", "text_validation_min", "text_validation_max",
    "identifier", "branching_logic", "required_field", "custom_alignment", "question_number", "matrix_group_name",
    "matrix_ranking", "field_annotation",
)

# -- aauh: a FHIR R4 bulk export, one NDJSON file per resource type -----------------------------
AAUH_RESOURCE_TYPES = ("Patient", "Condition", "Procedure", "Device", "Observation")

FORMATS: dict[str, CenterFormat] = {
    "auh": CenterFormat(
        center="auh",
        patient_column="CPR",
        files=(
            SourceFile("patients", "patienter.csv", "csv", AUH_TEXT, ("CPR", "Køn", "Smertelokalisation", "Diagnose"),
                       holds_records=True),
            SourceFile("procedures", "procedurer.csv", "csv", AUH_TEXT,
                       ("CPR", "Dato", "Slutdato", "Procedurekode", "Beskrivelse", "Resultat"), holds_records=True),
            SourceFile("devices", "udstyr.csv", "csv", AUH_TEXT,
                       ("CPR", "Type", "Model", "Serienr", "Implantationsdato", "Niveau", "Side", "Status",
                        "Statusdato")),
            SourceFile("measurements", "prom.csv", "csv", AUH_TEXT,
                       ("CPR", "Dato", "Tidspunkt", "NRS_gns", "NRS_max", "PCS")),
            SourceFile("complications", "komplikationer.csv", "csv", AUH_TEXT,
                       ("CPR", "Dato", "Type", "Permanent", "Note")),
        ),
        device_ref=DeviceReference("auh:{serial}"),
    ),
    "ouh": CenterFormat(
        center="ouh",
        patient_column="CPR-nr",
        files=(
            SourceFile("workbook", "DRG_registrering.xlsx", "xlsx", sheets=(
                Sheet("patients", "Patients", ("CPR-nr", "Gender", "Pain area", "Diagnosis"), holds_records=True),
                Sheet("treatments", "Treatment", _ouh_treatment_columns(), holds_records=True),
                Sheet("follow_up", "Follow-up",
                      ("CPR-nr", *(f"{m} {tp}" for tp in OUH_FOLLOW_UP for m in OUH_FOLLOW_UP_MEASURES))),
                Sheet("complications", "Complications", ("CPR-nr", "Date", "Complication", "Permanent harm",
                                                         "Comment")),
            )),
        ),
        # the workbook has no device ids: a device is known by its patient (pseudonym prefix) and slot
        device_ref=DeviceReference("ouh:{patient}:{slot}", generator_slot="ipg", lead_slot="lead{n}",
                                   pseudonym_chars=16),
    ),
    "rh": CenterFormat(
        center="rh",
        patient_column="record_id",
        files=(
            SourceFile("export", "DRGDK_DATA_{cutoff}.csv", "csv",
                       CsvDialect(encoding="utf-8", delimiter=",", byte_order_mark="required"), REDCAP_KEYS,
                       further_columns_from="dictionary", holds_records=True),
            SourceFile("dictionary", "DRGDK_DataDictionary.csv", "csv",
                       CsvDialect(encoding="utf-8", delimiter=",", byte_order_mark="optional"),
                       REDCAP_DICTIONARY_COLUMNS),
        ),
        redcap=RedcapProject(events=(
            RedcapEvent("screening_arm_1", ("demographics", "prom")),
            RedcapEvent("trial_arm_1", ("trial",)),
            RedcapEvent("implant_arm_1", ("implant",)),
            *(RedcapEvent(f"month_{m}_arm_1", ("prom",)) for m in (3, 6, 12, 24, 36)),
        )),
        # REDCap keeps the generator on the implant form: the patient's explant removes it
        post_read="post_read/rh.sql",
        device_ref=DeviceReference("rh:{record_id}:{slot}", generator_slot="ipg", lead_slot="lead:{n}"),
    ),
    "aauh": CenterFormat(
        center="aauh",
        patient_column="subject",
        files=tuple(SourceFile(rt, f"{rt}.ndjson", "ndjson", resource_type=rt,
                               holds_records=rt in ("Patient", "Procedure")) for rt in AAUH_RESOURCE_TYPES),
        device_ref=DeviceReference("aauh:{device}"),
    ),
}
