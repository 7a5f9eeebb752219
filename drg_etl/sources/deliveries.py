"""Find deliveries in an inbox and read one, streaming its facts and issues to a sink."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb

from drg_etl.pseudonym import Pseudonymizer
from drg_etl.sources import aauh, auh, ouh, rh
from drg_etl.sources.base import Delivery, FileRejected, Issue, Sink, StagedDelivery
from drg_etl.vocabulary import CENTERS

Reader = Callable[[Delivery, StagedDelivery, Pseudonymizer], None]
READERS: dict[str, Reader] = {"auh": auh.read_auh, "ouh": ouh.read_ouh, "rh": rh.read_rh, "aauh": aauh.read_aauh}
# Set-based steps of a reader that need the whole delivery, run as SQL over its staged facts.
POST_READ: dict[str, Callable[[duckdb.DuckDBPyConnection, str], None]] = {"rh": rh.remove_explanted_generators}


class DeliveryRejected(Exception):
    """A delivery with a file that cannot be read as its format; nothing of it loads."""

    def __init__(self, delivery: Delivery, rejections: list[FileRejected], file_hashes: dict[str, str]) -> None:
        super().__init__("; ".join(str(r) for r in rejections))
        self.delivery, self.rejections, self.file_hashes = delivery, rejections, file_hashes


def expected_files(delivery: Delivery) -> list[str]:
    """The files extracts.md fixes for the delivery's center."""
    return {
        "auh": list(auh.FILES),
        "ouh": [ouh.WORKBOOK],
        "rh": [rh.data_file(delivery), rh.DICTIONARY],
        "aauh": [f"{rt}.ndjson" for rt in aauh.RESOURCE_TYPES],
    }[delivery.center]


def discover(inbox: Path) -> list[Delivery]:
    """Every ``INBOX/<center>/<cutoff>/`` folder, oldest cutoff first; other folders are ignored."""
    found = []
    for center in CENTERS:
        for folder in sorted((inbox / center).glob("*")) if (inbox / center).is_dir() else []:
            try:
                cutoff = dt.date.fromisoformat(folder.name)
            except ValueError:
                continue
            if folder.is_dir():
                found.append(Delivery(center, cutoff, folder))
    return sorted(found, key=lambda d: (d.cutoff, CENTERS.index(d.center)))


def read_delivery(delivery: Delivery, pseudonymize: Pseudonymizer, sink: Sink | None = None) -> StagedDelivery:
    """Read one delivery, streaming its batches to ``sink``; raise DeliveryRejected when a file cannot be read.

    Returns the delivery's per-file counts (the last batch is flushed to the sink).
    """
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
        READERS[delivery.center](delivery, staged, pseudonymize)
    except FileRejected as exc:
        raise DeliveryRejected(delivery, [exc], hashes) from exc
    staged.flush()
    return staged
