"""aauh reader: the EHR's FHIR R4 bulk export (extracts.md "aauh", declared in drg_etl.core.formats) onto the
canonical model.

Every line must be JSON and a valid R4 resource of its file's type (the official FHIR R4 JSON
Schema); one that is not rejects the file. The EHR's local codes map through
mappings/aauh.yaml. Timepoints are not in the export: the analysis derives them from dates.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from drg_etl.core.cpr import CPR_PLACEHOLDER, CprError, holds_cpr, parse_cpr
from drg_etl.core.delivery import Delivery, FileRejected
from drg_etl.core.formats import FORMATS
from drg_etl.core.mappings import source_map
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.vocabulary import LEAD_DEFECT_COMPLICATIONS
from drg_etl.fhir.validate import first_error
from drg_etl.sources.base import UNREADABLE, RowContext, StagedDelivery
from drg_etl.sources.columnar import ColumnarFile, Probe, RolePlan, Verdicts, optional
from drg_etl.sources.csvfile import open_text
from drg_etl.sources.values import check_score, parse_iso_date

MAX_LINE_CHARS = 1 << 20  # no resource of this export comes near 1 MiB; a longer line is hostile or broken
FORMAT = FORMATS["aauh"]
SCORE_RANGES = {"nrs_average": (0, 10), "nrs_worst": (0, 10), "pcs_total": (0, 52)}


def reference_of(device_id: str) -> str:
    """The ``device_ref`` of an EHR Device (by its id)."""
    return FORMAT.device_ref.make(device=device_id)


def read_lines(delivery: Delivery, resource_type: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """The file's resources with their line numbers, streamed; a line that is not R4 JSON of this type rejects
    the file (and with it the delivery, whatever was read before).

    Each line is checked against the official FHIR R4 JSON Schema (drg_etl.fhir.validate), the
    same independent validator the FHIR layer's output passes.
    """
    file = FORMAT.file(resource_type).file_name(delivery.cutoff)
    with open_text(delivery.folder / file, file, "utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if len(line) > MAX_LINE_CHARS:
                raise FileRejected(file, "file.ndjson", f"line {number} has {len(line):,} characters, more than a "
                                                        f"resource of this export can need ({MAX_LINE_CHARS:,})")
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise FileRejected(file, "file.ndjson", f"line {number} is not JSON: {exc.msg}") from exc
            if not isinstance(data, dict) or data.get("resourceType") != resource_type:
                found = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
                raise FileRejected(file, "file.ndjson", f"line {number} is a {found}, not a {resource_type}")
            if (error := first_error(data)) is not None:
                raise FileRejected(file, "file.ndjson",
                                   f"line {number} (id {data.get('id')}) is not valid FHIR R4: {error}")
            yield number, line, data


def _code(resource: dict[str, Any], element: str, system: str) -> str | None:
    value = resource.get(element)
    if isinstance(value, list):
        value = value[0] if value else None
    for coding in (value or {}).get("coding", []):
        if coding.get("system") == system:
            return coding.get("code")
    return None


def _ref(reference: dict[str, Any] | None, prefix: str) -> str | None:
    text = (reference or {}).get("reference", "")
    return text[len(prefix) + 1:] if text.startswith(prefix + "/") else None


REPEATED = -1  # SeenLines.earlier: the line repeats an earlier line exactly


def _id_key(identifier: Any) -> int:
    """A resource id as a 128-bit number: equal for the ids a dict takes for equal (1, 1.0 and True are one key),
    distinct otherwise (the text "1" is not the number 1)."""
    if isinstance(identifier, bool) or (isinstance(identifier, float) and identifier.is_integer()):
        identifier = int(identifier)
    return int.from_bytes(hashlib.blake2b(orjson.dumps(identifier), digest_size=16).digest(), "big")


class SeenLines:
    """The lines of one file read so far, in a few dozen bytes a line (a million patients' Observations are 2.6
    million lines): per resource id, its first line and a 64-bit digest of each distinct line that gave it. A line
    repeated exactly gives the same id, so only the lines of one id are ever compared."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}  # id -> the digest of its first line << 32 | that line's number
        self.more: dict[int, set[int]] = {}  # id given by more than one line -> the digests of its lines

    def earlier(self, identifier: Any, line: str, number: int) -> int | None:
        """None for a line whose id is new; :data:`REPEATED` for an exact repeat of an earlier line; else the
        first line that gave its id (other content under one id)."""
        hash(identifier)  # an id no dict takes (a list, an object) fails here, as a dict key does
        key = _id_key(identifier)
        digest = int.from_bytes(hashlib.blake2b(line.encode(), digest_size=8).digest(), "big")
        entry = self.first.get(key)
        if entry is None:
            self.first[key] = digest << 32 | number
            return None
        digests = self.more.setdefault(key, {entry >> 32})
        if digest in digests:
            return REPEATED
        digests.add(digest)
        return entry & 0xFFFFFFFF


class _Reader:
    """Reads the five files of one delivery; devices are finished once procedures are known."""

    def __init__(self, delivery: Delivery, staged: StagedDelivery, pseudonymize: Pseudonymizer) -> None:
        self.delivery, self.staged, self.pseudonymize = delivery, staged, pseudonymize
        self.files = {f.role: f.file_name(delivery.cutoff) for f in FORMAT.files}  # resource type -> file
        self.map = source_map("aauh")
        self.systems = self.map.spec["systems"]
        self.patients: dict[str, str] = {}
        self.seen: dict[str, SeenLines] = defaultdict(SeenLines)  # the lines read, per file
        self.faults: dict[str, Any] = {}  # device ref -> date of its lead-defect complication
        self.current: RowContext | None = None  # the line being read
        # (line number, its SeenLines verdict) when the verdict was reached before the row reader reads the line
        self.judged: tuple[int, int | None] | None = None

    def guarded(self, read: Any, number: int, *args: Any) -> Any:
        """One line's step: a value error it raises quarantines that line with a finding, never the delivery."""
        try:
            return read(number, *args)
        except UNREADABLE as exc:
            ctx = self.current if self.current is not None and self.current.row == number else None
            if ctx is None:
                file = f"{read.__name__.capitalize()}.ndjson"
                ctx = self.staged.context(file, number, self.pseudonymize, self.map)
            ctx.fail(None, "value.unreadable", f"a value the reader cannot handle ({type(exc).__name__}: {exc})")
            return None

    def context(self, file: str, number: int, line: str, resource: dict[str, Any]) -> RowContext | None:
        """A context for one line; None for an exact duplicate or a CPR-shaped id (already quarantined)."""
        resource_id = str(resource.get("id", ""))
        cpr_shaped = holds_cpr(resource_id)
        ctx = self.current = self.staged.context(file, number, self.pseudonymize, self.map,
                                  CPR_PLACEHOLDER if cpr_shaped else resource.get("id"))
        subject = resource.get("subject") or resource.get("patient")
        if subject is not None:
            ctx.patient_key = self.patients.get(_ref(subject, "Patient") or "")
        ctx.keep_source(self.deidentified(resource), parsed_json=True)  # orjson's, texts put in
        if cpr_shaped:
            ctx.fail("id", "cpr.in_identifier", f"the {resource.get('resourceType')}'s id holds a CPR number; "
                                                "the resource is not kept")
            return None
        if self.judged is not None and self.judged[0] == number:
            earlier = self.judged[1]
        else:
            earlier = self.seen[file].earlier(resource.get("id", ""), line, number)
        if earlier == REPEATED:
            ctx.fail(None, "row.duplicate", f"line repeats an earlier line (id {resource.get('id')})")
            return None
        if earlier is not None:
            ctx.fail("id", "row.conflict", f"id {resource.get('id')} is also on line {earlier} with other content")
            return None
        return ctx

    def deidentified(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource as staged: CPR identifiers become the pseudonym, birth date the year, no names or addresses."""
        if resource.get("resourceType") != "Patient":
            return resource
        clean = {k: v for k, v in resource.items() if k not in ("name", "address", "telecom", "photo", "contact")}
        identifiers = []
        for identifier in resource.get("identifier", []):
            if identifier.get("system") == self.systems["cpr"]:
                try:
                    value = self.pseudonymize(parse_cpr(identifier.get("value")))
                except CprError:
                    value = self.pseudonymize.of_text(str(identifier.get("value")))
                identifiers.append({"system": "pseudonym", "value": value})
            else:
                identifiers.append(identifier)
        clean["identifier"] = identifiers
        if "birthDate" in clean:
            clean["birthDate"] = str(clean["birthDate"])[:4]
        return clean

    def subject(self, ctx: RowContext, resource: dict[str, Any], element: str = "subject") -> bool:
        """Whether the resource's patient is a Patient of this delivery."""
        if ctx.patient_key is None:
            ctx.fail(element, "patient.no_demographics",
                     f"{(resource.get(element) or {}).get('reference')} is not a Patient of this delivery")
            return False
        return True

    def read(self) -> None:
        # generators, one per file (its role is its resource type): read in the order below
        lines = {f.role: read_lines(self.delivery, f.role) for f in FORMAT.files}
        pain: dict[str, tuple[str | None, str | None]] = {}
        waiting = []  # the Patients read clean, each finished once the Conditions give its pain
        for number, line, r in lines["Patient"]:
            ctx, sex = self.guarded(self.patient, number, line, r) or (None, None)
            if ctx is not None and ctx.ok:
                ctx.record = {}  # kept already; the patient's fact names no source column (a million: ~300 MiB)
                waiting.append((ctx, sex))
        self.forget("Patient")
        for number, line, r in lines["Condition"]:
            self.guarded(self.condition, number, line, r, pain)
        self.forget("Condition")
        for ctx, sex in waiting:
            location, diagnosis = pain.get(ctx.patient_key, (None, None))
            if location is None:
                ctx.fail("Condition", "value.missing_required", "the patient has no pain Condition")
                continue
            ctx.add("patients", sex=ctx.cpr_sex(), birth_year=ctx.birth_year(), pain_location=location,
                    diagnosis=diagnosis, recorded_sex=sex)
        del waiting, pain
        placed: dict[str, Any] = {}
        removed: dict[str, Any] = {}
        for number, line, r in lines["Procedure"]:
            self.guarded(self.procedure, number, line, r, placed, removed)
        self.forget("Procedure")
        for number, line, r in lines["Device"]:
            self.guarded(self.device, number, line, r, placed, removed, self.faults)
        self.forget("Device")
        del placed, removed
        self.faults.clear()
        self.observations(lines["Observation"])
        self.forget("Observation")

    def forget(self, resource_type: str) -> None:
        """Let go of what finding a file's duplicate lines and ids took, once the file is read (a line is only ever
        compared with the lines of its own file): memory then holds one file's lines, not the delivery's."""
        file = self.files[resource_type]
        self.seen.pop(file, None)

    def patient(self, number: int, line: str, r: dict[str, Any]) -> tuple[RowContext | None, str | None]:
        ctx = self.context(self.files["Patient"], number, line, r)
        if ctx is None:
            return None, None
        cpr = next((i.get("value") for i in r.get("identifier", []) if i.get("system") == self.systems["cpr"]), None)
        key = ctx.cpr("identifier", cpr)
        sex = ctx.label("gender", "sex", r.get("gender"))
        ctx.check_sex("gender", sex)
        if key is not None and ctx.ok:
            self.patients[r["id"]] = key
        return ctx, sex

    def condition(self, number: int, line: str, r: dict[str, Any], pain: dict[str, Any]) -> None:
        ctx = self.context(self.files["Condition"], number, line, r)
        if ctx is None or not self.subject(ctx, r):
            return
        category = _code(r, "category", self.systems["condition_category"])
        if category == "problem-list-item":
            diagnosis = ctx.label("code", "diagnosis", _code(r, "code", self.systems["diagnosis"]))
            location = ctx.label("bodySite", "pain_location", _code(r, "bodySite", self.systems["pain_location"]))
            if ctx.ok:
                pain[ctx.patient_key] = (location, diagnosis)
                ctx.contributes()
        elif category == "encounter-diagnosis":
            kind = ctx.label("code", "complication", _code(r, "code", self.systems["complication"]))
            day = ctx.date("onsetDateTime", r.get("onsetDateTime"), parse_iso_date)
            severity = _code(r, "severity", self.systems["snomed"])
            device = None
            for evidence in r.get("evidence", []):
                for detail in evidence.get("detail", []):
                    device = device or _ref(detail, "Device")
            if ctx.ok:
                device_ref = None if device is None else reference_of(device)
                ctx.add("complications", date=day, complication=kind,
                        permanent=severity == self.map.spec["severity_permanent"], device_ref=device_ref, note=None)
                if device_ref and kind in LEAD_DEFECT_COMPLICATIONS:
                    self.faults[device_ref] = day
        else:
            ctx.fail("category", "code.unknown", f"condition category {category!r} is neither a pain problem nor "
                                                 "a complication")

    def procedure(self, number: int, line: str, r: dict[str, Any], placed: dict, removed: dict) -> None:
        ctx = self.context(self.files["Procedure"], number, line, r)
        if ctx is None or not self.subject(ctx, r):
            return
        kind = ctx.label("code", "procedure", _code(r, "code", self.systems["procedure"]))
        end = success = None
        if "performedPeriod" in r:
            day = ctx.date("performedPeriod.start", r["performedPeriod"].get("start"), parse_iso_date)
            end = ctx.date("performedPeriod.end", r["performedPeriod"].get("end"), parse_iso_date,
                           required=kind == "trial")
        else:
            day = ctx.date("performed[x]", r.get("performedDateTime"), parse_iso_date)
        if kind == "trial":
            success = ctx.label("outcome", "trial_success", _code(r, "outcome", self.systems["snomed"]))
        concerned = None
        actions = []
        for focal in r.get("focalDevice", []):
            action = _code(focal, "action", self.systems["device_action"])
            device = _ref(focal.get("manipulated"), "Device")
            if device is None:
                ctx.fail("focalDevice", "value.missing_required", "focalDevice names no Device")
                continue
            actions.append((action, device))
            if action in ("manipulated", "explanted") and kind != "explant":
                concerned = reference_of(device)
        if ctx.ok:
            for action, device in actions:
                if action == "implanted":
                    placed.setdefault(device, day)
                elif action == "explanted":
                    removed.setdefault(device, day)
            ctx.add("procedures", procedure=kind, date=day, end_date=end, trial_success=success,
                    device_ref=concerned, reason=None)

    def device(self, number: int, line: str, r: dict[str, Any], placed: dict, removed: dict, faults: dict) -> None:
        ctx = self.context(self.files["Device"], number, line, r)
        if ctx is None or not self.subject(ctx, r, "patient"):
            return
        kind = ctx.label("type", "device_type", _code(r, "type", self.systems["device_type"]))
        serial = ctx.required("serialNumber", r.get("serialNumber"))
        level = side = None
        if kind == "lead":
            note = ((r.get("note") or [{}])[0].get("text") or "").split()
            if len(note) != 2:
                ctx.fail("note", "value.missing_required", "a lead's note must give its level and side")
            else:
                level = ctx.level("note", note[0])
                side = ctx.label("note", "side", note[1])
        reason = ((r.get("statusReason") or [{}])[0].get("text") or "").strip()
        if reason:
            status = ctx.label("statusReason", "lead_status", reason)
        else:
            status = "active" if r.get("status") == "active" else "removed"
        day = placed.get(r["id"])
        if day is None:
            ctx.fail("id", "lead.never_placed", f"no Procedure places Device {r['id']} (focalDevice implanted)")
        status_date = removed.get(r["id"]) if status in ("removed", "removed_fragment_retained") else \
            faults.get(reference_of(r["id"])) if status in ("fractured", "malfunction") else day
        if ctx.ok:
            ctx.add("devices", device_ref=reference_of(r["id"]), device_type=kind, model=r.get("modelNumber"),
                    serial=serial, placed_date=day, level=level, side=side, status=status, status_date=status_date)

    def observation(self, number: int, line: str, r: dict[str, Any]) -> None:
        ctx = self.context(self.files["Observation"], number, line, r)
        if ctx is None or not self.subject(ctx, r):
            return
        measure = ctx.label("code", "measure", _code(r, "code", self.systems["measure"]))
        day = ctx.date("effectiveDateTime", r.get("effectiveDateTime"), parse_iso_date)
        value = (r.get("valueQuantity") or {}).get("value")
        if value is None:
            ctx.fail("valueQuantity.value", "value.missing_required", "the observation has no value")
        elif measure is not None:
            try:
                check_score(float(value), *SCORE_RANGES[measure], measure)
            except ValueError as exc:
                ctx.fail("valueQuantity.value", getattr(exc, "rule_id", "score.out_of_range"), str(exc))
        if ctx.ok:
            ctx.add("measurements", date=day, timepoint=None, measure=measure, value=float(value))


    # -- Observations read as a set (drg_etl.sources.columnar) ------------------------------------------------------

    def observations(self, lines: Iterator[tuple[int, str, dict[str, Any]]]) -> None:
        """Read the Observations a chunk at a time: the row rules of :meth:`observation` as SQL
        (``warehouse/readers/aauh_observations.sql``) over the values each line gives, each code and date read
        once by the row reader's own steps; a line the SQL does not take is read by :meth:`observation`."""
        file = self.files["Observation"]
        verdicts = Verdicts(self.delivery, self.pseudonymize, self.map)
        plan = RolePlan(
            facts={"measurements": "readers/aauh_observations.sql"},
            probes=(Probe("measure", "code", "VARCHAR",
                          optional(lambda ctx, column, raw: ctx.label("code", "measure", raw))),
                    Probe("day", "effective", "DATE",
                          optional(lambda ctx, column, raw: ctx.date("effectiveDateTime", raw, parse_iso_date)))),
            relations={"score_ranges": pa.table({"measure": list(SCORE_RANGES),
                                                 "low": [float(r[0]) for r in SCORE_RANGES.values()],
                                                 "high": [float(r[1]) for r in SCORE_RANGES.values()]})})

        def read_row(into: StagedDelivery, row: int, values: Sequence[str]) -> None:
            earlier = values[1]
            staged, self.staged = self.staged, into
            self.judged = None if earlier == "ask" else (row, _EARLIER_OF[earlier] if earlier in _EARLIER_OF
                                                         else int(earlier))
            try:
                self.guarded(self.observation, row, "", orjson.loads(values[-1]))
            finally:
                self.staged, self.judged = staged, None

        def patients(texts: dict[str, pa.Array]) -> pa.Table:
            keys = texts["patient"]
            rows = len(keys)
            return pa.table({"patient_key": pc.if_else(pc.equal(keys, ""), pa.scalar(None, pa.string()), keys),
                             "patient_sex": pa.nulls(rows, pa.string()), "birth_year": pa.nulls(rows, pa.int32())})

        ColumnarFile(self.staged, file, OBSERVATION_COLUMNS, "patient", plan, verdicts, read_row, patients=patients,
                     kept_column="resource").read(self._observation_fields(file, lines))

    def _observation_fields(self, file: str, lines: Iterator[tuple[int, str, dict[str, Any]]]
                            ) -> Iterator[tuple[int, tuple[str, ...]]]:
        """Each line as the texts the set reads (:data:`OBSERVATION_COLUMNS`), its SeenLines verdict reached here, in
        the reading order, as :meth:`context` reaches it (a CPR-shaped id is never asked)."""
        seen, measure_system = self.seen[file], self.systems["measure"]
        for number, line, r in lines:
            resource_id = r.get("id", "")
            earlier: str = "none"
            if not holds_cpr(str(resource_id)):
                try:
                    verdict = seen.earlier(resource_id, line, number)
                    earlier = "none" if verdict is None else "repeated" if verdict == REPEATED else str(verdict)
                except UNREADABLE:  # raised before anything is noted: the row reader asks again and meets it
                    earlier = "ask"
            patient = code = effective = value = ""
            try:
                subject = r.get("subject") or r.get("patient")
                if subject is not None:
                    patient = self.patients.get(_ref(subject, "Patient") or "") or ""
                found = _code(r, "code", measure_system)
                code = found if type(found) is str else ""
                effective = r.get("effectiveDateTime") if type(r.get("effectiveDateTime")) is str else ""
                number_value = (r.get("valueQuantity") or {}).get("value")
                if type(number_value) is float or (type(number_value) is int and abs(number_value) < 1 << 53):
                    value = repr(number_value)
            except (*UNREADABLE, AttributeError):  # a shape the row reader meets with its finding
                patient = ""
            yield number, (patient, earlier, code, effective, value, orjson.dumps(r).decode())  # (a tuple of texts is
            # left alone by the garbage collector, a list is scanned at every collection while its chunk is held)


OBSERVATION_COLUMNS = ("patient", "earlier", "code", "effective", "value", "resource")  # the texts the set reads
_EARLIER_OF: dict[str, int | None] = {"none": None, "repeated": REPEATED}


def read_aauh(delivery: Delivery, staged: StagedDelivery, pseudonymize: Pseudonymizer) -> None:
    """Read the five NDJSON files into ``staged``."""
    _Reader(delivery, staged, pseudonymize).read()
