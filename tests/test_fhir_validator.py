"""An independent, profile-aware validator: fhir-package-loader (what SUSHI uses) loads the package's .tgz,
@medplum/core validates the demo export against the R4 base and the profile each resource claims.

Neither shares code with drg-etl (tests/fhir_validator/: a pinned package.json and package-lock.json, and
validate.mjs). CI installs it (`npm ci --prefix tests/fhir_validator`, .ci/run); elsewhere the test installs it
into a throwaway folder, and skips, saying why, where Node.js or npm is missing or the install cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import Loaded

from drg_etl.fhir.export import export_fhir
from drg_etl.fhir.package import profile_url, tarball_name, write_package

VALIDATOR = Path(__file__).resolve().parent / "fhir_validator"
TYPES = {"Patient", "Organization", "Condition", "Procedure", "Device", "Observation", "AdverseEvent"}


def _validator(tmp: Path) -> Path:
    """A folder with validate.mjs and its node_modules: CI's install, or one made now."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the independent FHIR validator needs them")
    if (VALIDATOR / "node_modules").is_dir():
        return VALIDATOR
    for name in ("package.json", "package-lock.json", "validate.mjs"):
        shutil.copy(VALIDATOR / name, tmp / name)
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(tmp)], capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode:
        if os.environ.get("CI"):
            pytest.fail(f"npm ci of the FHIR validator failed: {done.stderr[-2000:]}")
        pytest.skip(f"npm ci of the FHIR validator failed (no registry?): {done.stderr.strip()[-300:]}")
    return tmp


def _broken(export: Path) -> list[dict[str, Any]]:
    """Resources the profiles (or R4) reject, each made from a good one by one change: (id, expected issue)."""
    def first(resource_type: str) -> dict[str, Any]:
        return json.loads((export / f"{resource_type}.ndjson").read_text("utf-8").splitlines()[0])

    no_identifier = first("Patient") | {"id": "no-identifier"}
    del no_identifier["identifier"]
    other_system = first("Patient") | {"id": "other-system"}
    other_system["identifier"] = [{"system": "urn:other", "value": "x"}]
    no_subject = first("Observation") | {"id": "no-subject"}
    del no_subject["subject"]
    wrong_type = first("Patient") | {"id": "wrong-type", "birthDate": 1970}
    no_profile = first("Condition") | {"id": "no-profile", "meta": {"source": "urn:x"}}
    wrong_profile = first("Device") | {"id": "wrong-profile", "meta": {"profile": [profile_url("Patient")]}}
    return [no_identifier, other_system, no_subject, wrong_type, no_profile, wrong_profile]


@pytest.fixture(scope="module")
def report(loaded_demo: Loaded, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    validator = _validator(tmp_path_factory.mktemp("validator"))
    package = tmp_path_factory.mktemp("package")
    write_package(package)
    export = tmp_path_factory.mktemp("export")
    con = duckdb.connect(str(loaded_demo.warehouse), read_only=True)
    export_fhir(con, export)
    con.close()
    broken = tmp_path_factory.mktemp("broken") / "broken.ndjson"
    broken.write_text("".join(json.dumps(r) + "\n" for r in _broken(export)), "utf-8")
    done = subprocess.run(["node", str(validator / "validate.mjs"), str(package / tarball_name()),
                           *map(str, sorted(export.glob("*.ndjson"))), str(broken)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    result["exported"] = sum(len(p.read_text("utf-8").splitlines()) for p in export.glob("*.ndjson"))
    result["indexed"] = len(json.loads((package / "package" / ".index.json").read_text("utf-8"))["files"])
    return result


def test_fhir_package_loader_loads_the_tgz_offline_with_every_indexed_resource_and_no_view(
        report: dict[str, Any]) -> None:
    loaded = report["package"]
    assert loaded["loaded"], report["logs"]
    assert loaded["resources"] == report["indexed"]
    assert "ViewDefinition" not in loaded["resourceTypes"]
    assert loaded["profiles"] == sorted(profile_url(t) for t in TYPES)
    assert loaded["dependencies"] == {"hl7.fhir.r4.core": "4.0.1", "hl7.terminology.r4": "6.5.0"}


def test_medplum_finds_no_error_in_the_demo_export_against_the_profiles(report: dict[str, Any]) -> None:
    errors = [e for e in report["errors"] if e["file"] != "broken.ndjson"]
    assert errors == []
    assert report["validated"] == report["exported"] + 6
    assert set(report["byProfile"]) == {profile_url(t) for t in TYPES}


def test_the_validator_bites_on_broken_resources(report: dict[str, Any]) -> None:
    found = {e["id"]: " ".join(e["issues"]) for e in report["errors"] if e["file"] == "broken.ndjson"}
    assert set(found) == {"no-identifier", "other-system", "no-subject", "wrong-type", "no-profile",
                          "wrong-profile"}, found
    assert "Patient.identifier" in found["no-identifier"] and "Missing required" in found["no-identifier"]
    assert "Patient.identifier.system" in found["other-system"]
    assert "Observation.subject" in found["no-subject"]
    assert "Patient.birthDate" in found["wrong-type"] and "expected string" in found["wrong-type"]
    assert "claims 0 profiles" in found["no-profile"]
    assert "not in the package for Device" in found["wrong-profile"]
