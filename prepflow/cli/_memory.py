"""The memory allocators of the processes the CLI runs: itself and the worker processes it
spawns (which inherit the environment), unless the user has chosen otherwise.

- Arrow on the system allocator: with jemalloc, Arrow's default on Linux, freed pages stay in
  its arenas (text-pretrain-clean peaked 80 MB higher at the same speed).
- At most :data:`MALLOC_ARENAS` glibc arenas: each thread that allocates otherwise gets arenas
  of its own, whose freed memory cannot serve the others (the same run peaked 50 MB higher with
  two worker threads, at the same speed). See benchmarks/README.md, "Text cleaning speed".
"""

from __future__ import annotations

import ctypes
import os

ARROW_POOL = ("ARROW_DEFAULT_MEMORY_POOL", "system")
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def tune_allocators() -> None:
    """Set both, before pyarrow is imported and before any thread starts."""
    os.environ.setdefault(*ARROW_POOL)
    if "MALLOC_ARENA_MAX" in os.environ:
        return  # the user's choice, already read by glibc at start-up
    os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)  # for the processes it spawns
    if _glibc():  # this process read the variable at start-up, before it was set
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def _glibc() -> bool:
    # os.confstr is instant; ctypes.util.find_library would run ldconfig (0.1-0.2 s)
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False
