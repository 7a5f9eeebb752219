"""FHIR resources as the store keeps them: the validator every built resource passes, and the rows and files of
rows the store inserts.

Every resource is checked against the R4 JSON Schema; each distinct resource shape, and every coded concept, is
also validated once with fhir.resources (every resource when ``strict``). The load's process (small builds) and
the FHIR workers (:mod:`drg_etl.fhir.worker`) build resources with the same SQL (:mod:`drg_etl.fhir.sql_build`),
so a resource is the same bytes whichever built it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fhir.resources.R4B import get_fhir_model_class

from drg_etl.fhir.terminology import all_codeables
from drg_etl.fhir.validate import check_resources

Row = tuple[str, str, str | None, str | None, str]
ROW_COLUMNS = ["resource_type", "id", "patient_id", "center", "resource"]


def _shape(resource: dict[str, Any]) -> tuple:
    return resource["resourceType"], tuple(resource), tuple(e["url"] for e in resource.get("extension", ()))


@functools.cache
def _codeables_validated() -> int:
    """Validate every coded concept of the terminology map once with fhir.resources."""
    model = get_fhir_model_class("CodeableConcept")
    for concept in all_codeables():
        model.model_validate(concept)
    return len(all_codeables())


class Validator:
    """Every resource against the R4 JSON Schema; fhir.resources per shape (or per resource if strict)."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.shapes: set[tuple] = set()

    def __call__(self, resources: list[dict[str, Any]]) -> None:
        check_resources(resources)
        _codeables_validated()
        for resource in resources:
            if self.strict or (shape := _shape(resource)) not in self.shapes:
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                if not self.strict:
                    self.shapes.add(shape)


def row_of(resource: dict[str, Any]) -> Row:
    """A resource as ``fhir.resources`` stores it: type, id, patient, center, and its compact JSON (orjson)."""
    reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    patient = resource["id"] if resource["resourceType"] == "Patient" else (
        reference.split("/")[1] if reference else None)
    tags = resource.get("meta", {}).get("tag", [])
    return (resource["resourceType"], resource["id"], patient, tags[0]["code"] if tags else None,
            orjson.dumps(resource).decode())


def write_table(path: Path, table: pa.Table) -> None:
    """A worker's rows as a Parquet file, for :data:`READ_ROWS`: uncompressed (it lives for a moment on local disk,
    and compressing it would cost the worker more than reading it costs the load), the JSON texts plain."""
    pq.write_table(table, path, compression="none", use_dictionary=["resource_type", "center"])


# The rows of a file write_table wrote, as fhir.resources takes them; the path is a parameter, never in the text.
READ_ROWS = "select resource_type, id, patient_id, center, resource::json as resource from read_parquet($path)"


def rows_frame(rows: list[Row]) -> pd.DataFrame:
    """Rows as the frame DuckDB inserts from."""
    return pd.DataFrame.from_records(rows, columns=ROW_COLUMNS)
