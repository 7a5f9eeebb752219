"""Export the FHIR layer as FHIR Bulk Data NDJSON: one file per resource type and a manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from drg_etl.core.errors import UsageError

EXPORT_TYPES = ("Patient", "Organization", "Condition", "Procedure", "Device", "Observation", "AdverseEvent")


def files_url(out: Path, base_url: str | None = None) -> str:
    """The absolute URL the export's files are served under, ending in ``/``: ``base_url`` (http, https or file)
    or, without one, the export folder's own ``file://`` URL."""
    if base_url is None:
        return out.resolve().as_uri() + "/"
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc) \
            or parts.query or parts.fragment:
        raise UsageError(f"--base-url must be an absolute http(s) or file URL without query or fragment: {base_url!r}")
    return base_url if base_url.endswith("/") else base_url + "/"


def export_fhir(con: duckdb.DuckDBPyConnection, out: Path, base_url: str | None = None) -> dict[str, Any]:
    """Write ``<Type>.ndjson`` per resource type and ``manifest.json``; return the manifest.

    The manifest is the Bulk Data Access IG v2's: ``request`` the kick-off URL a server would have answered
    (``[base]/$export?_type=...``, the base being where the files are served), ``output[].url`` the absolute URL
    of each file under ``base_url`` (default the folder's ``file://`` URL). Files are written in id order and
    ``transactionTime`` is the time the deliveries in force were loaded, so exporting the same warehouse twice
    to the same place gives the same bytes.
    """
    base = files_url(out, base_url)
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
        outputs.append({"type": resource_type, "url": base + path.name, "count": count})
    manifest = {
        "transactionTime": loaded.isoformat(timespec="seconds") + "Z",
        "request": f"{base}$export?_type={','.join(EXPORT_TYPES)}",
        "requiresAccessToken": False,
        "output": outputs,
        "error": [],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
