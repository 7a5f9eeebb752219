"""Find deliveries in an inbox and read one, streaming its facts and issues to a sink."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from drg_etl.core.cpr import scrub_cpr
from drg_etl.core.delivery import (
    PULL_FOLDER,
    Delivery,
    DeliveryRejected,
    FileRejected,
    InboxProblem,
    Issue,
    registry_today,
)
from drg_etl.core.errors import interrupted_by
from drg_etl.core.formats import FORMATS
from drg_etl.core.pseudonym import Pseudonymizer
from drg_etl.core.vocabulary import CENTERS

if TYPE_CHECKING:
    from drg_etl.sources.base import Sink, StagedDelivery

FormatReader = Callable[[Delivery, "StagedDelivery", Pseudonymizer], None]


def format_reader(center: str) -> FormatReader:
    """The center's reader; what it reads (files, columns, text) is the center's format (drg_etl.core.formats).
    Imported when a delivery is read: the survey (a load that finds nothing new) needs none of them."""
    from drg_etl.sources import aauh, auh, ouh, rh

    return {"auh": auh.read_auh, "ouh": ouh.read_ouh, "rh": rh.read_rh, "aauh": aauh.read_aauh}[center]


def files_with_records(delivery: Delivery) -> list[str]:
    """The files (or sheets) that must hold records: without them the delivery has no patients or treatments.

    A header-only demographics file would otherwise supersede the center's delivery and
    quarantine every other record as "no demographics". Complications may be none.
    """
    return FORMATS[delivery.center].files_with_records(delivery.cutoff)


def expected_files(delivery: Delivery) -> list[str]:
    """The files extracts.md fixes for the delivery's center."""
    return FORMATS[delivery.center].file_names(delivery.cutoff)


CUTOFF_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _leaves(path: Path, inbox: Path) -> bool:
    """Whether a link leads out of the inbox (a link that cannot be resolved, a loop, counts as leaving)."""
    if not path.is_symlink():
        return False
    try:
        return not path.resolve(strict=True).is_relative_to(inbox.resolve())
    except (OSError, RuntimeError):
        return True


def _check_folder(folder: Path, inbox: Path) -> str | None:
    """Why a delivery folder may not be read (a link out of the inbox), or None."""
    if _leaves(folder, inbox):
        return "the folder is a link that leads out of the inbox; nothing outside the inbox is read"
    for entry in sorted(folder.iterdir()):
        if _leaves(entry, inbox):
            return f"{entry.name} is a link that leads out of the inbox; nothing outside the inbox is read"
    return None


def survey(inbox: Path, today: dt.date | None = None) -> tuple[list[Delivery], list[InboxProblem]]:
    """Every ``INBOX/<center>/<YYYY-MM-DD>/`` delivery, oldest first, and everything else in the inbox with a reason.

    Only the four centers' lower-case folders and real dates are deliveries; a case variant,
    an unknown center, a bad date, a stray file and a link out of the inbox are reported, never
    read and never silently skipped; the pulls' own folder ``.pull`` is passed over. A cutoff after ``today``
    (the day of the load, in Denmark) is a typo,
    not a delivery: loaded, it would become the delivery in force and the observation end.
    """
    today = today or registry_today()
    found, problems = [], []
    try:
        tops = sorted(inbox.iterdir())
    except OSError as exc:
        return [], [InboxProblem(".", f"the inbox cannot be listed: {exc.strerror}")]
    for top in tops:
        where = top.name
        if top.name == PULL_FOLDER and top.is_dir() and not top.is_symlink():
            continue  # the pulls' state and work folders (drg_etl.pull), never a delivery
        if top.name not in CENTERS:
            close = next((c for c in CENTERS if c == top.name.lower()), None)
            hint = f" (center folders are lower case: {close!r})" if close else f" (centers: {', '.join(CENTERS)})"
            problems.append(InboxProblem(where, f"not a center of the registry{hint}"))
            continue
        if not top.is_dir() or _leaves(top, inbox):
            problems.append(InboxProblem(where, "a center must be a folder inside the inbox"))
            continue
        try:
            folders = sorted(top.iterdir())
        except OSError as exc:
            problems.append(InboxProblem(where, f"the folder cannot be listed: {exc.strerror}"))
            continue
        for folder in folders:
            where = f"{top.name}/{folder.name}"
            if not folder.is_dir():
                problems.append(InboxProblem(where, "a file where a delivery folder <YYYY-MM-DD> belongs"))
                continue
            try:
                if not CUTOFF_NAME.match(folder.name):
                    raise ValueError
                cutoff = dt.date.fromisoformat(folder.name)
            except ValueError:
                problems.append(InboxProblem(where, "not a delivery folder: its name must be the cutoff date "
                                                    "YYYY-MM-DD"))
                continue
            if cutoff > today:
                problems.append(InboxProblem(where, f"the cutoff {cutoff} is after today ({today}): a typo in the "
                                                    "folder's name? It was not read", "delivery.in_the_future"))
                continue
            try:
                why = _check_folder(folder, inbox)
            except OSError as exc:
                why = f"the folder cannot be read: {exc.strerror}"
            if why is not None:
                problems.append(InboxProblem(where, why))
                continue
            found.append(Delivery(top.name, cutoff, folder))
    return sorted(found, key=lambda d: (d.cutoff, CENTERS.index(d.center))), problems


def discover(inbox: Path) -> list[Delivery]:
    """The deliveries of :func:`survey` (its problems are reported by the load)."""
    return survey(inbox)[0]


def read_delivery(delivery: Delivery, pseudonymize: Pseudonymizer, sink: Sink | None = None) -> StagedDelivery:
    """Read one delivery, streaming its batches to ``sink``; raise DeliveryRejected when a file cannot be read.

    Returns the delivery's per-file counts (the last batch is flushed to the sink).
    """
    from drg_etl.sources.base import StagedDelivery

    hashes = delivery.file_hashes()
    staged = StagedDelivery(delivery, delivery.content_id(), hashes, sink)
    expected = expected_files(delivery)
    missing = [f for f in expected if f not in hashes]
    if missing:
        raise DeliveryRejected(delivery, [FileRejected(f, "file.missing", "the file is missing") for f in missing],
                               hashes)
    for extra in sorted(set(hashes) - set(expected)):
        staged.issues.append(Issue(delivery.center, delivery.cutoff.isoformat(), extra, 0, None, "file.unexpected",
                                   "a file the format does not define; it was not read"))
    try:
        format_reader(delivery.center)(delivery, staged, pseudonymize)
        staged.flush()
    except Exception as exc:
        if (stop := interrupted_by()) is not None:  # a library turned Ctrl-C or SIGTERM into its own error (DuckDB
            raise stop from exc  # and pyarrow wrap it, with its trace): the load stops, the delivery is not rejected
        if isinstance(exc, FileRejected):
            raise DeliveryRejected(delivery, [exc], hashes) from exc
        # anything else a hostile file provokes: reject this delivery, not the load
        file, row = staged.position
        where = f"at row {row}" if row else "while opening it"
        reason = f"cannot be read {where}: {type(exc).__name__}: {scrub_cpr(str(exc))[:200]}"
        raise DeliveryRejected(delivery, [FileRejected(file or "?", "file.unreadable", reason)], hashes) from exc
    empty = [f for f in files_with_records(delivery) if not staged.count(f).rows_read]
    if empty:
        raise DeliveryRejected(delivery, [FileRejected(f, "file.empty", "the file has no records (only a header); "
                                                       "the format requires records") for f in empty], hashes)
    return staged
