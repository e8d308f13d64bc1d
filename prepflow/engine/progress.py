"""Live progress of a run, fed by its journal events (and the serving client's counters).

On a terminal: a table redrawn a few times a second, one line per step (rows done of the total,
kept, dropped, failed, rows/s, ETA) and one line for the LLM (requests in flight, tokens/s, cache
hits, failures, cost when priced). Elsewhere (CI, nohup, a notebook): the same facts as plain lines
every ``interval`` seconds, for the steps that moved, so a log shows where a long run is. Totals are
exact once the step before has finished and estimated (``~``) until then.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from prepflow.data import journal

#: Seconds between plain progress lines when stderr is not a terminal
#: (``PREPFLOW_PROGRESS_INTERVAL`` overrides it).
LINE_INTERVAL_S = 10.0
REFRESH_S = 0.25


@dataclass
class _Step:
    label: str
    rows_in: int = 0  # committed shards
    kept: int = 0
    dropped: int = 0
    failed: int = 0
    shards: int = 0
    live: dict[int, int] = field(default_factory=dict)  # shard -> rows done before its commit
    started: float | None = None  # when this session first computed a row of it
    resumed_rows: int = 0  # rows of shards found done: no work, not part of the rate

    @property
    def done(self) -> int:
        return self.rows_in + sum(self.live.values())


class RunProgress:
    """Progress of one run. ``mode``: ``tty`` (live table), ``lines`` (a plain line every
    ``interval`` seconds) or ``off``."""

    def __init__(
        self,
        labels: list[str],
        *,
        mode: str,
        estimated_rows: int = 0,
        serving: Any = None,
        interval: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.mode = mode
        self.steps = [_Step(label) for label in labels]
        self.estimated_rows = estimated_rows
        self.input_rows: int | None = None  # exact, once the whole input is read
        self.n_shards: int | None = None
        self.serving = serving
        self.interval = interval or float(
            os.environ.get("PREPFLOW_PROGRESS_INTERVAL") or LINE_INTERVAL_S
        )
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        if len(self.steps) > 1:
            self.steps[1].started = self.t0  # the first step can start at once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_line = 0.0
        self._tokens = (self.t0, 0)
        self._thread: threading.Thread | None = None
        self._live: Any = None
        if mode != "off":
            self._thread = threading.Thread(
                target=self._tick, name="prepflow-progress", daemon=True
            )
            self._thread.start()

    # ---- events ------------------------------------------------------------------------------

    def on_event(self, event: journal.Event) -> None:
        with self._lock:
            if isinstance(event, journal.ShardCommitted):  # and ShardResumed
                s = self.steps[event.step]
                s.live.pop(event.shard, None)
                s.rows_in += event.stats["rows_in"]
                s.kept += event.stats["rows_out"]
                s.dropped += event.stats["dropped"]
                s.failed += event.stats["failed"]
                s.shards += 1
                if isinstance(event, journal.ShardResumed):
                    s.resumed_rows += event.stats["rows_in"]
                else:
                    self._feeds(event.step)
            elif isinstance(event, journal.RowsDone):
                s = self.steps[event.step]
                s.live[event.shard] = s.live.get(event.shard, 0) + event.rows
                self._feeds(event.step)
            elif isinstance(event, journal.InputRead):
                self.input_rows, self.n_shards = event.rows, event.shards

    def _feeds(self, index: int) -> None:
        """Step ``index`` gave rows: the next step has work from now on (its rate's clock)."""
        if index + 1 < len(self.steps) and self.steps[index + 1].started is None:
            self.steps[index + 1].started = time.monotonic()

    def message(self, text: str) -> None:
        """A status line (a local model loading) printed above the progress."""
        if self.mode == "off":
            return
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
        else:
            print(f"prepflow: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # ---- figures -----------------------------------------------------------------------------

    def total(self, index: int) -> tuple[int | None, bool]:
        """Rows step ``index`` will see, and whether that is exact."""
        if index == 0:
            if self.input_rows is not None:
                return self.input_rows, True
            return (self.estimated_rows or None), False
        prev = self.steps[index - 1]
        prev_total, exact = self.total(index - 1)
        finished = exact and self.n_shards is not None and prev.shards == self.n_shards
        if finished:
            return prev.kept, True
        if prev_total is None or not prev.rows_in:
            return prev_total, False
        return round(prev_total * prev.kept / prev.rows_in), False

    def step_line(self, index: int, now: float) -> str:
        s = self.steps[index]
        total, exact = self.total(index)
        shown = "?" if total is None else f"{'' if exact else '~'}{total:,}"
        parts = [f"{s.done:,}/{shown} rows"]
        if index and s.shards:  # known once a shard of it is committed
            parts.append(f"kept {s.kept:,} dropped {s.dropped:,}")
        if s.resumed_rows:
            parts.append(f"{s.resumed_rows:,} resumed")
        if s.failed:
            parts.append(f"failed {s.failed:,}")
        computed = s.done - s.resumed_rows
        if s.started is not None and computed and now > s.started:
            rate = computed / (now - s.started)
            parts.append(f"{rate:,.0f} rows/s" if rate >= 10 else f"{rate:.2g} rows/s")
            if total is not None and total > s.done and rate > 0:
                parts.append(f"ETA {_duration((total - s.done) / rate)}")
        return f"{s.label}: " + ", ".join(parts)

    def llm_line(self, now: float) -> str | None:
        """Requests, in flight, tokens/s, cache hits, retries, failures and cost, summed over
        the run's servers (a judge may have a server of its own)."""
        clients = list(getattr(self.serving, "clients", []))
        if not clients:
            return None
        stats = [c.stats for c in clients]
        tokens = sum(st.completion_tokens for st in stats)
        t_prev, tok_prev = self._tokens
        rate = (tokens - tok_prev) / max(1e-9, now - t_prev)
        self._tokens = (now, tokens)
        parts = [
            f"{sum(st.requests for st in stats):,} requests",
            f"{sum(c.in_flight for c in clients)} in flight",
            f"{rate:,.1f} tokens/s",
            f"cache hits {sum(st.cache_hits for st in stats):,}",
        ]
        if retries := sum(st.retries for st in stats):
            parts.append(f"retries {retries:,}")
        if failures := sum(sum(st.failures.values()) for st in stats):
            parts.append(f"failed {failures:,}")
        if any(c.prices is not None for c in clients):
            parts.append(f"${sum(st.cost_usd for st in stats):,.4f}")
        return "LLM: " + ", ".join(parts)

    # ---- drawing -----------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.mode == "tty":
            self._draw_live()
            return
        while not self._stop.wait(self.interval):
            self._print_lines(time.monotonic())

    def _print_lines(self, now: float) -> None:
        with self._lock:
            lines = [
                self.step_line(i, now)
                for i, s in enumerate(self.steps)
                if s.started is not None and (s.done < (self.total(i)[0] or s.done + 1))
            ]
            llm = self.llm_line(now)
        elapsed = _duration(now - self.t0)
        for line in [*lines, *([llm] if llm else [])]:
            print(f"prepflow [{elapsed}] {line}", file=self.stream, flush=True)

    def _draw_live(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.text import Text

        def render() -> Group:
            now = time.monotonic()
            with self._lock:
                lines = [self.step_line(i, now) for i in range(len(self.steps))]
                llm = self.llm_line(now)
            return Group(*(Text(line) for line in [*lines, *([llm] if llm else [])]))

        with Live(render(), console=Console(file=self.stream), auto_refresh=False) as live:
            self._live = live
            while not self._stop.wait(REFRESH_S):
                live.update(render(), refresh=True)
            live.update(render(), refresh=True)
        self._live = None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
