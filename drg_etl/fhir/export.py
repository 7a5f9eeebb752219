"""Export the FHIR layer as FHIR Bulk Data NDJSON: one file per resource type and a manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

EXPORT_TYPES = ("Patient", "Organization", "Condition", "Procedure", "Device", "Observation", "AdverseEvent")


def export_fhir(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, Any]:
    """Write ``<Type>.ndjson`` per resource type and ``manifest.json``; return the manifest.

    Files are written in id order and the manifest's ``transactionTime`` is the time the
    deliveries in force were loaded, so exporting the same warehouse twice gives the same bytes.
    """
    out.mkdir(parents=True, exist_ok=True)
    loaded = con.execute("select max(loaded_at) from quality.deliveries_in_force").fetchone()[0]
    if loaded is None:
        raise ValueError("the warehouse holds no delivery; load one first")
    outputs = []
    for resource_type in EXPORT_TYPES:
        path = out / f"{resource_type}.ndjson"
        count = 0
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            cursor = con.execute("select resource from fhir.resources where resource_type = ? order by id",
                                 [resource_type])
            while rows := cursor.fetchmany(10_000):
                handle.writelines(f"{resource}\n" for (resource,) in rows)  # stored as compact JSON (orjson)
                count += len(rows)
        outputs.append({"type": resource_type, "url": path.name, "count": count})
    manifest = {
        "transactionTime": loaded.isoformat(timespec="seconds") + "Z",
        "request": "drg-etl export-fhir",
        "requiresAccessToken": False,
        "output": outputs,
        "error": [],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
