"""Where the package's data lives: the declarative maps and the warehouse SQL.

Both ship inside the package (see ``[tool.setuptools]`` in pyproject.toml: ``mappings/`` is
installed as ``drg_etl/_data/mappings`` and ``warehouse/`` as ``drg_etl/_data/warehouse``), so
a plain ``pip install .`` works from any folder. In a source checkout or an editable install
the top-level folders are used directly.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # drg_etl/ (this file is drg_etl/core/paths.py)
_CHECKOUT = _PACKAGE.parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name
    return installed if installed.is_dir() else _CHECKOUT / name


MAPPINGS_DIR = _data_dir("mappings")
SQL_DIR = _data_dir("warehouse")
