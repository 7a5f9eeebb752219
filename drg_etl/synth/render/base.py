"""What every center renderer shares: defect records, row-counting CSV sinks, the interface."""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drg_etl.core.dates import add_months
from drg_etl.core.formats import FORMATS, SourceFile
from drg_etl.core.rules import rule
from drg_etl.synth.model import Person


@dataclass
class Defect:
    """One injected defect: where it is (delivery, file, row or resource id, column) and the rule it breaks.

    ``row`` counts as a person reads the file: the header is row 1, so the first record
    is row 2 (CSV records, workbook rows); for NDJSON it is the 1-based line number.
    """

    center: str
    delivery: str
    file: str
    row: int
    column: str | None
    rule_id: str
    kind: str
    person_no: int | None
    resource_id: str | None = None

    @property
    def severity(self) -> str:
        """The rule's severity."""
        return rule(self.rule_id).severity

    def to_json(self) -> dict[str, Any]:
        """The defect as plain JSON values, with its rule's severity and Kahn category."""
        data = asdict(self)
        data["severity"] = self.severity
        data["kahn_category"] = rule(self.rule_id).kahn_category
        return data


class CsvSink:
    """A CSV file written row by row, counting rows as a person reads them (header = row 1)."""

    def __init__(self, path: Path, header: Sequence[str], *, encoding: str, delimiter: str,
                 lineterminator: str, bom: bool = False) -> None:
        self.path = path
        self.header = list(header)
        self._handle = path.open("w", encoding=encoding, newline="")
        if bom:
            self._handle.write("\ufeff")
        self._writer = csv.writer(self._handle, delimiter=delimiter, lineterminator=lineterminator,
                                  quoting=csv.QUOTE_MINIMAL)
        self._writer.writerow(self.header)
        self.row = 1

    def write(self, values: Sequence[Any]) -> int:
        """Write one record; return its row number."""
        if len(values) != len(self.header):
            raise ValueError(f"{self.path.name}: {len(values)} values for {len(self.header)} columns")
        self._writer.writerow(["" if v is None else v for v in values])
        self.row += 1
        return self.row

    def close(self) -> None:
        """Flush and close the file."""
        self._handle.close()


def csv_sink(folder: Path, source: SourceFile, cutoff: dt.date, header: Sequence[str] | None = None) -> CsvSink:
    """A sink for a declared CSV file, written as its format says; ``header`` where the format fixes only the
    leading columns (REDCap's export: the project's fields follow)."""
    text = source.dialect
    if text is None:
        raise ValueError(f"{source.name} is not a CSV file")
    # where the format does not fix the line end (REDCap), the generator writes \n
    return CsvSink(folder / source.file_name(cutoff), source.columns if header is None else header,
                   encoding=text.encoding, delimiter=text.delimiter, lineterminator=text.line_end or "\n",
                   bom=text.byte_order_mark != "absent")


class CenterRenderer:
    """Writes one center's delivery. Subclasses render persons and the extra rows of defects."""

    center: str = ""
    #: defect kinds this renderer injects by altering a person's own rows
    hint_kinds: frozenset[str] = frozenset()

    def __init__(self, inbox: Path, cutoff: dt.date, seed: int) -> None:
        self.cutoff = cutoff
        self.delivery = cutoff.isoformat()
        self.folder = inbox / self.center / self.delivery
        self.format = FORMATS[self.center]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(f"{seed}:render:{self.center}")
        # Defects draw from their own stream, so the rest of a delivery is the same with --clean.
        self.defect_rng = random.Random(f"{seed}:defects:{self.center}")
        self.defects: list[Defect] = []

    def file_name(self, role: str) -> str:
        """The name of this delivery's file of ``role`` in the center's format."""
        return self.format.file(role).file_name(self.cutoff)

    def defect(self, file: str, row: int, column: str | None, rule_id: str, kind: str,
               person: Person | None, resource_id: str | None = None) -> None:
        """Record a defect this renderer wrote."""
        self.defects.append(Defect(self.center, self.delivery, file, row, column, rule_id, kind,
                                   None if person is None else person.person_no, resource_id))

    def write_person(self, person: Person, hints: set[str]) -> None:
        """Write everything this center records of ``person``, applying defect hints."""
        raise NotImplementedError

    def eligible(self, kind: str, person: Person) -> bool:
        """Whether ``person`` can carry a defect of ``kind`` in this delivery."""
        raise NotImplementedError

    def inject(self, kind: str, person: Person | None) -> None:
        """Write the extra rows of one defect (``person`` None for a phantom)."""
        raise NotImplementedError

    def record_counts(self) -> dict[str, int]:
        """Records written per file (or sheet), as the format defines records."""
        raise NotImplementedError

    def ignored_rows(self) -> dict[str, list[int]]:
        """Rows the format says are not records (REDCap's empty instrument rows)."""
        return {}

    def mislabelled_24_month_date(self, person: Person, months: int) -> dt.date | None:
        """A date ``months`` after this center's implant for a row wrongly labelled 24 months, if one fits.

        It must fall before the cutoff and any explant, for a person with no 24-month assessment,
        so that the only thing wrong with the row is its window.
        """
        implant = implant_of(person, self.center)
        if implant is None or any(m.timepoint == "month_24" for m in person.measurements):
            return None
        day = add_months(implant.date, months)
        explant = explant_of(person)
        if day > self.cutoff or (explant is not None and day >= explant.date):
            return None
        return day

    def end_block(self) -> None:
        """Forget per-block state; renderers that keep some override this."""

    def close(self) -> list[Path]:
        """Finish the files; return their paths."""
        raise NotImplementedError


def implant_of(person: Person, center: str | None = None):
    """The person's first implant (at ``center`` when given)."""
    return next((p for p in sorted(person.procedures, key=lambda p: p.date)
                 if p.kind == "implant" and (center is None or p.center == center)), None)


def explant_of(person: Person):
    """The person's explant, if any."""
    return next((p for p in person.procedures if p.kind == "explant"), None)




