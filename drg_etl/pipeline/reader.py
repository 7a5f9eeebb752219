"""A reading worker's process: tied to its load before anything heavy is imported, then it reads one delivery.

``python -m drg_etl.pipeline.reader FOLDER CENTER CUTOFF OUT`` (started by :mod:`drg_etl.pipeline.parallel`;
the key comes in the environment). A worker never outlives its load: the kernel kills it when the load
dies (Linux's ``PR_SET_PDEATHSIG``), and a watchdog thread ends it wherever that is not available.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def die_with_parent() -> None:
    """Tie this process's life to its parent's (set first: the parent may die while we still import)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the tie was made
        os._exit(3)


if __name__ == "__main__":
    die_with_parent()
    from drg_etl.pipeline.parallel import worker_main

    worker_main(sys.argv[1:])
