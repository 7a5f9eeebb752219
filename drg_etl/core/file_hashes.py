"""SHA-256 of a delivery's files, remembered by each file's fingerprint so that a file is read once, not per load.

A delivery is known by the hash of its files' contents; a load that finds nothing new would otherwise read every
delivery of the inbox again (2.2 GiB at a million patients). A file's fingerprint is its resolved path, size,
modification and change times (nanoseconds), inode and device: any write to a file changes its change time (which
no tool can set back), and a copy or a move to another file system is another inode or device. Like git's index,
a hash is remembered only for a file that had settled (not written for :data:`SETTLED_NS`) when it was hashed, so a
file still being written is always hashed again. The warehouse keeps the fingerprints (``quality.file_hashes``),
written by a load that writes; a load first takes them from there (:func:`remember`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

Fingerprint = tuple[str, int, int, int, int, int]  # path, size, mtime_ns, ctime_ns, inode, device
SETTLED_NS = 2_000_000_000  # a file written within this long before it was hashed may still change in the same tick
_KNOWN: dict[Fingerprint, str] = {}


def sha256_file(path: Path) -> str:
    """The file's SHA-256, hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: Path, status: os.stat_result) -> Fingerprint:
    """What identifies a file's content without reading it (see the module's docstring)."""
    return (str(path.resolve()), status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino,
            status.st_dev)


def file_sha256(path: Path) -> str:
    """The file's SHA-256: remembered by its fingerprint, else read (and remembered if the file had settled)."""
    status = path.stat()
    key = fingerprint(path, status)
    known = _KNOWN.get(key)
    if known is not None:
        return known
    sha = sha256_file(path)
    if time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) >= SETTLED_NS:
        _KNOWN[key] = sha
    return sha


def remember(entries: Iterable[tuple[str, int, int, int, int, int, str]]) -> None:
    """Take known hashes (fingerprint fields, then the hash), as :func:`remembered` gives them."""
    for *key, sha in entries:
        _KNOWN[tuple(key)] = sha  # type: ignore[index]


def remembered() -> list[tuple[str, int, int, int, int, int, str]]:
    """Every hash this process knows, with its fingerprint."""
    return [(*key, sha) for key, sha in _KNOWN.items()]


def forget() -> None:
    """Forget every remembered hash (a test, or a process that must read every file again)."""
    _KNOWN.clear()
