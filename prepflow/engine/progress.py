"""Live per-step progress: rows, rows/s, kept/dropped/failed. Silent when not on a terminal."""

from __future__ import annotations

from typing import Any

from prepflow.data import journal


class RunProgress:
    def __init__(self, labels: list[str], *, enabled: bool) -> None:
        self.enabled = enabled
        self.counts = [{"rows": 0, "kept": 0, "dropped": 0, "failed": 0} for _ in labels]
        if not enabled:
            return
        # rich loads only for a terminal (0.03 s of start-up otherwise spent for nothing)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            refresh_per_second=4,
        )
        self.tasks = [
            self.progress.add_task(label, total=None, rate="", stats="") for label in labels
        ]
        self.progress.start()

    def on_event(self, event: journal.Event) -> None:
        """A journal event of this run (commits and resumed shards move the bars)."""
        if isinstance(event, journal.ShardCommitted):
            self.update(event.step, event.stats, isinstance(event, journal.ShardResumed))

    def update(self, step: int, stats: dict[str, Any], resumed: bool) -> None:
        c = self.counts[step]
        c["rows"] += stats["rows_in"]
        c["kept"] += stats["rows_out"]
        c["dropped"] += stats["dropped"]
        c["failed"] += stats["failed"]
        if not self.enabled:
            return
        task = self.tasks[step]
        self.progress.advance(task, stats["rows_in"])
        elapsed = self.progress.tasks[task].elapsed or 0
        rate = f"{c['rows'] / elapsed:,.0f} rows/s" if elapsed > 0 else ""
        extra = f"out {c['kept']:,} drop {c['dropped']:,}" + (
            f" fail {c['failed']:,}" if c["failed"] else ""
        )
        self.progress.update(task, rate=rate, stats=extra + (" (resumed)" if resumed else ""))

    def set_total(self, rows: int) -> None:
        if self.enabled:
            self.progress.update(self.tasks[0], total=rows)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
