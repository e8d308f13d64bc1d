"""The runs under a folder, read from their journals without loading their data.

A run's journal is folded into what the pages show (sessions, the steps of the latest one, the
last commit of every (step, shard), LLM usage) and read incrementally: a request reads only what
was appended since the last one, so a live run costs a few bytes per refresh. Whether a run is
live is whether a process holds its lock, asked without writing anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prepflow.core.operator import StepStats
from prepflow.data import journal
from prepflow.data.runstore import INPUT_STEP, LOCK, is_run_directory, shard_file

#: Session endings that leave a run to resume (``run_finished`` status -> run status).
_ENDINGS = {
    "ok": "finished",
    "failed-threshold": "failed",
    "error": "failed",
    "interrupted": "resumable",
    "budget": "resumable",
}
LLM_TOTALS = ("requests", "cache_hits", "retries", "reasks", "prompt_tokens", "completion_tokens")


class RunNotFound(LookupError):
    """No run of that name under the runs folder (or a name that tries to leave it)."""


class RunsDir:
    """The run directories directly under ``root`` (or ``root`` itself when it is one)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self._journals: dict[Path, RunJournal] = {}
        self._lock = threading.Lock()  # pages are built in worker threads

    def names(self) -> list[str]:
        if is_run_directory(self.root):
            return [self.root.name]
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if not p.name.startswith(".") and self._inside(p) and is_run_directory(p)
        )

    def path(self, name: str) -> Path:
        """The run directory called ``name``: a child of the root that prepflow made. A name
        with a separator or dots, or a link that leads out of the root, is refused."""
        if is_run_directory(self.root) and name == self.root.name:
            return self.root
        bad = not name or name.startswith(".") or any(c in name for c in "/\\\x00")
        candidate = self.root / name
        if bad or not self._inside(candidate) or not is_run_directory(candidate):
            raise RunNotFound(name)
        return candidate.resolve()

    def _inside(self, path: Path) -> bool:
        try:
            return path.resolve().parent == self.root and path.is_dir()
        except OSError:
            return False

    def journal(self, name: str) -> RunJournal:
        """The run's folded journal, brought up to date."""
        path = self.path(name)
        with self._lock:
            view = self._journals.get(path)
            if view is None:
                view = self._journals[path] = RunJournal(path)
            view.refresh()
        return view


@dataclass
class Session:
    id: str
    started: float
    command: str
    finished: float | None = None
    status: str | None = None
    seconds: float | None = None
    error: str | None = None


class RunJournal:
    """A run's journal, folded (see the module docstring)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self._clear(None)

    def _clear(self, inode: int | None) -> None:
        self.inode, self.offset = inode, 0
        self.sessions: list[Session] = []
        self.started: dict[str, Any] = {}  # the latest RunStarted's fields
        self.records: dict[tuple[int, int], journal.ShardCommitted] = {}
        self.llm: dict[str, Any] = {}  # LLMUsage of every session, summed
        self.last_event: float | None = None

    @property
    def path(self) -> Path:
        return self.dir / "journal.jsonl"

    def refresh(self) -> None:
        """Fold what was appended since the last refresh; start over when the journal was
        replaced (``--fresh``) or is gone."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._clear(None)
            return
        if st.st_ino != self.inode or st.st_size < self.offset:
            self._clear(st.st_ino)
        if st.st_size == self.offset:
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        complete = data.rfind(b"\n") + 1  # a line being written is read next time
        for line in data[:complete].splitlines():
            event = journal.parse(line)
            if event is not None:
                self._fold(event)
        self.offset += complete

    def _fold(self, e: journal.Event) -> None:
        self.last_event = e.t
        if isinstance(e, journal.RunStarted):
            self.sessions.append(Session(e.session, e.t, e.command))
            self.started = {
                "pipeline": e.pipeline,
                "input": e.input,
                "output": e.output,
                "executor": e.executor,
                "steps": e.steps,
            }
        elif isinstance(e, journal.ShardInvalidated):
            self.records.pop((e.step, e.shard), None)
        elif isinstance(e, journal.ShardCommitted):
            self.records[(e.step, e.shard)] = e
        elif isinstance(e, journal.LLMUsage):
            for key in LLM_TOTALS:
                self.llm[key] = self.llm.get(key, 0) + int(e.usage.get(key) or 0)
            self.llm["cost_usd"] = self.llm.get("cost_usd", 0.0) + float(
                e.usage.get("cost_usd") or 0.0
            )
            failures = self.llm.setdefault("failures", {})
            for kind, n in (e.usage.get("failures") or {}).items():
                failures[kind] = failures.get(kind, 0) + n
        elif isinstance(e, journal.RunFinished) and self.sessions:
            last = self.sessions[-1]
            last.finished, last.status, last.seconds, last.error = e.t, e.status, e.seconds, e.error

    # ---- what the pages show -----------------------------------------------------------------

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The steps of the latest session: index, name, op, fingerprint, dir."""
        return [
            {**s, "dir": f"{s['index']:02d}-{s['name']}"} for s in self.started.get("steps", [])
        ]

    def n_shards(self) -> int:
        """Input shards: committed from 0 on, less those a shorter input left behind (their
        files are removed when a session ends)."""
        n = 0
        while (0, n) in self.records:
            n += 1
        while n and not shard_file(self.dir, "steps", INPUT_STEP, n - 1).exists():
            n -= 1
        return n

    def status(self) -> str:
        """running, finished, failed, resumable (stopped or killed), or new."""
        if not self.sessions:
            return "running" if lock_held(self.dir) else "new"
        last = self.sessions[-1]
        if last.status is not None:
            return _ENDINGS.get(last.status, "failed")
        return "running" if lock_held(self.dir) else "resumable"

    def reported(self) -> bool:
        """Whether the last session ended by writing its report (so report.json is current)."""
        return bool(self.sessions) and self.sessions[-1].status in ("ok", "failed-threshold")

    def step_stats(self) -> list[tuple[dict[str, Any], StepStats, int]]:
        """Per step of the latest session: the step, its totals over the shards committed with
        its current fingerprint, and how many shards those are."""
        n = self.n_shards()
        out = []
        for step in self.steps:
            total, done = StepStats(), 0
            for k in range(n):
                rec = self.records.get((step["index"], k))
                if rec is not None and rec.fp == step["fingerprint"]:
                    total.add(rec.step_stats)
                    done += 1
            out.append((step, total, done))
        return out

    def input_stats(self) -> StepStats:
        total = StepStats()
        for k in range(self.n_shards()):
            total.add(self.records[(0, k)].step_stats)
        return total

    def seconds(self) -> float:
        """Time spent in all sessions (the one running counts up to now)."""
        total = 0.0
        for s in self.sessions:
            if s.seconds is not None:
                total += s.seconds
            elif s is self.sessions[-1]:
                total += max(0.0, time.time() - s.started)
        return total


def lock_held(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock. The lock file is opened read-only and a
    shared lock tried without waiting, then released at once; it is tried only when the PID the
    lock names is alive (a run that died is known without touching the lock), and callers ask
    only while the journal says a session has not ended, so a run starting on a finished
    directory never meets the dashboard's attempt."""
    path = run_dir / LOCK
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        pid = int(json.loads(text).get("pid"))
        if not _alive(pid):
            return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken on it
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
