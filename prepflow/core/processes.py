"""Child processes that never outlive prepflow."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``),
    so a run killed with SIGKILL leaves no worker or server behind. ``parent``: the pid the
    caller expects as parent; if it is already gone, exit now. Call it first thing in a child
    (or as a ``preexec_fn``); elsewhere than Linux it does nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)
