"""A second executor, as plain as possible: one step at a time over every shard, in this thread.

It exists to prove the executor interface (tests run every shipped pipeline on it and on
``local`` and compare the outputs byte for byte) and the global protocol: it summarizes shards
in reverse order, so a global step's decisions visibly do not depend on arrival order. Register
it with ``prepflow.engine.executors.register(SerialExecutor)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prepflow.engine.compiler import CompiledStep
from prepflow.engine.executors.base import Executor
from prepflow.engine.steprun import aapply, apply, stats_of


class SerialExecutor(Executor):
    name = "serial"

    def prepare(self) -> None:
        """Nothing to take: everything runs in the calling thread."""

    async def execute(self) -> None:
        shards = list(self.ingest())
        for step in self.plan.steps:
            if step.op.is_global:
                if not self.global_is_done(step):
                    self.run_global(step, _reversed)
                continue
            for shard in shards:
                await self._run(step, shard)

    async def _run(self, step: CompiledStep, shard: int) -> None:
        if self.done(step.index, step.fingerprint, step.dirname, shard):
            self.resumed(step.index, shard)
            return
        batch = self.store.read_shard(self.input_dir(step.index), shard)
        op = self.op(step)
        t0 = time.perf_counter()
        result = await aapply(op, batch) if op.is_async else apply(op, batch)
        stats = stats_of(op, batch.num_rows, result, time.perf_counter() - t0)
        self.store.write_result(step.dirname, shard, result)
        self.commit(step.index, step.fingerprint, shard, stats)


def _reversed(summarize: Callable[[int], Any], shards: Iterable[int]) -> list[Any]:
    return [summarize(k) for k in reversed(list(shards))]
