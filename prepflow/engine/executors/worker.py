"""The worker side of the executors that run steps in other processes (``local``'s process
pool, ``ray``'s tasks): a step travels as an :data:`OpSpec`, and each process builds its bound,
set-up operators once and keeps them."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from prepflow.core.context import Serving
from prepflow.core.operator import Operator, StepStats
from prepflow.core.processes import die_with_parent
from prepflow.core.registry import registry
from prepflow.engine.compiler import CompiledStep, import_user_modules
from prepflow.engine.context import EngineContext, WorkerContextSpec
from prepflow.engine.steprun import ShardJob, run_sync

OpSpec = tuple[str, str, str, dict, dict, WorkerContextSpec]
"""(fingerprint, module, op name, params, bindings, context) of a step, for a worker."""

_WORKER_OPS: dict[str, Operator] = {}


def op_spec(step: CompiledStep, context: EngineContext) -> OpSpec:
    """What a worker needs to rebuild ``step``'s operator with its context."""
    return (
        step.fingerprint,
        type(step.op).__module__,
        step.op.name,
        step.op.params.model_dump(),
        step.op.bindings,
        context.worker_spec(),
    )


def importable(step: CompiledStep) -> bool:
    """Whether a worker can import the step's operator class: not one defined in ``__main__``
    or inside a function."""
    cls = type(step.op)
    return cls.__module__ != "__main__" and "<locals>" not in cls.__qualname__


def init_worker(imports: list[str], base: str | None, parent: int | None) -> None:
    """Die with the parent when given one (a SIGKILL of the run leaves no worker behind), then
    import the pipeline's user operators."""
    if parent is not None:
        die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    import_user_modules(imports, Path(base) if base else None)


def worker_ops(specs: list[OpSpec], serving: Serving | None = None) -> list[Operator]:
    """Build (once per process) the bound operators of a job from their specs; ``serving``:
    this process's, for LLM steps."""
    ops = []
    for fp, module, name, params, bindings, context in specs:
        op = _WORKER_OPS.get(fp)
        if op is None:
            if module not in sys.modules and not module.startswith("prepflow_user_"):
                __import__(module)  # operators defined outside the registry's entry points
            op = registry.get(name)(**params).bind(bindings)
            op.setup(context.context(_serving_for(op, serving)))
            _WORKER_OPS[fp] = op
        ops.append(op)
    return ops


def _serving_for(op: Operator, serving: Serving | None) -> Serving | None:
    """The run's serving, or its sibling for a step that prefers another embedded model
    (``LazyServing.for_model``)."""
    preferred = getattr(op, "preferred_embedded_model", None)
    return serving.for_model(preferred) if hasattr(serving, "for_model") else serving


def run_job(job: ShardJob, specs: list[OpSpec]) -> list[StepStats]:
    """Run a shard through sync steps in this worker."""
    return run_sync(job, worker_ops(specs))
