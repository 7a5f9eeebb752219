"""The rh REDCap project as the center set it up: instruments, fields and choice codes.

The generator writes the data dictionary from this; the pipeline never reads this
module, it reads the delivered ``DRGDK_DataDictionary.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

from drg_etl.core.formats import FORMATS
from drg_etl.core.levels import SPINAL_LEVELS

PCS_CHOICES = {0: "Not at all", 1: "To a slight degree", 2: "To a moderate degree", 3: "To a great degree",
               4: "All the time"}


@dataclass(frozen=True)
class Field:
    """One REDCap field."""

    name: str
    form: str
    type: str
    label: str
    choices: dict[int, str] | None = None
    validation: str = ""
    minimum: str = ""
    maximum: str = ""
    calculation: str = ""
    identifier: bool = False

    def choices_text(self) -> str:
        """The dictionary's ``Choices, Calculations, OR Slider Labels`` cell."""
        if self.calculation:
            return self.calculation
        if not self.choices:
            return ""
        return " | ".join(f"{code}, {label}" for code, label in self.choices.items())

    def export_columns(self) -> list[str]:
        """The raw-export columns of this field (a checkbox exports one per choice)."""
        if self.type == "checkbox":
            return [f"{self.name}___{code}" for code in self.choices or {}]
        return [self.name]


def _fields() -> list[Field]:
    fields = [
        Field("record_id", "demographics", "text", "Record ID"),
        Field("cpr", "demographics", "text", "CPR-nummer", identifier=True),
        Field("sex", "demographics", "radio", "Sex", {1: "Female", 2: "Male"}),
        Field("pain_location", "demographics", "dropdown", "Primary pain location",
              {1: "Lower extremity", 2: "Upper extremity", 3: "Thoracic/abdominal"}),
        Field("diagnosis", "demographics", "dropdown", "Diagnosis",
              {1: "CRPS type 1", 2: "CRPS type 2", 3: "Postsurgical neuropathic pain",
               4: "Posttraumatic nerve injury", 5: "Postherpetic neuralgia", 6: "Other"}),
        Field("prom_date", "prom", "text", "Date of assessment", validation="date_ymd"),
        Field("nrs_avg", "prom", "text", "Average pain, NRS (7-day diary mean)", validation="number_1dp",
              minimum="0", maximum="10"),
        Field("nrs_worst", "prom", "text", "Worst pain, NRS", validation="integer", minimum="0", maximum="10"),
    ]
    fields += [Field(f"pcs_{i:02d}", "prom", "radio", f"PCS item {i}", PCS_CHOICES) for i in range(1, 14)]
    fields += [
        Field("pcs_total", "prom", "calc", "PCS total",
              calculation="sum(" + ",".join(f"[pcs_{i:02d}]" for i in range(1, 14)) + ")"),
        Field("trial_start", "trial", "text", "Trial start", validation="date_ymd"),
        Field("trial_end", "trial", "text", "Trial end", validation="date_ymd"),
        Field("trial_success", "trial", "radio", "At least 50% relief of average pain", {0: "No", 1: "Yes"}),
        Field("implant_date", "implant", "text", "Date of implantation", validation="date_ymd"),
        Field("ipg_model", "implant", "dropdown", "Pulse generator", {1: "Axium", 2: "Proclaim DRG"}),
        Field("ipg_serial", "implant", "text", "Pulse generator serial number"),
        Field("lead_date", "lead", "text", "Date lead placed", validation="date_ymd"),
        Field("lead_level", "lead", "dropdown", "Spinal level",
              {i: level for i, level in enumerate(SPINAL_LEVELS, start=1)}),
        Field("lead_side", "lead", "radio", "Side", {1: "Left", 2: "Right"}),
        Field("lead_serial", "lead", "text", "Lead serial number"),
        Field("lead_status", "lead", "dropdown", "Lead status",
              {1: "Active", 2: "Fractured", 3: "Malfunction", 4: "Removed", 5: "Removed with retained fragment"}),
        Field("lead_status_date", "lead", "text", "Date of status", validation="date_ymd"),
        Field("surg_date", "surgery", "text", "Date of surgery", validation="date_ymd"),
        Field("surg_type", "surgery", "dropdown", "Type of surgery",
              {1: "Lead replacement", 2: "Lead repositioning", 3: "IPG replacement", 4: "Lead removal",
               5: "Explantation of complete system"}),
        Field("surg_reason", "surgery", "notes", "Reason"),
        Field("comp_date", "complication", "text", "Date of complication", validation="date_ymd"),
        Field("comp_type", "complication", "checkbox", "Type of complication",
              {1: "Lead fracture", 2: "Lead malfunction", 3: "Lead migration", 4: "Infection", 5: "CSF leak",
               6: "Pocket pain", 7: "Retained fragment", 8: "Nerve damage", 9: "Other"}),
        Field("comp_permanent", "complication", "radio", "Permanent harm", {0: "No", 1: "Yes"}),
        Field("comp_note", "complication", "notes", "Note"),
    ]
    return fields


FIELDS = _fields()
FIELD_BY_NAME = {f.name: f for f in FIELDS}
FORMS = list(dict.fromkeys(f.form for f in FIELDS))


def export_header() -> list[str]:
    """The raw export's columns in REDCap's order: keys, then each form's fields and ``<form>_complete``."""
    header = list(FORMATS["rh"].file("export").columns)  # REDCap's keys
    for form in FORMS:
        for f in FIELDS:
            if f.form == form and f.name != "record_id":
                header += f.export_columns()
        header.append(f"{form}_complete")
    return header


def dictionary_rows() -> list[list[str]]:
    """The data dictionary, one row per field, in REDCap's standard column set (the format's dictionary columns)."""
    rows = []
    for f in FIELDS:
        rows.append([f.name, f.form, "", f.type, f.label, f.choices_text(), "", f.validation,
                     f.minimum, f.maximum, "y" if f.identifier else "", "", "", "", "", "", "", ""])
    return rows


def code_for(field: str, label: str) -> int:
    """The choice code of a label in a field."""
    choices = FIELD_BY_NAME[field].choices or {}
    return next(code for code, text in choices.items() if text == label)
