"""What a pull keeps between runs, under ``INBOX/.pull/`` (the survey passes over it): written atomically.

Per center one JSON file: the watermark of the last successful pull, the delivery it wrote (cutoff and
file hashes, so an incremental pull knows its base is intact), and an unfinished job to resume. Never a
token, key or assertion. A lock file per center keeps two pulls of one center from running together.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import filelock

from drg_etl.core.delivery import PULL_FOLDER
from drg_etl.pull.http import PullError


@dataclass
class PullState:
    """A center's pull state: the last delivery a pull wrote and the job it left unfinished."""

    center: str
    watermark: str | None = None  # the last successful pull's snapshot time (server's, ISO 8601)
    cutoff: str | None = None  # the last delivery the pull wrote
    files: dict[str, str] = field(default_factory=dict)  # its files' SHA-256
    source: dict[str, Any] = field(default_factory=dict)  # what the base snapshot depends on (source URL, ...)
    job: dict[str, Any] | None = None  # an unfinished Bulk export: status URL, the request, _since

    @staticmethod
    def path(inbox: Path, center: str) -> Path:
        """Where the center's state lives."""
        return inbox / PULL_FOLDER / f"{center}.json"

    @classmethod
    def load(cls, inbox: Path, center: str) -> PullState:
        """The center's state, or a fresh one; a state file that cannot be read is named."""
        path = cls.path(inbox, center)
        if not path.exists():
            return cls(center)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError) as exc:
            raise PullError(f"{path}: the pull state cannot be read ({exc}); remove it to pull in full") from exc

    def save(self, inbox: Path) -> None:
        """Write the state atomically (a temporary file renamed over the old one)."""
        path = self.path(inbox, self.center)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{self.center}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(asdict(self), out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def base_folder(self, inbox: Path) -> Path | None:
        """The last pulled delivery when it is still in the inbox, unchanged: the base of an incremental pull."""
        if not self.cutoff or not self.files:
            return None
        from drg_etl.core.file_hashes import sha256_file

        folder = inbox / self.center / self.cutoff
        try:
            intact = all(sha256_file(folder / name) == sha for name, sha in self.files.items())
        except OSError:
            return None
        return folder if intact else None


@contextmanager
def pull_lock(inbox: Path, center: str) -> Iterator[Path]:
    """Hold the center's pull lock and give a fresh work folder beside the inbox's center folders.

    A second pull of the same center fails at once (exit 2). Work folders a killed pull left are removed.
    """
    root = inbox / PULL_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(root / f"{center}.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout as exc:
        raise PullError(f"another pull of {center} into {inbox} is running; try again when it is done") from exc
    try:
        for stale in root.glob(f"work-{center}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(dir=root, prefix=f"work-{center}-"))
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        lock.release()
