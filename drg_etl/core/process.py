"""Worker processes that never outlive the load that started them, and the temporary folders they work in.

A worker (a delivery's reader, a FHIR builder) ties its life to its load's before it imports anything heavy:
the kernel kills it when the load dies (Linux's ``PR_SET_PDEATHSIG``), and a watchdog thread ends it wherever
that is not available. Their folders are named ``drg-etl-read-<load pid>-...``, so a later load removes
those a killed load left behind (:func:`drg_etl.pipeline.parallel.prefetched`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
LOAD_PID_VARIABLE = "DRG_ETL_LOAD_PID"
FOLDER_PREFIX = "drg-etl-read-"  # + the load's pid: a later load knows whether the folder's load still lives


def die_with_parent() -> None:
    """Tie this process's life to its parent's (set first: the parent may die while we still import)."""
    # The load's pid, as the load passed it: a load killed before this line runs has already left us with
    # another parent, which os.getppid() alone would take for ours.
    parent = int(os.environ.get(LOAD_PID_VARIABLE) or os.getppid())
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
