"""The catalogue of data-quality rules (extracts.md "Bad input").

Each rule has a stable id (never reused), a severity (``error``: the record is
quarantined; ``warning``: it is loaded and flagged) and a Kahn category
(conformance, completeness, plausibility; Kahn et al., eGEMs 2016).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One data-quality rule."""

    rule_id: str
    severity: str
    kahn_category: str
    description: str


_RULES = [
    # File level: the whole file is rejected and the center's previous delivery stays.
    Rule("inbox.not_a_delivery", "error", "conformance", "a folder or file in the inbox that is not a delivery "
         "(unknown center, case variant, bad cutoff date, a link out of the inbox): reported, never read"),
    Rule("file.missing", "error", "completeness", "a file of the delivery is missing"),
    Rule("file.unexpected", "warning", "conformance", "a file the format does not define"),
    Rule("file.columns", "error", "conformance", "a missing, renamed or extra column"),
    Rule("file.encoding", "error", "conformance", "the file is not in the format's encoding"),
    Rule("file.delimiter", "error", "conformance", "the file does not use the format's delimiter"),
    Rule("file.empty", "error", "completeness", "the file is empty or truncated"),
    Rule("file.unreadable", "error", "conformance", "a file that cannot be read (a workbook that will not open, "
         "a record the reader cannot handle)"),
    Rule("file.dictionary", "error", "conformance", "a REDCap data dictionary not in REDCap's form (a choice "
         "without 'code, label', a choice code given twice): the delivery is rejected, the previous stays"),
    Rule("file.unreconciled", "error", "conformance", "rows read that neither loaded nor went to quarantine (a "
         "defect of the pipeline): the delivery is rejected whole, every other delivery loads"),
    Rule("delivery.in_the_future", "error", "plausibility", "a delivery whose cutoff is after the day of the load "
         "(a typo in the folder's name): reported, never read"),
    Rule("delivery.mostly_quarantined", "error", "completeness", "a delivery that would supersede a center's data "
         "while losing more than the set share of its records to quarantine: rejected whole, the previous stays "
         "in force, unless a person accepts it (load --accept-quarantine)"),
    Rule("redcap.field_type", "warning", "conformance", "a data dictionary field of a type REDCap does not have: "
         "its values are read as text"),
    Rule("file.ndjson", "error", "conformance", "an NDJSON line that is not JSON or not FHIR R4"),
    # Row level.
    Rule("cpr.invalid", "error", "conformance", "CPR number of wrong length, characters or date"),
    Rule("cpr.in_identifier", "error", "conformance", "a CPR number where a device identifier, model, record id or "
         "resource id belongs (the value is never kept)"),
    Rule("cpr.in_free_text", "warning", "conformance", "a CPR number written in free text (a note, a reason): "
         "loaded with the number replaced"),
    Rule("cpr.sex_mismatch", "warning", "plausibility", "recorded sex contradicts the CPR number"),
    Rule("date.invalid", "error", "conformance", "a date that does not exist or cannot be read"),
    Rule("date.out_of_range", "error", "plausibility", "a date after the cutoff or before 2010"),
    Rule("score.out_of_range", "error", "plausibility", "NRS outside 0-10, PCS outside 0-52, PCS item outside 0-4"),
    Rule("pcs.total_mismatch", "error", "plausibility", "PCS total is not the sum of its items"),
    Rule("code.unknown", "error", "conformance", "an unknown code or label"),
    Rule("value.missing_required", "error", "completeness", "a required value is missing"),
    Rule("row.duplicate", "error", "plausibility", "an exact duplicate of an earlier record"),
    Rule("row.conflict", "error", "plausibility", "two records disagree about the same fact"),
    Rule("value.unreadable", "error", "conformance", "a value the reader cannot handle (a NaN, an overflow, a cell "
         "of another type): the record is quarantined, the delivery loads the rest"),
    Rule("row.no_fact", "error", "completeness", "a record that names a patient but holds no fact to load "
         "(registered, not yet treated; a form marked complete but left empty)"),
    Rule("row.quoting", "error", "conformance", "a quoted field that swallowed a line break and what reads as "
         "further records (an unclosed quote): the record is quarantined, the absorbed text is not kept"),
    Rule("row.shape", "error", "conformance", "a record with more or fewer fields than the header"),
    Rule("canonical.schema", "error", "conformance", "a canonical fact breaks the canonical table's schema"),
    # Cross-row and cross-center.
    Rule("implant.without_trial", "error", "plausibility", "an implant with no successful trial at any center"),
    Rule("dates.out_of_order", "error", "plausibility",
         "dates out of order (implant before trial, explant before implant, follow-up before implant)"),
    Rule("followup.outside_window", "error", "plausibility", "a follow-up timepoint dated outside its window"),
    Rule("lead.never_placed", "error", "plausibility", "a lead status change on a lead that was never placed"),
    Rule("patient.no_demographics", "error", "completeness", "records of a patient with no demographics record"),
]

RULES: dict[str, Rule] = {rule.rule_id: rule for rule in _RULES}


def rule(rule_id: str) -> Rule:
    """The rule with this id; KeyError names unknown ids."""
    return RULES[rule_id]
