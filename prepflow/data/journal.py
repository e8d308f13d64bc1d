"""The run journal: typed, append-only events of a run, one JSON object per line.

The journal is the one source of truth about a run: resume reads which (step, shard) units are
done from it, and the manifest, the report, live progress and the dashboard are derived from it.
A line torn by a kill is ignored when read back. Events carry the ``session`` (one per
invocation) that wrote them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import orjson

from prepflow.core.operator import StepStats


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]
    session: str
    t: float = field(default_factory=lambda: round(time.time(), 3))

    def to_json(self) -> bytes:
        data = asdict(self)
        return orjson.dumps({"type": self.type, **data})


@dataclass(frozen=True)
class RunStarted(Event):
    """A session began: what runs, on what, how (no credentials: the pipeline is redacted)."""

    type: ClassVar[str] = "run_started"
    pipeline: str = ""
    command: str = "run"  # run | retry
    executor: str = "local"
    input: str = ""
    output: str = ""
    pid: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)  # index, name, op, fingerprint


@dataclass(frozen=True)
class ShardCommitted(Event):
    """A (step, shard) is done: its files are in place. ``step`` 0 is the input."""

    type: ClassVar[str] = "shard"
    step: int = 0
    shard: int = 0
    fp: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def step_stats(self) -> StepStats:
        return StepStats.from_dict(self.stats)


@dataclass(frozen=True)
class ShardResumed(ShardCommitted):
    """A (step, shard) was found done and skipped. Told to in-process listeners (progress),
    never written: the journal records what changed."""

    type: ClassVar[str] = "resumed"


@dataclass(frozen=True)
class RowsDone(Event):
    """Rows of a (step, shard) in progress that a step has finished (live progress of slow
    steps). Told to in-process listeners, never written."""

    type: ClassVar[str] = "rows"
    step: int = 0
    shard: int = 0
    rows: int = 0


@dataclass(frozen=True)
class InputRead(Event):
    """The whole input has been read into ``shards`` shards of ``rows`` rows in all. Told to
    in-process listeners, never written (the commits of step 0 say the same)."""

    type: ClassVar[str] = "input_read"
    shards: int = 0
    rows: int = 0


@dataclass(frozen=True)
class ShardInvalidated(Event):
    """A (step, shard) must be computed again (``retry`` of its failed rows)."""

    type: ClassVar[str] = "invalidate"
    step: int = 0
    shard: int = 0


@dataclass(frozen=True)
class LLMUsage(Event):
    """What a session asked the models: requests, cache hits, tokens, cost, failures."""

    type: ClassVar[str] = "llm_usage"
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFinished(Event):
    """A session ended: ``status`` ok, failed-threshold, interrupted or error."""

    type: ClassVar[str] = "run_finished"
    status: str = "ok"
    seconds: float = 0.0
    error: str | None = None


EVENTS: dict[str, type[Event]] = {
    cls.type: cls for cls in (RunStarted, ShardCommitted, ShardInvalidated, LLMUsage, RunFinished)
}


def parse(line: bytes) -> Event | None:
    """One journal line as an event; None for a torn or unknown line. A line without ``type`` is
    a shard commit (journals written before events were typed)."""
    try:
        data = orjson.loads(line)
        cls = EVENTS[data.pop("type", ShardCommitted.type)]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
    except (ValueError, KeyError, TypeError):
        return None


def read(path: Path) -> Iterator[Event]:
    """Every readable event of the journal at ``path``, oldest first."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for line in f:
            event = parse(line)
            if event is not None:
                yield event
