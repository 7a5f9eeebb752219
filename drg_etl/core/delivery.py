"""A delivery and what is found in it: the types every floor above shares.

A :class:`Delivery` is one folder ``INBOX/<center>/<cutoff>/``; an :class:`Issue` is a rule broken by
one record; a :class:`FileRejected` is a file that cannot be read as its format, and a
:class:`DeliveryRejected` the delivery it takes down with it; an :class:`InboxProblem` is something
in the inbox that is not a delivery. None of them ever holds a CPR number.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from drg_etl.core.cpr import scrub_cpr
from drg_etl.core.file_hashes import file_sha256
from drg_etl.core.rules import rule

# What a pull (drg_etl.pull, pull.md) writes beside a delivery's files: its record of what was asked and
# received. It is not the center's data: it is no part of the delivery's identity and the reader passes it.
PULL_RECORD = "pull.json"
# The pulls' own folder in the inbox (their state and work folders); the survey passes over it.
PULL_FOLDER = ".pull"

# Deliveries are named by the Danish calendar date of their cutoff (extracts.md), whatever the machine's
# clock zone: a pull names its folder by it, and a load's "today" is the same day.
REGISTRY_ZONE = ZoneInfo("Europe/Copenhagen")


def registry_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in Denmark (at ``now``, an aware time, or this moment): the latest cutoff a delivery may carry."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(REGISTRY_ZONE).date()


class FileRejected(Exception):
    """A file that cannot be read as its format; the whole delivery is rejected, the previous stays."""

    def __init__(self, file: str, rule_id: str, reason: str) -> None:
        reason = scrub_cpr(reason)  # a reason may quote a record (a header-less file): never a CPR number
        file = scrub_cpr(file)
        super().__init__(f"{file}: {reason} [{rule_id}]")
        self.file, self.rule_id, self.reason = file, rule_id, reason


@dataclass(frozen=True)
class Delivery:
    """One delivery folder ``INBOX/<center>/<cutoff>/``."""

    center: str
    cutoff: dt.date
    folder: Path

    @property
    def label(self) -> str:
        """``center/cutoff``, as messages name a delivery."""
        return f"{self.center}/{self.cutoff.isoformat()}"

    def file_hashes(self) -> dict[str, str]:
        """SHA-256 of every file in the folder (once per Delivery object; a file seen before is known by its
        fingerprint, :mod:`drg_etl.core.file_hashes`)."""
        return dict(self._hashes)

    @functools.cached_property
    def _hashes(self) -> dict[str, str]:
        return {p.name: file_sha256(p) for p in sorted(self.folder.iterdir())
                if p.is_file() and p.name != PULL_RECORD}

    def content_id(self) -> str:
        """The delivery's identity: a hash over its center, cutoff and files' contents."""
        digest = hashlib.sha256(f"{self.center}/{self.cutoff}".encode())
        for name, sha in self.file_hashes().items():
            digest.update(f"{name}:{sha}".encode())
        return digest.hexdigest()


@dataclass
class Issue:
    """A rule broken by one record (or one fact of a wide record)."""

    center: str
    delivery: str
    file: str
    row: int
    column: str | None
    rule_id: str
    message: str
    patient_key: str | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        # Messages quote values, files and ids come from the delivery: never a CPR number.
        self.message = scrub_cpr(self.message)
        self.file = scrub_cpr(self.file)
        if self.column is not None:
            self.column = scrub_cpr(self.column)
        if self.resource_id is not None:
            self.resource_id = scrub_cpr(self.resource_id)

    @property
    def severity(self) -> str:
        """``error`` (quarantined) or ``warning`` (loaded, flagged)."""
        return rule(self.rule_id).severity

    def describe(self) -> str:
        """One line naming delivery, file, row, column and rule."""
        where = f"{self.center}/{self.delivery} {self.file} row {self.row}"
        if self.resource_id:
            where += f" (id {self.resource_id})"
        if self.column:
            where += f" column {self.column}"
        return f"{where}: {self.message} [{self.rule_id}, {self.severity}]"


class DeliveryRejected(Exception):
    """A delivery with a file that cannot be read as its format; nothing of it loads."""

    def __init__(self, delivery: Delivery, rejections: list[FileRejected], file_hashes: dict[str, str]) -> None:
        super().__init__("; ".join(str(r) for r in rejections))
        self.delivery, self.rejections, self.file_hashes = delivery, rejections, file_hashes


@dataclass(frozen=True)
class InboxProblem:
    """A folder or file in the inbox that is not a delivery, or a delivery that may not be read, and why."""

    path: str
    reason: str
    rule_id: str = "inbox.not_a_delivery"

    def __post_init__(self) -> None:
        # A folder may be named by a CPR number (a careless export): the report never repeats one.
        object.__setattr__(self, "path", scrub_cpr(self.path))
        object.__setattr__(self, "reason", scrub_cpr(self.reason))
