"""Read a flat file's records as a set: the value parsers once per distinct value, the row rules as SQL.

A center's row reader (``auh._procedure`` and its kin) is the single definition of what a record means and
of every finding it makes. Reading a registry's files record by record through it costs Python calls per
value; this module reads the same files a chunk of rows at a time instead:

1. The chunk's columns go to DuckDB as Arrow arrays. Each column's distinct texts are read once by the row
   reader's own steps (``RowContext.cpr``, ``.date``, ``.label``, ...; :class:`Probe`) on a scratch context:
   the value, and whether the step found nothing wrong (:class:`Verdicts`).
2. ``warehouse/readers/ready.sql`` screens the records SQL may read: a valid CPR number, only printable
   ASCII and letters, nothing that may be a CPR number (:data:`drg_etl.core.cpr.CANDIDATE_PATTERN`'s SQL
   twin); it keeps each such record as JSON, its CPR number replaced by the pseudonym, as the row reader does.
3. The role's SQL (``warehouse/readers/<center>_<role>.sql``) applies the row rules over the screened records:
   a required value present, the rules across columns (an end before its start, a recorded sex against the
   CPR number's), and gives the facts of the records it finds clean, each with its place in the record.
4. Every other record (one the SQL does not take, a row of the wrong width) is read by the row reader
   itself, so its findings are the row reader's, with their file, row and column. Its facts join the SQL's,
   and each fact's ``fact_seq`` is its place in the delivery's reading order, as if every record had been
   read by the row reader.

The SQL may leave a clean record to the row reader, but a record it takes must be one the row reader reads
without a finding, into the same facts: ``tests/test_columnar_reader.py`` holds the two ways to the same staged
contents on generated and hostile deliveries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from drg_etl.core.cpr import CANDIDATE_LETTERS
from drg_etl.core.delivery import Delivery
from drg_etl.core.mappings import SourceMap
from drg_etl.core.model import TABLES
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.sql import read_sql
from drg_etl.sources.base import UNREADABLE, RowContext, StagedDelivery

RESERVED = frozenset({"row", "k", "joined", "record", "patient_key", "patient_sex", "birth_year", "kept", "forms"})
CHUNK_ROWS = 65_536  # rows a chunk holds: what bounds the reader's memory, whatever the file's size
APART = "|"  # joins a record's texts for the screen: no CPR candidate holds it or reads across it

# drg_etl.core.cpr's candidate pattern for RE2 over text the screen passed (printable ASCII and letters, where
# folding changes nothing and \s is a space): every text holding a match goes to the row reader.
_SEP = r"[ ._:,+/()\-]"
_LETTERS = CANDIDATE_LETTERS.replace("\u0130", r"\x{130}").replace("\u0131", r"\x{131}").replace(
    "\u017f", r"\x{17f}").replace("\u212a", r"\x{212a}")
CANDIDATE_SQL = (rf"[0-9][0-9]{_SEP}?[0-9][0-9]{_SEP}?[0-9][0-9]{_SEP}{{0,3}}[0-9]"
                 rf"(?:[0-9{_LETTERS}]{{2}}|[0-9]{_SEP})")

ValueStep = Callable[[RowContext, str, str], Any]  # (context, column, raw text) -> value: a row reader's step


@dataclass(frozen=True)
class Probe:
    """One column's values read by a row reader's step, once per distinct text.

    ``name`` is the relation the role's SQL joins (``raw``, ``ok``, ``value``, and ``given``: ok and a value, the
    test of a required value); ``sql_type`` the value's DuckDB type. ``step`` must read an empty text as None
    without a finding (a required value is the SQL's rule, see :func:`optional`), so that ``value is null`` means
    the text was empty.
    """

    name: str
    column: str
    sql_type: str
    step: ValueStep
    also: tuple[str, ...] = ()  # further columns whose texts the same step reads alike (one relation for all)


@dataclass(frozen=True)
class RolePlan:
    """How one file's records are read as a set: the probes, and the SQL of the row rules.

    ``facts`` gives, by canonical table, the SQL (``warehouse/<file>``, one ``select``) of the clean records'
    facts of that table over ``ready`` (the screened records) and the probes: ``row``, ``k`` (the fact's place
    among its record's facts of the table), ``patient_key`` and the table's fact columns. ``clean``, when given,
    selects the records the SQL takes (``row``, and what the facts' SQL reads of them) into the relation
    ``clean``; without it, a record is taken when it gives a fact. A record taken is read by the SQL alone, so
    ``clean`` must hold every rule its facts depend on.
    """

    facts: dict[str, str]
    probes: tuple[Probe, ...]
    clean: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # the SQL's named parameters
    relations: dict[str, pa.Table] = field(default_factory=dict)  # fixed relations the SQL joins (a project's events)


def _named(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a SQL file names (DuckDB refuses a parameter a statement does not use)."""
    text = read_sql(sql)
    return {name: value for name, value in params.items() if f"${name}" in text}


def optional(step: ValueStep) -> ValueStep:
    """A step that reads an empty text (as ``RowContext`` strips it) as None without a finding: for a step whose
    value is required where the row reader calls it (its requirement is the SQL's rule)."""
    return lambda ctx, column, raw: None if not str(raw).strip() else step(ctx, column, raw)


_ARROW_TYPES = {"VARCHAR": pa.string(), "DATE": pa.date32(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
                "INTEGER": pa.int32()}


class Verdicts:
    """The verdict of a row reader's steps on each distinct text they were asked (held for the delivery)."""

    def __init__(self, delivery: Delivery, pseudonymize: Pseudonymizer, source_map: SourceMap) -> None:
        self._scratch = StagedDelivery(delivery, delivery.content_id(), {})
        self._pseudonymize, self._map = pseudonymize, source_map
        self._seen: dict[tuple[str, str], dict[str, tuple[bool, Any]]] = {}
        self._patients: dict[str, tuple[str, str, int] | None] = {}

    def context(self, file: str) -> RowContext:
        """A scratch context for asking a row reader's step about one value (its findings are looked at, then
        dropped)."""
        self._scratch.issues.clear()
        return RowContext(self._scratch, file, 0, self._pseudonymize, self._map)

    def of(self, file: str, probe: Probe, texts: list[pa.Array]) -> pa.Table:
        """The probe's relation over the distinct texts of its columns: each one's value and whether the step
        found nothing wrong."""
        seen = self._seen.setdefault((file, probe.name), {})
        raws = pc.unique(pa.chunked_array(texts, pa.string())).to_pylist()
        for text in raws:
            if text not in seen:
                ctx = self.context(file)
                try:
                    value = probe.step(ctx, probe.column, text)
                    seen[text] = (not ctx.issues, value if not ctx.issues else None)
                except UNREADABLE:
                    seen[text] = (False, None)
        verdicts = [seen[t] for t in raws]
        return pa.table({"raw": pa.array(raws, pa.string()), "ok": pa.array([v[0] for v in verdicts], pa.bool_()),
                         "value": pa.array([v[1] for v in verdicts], _ARROW_TYPES[probe.sql_type]),
                         "given": pa.array([v[0] and v[1] is not None for v in verdicts], pa.bool_())})

    def patients_by_cpr(self, file: str, column: str, texts: pa.Array) -> pa.Table:
        """The patient of each CPR text of ``texts``, in their order (``RowContext.cpr``): ``patient_key``,
        ``patient_sex`` and ``birth_year``; nulls where the row reader finds something wrong with it (it then reads
        the record)."""
        known = self._patients_of(file, column, texts).combine_chunks()
        at = pc.index_in(texts, value_set=known.column("raw").chunk(0))
        return pa.table({name: pc.take(known.column(name).chunk(0), at)
                         for name in ("patient_key", "patient_sex", "birth_year")})

    def _patients_of(self, file: str, column: str, texts: pa.Array) -> pa.Table:
        raws = pc.unique(texts).to_pylist()
        for text in raws:
            if text not in self._patients:
                ctx = self.context(file)
                key = ctx.cpr(column, text)
                self._patients[text] = None if ctx.issues or key is None else (key, ctx.cpr_sex(), ctx.birth_year())
        known = [self._patients[t] or (None, None, None) for t in raws]
        if len(self._patients) >= 1 << 21:  # a registry's patients, with room; bounded all the same
            self._patients.clear()
        return pa.table({"raw": pa.array(raws, pa.string()),
                         "patient_key": pa.array([k[0] for k in known], pa.string()),
                         "patient_sex": pa.array([k[1] for k in known], pa.string()),
                         "birth_year": pa.array([k[2] for k in known], pa.int32())})


RowReader = Callable[[StagedDelivery, int, Sequence[str]], None]  # reads one record into a staged delivery
# The patient of each record of a chunk, by the chunk's columns: patient_key, patient_sex, birth_year (nulls where the
# row reader is to read the record)
PatientsOf = Callable[[dict[str, pa.Array]], pa.Table]
Derived = Callable[[dict[str, pa.Array]], dict[str, pa.Array]]  # further columns of a chunk, from its columns


class ColumnarFile:
    """One file's records, read a chunk at a time (see the module's text)."""

    def __init__(self, staged: StagedDelivery, file: str, columns: Sequence[str], cpr_column: str, plan: RolePlan,
                 verdicts: Verdicts, read_row: RowReader, patients: PatientsOf | None = None,
                 derive: Derived | None = None, kept_column: str | None = None) -> None:
        """``kept_column``: a column that holds each record's kept text itself (a resource's JSON, see
        ``ready.sql``), left out of the screened texts and of the record kept as JSON."""
        self.staged, self.file, self.columns, self.plan = staged, file, list(columns), plan
        self._derive, self.kept_column = derive, kept_column
        self.verdicts, self.read_row, self.cpr_column = verdicts, read_row, cpr_column
        self._patients = patients or (lambda texts: verdicts.patients_by_cpr(file, cpr_column, texts[cpr_column]))
        self._con = duckdb.connect(config={"threads": 1})

    def read(self, rows: Iterator[tuple[int, Sequence[str]]]) -> None:
        """Read every record of ``rows`` (row number, fields), in chunks of :data:`CHUNK_ROWS` (by the row reader
        alone when a column bears a name the SQL gives its own columns)."""
        if RESERVED.intersection(self.columns):
            self._con.close()
            for row, values in rows:
                self.read_row(self.staged, row, values)
            return
        try:
            chunk: list[tuple[int, tuple[str, ...]]] = []
            for item in rows:
                chunk.append((item[0], tuple(item[1])))  # a tuple of texts: left alone by the garbage collector
                if len(chunk) >= CHUNK_ROWS:
                    self._read_chunk(chunk)
                    chunk = []
            if chunk:
                self._read_chunk(chunk)
        finally:
            self._con.close()

    def _read_chunk(self, chunk: list[tuple[int, tuple[str, ...]]]) -> None:
        """Read a chunk: the SQL's clean records as a set, the others by the row reader; then hand it on."""
        staged, file, width = self.staged, self.file, len(self.columns)
        staged.position = (file, chunk[0][0])
        self._take([(row, values) for row, values in chunk if len(values) == width])
        clean = set(self._con.sql("select row from taken").to_arrow_table().column(0).to_pylist())
        odd = StagedDelivery(staged.delivery, staged.delivery_id, staged.file_hashes, batch_records=len(chunk) + 1)
        for row, values in chunk:
            if row not in clean:
                staged.position = (file, row)  # the record an error that escapes the row reader names
                self.read_row(odd, row, values)
        self._hand_on(len(clean), odd)

    def _take(self, rows: list[tuple[int, tuple[str, ...]]]) -> None:
        """The temp tables ``facts_<table>`` (the clean records' facts) and ``taken`` (their rows and kept
        records), from the screen and the plan's SQL over ``rows``."""
        con, file, plan = self._con, self.file, self.plan
        if not rows:
            for table in plan.facts:
                con.execute(f"create or replace temp table facts_{table} as select null::bigint as row, "
                            "null::bigint as k where false")
            con.execute("create or replace temp table taken as select null::bigint as row, null::varchar as kept "
                        "where false")
            return
        fields = list(zip(*(values for _, values in rows), strict=True))
        texts = {name: pa.array(fields[at], pa.string()) for at, name in enumerate(self.columns)}
        cpr, kept = self.cpr_column, self.kept_column
        others = [texts[c] for c in self.columns if c not in (cpr, kept)]
        patients = self._patients(texts)
        key = patients.column("patient_key").combine_chunks()
        fields = [c for c in self.columns if c != kept]
        record = pa.StructArray.from_arrays([key if c == cpr else texts[c] for c in fields], names=fields)
        relations = {"chunk": pa.table({
            "row": pa.array([row for row, _ in rows], pa.int64()),
            "joined": pc.binary_join_element_wise(*others, APART) if len(others) > 1 else others[0],
            "patient_key": key, "patient_sex": patients.column("patient_sex"),
            "birth_year": patients.column("birth_year"), "record": record,
            "kept": texts[kept] if kept is not None else pa.nulls(len(rows), pa.string()),
            **{c: texts[c] for c in self.columns if c not in (cpr, kept)},
            **(self._derive(texts) if self._derive is not None else {})})}
        relations |= {probe.name: self.verdicts.of(file, probe, [texts[c] for c in (probe.column, *probe.also)])
                      for probe in plan.probes}
        relations |= plan.relations
        for name, relation in relations.items():
            con.register(name, relation)
        try:
            con.execute(read_sql("readers/ready.sql"), {"candidate": CANDIDATE_SQL})
            con.execute("create or replace temp view ready as "
                        "select c.* exclude (joined, record, kept) from chunk c semi join screened using (row)")
            if plan.clean is not None:
                con.execute(f"create or replace temp table clean as {read_sql(plan.clean)}",
                            _named(plan.clean, plan.params))
            for table, sql in plan.facts.items():
                con.execute(f"create or replace temp table facts_{table} as {read_sql(sql)}", _named(sql, plan.params))
            if plan.clean is None:
                con.execute("create or replace temp table clean as "
                            + " union ".join(f"select row from facts_{table}" for table in plan.facts))
            kept_text = "to_json(record)" if kept is None else "kept"
            con.execute("create or replace temp table taken as "
                        f"select row, {kept_text} as kept from chunk semi join clean using (row)")
        finally:
            for name in relations:
                con.unregister(name)

    def _hand_on(self, taken: int, odd: StagedDelivery) -> None:
        """Give the staged delivery the chunk: the SQL's facts and the row reader's (``odd``) in reading order
        (each fact's ``fact_seq``), the kept records, findings and counts (``taken``: records the SQL read); hand
        the batch on."""
        staged, con, file = self.staged, self._con, self.file
        if any(rows for name, rows in odd.facts.items() if name not in self.plan.facts):
            raise TypeError(f"{file}'s row reader gave facts of a table its plan does not read")
        for table in self.plan.facts:
            self._hand_on_facts(table, odd.facts[table])
        kept = con.sql("select $file as file, row, kept as record from taken", params={"file": file}).to_arrow_table()
        if len(kept):
            staged.frames.append(("source_records", kept))
            gave = con.sql(" union ".join(f"select $file as file, row from facts_{table}" for table in self.plan.facts),
                           params={"file": file}).to_arrow_table()
            staged.frames.append(("contributed", gave))
        staged.issues += odd.issues
        staged.source_rows += odd.source_rows
        staged.contributed |= odd.contributed
        counter, odd_counter = staged.count(file), odd.count(file)
        counter.rows_read += taken + odd_counter.rows_read
        counter.rows_ignored += odd_counter.rows_ignored
        staged.buffered += taken + odd.buffered
        if staged.buffered >= staged.batch_records:
            staged.flush()

    def _hand_on_facts(self, table: str, odd_facts: list[tuple[Any, ...]]) -> None:
        """One table's facts of the chunk, the SQL's and the row reader's, numbered in reading order."""
        staged, con = self.staged, self._con
        layout = ["row", "patient_key", *TABLES[table].fact_columns[1:], "k"]  # (center and file left out)
        rows = [dict(zip(layout, fact[2:], strict=True)) for fact in odd_facts]
        con.register("odd_facts", pa.Table.from_pylist(rows) if rows else
                     pa.table({"row": pa.array([], pa.int64()), "k": pa.array([], pa.int64())}))
        con.execute(f"create or replace temp view facts as select * from facts_{table}")
        try:
            frame = con.sql(read_sql("readers/in_order.sql"), params={
                "center": staged.delivery.center, "file": self.file, "offset": staged.fact_seq[table]}
                            ).to_arrow_table()
        finally:
            con.unregister("odd_facts")
        if len(frame) and (missing := set(TABLES[table].fact_columns).difference(frame.column_names)):
            raise TypeError(f"{self.plan.facts[table]} gives no {sorted(missing)}")  # a reader's defect
        if len(frame):
            staged.frames.append((table, frame))
            staged.fact_seq[table] += len(frame)
