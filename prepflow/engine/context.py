"""The engine's run context: what operators get in ``setup(ctx)`` (see prepflow.core.context).

One :class:`EngineContext` per step: the scratch directory is the step's own (named by the run
store, created on first use). Worker processes rebuild theirs from a :class:`WorkerContextSpec`
(no serving there: LLM steps run on the main event loop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from prepflow.core.context import Database, Sandbox, Serving
from prepflow.core.errors import ConfigError
from prepflow.data.readers import open_input

log = logging.getLogger("prepflow")


class RunResources:
    """What a run opens once per process and its steps share, on first use, and closes when the
    run ends: databases (read-only, cached by source) and the sandbox (its workers start only
    when a step runs code), opened with the pipeline's ``settings: {sandbox: {strict, workers}}``."""

    def __init__(self, sandbox_settings: dict[str, Any] | None = None) -> None:
        settings = sandbox_settings or {}
        if not isinstance(settings, dict):
            raise ConfigError("settings.sandbox must be a mapping, e.g. {strict: true}")
        if unknown := set(settings) - {"strict", "workers"}:
            raise ConfigError(
                f"settings.sandbox: unknown key(s) {sorted(unknown)} (allowed: strict, workers)"
            )
        self._sandbox_settings = settings
        self._sandbox: Any = None
        self._databases: dict[tuple[str, str | None], Database] = {}
        self._lock = threading.Lock()

    @property
    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                from prepflow.sandbox import open_sandbox  # most runs never need it

                self._sandbox = open_sandbox(**self._sandbox_settings)
            return self._sandbox

    def database(self, source: str, db_id: str | None = None) -> Database:
        key = (str(source), db_id)
        with self._lock:
            if key not in self._databases:
                from prepflow.sandbox.sql import open_database  # SQL steps only

                self._databases[key] = open_database(source, db_id)
            return self._databases[key]

    def close(self) -> None:
        with self._lock:
            for db in self._databases.values():
                db.close()
            self._databases.clear()
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None


#: Worker processes share one set of resources per process, closed when the process exits.
_WORKER_RESOURCES = RunResources()


@dataclass(frozen=True)
class WorkerContextSpec:
    """What a worker process needs to rebuild a step's context (picklable)."""

    scratch: Path
    seed: int

    def context(self, serving: Serving | None = None) -> EngineContext:
        """The step's context in this process; ``serving``: the process's own, for a worker
        that runs LLM steps (a cluster's)."""
        return EngineContext(
            scratch=self.scratch, seed=self.seed, serving=serving, resources=_WORKER_RESOURCES
        )


class EngineContext:
    """Satisfies :class:`prepflow.core.context.RunContext` for one step of a run."""

    def __init__(
        self,
        *,
        scratch: Path,
        seed: int = 0,
        serving: Serving | None = None,
        resources: RunResources | None = None,
    ) -> None:
        self._scratch = scratch
        self._seed = seed
        self._serving = serving
        self._resources = resources or RunResources()

    def worker_spec(self) -> WorkerContextSpec:
        return WorkerContextSpec(self._scratch, self._seed)

    @property
    def serving(self) -> Serving:
        if self._serving is None:
            raise ConfigError(
                "this step needs an LLM: add a 'serving:' section to the pipeline "
                "(LLM steps run in the main process)"
            )
        return self._serving

    @property
    def sandbox(self) -> Sandbox:
        """Opened on first use (``prepflow.sandbox.open_sandbox``), shared by the run's steps."""
        return self._resources.sandbox

    def database(self, source: str, db_id: str | None = None) -> Database:
        """Opened read-only on first use (``prepflow.sandbox.sql.open_database``), shared by
        the steps of this process, closed when the run ends."""
        return self._resources.database(source, db_id)

    def side_input(self, source: str, *, batch_rows: int = 65536) -> Iterator[pa.Table]:
        return open_input(source).iter_batches(batch_rows)

    @property
    def scratch_dir(self) -> Path:
        self._scratch.mkdir(parents=True, exist_ok=True)
        return self._scratch

    @property
    def logger(self) -> logging.Logger:
        return log

    @property
    def seed(self) -> int:
        return self._seed
