"""``--profile``: every unit a profiled session computes runs under :mod:`cProfile`, and the
run store keeps its statistics (``profile/<step>/shard-N-<pass>.pstats``, readable by
``python -m pstats`` or snakeviz; :func:`prepflow.engine.report.profile_markdown` sums them up).

One profiler runs at a time in a process (from Python 3.12 profilers cannot overlap), so shards
that share a process take turns while profiled: a profile finds the slow step and the slow
function in it; time the run itself without ``--profile``.
"""

from __future__ import annotations

import marshal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prepflow.data.runstore import ShardWriter

_ONE_AT_A_TIME = threading.Lock()


@contextmanager
def profiled(writer: ShardWriter | None, step_dir: str, shard: int, part: str) -> Iterator[None]:
    """Run the body under cProfile and keep its statistics as (step, shard, part); with no
    ``writer`` (an unprofiled session) just run it."""
    if writer is None:
        yield
        return
    import cProfile  # an unprofiled session never loads the profiler

    with _ONE_AT_A_TIME:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
        profiler.create_stats()
        stats: dict[Any, Any] = profiler.stats  # type: ignore[attr-defined]
        writer.write_profile(step_dir, shard, part, marshal.dumps(stats))
