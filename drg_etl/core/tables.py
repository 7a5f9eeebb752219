"""The warehouse's tables beyond the canonical model, declared once."""

from __future__ import annotations


def fhir_resources_ddl(table: str = "resources") -> str:
    """The table of the FHIR layer (``fhir.resources``, or its successor during a full rebuild)."""
    return f"""create table if not exists fhir.{table} (
        resource_type  varchar not null,
        id             varchar not null,
        patient_id     varchar,        -- the Patient resource's id (the patient's own, for a Patient)
        center         varchar,
        resource       json not null)  -- compact JSON, as the export writes it
        -- no primary key: an index would be rewritten at every checkpoint of a rebuild; the rebuild
        -- checks (resource_type, id) unique itself (drg_etl/fhir/store.py)"""
