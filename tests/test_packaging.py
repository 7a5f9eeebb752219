"""The wheel carries the maps, the SQL and the FHIR schema, and an installed (not editable) copy runs the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# What a build leaves in the source tree, and what is no source: the wheel is built from a copy without them,
# so that setuptools' build/ and *.egg-info/ land in the copy, not in the checkout.
NOT_SOURCE = shutil.ignore_patterns(".git", ".*cache", ".hypothesis", ".venv", ".ci-venv", "build", "dist",
                                    "*.egg-info", "__pycache__", "*.duckdb", "*.duckdb.*")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the checkout, built from a copy of it."""
    source = tmp_path_factory.mktemp("source") / "drg-etl"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True)
    return next(out.glob("drg_etl-*.whl"))


def test_the_wheel_holds_the_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, suffix in (("mappings", (".yaml", ".json")), ("warehouse", (".sql", ".json"))):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in suffix:
                assert f"drg_etl/_data/{path.relative_to(ROOT).as_posix()}" in names, path
    assert {"drg_etl/fhir/schema/fhir.schema.json.gz", "drg_etl/report/page.html.j2"} <= names
    assert {"drg_etl/synth/demo_cohort.yaml", "drg_etl/reference/horan2021.yaml",
            "dagster_project/definitions.py", "dagster_project/dagster.yaml"} <= names
    for package in ROOT.joinpath("drg_etl").rglob("__init__.py"):
        assert package.relative_to(ROOT).as_posix() in names, f"{package.parent} is not packaged"


def test_the_installed_wheel_runs_the_demo_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    show = "import drg_etl.core.paths as p; print(p.SQL_DIR); print(p.MAPPINGS_DIR)"
    where = subprocess.run([sys.executable, "-c", show],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(w).is_relative_to(target) for w in where), where
    done = subprocess.run([sys.executable, "-m", "drg_etl.cli", "demo", "--workdir", str(work / "demo")],
                          cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "21 of 21 published figures reproduced" in done.stdout
    assert (work / "demo" / "fhir" / "manifest.json").exists()
