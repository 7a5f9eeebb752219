"""Shared fixtures: generated inboxes (default, --clean, another seed) with their truth."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drg_etl.synth.generate import DEFAULT_SEED, GenerateResult, generate

CUTOFF = "2019-12-31"


@dataclass
class Generated:
    """An inbox the generator wrote, with its truth."""

    inbox: Path
    truth: dict[str, Any]
    result: GenerateResult

    def folder(self, center: str) -> Path:
        """The center's delivery folder."""
        return self.inbox / center / CUTOFF

    def persons_at(self, center: str) -> list[dict[str, Any]]:
        """Truth persons with records at a center."""
        return [p for p in self.truth["patients"] if center in p["centers"]]

    def defects_in(self, file: str) -> list[dict[str, Any]]:
        """Injected defects listed for a file (or sheet)."""
        return [d for d in self.truth["defects"] if d["file"] == file]

    def defect_rows(self, file: str) -> set[int]:
        """Row numbers of the injected defects of a file."""
        return {d["row"] for d in self.defects_in(file)}


def _generate(base: Path, **kwargs: Any) -> Generated:
    inbox, truth = base / "inbox", base / "truth.json"
    result = generate(inbox, truth=truth, **kwargs)
    return Generated(inbox, json.loads(truth.read_text(encoding="utf-8")), result)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo cohort, default seed, with defects."""
    return _generate(tmp_path_factory.mktemp("demo"), seed=DEFAULT_SEED)


@pytest.fixture(scope="session")
def demo_clean(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo cohort, default seed, --clean."""
    return _generate(tmp_path_factory.mktemp("clean"), seed=DEFAULT_SEED, clean=True)


@pytest.fixture(scope="session")
def other_seed(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo design under another seed."""
    return _generate(tmp_path_factory.mktemp("seed7"), seed=7)


@pytest.fixture(scope="session")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """A scaled cohort of 300 trial patients (seven blocks, the last one cut short)."""
    return _generate(tmp_path_factory.mktemp("scaled"), seed=11, patients=300)


TEST_KEY = b"5f0c3e9a7d1b42c8e6a09f3b71d4c2e85a6f1039bd7e24c6f8a5b3d0e19c7a42"  # hex, as cli.md asks


@dataclass
class Loaded:
    """A generated inbox loaded into a warehouse."""

    gen: Generated
    warehouse: Path
    report: Any


def _load(gen: Generated, base: Path) -> Loaded:
    from drg_etl.pipeline.load import load_inbox

    path = base / "warehouse.duckdb"
    return Loaded(gen, path, load_inbox(gen.inbox, path, TEST_KEY))


@pytest.fixture(scope="session")
def loaded_demo(demo: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The demo inbox (with defects) loaded."""
    return _load(demo, tmp_path_factory.mktemp("wh_demo"))


@pytest.fixture(scope="session")
def loaded_clean(demo_clean: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The --clean demo inbox loaded."""
    return _load(demo_clean, tmp_path_factory.mktemp("wh_clean"))


@pytest.fixture(scope="session")
def loaded_other_seed(other_seed: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """Another seed's inbox loaded."""
    return _load(other_seed, tmp_path_factory.mktemp("wh_seed7"))


@pytest.fixture(scope="session")
def seed13(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo design under a third seed."""
    return _generate(tmp_path_factory.mktemp("seed13"), seed=13)


@pytest.fixture(scope="session")
def loaded_seed13(seed13: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The third seed loaded."""
    return _load(seed13, tmp_path_factory.mktemp("wh_seed13"))


@pytest.fixture(scope="session")
def loaded_2000(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """A cohort of 2,000 trial patients, generated with defects and loaded."""
    base = tmp_path_factory.mktemp("p2000")
    return _load(_generate(base, seed=5, patients=2000), base)


@pytest.fixture()
def clean_warehouse(demo_clean: Generated, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the clean inbox, loaded into a fresh warehouse."""
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    path = tmp_path / "wh.duckdb"
    from drg_etl.pipeline.load import load_inbox

    load_inbox(inbox, path, TEST_KEY)
    return inbox, path
