"""The sandbox operators and tools use: a pool of pre-started workers behind ``run_python`` and
``run_command`` (the :class:`~prepflow.core.context.Sandbox` protocol)."""

from __future__ import annotations

import base64
import logging
import math
import os
import queue
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import PurePosixPath
from typing import Any

from prepflow.core.context import ExecResult, ExecStatus, Limits
from prepflow.sandbox import isolation
from prepflow.sandbox.worker import SandboxError, SandboxUnavailable, Worker

log = logging.getLogger("prepflow.sandbox")

#: Environment every program gets (besides what the caller passes): nothing from the host.
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/scratch",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class ProcessSandbox:
    """Runs untrusted programs in isolated, limited processes (see ``docs/concepts/sandbox.md``).

    ``workers`` fork servers are started at once, in the background; each execution takes an
    idle one, so up to ``workers`` programs run at the same time (call from several threads).
    Every execution gets a fresh process forked from a clean server, in new namespaces, with
    its own scratch directory: none sees another's files, processes or memory. Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        strict: bool = False,
        limits: Limits | None = None,
        workers: int | None = None,
        python: str | None = None,
        namespaces: bool = True,
    ) -> None:
        self.limits = _checked(limits or Limits())
        self.workers = max(1, workers or min(4, os.cpu_count() or 1))
        self.strict = strict
        self._python = python
        self._namespaces = namespaces
        self._lock = threading.Lock()
        self._all: list[Worker] = []
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._closed = False
        self._plan = isolation.plan(python, namespaces=namespaces)
        first = self._first_worker()
        if missing := self.missing:
            text = _missing_text(missing)
            if strict:
                first.close()
                self._cleanup_plan()
                self._closed = True
                raise SandboxUnavailable(
                    f"sandbox: strict mode refuses to run without every protection ({text})"
                )
            log.warning("SANDBOX IS WEAKER THAN REQUESTED: missing protections: %s", text)
        self._all.append(first)
        self._idle.put(first)
        for _ in range(self.workers - 1):
            self._idle.put(self._spawn())

    def _first_worker(self) -> Worker:
        """Start one worker and wait for it: bubblewrap may be installed yet unusable (user
        namespaces switched off), and then the rlimit-only fallback is used."""
        try:
            worker = Worker(self._plan)
            worker.ready()
            return worker
        except SandboxError as e:
            if not self._plan.namespaces:
                raise
            python = os.path.realpath(self._python or isolation.default_python())
            self._plan = isolation.fallback_plan(python, f"bubblewrap could not start: {e}")
        worker = Worker(self._plan)
        worker.ready()
        return worker

    # ---- what is protected ------------------------------------------------------------------

    @property
    def protections(self) -> tuple[str, ...]:
        return self._plan.protections

    @property
    def missing(self) -> dict[str, str]:
        return dict(self._plan.missing)

    @property
    def namespaces(self) -> bool:
        return self._plan.namespaces

    def worker_pids(self) -> list[int]:
        """Host pids of the workers' top processes (for checks and tests)."""
        with self._lock:
            return [w.proc.pid for w in self._all if w.alive]

    # ---- the Sandbox protocol ---------------------------------------------------------------

    def run_python(
        self,
        code: str,
        *,
        stdin: str = "",
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        """Run ``code`` as ``main.py`` (``__main__``) in the scratch directory, its working
        directory, in a process forked from a clean interpreter."""
        files = dict(files or {})
        if "main.py" in files:
            raise ValueError("files: 'main.py' is the program itself; give it another name")
        return self._run({"kind": "python", "code": code}, stdin, files, env, limits)

    def run_command(
        self,
        argv: Sequence[str],
        *,
        stdin: str = "",
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        """Run a command (looked up on the sandbox's PATH) in the scratch directory."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty sequence of strings")
        return self._run({"kind": "command", "argv": list(argv)}, stdin, files, env, limits)

    # ---- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every worker (idle or not) and remove the scratch root of the fallback."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._all)
        for w in workers:
            w.close()
        self._cleanup_plan()

    def __enter__(self) -> ProcessSandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    # ---- internals --------------------------------------------------------------------------

    def _run(
        self,
        req: dict[str, Any],
        stdin: str,
        files: Mapping[str, str | bytes] | None,
        env: Mapping[str, str] | None,
        limits: Limits | None,
    ) -> ExecResult:
        limits = _checked(limits or self.limits)
        req["limits"] = asdict(limits)
        req["stdin"] = base64.b64encode(stdin.encode()).decode()
        req["files"] = _encoded_files(files or {})
        req["env"] = {**BASE_ENV, **_checked_env(env or {})}
        worker = self._take()
        try:
            report = worker.request(req, limits.wall_s + isolation_grace(limits))
        except SandboxError:
            self._replace(worker)
            raise
        self._give_back(worker)
        if "setup_error" in report:
            raise SandboxError(f"sandbox setup failed: {report['setup_error']}")
        return ExecResult(
            status=ExecStatus(report["status"]),
            exit_code=report["exit_code"],
            stdout=base64.b64decode(report["stdout"]).decode(errors="replace"),
            stderr=base64.b64decode(report["stderr"]).decode(errors="replace"),
            stdout_bytes=report["stdout_bytes"],
            stderr_bytes=report["stderr_bytes"],
            duration_s=round(report["duration_s"], 6),
            peak_memory_mb=report["peak_memory_mb"],
            protections=self.protections,
        )

    def _spawn(self) -> Worker:
        plan = self._plan
        if plan.namespaces and os.geteuid() == 0 and "uid" in plan.protections:
            plan = isolation.plan(self._python, namespaces=True)  # a uid of its own
        elif not plan.namespaces:
            plan = isolation.with_new_uid(plan)
        worker = Worker(plan)
        with self._lock:
            self._all.append(worker)
        return worker

    def _take(self) -> Worker:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        return self._idle.get()

    def _give_back(self, worker: Worker) -> None:
        if self._closed:
            worker.close()
        elif worker.alive:
            self._idle.put(worker)
        else:
            self._replace(worker)

    def _replace(self, worker: Worker) -> None:
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        if not self._closed:
            self._idle.put(self._spawn())

    def _drain(self) -> None:
        while not self._idle.empty():
            self._idle.get().close()

    def _cleanup_plan(self) -> None:
        if self._plan.scratch_root:
            shutil.rmtree(self._plan.scratch_root, ignore_errors=True)


def open_sandbox(
    *,
    strict: bool = False,
    limits: Limits | None = None,
    workers: int | None = None,
    python: str | None = None,
) -> ProcessSandbox:
    """Start a sandbox (a context manager; or call ``close()``).

    ``strict``: refuse (:class:`SandboxUnavailable`) unless every protection is active; else
    a missing one is logged as a warning and listed in each result's ``protections``.
    ``limits``: the default limits of its executions. ``workers``: programs that may run at
    once (default: the cores, at most 4). ``python``: the interpreter programs run with
    (default: the base installation of the running one).
    """
    return ProcessSandbox(strict=strict, limits=limits, workers=workers, python=python)


def isolation_grace(limits: Limits) -> float:
    """Seconds past the wall limit before the host gives up on a worker's report."""
    return 10.0 + limits.output_bytes * 4 / 50e6


def _missing_text(missing: Mapping[str, str]) -> str:
    """``a, b: why; c: why`` (protections grouped by reason)."""
    by_reason: dict[str, list[str]] = {}
    for name, why in missing.items():
        by_reason.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


def _checked(limits: Limits) -> Limits:
    for name, value in asdict(limits).items():
        if not isinstance(value, int | float) or value <= 0 or math.isinf(value):
            raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
    return limits


def _checked_env(env: Mapping[str, str]) -> dict[str, str]:
    for k, v in env.items():
        if not isinstance(k, str) or not k or "=" in k or "\0" in k or not isinstance(v, str):
            raise ValueError(f"env: invalid variable {k!r}")
    return dict(env)


def _encoded_files(files: Mapping[str, str | bytes]) -> dict[str, str]:
    out = {}
    for name, content in files.items():
        path = PurePosixPath(name)
        if not name or path.is_absolute() or ".." in path.parts or "\0" in name:
            raise ValueError(f"files: {name!r} must be a relative path inside the scratch dir")
        data = content.encode() if isinstance(content, str) else bytes(content)
        out[str(path)] = base64.b64encode(data).decode()
    return out
