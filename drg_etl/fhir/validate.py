"""Check resources against the official HL7 FHIR R4 JSON Schema, compiled with jsonschema-rs.

An independent second check beside build.validate (fhir.resources' R4B models). The schema is vendored in
``schema/`` (its README says where it came from). It rejects unknown elements (every resource, datatype and
backbone element has ``additionalProperties: false``), wrong JSON types, primitives that miss their regex
(code, id, uri, date, dateTime, ...), codes outside the enum of a required binding, an unknown ``resourceType``
and missing *complex* elements of cardinality 1.. (e.g. ``Observation.code``). It does not check missing
primitive elements of cardinality 1.. (e.g. ``Observation.status``: the schema leaves them optional because
they may come as ``_status``), that a choice type (``effective[x]``) is used once, that an extension has a url
and exactly one value, empty objects or arrays, FHIR invariants, references, or that a date exists on the
calendar (2019-02-30 passes).

Fast path: one validator compiled from the whole schema, whose root is a ``oneOf`` over all resource types,
answers ``is_valid``. Only for an invalid resource is a validator of its type alone (``#/definitions/<Type>``)
compiled, to name the errors.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema_rs

SCHEMA_PATH = Path(__file__).with_name("schema") / "fhir.schema.json.gz"
MAX_ERRORS = 5
MAX_MESSAGE = 200


class InvalidResource(Exception):
    """A resource that fails the FHIR R4 JSON Schema."""

    def __init__(self, resource_type: str, resource_id: str, errors: list[str]) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.errors = errors
        super().__init__(f"{resource_type}/{resource_id} fails the FHIR R4 schema: " + "; ".join(errors))


@functools.cache
def fhir_schema() -> dict[str, Any]:
    """The vendored FHIR R4 JSON Schema (draft-06), read once.

    The file is the schema of R4's first release, 4.0.0; its only place that names the release
    is the ``fhirVersion`` value list (StructureDefinition, CapabilityStatement, ...), which lacks
    4.0.1, the technical correction Danish systems use (fhir.md). That value is added here; nothing
    else differs in the JSON shape of the two releases.
    """
    with gzip.open(SCHEMA_PATH, "rt", encoding="utf-8") as f:
        schema = json.load(f)
    for node in _nodes(schema):
        values = node.get("enum")
        if isinstance(values, list) and "4.0.0" in values and "4.0.1" not in values:
            values.append("4.0.1")
    return schema


def _nodes(node: Any) -> Iterable[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


@functools.cache
def resource_types() -> tuple[str, ...]:
    """The R4 resource types, in the order of the schema's ``oneOf`` (root and ResourceList alike)."""
    return tuple(branch["$ref"].rsplit("/", 1)[1] for branch in fhir_schema()["oneOf"])


@functools.cache
def _validator() -> jsonschema_rs.Validator:
    """The whole schema, compiled once: the fast ``is_valid`` path."""
    return jsonschema_rs.Draft6Validator(fhir_schema(), offline=True)


@functools.cache
def _type_validator(resource_type: str) -> jsonschema_rs.Validator:
    """One resource type's definition (with all ``definitions``, so $refs resolve), for readable errors."""
    schema = fhir_schema()
    return jsonschema_rs.Draft6Validator({"$schema": schema["$schema"], "id": schema["id"],
                                          "definitions": schema["definitions"],
                                          "$ref": f"#/definitions/{resource_type}"}, offline=True)


def _path(root: str, instance_path: Iterable[str | int]) -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in instance_path)


def _messages(errors: Iterable[jsonschema_rs.ValidationError], root: str) -> Iterator[str]:
    """``<path>: <message>`` per error; a contained resource's ``oneOf`` gives the errors of its own type."""
    types = resource_types()
    for error in errors:
        where = _path(root, error.instance_path)
        kind = error.kind
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.OneOfNotValid) and len(kind.context) == len(types) \
                and isinstance(error.instance, dict):
            inner = error.instance.get("resourceType")
            if isinstance(inner, str) and inner in types:
                yield from _messages(kind.context[types.index(inner)], root)
            else:
                yield f"{where}.resourceType: {inner!r} is not a FHIR R4 resource type"
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
            yield f"{where}: {error.instance!r} is not one of {kind.options!r}"[:MAX_MESSAGE]
        else:
            yield f"{where}: {error.message}"[:MAX_MESSAGE]


def _not_json(value: Any, where: str) -> str | None:
    """The first value JSON has no type for (a date, a set, ...), which jsonschema-rs cannot read."""
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    elif value is None or isinstance(value, str | int | float | Decimal):
        return None
    else:
        return f"{where}: a {type(value).__name__}, not a JSON value"
    return next((found for path, v in items if (found := _not_json(v, path))), None)


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """Readable errors of one resource against the FHIR R4 schema (at most MAX_ERRORS); empty when valid."""
    if not isinstance(resource, dict):
        return [f"resource: a {type(resource).__name__}, not a JSON object"]
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in resource_types():
        return [f"resourceType: {resource_type!r} is not a FHIR R4 resource type"]
    errors: list[str] = []
    try:
        for message in _messages(_type_validator(resource_type).iter_errors(resource), resource_type):
            errors.append(message)
            if len(errors) == MAX_ERRORS:
                break
    except ValueError as exc:  # a value JSON has no type for: jsonschema-rs cannot read it
        errors.append(_not_json(resource, resource_type) or f"{resource_type}: {exc}")
    return errors


def first_error(resource: Any) -> str | None:
    """The first schema error of a resource, or None when it is valid (the fast path first)."""
    try:
        if _validator().is_valid(resource):
            return None
    except ValueError:  # not JSON data
        pass
    errors = schema_errors(resource)
    return errors[0] if errors else "not a valid FHIR R4 resource"


def check_resources(resources: Iterable[dict[str, Any]]) -> int:
    """Check every resource with the fast path; raise InvalidResource at the first invalid one.

    Returns how many resources were checked.
    """
    is_valid = _validator().is_valid
    count = 0
    for resource in resources:
        try:
            valid = is_valid(resource)
        except ValueError:  # not JSON data
            valid = False
        if not valid:
            ident = resource if isinstance(resource, dict) else {}
            raise InvalidResource(str(ident.get("resourceType")), str(ident.get("id")),
                                  schema_errors(resource) or ["invalid against the FHIR R4 schema"])
        count += 1
    return count
