"""Shared fixtures: generated inboxes (default, --clean, other seeds) with their truth, and their warehouses.

The helpers the fixtures are built from, and that test modules import, are in helpers.py; test modules never
import this file. The tests stay out of the checkout: Hypothesis keeps its examples outside it, and
test_checkout_untouched.py runs last, against the checkout's state before the first test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import TEST_KEY, CheckoutState, Generated, Loaded, Tiny, checkout_state, generate_inbox, load_generated

from drg_etl.synth.generate import DEFAULT_SEED

# Hypothesis keeps its example database and caches in .hypothesis/ under the working folder, the checkout,
# unless told otherwise (read at its first use of them, after this).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "drg-etl-hypothesis"))

CHECKOUT_MODULE = "test_checkout_untouched.py"
CHECKOUT_BEFORE = pytest.StashKey[CheckoutState | None]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """When the checkout test is collected: note the checkout's state now, before any test runs, and run the
    checkout test after every other."""
    last = [item for item in items if item.path.name == CHECKOUT_MODULE]
    if last:
        config.stash[CHECKOUT_BEFORE] = checkout_state()
        items[:] = [item for item in items if item.path.name != CHECKOUT_MODULE] + last


@pytest.fixture(scope="session")
def checkout_before(request: pytest.FixtureRequest) -> CheckoutState | None:
    """The checkout's changed and untracked files before the first test (None: git cannot tell)."""
    return request.config.stash.get(CHECKOUT_BEFORE, None)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo cohort, default seed, with defects."""
    return generate_inbox(tmp_path_factory.mktemp("demo"), seed=DEFAULT_SEED)


@pytest.fixture(scope="session")
def demo_clean(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo cohort, default seed, --clean."""
    return generate_inbox(tmp_path_factory.mktemp("clean"), seed=DEFAULT_SEED, clean=True)


@pytest.fixture(scope="session")
def other_seed(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo design under another seed."""
    return generate_inbox(tmp_path_factory.mktemp("seed7"), seed=7)


@pytest.fixture(scope="session")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """A scaled cohort of 300 trial patients (seven blocks, the last one cut short)."""
    return generate_inbox(tmp_path_factory.mktemp("scaled"), seed=11, patients=300)


@pytest.fixture(scope="session")
def loaded_demo(demo: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The demo inbox (with defects) loaded."""
    return load_generated(demo, tmp_path_factory.mktemp("wh_demo"))


@pytest.fixture(scope="session")
def loaded_clean(demo_clean: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The --clean demo inbox loaded."""
    return load_generated(demo_clean, tmp_path_factory.mktemp("wh_clean"))


@pytest.fixture(scope="session")
def loaded_other_seed(other_seed: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """Another seed's inbox loaded."""
    return load_generated(other_seed, tmp_path_factory.mktemp("wh_seed7"))


@pytest.fixture(scope="session")
def seed13(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The demo design under a third seed."""
    return generate_inbox(tmp_path_factory.mktemp("seed13"), seed=13)


@pytest.fixture(scope="session")
def loaded_seed13(seed13: Generated, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The third seed loaded."""
    return load_generated(seed13, tmp_path_factory.mktemp("wh_seed13"))


@pytest.fixture(scope="session")
def loaded_2000(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """A cohort of 2,000 trial patients, generated with defects and loaded."""
    base = tmp_path_factory.mktemp("p2000")
    return load_generated(generate_inbox(base, seed=5, patients=2000), base)


@pytest.fixture()
def clean_warehouse(demo_clean: Generated, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the clean inbox, loaded into a fresh warehouse."""
    from drg_etl.pipeline.load import load_inbox

    inbox = tmp_path / "inbox"
    shutil.copytree(demo_clean.inbox, inbox)
    path = tmp_path / "wh.duckdb"
    load_inbox(inbox, path, TEST_KEY)
    return inbox, path


@pytest.fixture()
def tiny(tmp_path: Path) -> Tiny:
    """An empty warehouse to build by hand."""
    return Tiny(tmp_path / "tiny.duckdb")
