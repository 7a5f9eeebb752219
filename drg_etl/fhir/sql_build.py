"""Build FHIR resources in DuckDB SQL: the same rows, byte for byte, as :func:`drg_etl.fhir.batch.row_of` of the
Python builder's resources (:mod:`drg_etl.fhir.build`, which stays the oracle of the tests).

A resource's JSON text is concatenated in the engine from

* fragments computed once in Python with orjson (every CodeableConcept of the terminology map, the meta profile
  URLs, each center's ``meta.source`` head and ``meta.tag``, the system URIs), passed as ``$parameters``: the
  canonical base is followed as the Python builder follows it, and no value is ever spliced into the SQL text;
* the facts' own values, written as orjson writes them: strings escaped as orjson escapes (``"``, ``\\``, the
  control characters; UTF-8 otherwise, U+2028 included), doubles in orjson's shortest round-trip form, dates as
  ``date.isoformat()``;
* ids computed in SQL: UUID v5 (SHA-1 of the namespace's 16 bytes and the UTF-8 name ``Type|k1|k2|...``, with the
  version and variant bits set), as :func:`drg_etl.fhir.build.resource_id`.

The facts are read from ``<facts_prefix>_<table>`` (``fhir_src``: the store's key-sorted copies; ``src`` in a
worker's scratch file; ``canonical.current``: the tables in force), optionally limited to a batch of patients
(``first`` .. ``last`` by ``patient_key``) and to a relation of target patients. Only identifiers (the relation
names, checked) are formatted into the text. Every built resource must still be validated
(:func:`validate_texts`).

API: :func:`rows_query` gives the select and its parameters (to run, insert from, or copy from, on any
connection, read-only ones included: it creates nothing); :func:`build_sql_rows` runs it and fetches the rows;
:func:`validate_texts` validates the built texts with a :class:`drg_etl.fhir.batch.Validator`. The resources come
in groups (:data:`GROUPS`): ``patient`` (Patient and its pain Condition), ``device``, ``procedure``,
``observation``, ``complication`` (a complication's Condition and AdverseEvent): every resource
:func:`drg_etl.fhir.build.build_patient` yields. Organization (four constant resources) stays in Python.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from drg_etl.core.model import TABLES
from drg_etl.core.vocabulary import CENTER_NAMES, CENTERS, FAULTY_LEAD_STATUSES, REMOVED_LEAD_STATUSES
from drg_etl.fhir.batch import Row, Validator
from drg_etl.fhir.build import NAMESPACE, PLACING, REMOVING, manufacturers
from drg_etl.fhir.package import profile_url
from drg_etl.fhir.terminology import canonical_base, codeable, device_action, system, terminology

_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class UnknownGroup(ValueError):
    """A group of resources the SQL builder does not build."""


@dataclass(frozen=True)
class RowsQuery:
    """A select of rows ``(resource_type, id, patient_id, center, resource)`` and exactly the parameters it uses."""

    sql: str
    parameters: dict[str, Any]


def _json(value: Any) -> str:
    """The compact JSON text orjson writes for ``value`` (the Python builder's serialiser)."""
    return orjson.dumps(value).decode()


def _open_string(text: str) -> str:
    """The JSON string literal of ``text`` without its closing quote: a head that SQL continues."""
    return _json(text)[:-1]


# -- SQL expressions (code only: column expressions in, SQL text out) ----------------------------------------------

# One character of a string with a control character, as orjson writes it.
_ESCAPED_CHARACTER = (
    "case when c = '\\' then '\\\\' when c = '\"' then '\\\"' when c = chr(8) then '\\b' "
    "when c = chr(9) then '\\t' when c = chr(10) then '\\n' when c = chr(12) then '\\f' "
    "when c = chr(13) then '\\r' when ord(c) < 32 then '\\u' || printf('%04x', ord(c)) else c end")


def json_string(expr: str) -> str:
    """SQL for the JSON string literal orjson writes for the text ``expr`` (null: ``null``).

    orjson escapes ``"`` and ``\\`` and the control characters U+0000..U+001F (``\\b \\t \\n \\f \\r``, the others
    as ``\\u00xx`` in lower-case hex) and writes every other character as UTF-8. Text without a control character
    (nearly all) takes two replaces; the rest is escaped character by character.
    """
    return (f"(case when {expr} is null then 'null' "
            f"when regexp_matches({expr}, '[\\x00-\\x1f]') then '\"' || array_to_string(list_transform("
            f"string_split({expr}, ''), lambda c: {_ESCAPED_CHARACTER}), '') || '\"' "
            f"else '\"' || replace(replace({expr}, '\\', '\\\\'), '\"', '\\\"') || '\"' end)")


def json_number(expr: str) -> str:
    """SQL for the JSON number orjson writes for the double ``expr``.

    DuckDB casts a double to its shortest round-trip text, as Python's ``repr`` and orjson do, with two
    differences, both below 1e-4: orjson writes 1e-5 <= |x| < 1e-4 in positional notation (``0.0000123``, DuckDB
    ``1.23e-05``) and an exponent without a leading zero (``1e-7``, DuckDB ``1e-07``). NaN and infinities are
    ``null`` in orjson.
    """
    return (f"(case when {expr} is null or isnan({expr}) or isinf({expr}) then 'null' "
            f"when {expr} = 0 or abs({expr}) >= 1e-4 then {expr}::varchar "
            f"else regexp_replace(regexp_replace({expr}::varchar, '^(-?)(\\d)\\.?(\\d*)e-05$', '\\10.0000\\2\\3'), "
            f"'e-0(\\d)$', 'e-\\1') end)")



def concat(*parts: str) -> str:
    """SQL concatenating text expressions in one call (a chain of ``||`` makes a string per step).

    ``concat`` reads null as empty text: every part must be non-null (a required value goes through
    :func:`_required`, a text value through :func:`json_string`)."""
    return f"concat({', '.join(parts)})"


def _literal(text: str) -> str:
    """A SQL string literal of constant SQL text of this module (never of a value)."""
    return "'" + text.replace("'", "''") + "'"


def sha1_of_name(*name_parts: str, tail: str | None = None) -> str:
    """SQL for the hex SHA-1 of the id namespace's bytes followed by the UTF-8 of the name ``Type|k1|k2|...``
    (``name_parts``: the type as a literal, then text SQL of each key part; ``tail``: text SQL that follows the
    last part as it is, ``'|' || k`` or empty for an optional last part)."""
    return f"sha1(unhex($uuid_namespace) || encode({concat(*_joined(name_parts), *([tail] if tail else []))}))"


def _joined(parts: Sequence[str]) -> list[str]:
    """Text SQL parts with ``'|'`` between them."""
    out: list[str] = []
    for part in parts:
        out += [*(["'|'"] if out else []), part]
    return out


def uuid_text(sha1_expr: str) -> str:
    """SQL for the UUID v5 text of a hex SHA-1 (a column: it is read five times): its first 16 bytes with the
    version nibble 5 and the RFC 4122 variant bits (the 17th hex digit x becomes (x & 3) | 8)."""
    h = sha1_expr
    return concat(f"substr({h}, 1, 8)", "'-'", f"substr({h}, 9, 4)", "'-5'", f"substr({h}, 14, 3)", "'-'",
                  f"substr('89ab89ab89ab89ab', strpos('0123456789abcdef', substr({h}, 17, 1)), 1)",
                  f"substr({h}, 18, 3)", "'-'", f"substr({h}, 21, 12)")


def _key_part(expr: str) -> str:
    """SQL for ``str(k)`` of a text key part (None: ``"None"``)."""
    return f"coalesce({expr}, 'None')"


def _required(value_expr: str, message: str, what_expr: str) -> str:
    """SQL for ``value_expr``, failing the query (as the Python builder raises KeyError) where it is null."""
    return f"(case when {value_expr} is null then error('{message}: ' || coalesce({what_expr}, 'null')) " \
           f"else {value_expr} end)"


def _when(condition: str, *parts: str) -> str:
    """SQL for the concatenation of ``parts`` where ``condition`` holds, else empty text (an optional member)."""
    return f"(case when {condition} then {concat(*parts)} else '' end)"


def _iso(expr: str) -> str:
    """SQL for ``_iso`` of a date (``date.isoformat()``: DuckDB writes a date the same way)."""
    return f"{expr}::varchar"


def _reference(prefix: str, id_expr: str) -> str:
    """SQL for ``{"reference":"<prefix>/<id>"}`` of an id (hex and dashes: nothing to escape)."""
    return concat(_literal(f'{{"reference":"{prefix}/'), id_expr, "'\"}'")


def _open(resource_type: str, id_expr: str) -> list[str]:
    """The parts of ``{"resourceType":..,"id":"..."`` and ``,"meta":{...}`` (the center joined as ``c``)."""
    return [_literal(f'{{"resourceType":"{resource_type}","id":"'), id_expr, "'\"'",
            f"$meta_open_{resource_type.lower()}", _required("c.source_head", "no name for center", "f.center"),
            _iso("f.cutoff"), "c.tag_tail"]


def _sorted_columns(table: str, alias: str) -> str:
    """The order in which the Python builder (the tests' oracle) is given a patient's facts: the key, then every
    column. Where that order decides a resource (its home center, its focal devices, its complications), the SQL
    ranks the facts by it, whatever order it reads them in."""
    return ", ".join([f"{alias}.patient_key", *(f'{alias}."{c.name}"' for c in TABLES[table].all_columns)])


@functools.cache
def _fragments(base: str) -> dict[str, Any]:
    """Every parameter the queries may use, for the canonical base ``base`` (the cache key: the terminology map
    and the profile URLs follow :func:`canonical_base`)."""
    del base  # only the cache key: the functions below read the base themselves
    concepts, values, texts = [], [], []
    for concept, entries in terminology()["concepts"].items():
        for value in entries:
            concepts.append(concept)
            values.append(str(value).lower())
            texts.append(_json(codeable(concept, value)))
    centers = list(CENTER_NAMES)
    fragments: dict[str, Any] = {
        "uuid_namespace": NAMESPACE.bytes.hex(),
        "code_concepts": concepts, "code_values": values, "code_texts": texts,
        "center_codes": centers,
        "center_ranks": [CENTERS.index(c) if c in CENTERS else None for c in centers],
        "manufacturer_models": list(manufacturers()),
        "manufacturer_texts": [_json(m) for m in manufacturers().values()],
        "faulty_lead_statuses": list(FAULTY_LEAD_STATUSES),
        "removed_lead_statuses": list(REMOVED_LEAD_STATUSES),
        "placing_procedures": sorted(PLACING),
        "removing_procedures": sorted(REMOVING),
        "action_implanted": '{"action":' + _json(device_action("implanted")) + ',"manipulated":',
        "action_explanted": '{"action":' + _json(device_action("explanted")) + ',"manipulated":',
        "action_manipulated": '{"action":' + _json(device_action("manipulated")) + ',"manipulated":',
        # meta.source up to the cutoff, and what follows the cutoff: the end of the source and the tag
        "center_source_heads": [_open_string(f"urn:drg-etl:delivery:{c}:") for c in centers],
        "center_tag_tails": ['","tag":' + _json([{"system": system("center"), "code": c,
                                                  "display": CENTER_NAMES[c]}]) + "}" for c in centers],
    }
    for resource_type in SQL_RESOURCE_TYPES:
        fragments[f"meta_open_{resource_type.lower()}"] = ',"meta":{"profile":' + _json([profile_url(resource_type)]) \
            + ',"source":'
    fragments |= {
        "patient_identifier": ',"identifier":[{"system":' + _json(system("pseudonym")) + ',"value":',
        "pain_condition_body": ',"clinicalStatus":' + _json({"coding": [{"system": system("condition_clinical"),
                                                                         "code": "active"}]})
        + ',"category":' + _json([{"coding": [{"system": system("condition_category"),
                                                "code": "problem-list-item"}]}]) + ',"code":',
        "device_identifier": ',"identifier":[{"system":' + _json(system("device_reference")) + ',"value":',
        "device_placed_open": '{"url":' + _json(system("placed_extension")) + ',"valueDate":"',
        "device_status_date_open": '{"url":' + _json(system("status_date_extension")) + ',"valueDate":"',
        "complication_category": ',"category":' + _json(
            [{"coding": [{"system": system("condition_category"), "code": "encounter-diagnosis"}]}]) + ',"code":',
        "complication_clinical_open": ',"clinicalStatus":{"coding":[{"system":' + _json(system("condition_clinical"))
        + ',"code":',
        "adverse_event_seriousness_open": ',"seriousness":{"coding":[{"system":'
        + _json(system("adverse_event_seriousness")) + ',"code":',
        "adverse_event_outcome_open": '}]},"outcome":{"coding":[{"system":'
        + _json("http://terminology.hl7.org/CodeSystem/adverse-event-outcome") + ',"code":',
        "observation_body": ',"status":"final","category":' + _json(
            [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}])
        + ',"code":',
        "observation_value": ',"valueQuantity":{"value":',
        "observation_value_close": ',"unit":"{score}","system":' + _json(system("ucum")) + ',"code":"{score}"}',
        "observation_timepoint_open": ',"extension":[{"url":' + _json(system("timepoint_extension"))
        + ',"valueCodeableConcept":',
    }
    return fragments


def _lookups() -> str:
    """The CTEs of the lookup relations, from parameters: ``codes`` and ``centers``."""
    return ("codes as (select unnest($code_concepts) as concept, unnest($code_values) as value, "
            "unnest($code_texts) as text), "
            "centers as (select unnest($center_codes) as center, unnest($center_source_heads) as source_head, "
            "unnest($center_tag_tails) as tag_tail, unnest($center_ranks) as rank), "
            "manufacturers as (select unnest($manufacturer_models) as model, unnest($manufacturer_texts) as text)")


def _facts(table: str, facts_prefix: str, bounded_first: bool, bounded_last: bool, targets: str | None) -> str:
    """SQL for the facts of ``<facts_prefix>_<table>`` of the patients in the batch."""
    where = []
    if bounded_first:
        where.append("patient_key >= $first")
    if bounded_last:
        where.append("patient_key <= $last")
    if targets:
        where.append(f"patient_key in (select patient_key from {targets})")
    return f"select * from {facts_prefix}_{table}" + (f" where {' and '.join(where)}" if where else "")


# -- the resource types ------------------------------------------------------------------------------------------


def _identified(group: str, source: str, id_sha1: str, extra: str = "") -> str:
    """Two CTEs of a group's facts (``source``, aliased ``f``): ``<group>_facts``, with ``extra`` columns and the
    SHA-1s of the resource's id (``id_sha1``) and of its patient's, and ``<group>_ids``, with both as UUID text
    (``id``, ``patient_id``)."""
    return f"""
    {group}_facts as (
        select f.*, {extra}
            {id_sha1} as id_sha1,
            {sha1_of_name("'Patient'", "f.patient_key")} as patient_sha1
        from {source}),
    {group}_ids as (
        select f.*, {uuid_text("id_sha1")} as id, {uuid_text("patient_sha1")} as patient_id from {group}_facts f)"""


def _observations(facts: Callable[[str], str]) -> str:
    """Observation, as :func:`drg_etl.fhir.build._observation` (one per measurement)."""
    has_timepoint = "(f.timepoint is not null and f.timepoint <> '')"
    resource = concat(
        *_open("Observation", "f.id"), "$observation_body",
        _required("mc.text", "no code for measure", "f.measure"), "',\"subject\":'",
        _reference("Patient", "f.patient_id"), "',\"effectiveDateTime\":\"'", _iso('f."date"'), "'\"'",
        "$observation_value", json_number('f."value"'), "$observation_value_close",
        _when(has_timepoint, "$observation_timepoint_open",
              _required("tc.text", "no code for timepoint", "f.timepoint"), "'}]'"),
        "'}'")
    return f"""
{_identified("observation", f"({facts('measurements')}) f",
                 sha1_of_name("'Observation'", "f.patient_key", "f.center", _iso('f."date"'), "f.measure",
                              _key_part("f.timepoint")))},
    observations as (
        select 'Observation' as resource_type, f.id, f.patient_id, f.center, {resource} as resource
        from observation_ids f
        left join centers c on c.center = f.center
        left join codes mc on mc.concept = 'measure' and mc.value = lower(f.measure)
        left join codes tc on {has_timepoint} and tc.concept = 'timepoint' and tc.value = lower(f.timepoint))"""


def _patients(facts: Callable[[str], str]) -> str:
    """Patient and its pain Condition, as :func:`drg_etl.fhir.build.build_patient`: from the demographics of the
    patient's home center (the center of the earliest procedure, else the first center in CENTERS order with
    demographics), else from the patient's first demographics in key-sorted order."""
    rank = _required("c.rank", "not a center", "f.center")
    patient = concat(
        *_open("Patient", "f.patient_id"), "$patient_identifier", json_string("f.patient_key"),
        "'}],\"gender\":'", json_string("f.sex"), "',\"birthDate\":'",
        json_string(_key_part("f.birth_year::varchar")), "',\"managingOrganization\":{\"reference\":'",
        json_string("'Organization/' || f.home"), "'}}'")
    condition = concat(
        *_open("Condition", "f.pain_id"), "$pain_condition_body",
        _required("dc.text", "no code for diagnosis", "f.diagnosis"), "',\"bodySite\":['",
        _required("lc.text", "no code for pain_location", "f.pain_location"), "'],\"subject\":'",
        _reference("Patient", "f.patient_id"), "'}'")
    return f"""
    procedure_homes as (
        select patient_key, first(center order by "date", rank) as home
        from (select f.patient_key, f.center, f."date", {rank} as rank
              from ({facts("procedures")}) f left join centers c on c.center = f.center)
        group by patient_key),
    demographic_homes as (
        select patient_key, first(center order by rank) as home
        from (select f.patient_key, f.center, {rank} as rank
              from ({facts("patients")}) f left join centers c on c.center = f.center)
        group by patient_key),
    patient_facts as (
        select f.*, coalesce(ph.home, dh.home) as home,
            {sha1_of_name("'Patient'", "f.patient_key")} as patient_sha1,
            {sha1_of_name("'Condition'", "f.patient_key", "'pain'")} as pain_sha1
        from ({facts("patients")}) f
        join demographic_homes dh using (patient_key)
        left join procedure_homes ph using (patient_key)
        qualify row_number() over (partition by f.patient_key
                                   order by f.center = coalesce(ph.home, dh.home) desc,
                                            {_sorted_columns("patients", "f")}) = 1),
    patient_ids as (
        select f.*, {uuid_text("patient_sha1")} as patient_id, {uuid_text("pain_sha1")} as pain_id
        from patient_facts f),
    patients as (
        select 'Patient' as resource_type, f.patient_id as id, f.patient_id, f.center, {patient} as resource
        from patient_ids f left join centers c on c.center = f.center),
    conditions as (
        select 'Condition' as resource_type, f.pain_id as id, f.patient_id, f.center, {condition} as resource
        from patient_ids f
        left join centers c on c.center = f.center
        left join codes dc on dc.concept = 'diagnosis' and dc.value = lower(f.diagnosis)
        left join codes lc on lc.concept = 'pain_location' and lc.value = lower(f.pain_location))"""


def _devices(facts: Callable[[str], str]) -> str:
    """Device, as :func:`drg_etl.fhir.build._device` (one per device)."""
    inactive = "(f.status is distinct from 'active')"
    placed = "(f.placed_date is not null)"
    status_dated = f"({inactive} and f.status_date is not null)"
    resource = concat(
        *_open("Device", "f.id"), "$device_identifier", json_string("f.device_ref"), "'}],\"type\":'",
        _required("tc.text", "no code for device_type", "f.device_type"),
        "',\"serialNumber\":'", json_string("f.serial"), "',\"patient\":'", _reference("Patient", "f.patient_id"),
        f"(case when {inactive} then ',\"status\":\"inactive\"' else ',\"status\":\"active\"' end)",
        _when(f"{placed} or {status_dated}", "',\"extension\":['",
              _when(placed, "$device_placed_open", _iso("f.placed_date"), "'\"}'"),
              f"(case when {placed} and {status_dated} then ',' else '' end)",
              _when(status_dated, "$device_status_date_open", _iso("f.status_date"), "'\"}'"), "']'"),
        _when("mf.text is not null", "',\"manufacturer\":'", "mf.text"),
        _when("f.model <> ''", "',\"deviceName\":[{\"name\":'", json_string("f.model"),
              "',\"type\":\"model-name\"}]'"),
        _when(inactive, "',\"statusReason\":['", _required("sc.text", "no code for lead_status", "f.status"), "']'"),
        _when("f.device_type = 'lead'",
              "',\"property\":[{\"type\":{\"text\":\"spinal level\"},\"valueCode\":[{\"text\":'",
              json_string("f.level"), "'}]},{\"type\":{\"text\":\"side\"},\"valueCode\":[{\"text\":'",
              json_string("f.side"), "'}]}]'"),
        "'}'")
    return f"""
{_identified("device", f"({facts('devices')}) f",
                 sha1_of_name("'Device'", "f.patient_key", "f.center", _key_part("f.device_ref")))},
    devices as (
        select 'Device' as resource_type, f.id, f.patient_id, f.center, {resource} as resource
        from device_ids f
        left join centers c on c.center = f.center
        left join codes tc on tc.concept = 'device_type' and tc.value = lower(f.device_type)
        left join codes sc on {inactive} and sc.concept = 'lead_status' and sc.value = lower(f.status)
        left join manufacturers mf on mf.model = f.model)"""


def _complications(facts: Callable[[str], str]) -> str:
    """The complication's Condition and AdverseEvent, as :func:`drg_etl.fhir.build._complication`, with the Device
    of :func:`drg_etl.fhir.build._complication_device`: the source's link, else the lead of the same patient and
    center whose status changed that day to what the complication says; named only when exactly one matches."""
    named = "(f.device_ref <> '')"
    key = ["f.patient_key", "f.center", _iso('f."date"'), _key_part("f.complication")]
    device_part = f"(case when {named} then '|' || f.device_ref else '' end)"  # only when the source names one
    match = (f"case when {named} then d.device_ref = f.device_ref "
             "when f.complication in ('lead_fracture', 'lead_malfunction') "
             "then list_contains($faulty_lead_statuses, d.status) and d.status_date = f.\"date\" "
             "when f.complication = 'retained_fragment' "
             "then d.status = 'removed_fragment_retained' and d.status_date = f.\"date\" else false end")
    known = "(f.permanent is not null)"
    has_device = "(f.device_id is not null)"
    condition = concat(
        *_open("Condition", "f.condition_id"), "$complication_category", "f.code_text", "',\"subject\":'",
        _reference("Patient", "f.patient_id"), "',\"onsetDateTime\":\"'", _iso('f."date"'), "'\"'",
        _when(known, "$complication_clinical_open",
              "(case when f.permanent then '\"active\"' else '\"resolved\"' end)", "'}]}'"),
        _when(has_device, "',\"evidence\":[{\"detail\":['", _reference("Device", "f.device_id"), "']}]'"),
        _when("f.note <> ''", "',\"note\":[{\"text\":'", json_string("f.note"), "'}]'"),
        "'}'")
    event = concat(
        *_open("AdverseEvent", "f.event_id"), "',\"actuality\":\"actual\",\"event\":'", "f.code_text",
        "',\"subject\":'", _reference("Patient", "f.patient_id"), "',\"date\":\"'", _iso('f."date"'),
        "'\",\"resultingCondition\":['", _reference("Condition", "f.condition_id"), "']'",
        _when(known, "$adverse_event_seriousness_open",
              "(case when f.permanent then '\"serious\"' else '\"non-serious\"' end)",
              "$adverse_event_outcome_open",
              "(case when f.permanent then '\"resolvedWithSequelae\"' else '\"resolved\"' end)", "'}]}'"),
        _when(has_device, "',\"suspectEntity\":[{\"instance\":'", _reference("Device", "f.device_id"), "'}]'"),
        "'}'")
    return f"""
    complication_facts as (
        select f.*,
            (select {{'matches': count(*), 'device_ref': min(d.device_ref)}} from ({facts("devices")}) d
             where d.patient_key = f.patient_key and d.center = f.center and ({match})) as device,
            {sha1_of_name("'Condition'", *key, tail=device_part)} as condition_sha1,
            {sha1_of_name("'AdverseEvent'", *key, tail=device_part)} as event_sha1,
            {sha1_of_name("'Patient'", "f.patient_key")} as patient_sha1
        from ({facts("complications")}) f),
    complication_hashes as (
        select f.*, case when f.device.matches = 1 then
                {sha1_of_name("'Device'", "f.patient_key", "f.center", "f.device.device_ref")} end as device_sha1
        from complication_facts f),
    complication_ids as (
        select f.*, {uuid_text("condition_sha1")} as condition_id, {uuid_text("event_sha1")} as event_id,
            {uuid_text("patient_sha1")} as patient_id,
            case when device_sha1 is not null then {uuid_text("device_sha1")} end as device_id
        from complication_hashes f),
    complication_resources as (
        select f.*, {_required("kc.text", "no code for complication", "f.complication")} as code_text
        from complication_ids f
        left join codes kc on kc.concept = 'complication' and kc.value = lower(f.complication)),
    complication_conditions as (
        select 'Condition' as resource_type, f.condition_id as id, f.patient_id, f.center, {condition} as resource
        from complication_resources f left join centers c on c.center = f.center),
    adverse_events as (
        select 'AdverseEvent' as resource_type, f.event_id as id, f.patient_id, f.center, {event} as resource
        from complication_resources f left join centers c on c.center = f.center)"""


def _procedures(facts: Callable[[str], str]) -> str:
    """Procedure, as :func:`drg_etl.fhir.build._procedure`: its focal devices (those of the same patient and center
    placed that day by a placing procedure, removed that day by a removing one, and the device the source names,
    in that order and each in key order), the body sites of its leads, and the complications of that day."""
    device_key = "d.patient_key = f.patient_key and d.center = f.center"
    implanted = 'list_contains($placing_procedures, f.procedure) and d.placed_date = f."date"'
    explanted = ('list_contains($removing_procedures, f.procedure) and list_contains($removed_lead_statuses, d.status) '
                 'and d.status_date = f."date"')
    manipulated = (f"f.device_ref <> '' and d.device_ref = f.device_ref and not coalesce({implanted}, false) "
                   f"and not coalesce({explanted}, false)")
    focal_item = concat("(case d.action when 1 then $action_implanted when 2 then $action_explanted "
                        "else $action_manipulated end)", _reference("Device", uuid_text("d.device_sha1")), "'}'")
    site = "coalesce(d.level, 'None') || ' ' || coalesce(d.side, 'None')"
    # an ordered aggregate sorts each group on every key it is given: the key order is ranked once, by a window
    sorted_devices = _sorted_columns("devices", "d")
    trial = "(f.procedure = 'trial')"
    body_site = concat("'{\"text\":'", json_string("'dorsal root ganglion, ' || s"), "'}'")
    period = concat("',\"performedPeriod\":{\"start\":\"'", _iso('f."date"'), "'\",\"end\":'",
                    json_string(_key_part(_iso("f.end_date"))), "'},\"outcome\":'",
                    _required("oc.text", "no code for trial_outcome", "f.trial_success"))
    performed = concat("',\"performedDateTime\":\"'", _iso('f."date"'), "'\"'")
    resource = concat(
        *_open("Procedure", "f.id"), "',\"status\":\"completed\",\"code\":'",
        _required("pc.text", "no code for procedure", "f.procedure"), "',\"subject\":'",
        _reference("Patient", "f.patient_id"), "',\"performer\":[{\"actor\":{\"reference\":'",
        json_string("'Organization/' || f.center"), "'}}]'",
        f"(case when {trial} then {period} else {performed} end)",
        _when("f.focal.devices is not null", "',\"focalDevice\":['", "f.focal.devices", "']'"),
        _when("len(f.focal.sites) > 0", "',\"bodySite\":['",
              f"array_to_string(list_transform(f.focal.sites, lambda s: {body_site}), ',')", "']'"),
        _when("cx.refs is not null", "',\"complicationDetail\":['", "cx.refs", "']'"),
        "'}'")
    complication_key = ["x.patient_key", "x.center", _iso('x."date"'), _key_part("x.complication")]
    complication_tail = "(case when x.device_ref <> '' then '|' || x.device_ref else '' end)"
    return f"""
    procedure_complications as (
        select x.patient_key, x.center, x."date",
            string_agg({_reference("Condition", uuid_text("x.condition_sha1"))}, ',' order by x.complication_rank)
                as refs
        from (select x.*, {sha1_of_name("'Condition'", *complication_key, tail=complication_tail)} as condition_sha1,
                  row_number() over (partition by x.patient_key, x.center, x."date"
                                     order by {_sorted_columns("complications", "x")}) as complication_rank
              from ({facts("complications")}) x) x
        group by x.patient_key, x.center, x."date"),
    procedure_rows as materialized (
        select f.*, row_number() over () as procedure_row from ({facts("procedures")}) f),
    procedure_devices as materialized (
        select d.*, {sha1_of_name("'Device'", "d.patient_key", "d.center", _key_part("d.device_ref"))} as device_sha1,
            row_number() over (partition by d.patient_key, d.center order by {sorted_devices}) as device_rank
        from ({facts("devices")}) d),
    procedure_focal as (
        select d.procedure_row, string_agg({focal_item}, ',' order by d.action, d.device_rank) as devices,
            list_sort(list_distinct(list(case when d.device_type = 'lead' then {site} end))) as sites
        from (select f.procedure_row, 1 as action, d.* from procedure_rows f
              join procedure_devices d on {device_key} and d.placed_date = f."date" where {implanted}
              union all
              select f.procedure_row, 2 as action, d.* from procedure_rows f
              join procedure_devices d on {device_key} and d.status_date = f."date" where {explanted}
              union all
              select f.procedure_row, 3 as action, d.* from procedure_rows f
              join procedure_devices d on {device_key} and d.device_ref = f.device_ref where {manipulated}) d
        group by d.procedure_row),
{_identified("procedure", "procedure_rows f left join procedure_focal pf using (procedure_row)",
                 sha1_of_name("'Procedure'", "f.patient_key", "f.center", _key_part("f.procedure"),
                              _iso('f."date"'), _key_part("f.device_ref")),
                 "{'devices': pf.devices, 'sites': pf.sites} as focal,")},
    procedures as (
        select 'Procedure' as resource_type, f.id, f.patient_id, f.center, {resource} as resource
        from procedure_ids f
        left join centers c on c.center = f.center
        left join codes pc on pc.concept = 'procedure' and pc.value = lower(f.procedure)
        left join codes oc on {trial} and oc.concept = 'trial_outcome'
            and oc.value = lower(coalesce(f.trial_success, false)::varchar)
        left join procedure_complications cx on cx.patient_key = f.patient_key and cx.center = f.center
            and cx."date" = f."date")"""


@dataclass(frozen=True)
class Builder:
    """The CTEs that build a group of resource types, and the relation of each type's rows."""

    ctes: Callable[[Callable[[str], str]], str]
    relations: dict[str, str]  # resource type -> the CTE holding its rows


# In the order the Python builder yields them for a patient.
GROUPS: dict[str, Builder] = {
    "patient": Builder(_patients, {"Patient": "patients", "Condition": "conditions"}),
    "device": Builder(_devices, {"Device": "devices"}),
    "procedure": Builder(_procedures, {"Procedure": "procedures"}),
    "observation": Builder(_observations, {"Observation": "observations"}),
    "complication": Builder(_complications, {"Condition": "complication_conditions",
                                             "AdverseEvent": "adverse_events"}),
}
SQL_GROUPS: tuple[str, ...] = tuple(GROUPS)
SQL_RESOURCE_TYPES: tuple[str, ...] = tuple(dict.fromkeys(t for g in GROUPS.values() for t in g.relations))


def rows_query(facts_prefix: str, first: str | None = None, last: str | None = None, *,
               groups: Sequence[str] = SQL_GROUPS, targets: str | None = None) -> RowsQuery:
    """The select of the rows ``(resource_type, id, patient_id, center, resource)`` of the resources of ``groups``
    (:data:`GROUPS`: ``patient`` is Patient and its pain Condition, ``complication`` a complication's Condition
    and AdverseEvent) for the patients with facts in ``<facts_prefix>_<table>``, from ``first`` to ``last`` by
    ``patient_key`` (None: no bound) and, with ``targets``, in that relation's ``patient_key``; with its
    parameters.

    ``resource`` is the compact JSON text orjson writes for the Python builder's resource, and the row is the one
    :func:`drg_etl.fhir.batch.row_of` makes of it. The rows come in no particular order. A value the terminology
    map has no code for (or a center without a name) fails the query, as the Python builder fails.
    """
    for relation in (facts_prefix, targets):
        if relation is not None and not _RELATION.match(relation):
            raise ValueError(f"not a relation name: {relation!r}")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise UnknownGroup(f"the SQL builder builds the groups {list(GROUPS)}, not {unknown or 'nothing'}")

    def facts(table: str) -> str:
        return _facts(table, facts_prefix, first is not None, last is not None, targets)

    chosen = [GROUPS[g] for g in dict.fromkeys(groups)]
    ctes = ",".join(g.ctes(facts) for g in chosen)
    selects = "\nunion all ".join(f"select resource_type, id, patient_id, center, resource from {relation}"
                                   for g in chosen for relation in g.relations.values())
    sql = f"with {_lookups()},{ctes}\n{selects}"
    available = _fragments(canonical_base()) | {"first": first, "last": last}
    return RowsQuery(sql, {name: available[name] for name in dict.fromkeys(_PARAMETER.findall(sql))})


def build_sql_rows(con: duckdb.DuckDBPyConnection, facts_prefix: str, first: str | None = None,
                   last: str | None = None, *, groups: Sequence[str] = SQL_GROUPS,
                   targets: str | None = None) -> list[Row]:
    """The rows of :func:`rows_query`, fetched (not yet validated: see :func:`validate_texts`)."""
    query = rows_query(facts_prefix, first, last, groups=groups, targets=targets)
    return con.execute(query.sql, query.parameters).fetchall()


def built_table(con: duckdb.DuckDBPyConnection, facts_prefix: str, first: str | None, last: str | None,
                validate: Validator) -> pa.Table:
    """:func:`built_rows` as an Arrow table (``ROW_COLUMNS``), the form a FHIR worker writes: the texts cross into
    Python once, to be validated, and the rows are never Python tuples."""
    query = rows_query(facts_prefix, first, last)
    table = con.sql(query.sql, params=query.parameters).to_arrow_table()
    validate_texts((text for chunk in table.column("resource").chunks for text in chunk.to_pylist()), validate)
    return table


def built_rows(con: duckdb.DuckDBPyConnection, facts_prefix: str, first: str | None, last: str | None,
               validate: Validator) -> list[Row]:
    """The rows of the patients from ``first`` to ``last`` in ``<facts_prefix>_<table>``, built in SQL and every
    one validated (:func:`validate_texts`): what the store inserts."""
    rows = build_sql_rows(con, facts_prefix, first, last)
    validate_texts((row[4] for row in rows), validate)
    return rows


VALIDATION_CHUNK = 100  # resources parsed and checked at a time


def validate_texts(texts: Iterable[str], validate: Validator) -> int:
    """Validate resources given as JSON texts, as the Python build validates its dicts: each is parsed and checked
    against the FHIR R4 JSON Schema, and each distinct shape with fhir.resources (every resource when the
    validator is strict). Raises :class:`drg_etl.fhir.validate.InvalidResource` (or pydantic's ValidationError) at
    the first invalid one; returns how many were checked.

    The texts are parsed a chunk at a time, with Python's cyclic GC paused (and restored after): a parsed
    resource is a tree of dicts and lists, without cycles, and the collections the parsing would otherwise set
    off scan the chunk's objects again and again (at a thousand a chunk, two thirds of the time).
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        checked = 0
        chunk: list[dict[str, Any]] = []
        for text in texts:
            chunk.append(orjson.loads(text))
            if len(chunk) == VALIDATION_CHUNK:
                validate(chunk)
                checked += len(chunk)
                chunk = []
        if chunk:
            validate(chunk)
            checked += len(chunk)
        return checked
    finally:
        if gc_was_enabled:
            gc.enable()
