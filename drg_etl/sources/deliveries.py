"""Find deliveries in an inbox and read one into a StagedDelivery with its within-delivery checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from drg_etl.pseudonym import Pseudonymizer
from drg_etl.quality.checks import check_delivery
from drg_etl.sources import aauh, auh, ouh, rh
from drg_etl.sources.base import Delivery, FileRejected, Issue, StagedDelivery
from drg_etl.vocabulary import CENTERS

Reader = Callable[[Delivery, StagedDelivery, Pseudonymizer], None]
READERS: dict[str, Reader] = {"auh": auh.read_auh, "ouh": ouh.read_ouh, "rh": rh.read_rh, "aauh": aauh.read_aauh}


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


def read_delivery(delivery: Delivery, pseudonymize: Pseudonymizer) -> StagedDelivery:
    """Read and check one delivery; raise DeliveryRejected when a file cannot be read as its format."""
    hashes = delivery.file_hashes()
    staged = StagedDelivery(delivery, delivery.content_id(), hashes)
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
    check_delivery(staged)
    return staged
