"""Cross-row rules within one delivery: duplicates, conflicts, demographics (national rules: quality/national.py).

Rules run in order, each over what the earlier ones let through, so a row is blamed for
the first thing wrong with it: row-level rules in the readers, then exact duplicates, then
conflicts, then missing demographics, then (when the delivery is written) the national rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from drg_etl.sources.base import Issue, StagedDelivery


def _issue(staged: StagedDelivery, file: str, row: int, column: str | None, rule_id: str, message: str,
           patient_key: str | None) -> Issue:
    issue = Issue(staged.delivery.center, staged.delivery.cutoff.isoformat(), file, row, column, rule_id, message,
                  patient_key)
    staged.issues.append(issue)
    return issue


def drop_rows(staged: StagedDelivery, rows: set[tuple[str, int]], tables: Iterable[str] | None = None) -> None:
    """Remove the facts of quarantined rows (from some tables only, when given)."""
    for table in tables or staged.facts:
        staged.facts[table] = [f for f in staged.facts[table] if (f["source_file"], f["source_row"]) not in rows]


def check_duplicates(staged: StagedDelivery) -> None:
    """An exact repeat of an earlier record of the same file is quarantined; the first loads."""
    seen: dict[tuple[str, str], int] = {}
    duplicates = set()
    errors = {(i.file, i.row) for i in staged.issues if i.severity == "error"}
    for file, row, record in staged.source_rows:
        if (file, row) in errors:
            continue
        first = seen.setdefault((file, record), row)
        if first != row:
            _issue(staged, file, row, None, "row.duplicate", f"repeats row {first} exactly", None)
            duplicates.add((file, row))
    drop_rows(staged, duplicates)


def check_patient_conflicts(staged: StagedDelivery) -> None:
    """Demographics rows of one patient that disagree are all quarantined."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fact in staged.facts["patients"]:
        by_key[fact["patient_key"]].append(fact)
    conflicted = set()
    kept = []
    for facts in by_key.values():
        values = {(f["pain_location"], f["diagnosis"]) for f in facts}
        if len(values) > 1:
            for f in facts:
                others = sorted({f"row {g['source_row']}" for g in facts if g is not f})
                _issue(staged, f["source_file"], f["source_row"], None, "row.conflict",
                       f"demographics disagree with {', '.join(others)} of the same patient", f["patient_key"])
                conflicted.add((f["source_file"], f["source_row"]))
        else:
            kept.append(facts[0])
    staged.facts["patients"] = kept
    drop_rows(staged, conflicted)


def check_measurement_conflicts(staged: StagedDelivery) -> None:
    """Two records giving one patient's same measure at the same timepoint differently are quarantined."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for fact in staged.facts["measurements"]:
        if fact["timepoint"] is not None:
            groups[(fact["patient_key"], fact["timepoint"], fact["measure"])].append(fact)
    conflicted = set()
    for facts in groups.values():
        if len({(f["date"], f["value"]) for f in facts}) > 1:
            for f in facts:
                if (f["source_file"], f["source_row"]) not in conflicted:
                    _issue(staged, f["source_file"], f["source_row"], None, "row.conflict",
                           f"{f['measure']} at {f['timepoint']} is given differently by another record",
                           f["patient_key"])
                    conflicted.add((f["source_file"], f["source_row"]))
    drop_rows(staged, conflicted, ["measurements"])


def check_demographics(staged: StagedDelivery) -> None:
    """Records of a patient with no demographics record in the delivery are quarantined."""
    known = {f["patient_key"] for f in staged.facts["patients"]}
    orphans: set[tuple[str, int]] = set()
    for table, facts in staged.facts.items():
        if table == "patients":
            continue
        for f in facts:
            where = (f["source_file"], f["source_row"])
            if f["patient_key"] not in known and where not in orphans:
                _issue(staged, f["source_file"], f["source_row"], "CPR", "patient.no_demographics",
                       "the delivery has no demographics record of this patient", f["patient_key"])
                orphans.add(where)
    drop_rows(staged, orphans)


def check_delivery(staged: StagedDelivery) -> None:
    """Run the within-delivery rules."""
    check_duplicates(staged)
    check_patient_conflicts(staged)
    check_measurement_conflicts(staged)
    check_demographics(staged)
