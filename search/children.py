"""Child processes that must not outlive the ytnotes process that started them."""

from __future__ import annotations

import os
import signal
import sys


def end_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent ends, even by SIGKILL (Linux; elsewhere
    nothing). Exits at once when the parent (pid ``parent``) has already ended."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)
