"""Store the FHIR layer in the warehouse: rebuild fhir.resources from the deliveries in force."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from drg_etl.fhir.build import build_resources, validate
from drg_etl.paths import SQL_DIR

BATCH = 20_000


def refresh_fhir(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild the FHIR layer in one transaction; return the count per resource type."""
    counts: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        con.execute("delete from fhir.resources")
        batch: list[tuple[str, str, str | None, str | None, str]] = []
        for resource in build_resources(con):
            validate(resource)
            patient = (resource.get("subject") or resource.get("patient") or {}).get("reference")
            if resource["resourceType"] == "Patient":
                patient = f"Patient/{resource['id']}"
            center = next((t["code"] for t in resource.get("meta", {}).get("tag", [])), None)
            batch.append((resource["resourceType"], resource["id"], patient.split("/")[1] if patient else None,
                          center, json.dumps(resource, ensure_ascii=False)))
            counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
            if len(batch) >= BATCH:
                _insert(con, batch)
                batch = []
        _insert(con, batch)
        con.execute((SQL_DIR / "fhir_views.sql").read_text(encoding="utf-8"))
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return counts


def _insert(con: duckdb.DuckDBPyConnection, batch: list[tuple[str, str, str | None, str | None, str]]) -> None:
    if not batch:
        return
    frame = pd.DataFrame(batch, columns=["resource_type", "id", "patient_id", "center", "resource"])
    con.register("incoming", frame)
    con.execute("insert into fhir.resources select resource_type, id, patient_id, center, resource::json "
                "from incoming")
    con.unregister("incoming")
