"""The run directory: shards, journal, manifest, dropped/failed/quarantined rows.

Layout::

    runs/<name>/
      pipeline.yaml      the resolved pipeline that ran
      run.json           how it was invoked (input, output, options) so `retry` can repeat it
      journal.jsonl      append-only record of every finished (step, shard), with fingerprints
      manifest.json      compacted view of the journal (rewritten at the end of each run)
      steps/<k>-<op>/shard-NNNNN.parquet
      dropped/<k>-<op>/shard-NNNNN.parquet     rows a filter dropped, with `_reason`
      failures/<k>-<op>/shard-NNNNN.parquet    rows that errored, with `_error_type`, `_error`, ...
      quarantine/shard-NNNNN.jsonl             malformed input records (file, line, reason, raw)
      report.json / report.md

The journal is the source of truth for resume: a (step, shard) is done when its last journal
entry carries the step's current fingerprint and its shard file exists. Appending one line per
shard keeps bookkeeping O(1) per shard however long the run; a torn last line (SIGKILL) is ignored.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from prepflow.data.writers import write_table_atomic

INPUT_STEP = "00-input"


def shard_file(run_dir: Path, kind: str, step_dir: str, shard: int) -> Path:
    """Where a shard lives; ``kind`` is one of steps, dropped, failures."""
    return run_dir / kind / step_dir / f"shard-{shard:05d}.parquet"


def read_shard(path: Path) -> pa.Table:
    """One shard file as a table. ``ParquetFile`` reads a single file without ``pq.read_table``'s
    dataset layer, whose import (``pyarrow.dataset``, which pulls in pandas when installed)
    costs 0.05-0.3 s per process."""
    with pq.ParquetFile(path) as f:
        return f.read()


def write_shard_file(
    run_dir: Path, kind: str, step_dir: str, shard: int, table: pa.Table | None
) -> None:
    """Write one shard atomically; an empty (or absent) dropped/failures table removes the file,
    so a recomputed shard leaves no stale side rows behind."""
    path = shard_file(run_dir, kind, step_dir, shard)
    if table is None or (kind != "steps" and table.num_rows == 0):
        path.unlink(missing_ok=True)
        return
    write_table_atomic(table, path, fast=True)


@dataclass(frozen=True)
class ShardRecord:
    step: int
    shard: int
    fingerprint: str
    stats: dict[str, Any]
    session: str


class RunStore:
    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.session = uuid.uuid4().hex[:12]
        self.journal_path = self.dir / "journal.jsonl"
        self._journal = None

    # ---- paths -------------------------------------------------------------------------------

    def shard_path(self, kind: str, step_dir: str, shard: int) -> Path:
        return shard_file(self.dir, kind, step_dir, shard)

    def quarantine_path(self, shard: int) -> Path:
        return self.dir / "quarantine" / f"shard-{shard:05d}.jsonl"

    # ---- journal -----------------------------------------------------------------------------

    def records(self) -> dict[tuple[int, int], ShardRecord]:
        """Latest journal record per (step, shard); invalidations remove the entry."""
        out: dict[tuple[int, int], ShardRecord] = {}
        if not self.journal_path.exists():
            return out
        with self.journal_path.open("rb") as f:
            for raw in f:
                try:
                    e = json.loads(raw)
                except ValueError:
                    continue  # torn write from a killed run
                key = (e["step"], e["shard"])
                if e.get("type") == "invalidate":
                    out.pop(key, None)
                else:
                    out[key] = ShardRecord(e["step"], e["shard"], e["fp"], e["stats"], e["session"])
        return out

    def history(self) -> list[dict[str, Any]]:
        """Every journal entry, oldest first (for audits and tests)."""
        if not self.journal_path.exists():
            return []
        entries = []
        for raw in self.journal_path.read_bytes().splitlines():
            try:
                entries.append(json.loads(raw))
            except ValueError:
                continue
        return entries

    def _append(self, entry: dict[str, Any]) -> None:
        if self._journal is None:
            self._journal = self.journal_path.open("ab")
        self._journal.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
        self._journal.flush()

    def commit(self, step: int, shard: int, fingerprint: str, stats: dict[str, Any]) -> None:
        """Record a finished (step, shard) once its files are in place."""
        self._append(
            {
                "step": step,
                "shard": shard,
                "fp": fingerprint,
                "stats": stats,
                "session": self.session,
                "t": round(time.time(), 3),
            }
        )

    def invalidate(self, step: int, shard: int) -> None:
        self._append({"type": "invalidate", "step": step, "shard": shard, "session": self.session})

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # ---- files -------------------------------------------------------------------------------

    def write_shard(self, kind: str, step_dir: str, shard: int, table: pa.Table | None) -> None:
        write_shard_file(self.dir, kind, step_dir, shard, table)

    def write_json(self, name: str, data: Any) -> None:
        path = self.dir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(
            json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
        os.replace(tmp, path)

    def read_json(self, name: str) -> Any:
        path = self.dir / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def write_text(self, name: str, text: str) -> None:
        path = self.dir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
