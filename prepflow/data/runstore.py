"""The run directory and its one owner: nothing else creates, names, writes or deletes in it.

Layout::

    runs/<name>/
      .prepflow-run      marker: prepflow made this directory (cleanup touches nothing without it)
      lock               held (an OS lock, released when the process dies) while a run, retry or
                         cleanup is active; its text names the holder's PID and start time
      pipeline.yaml      the resolved pipeline that ran (credentials redacted)
      run.json           how it was invoked (input, output, options) so `retry` can repeat it
      journal.jsonl      typed, append-only events (prepflow.data.journal): the source of truth
      manifest.json      per step: status, shards, row counts, fingerprints (derived)
      steps/<k>-<op>/shard-NNNNN.arrow       (Arrow IPC files: prepflow.data.shardfile)
      dropped/<k>-<op>/shard-NNNNN.arrow     rows a filter dropped, with `_reason`
      failures/<k>-<op>/shard-NNNNN.arrow    rows that errored, with `_error_type`, `_error`, ...
      measures/<k>-<op>/shard-NNNNN.arrow    a threshold filter's measured values per row
      llm_calls/<k>-<op>/shard-NNNNN.arrow   an LLM step's calls per row (messages, reply)
      quarantine/shard-NNNNN.jsonl             malformed input records (file, line, reason, raw)
      llm_cache.sqlite   the LLM response cache       logs/   local model servers' logs
      scratch/<step>/    operators' temporary files   report.json / report.md

A (step, shard) is done when its last journal entry carries the step's current fingerprint and
its shard file exists; a torn last line (SIGKILL) is ignored. Every file is written to a
temporary name and renamed, so a kill never leaves a half-written file under a real name, and
temporary files left by a kill are removed when the directory is opened again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from prepflow.core.errors import PrepflowError
from prepflow.core.operator import LLM_CALLS, MEASURES, Result, StepStats
from prepflow.data import journal, shardfile
from prepflow.data.records import BadRecord
from prepflow.data.writers import TEMP_SUFFIX, is_temp_name, write_shard_atomic, write_text_atomic

INPUT_STEP = "00-input"
MARKER = ".prepflow-run"
LOCK = "lock"
CACHE_FILE = "llm_cache.sqlite"
SHARD_KINDS = ("steps", "dropped", "failures")
#: Side records of a step's shard (``Result.extra``), kept for the dashboard, never data.
SIDE_KINDS = (MEASURES, LLM_CALLS)
#: ``--profile``: each (step, shard) unit's cProfile statistics (marshalled, as ``pstats`` reads)
PROFILES = "profile"
#: What prepflow writes at the top of a run directory; cleanup deletes these and nothing else.
_OWN_FILES = (
    "pipeline.yaml",
    "run.json",
    "journal.jsonl",
    "manifest.json",
    "report.json",
    "report.md",
    "profile.md",
    CACHE_FILE,
    f"{CACHE_FILE}-wal",
    f"{CACHE_FILE}-shm",
)
#: Shard files; ``.parquet`` is what earlier versions wrote: still prepflow's to clean up.
_STEP_SHARD = re.compile(r"\d{2,}-[^/]+/shard-\d{5,}\.(arrow|parquet)")
_SHARD_GLOB = f"shard-*{shardfile.SUFFIX}"
_OWN_DIRS = {
    **dict.fromkeys((*SHARD_KINDS, *SIDE_KINDS), _STEP_SHARD),
    "quarantine": re.compile(r"shard-\d{5,}\.jsonl"),
    "logs": re.compile(r"[\w.-]+\.log"),
    "scratch": re.compile(r".+"),  # operators' scratch space: all of it is prepflow's
    PROFILES: re.compile(r"\d{2,}-[^/]+/shard-\d{5,}(-\w+)?\.pstats"),
}


class RunDirectoryError(PrepflowError):
    """The run directory cannot be used (not prepflow's, locked, unwritable)."""


@dataclass(frozen=True)
class ShardRecord:
    step: int
    shard: int
    fingerprint: str
    stats: StepStats
    session: str


def shard_file(run_dir: Path, kind: str, step_dir: str, shard: int) -> Path:
    """Where a shard lives; ``kind`` is one of steps, dropped, failures, or a side kind."""
    return run_dir / kind / step_dir / f"shard-{shard:05d}{shardfile.SUFFIX}"


def profile_file(run_dir: Path, step_dir: str, shard: int, part: str) -> Path:
    """Where a unit's profile lives; ``part`` names the pass (a global step has two)."""
    return run_dir / PROFILES / step_dir / f"shard-{shard:05d}-{part}.pstats"


def shard_files(run_dir: Path, kind: str, step_dir: str) -> list[Path]:
    """The shard files of one kind of a step, in shard order."""
    return sorted((run_dir / kind / step_dir).glob(_SHARD_GLOB))


def read_shard(path: Path) -> pa.Table:
    """One shard file as a table."""
    return shardfile.read(path)


@dataclass(frozen=True)
class ShardWriter:
    """Writes a step's results for one shard into a run directory; picklable, so that worker
    processes write their own results. Made only by :meth:`RunStore.writer`."""

    run_dir: Path

    def write(self, step_dir: str, shard: int, result: Result) -> None:
        tables = {
            "steps": result.kept,
            "dropped": result.dropped,
            "failures": result.failed,
            **{kind: result.extra.get(kind) for kind in SIDE_KINDS},
        }
        for kind, table in tables.items():
            path = shard_file(self.run_dir, kind, step_dir, shard)
            if table is None or (kind != "steps" and table.num_rows == 0):
                path.unlink(missing_ok=True)  # a recomputed shard leaves no stale side rows
            else:
                write_shard_atomic(table, path)

    def write_profile(self, step_dir: str, shard: int, part: str, data: bytes) -> None:
        write_text_atomic(profile_file(self.run_dir, step_dir, shard, part), data)


class RunStore:
    """An open run directory: locked for this process until :meth:`close`."""

    def __init__(self, run_dir: str | Path, *, command: str = "run", fresh: bool = False) -> None:
        self.dir = Path(run_dir)
        self.session = os.urandom(6).hex()
        self.journal_path = self.dir / "journal.jsonl"
        self._journal: Any = None
        self._listeners: list[Callable[[journal.Event], None]] = []
        self._lock = _acquire(self.dir, command)
        try:
            if fresh:
                self._clean()
            _write_marker(self.dir)
            self._remove_temp_files()
        except BaseException:
            self._lock.close()
            raise

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the journal and release the lock."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if not self._lock.closed:
            self._lock.close()

    # ---- shards ------------------------------------------------------------------------------

    def shard_path(self, kind: str, step_dir: str, shard: int) -> Path:
        """Where a shard file lives; ``kind`` is one of SHARD_KINDS or SIDE_KINDS."""
        return shard_file(self.dir, kind, step_dir, shard)

    def read_shard(self, step_dir: str, shard: int) -> pa.Table:
        return read_shard(self.shard_path("steps", step_dir, shard))

    def writer(self) -> ShardWriter:
        return ShardWriter(self.dir)

    def write_result(self, step_dir: str, shard: int, result: Result) -> None:
        self.writer().write(step_dir, shard, result)

    def write_input_shard(self, shard: int, table: pa.Table) -> None:
        write_shard_atomic(table, self.shard_path("steps", INPUT_STEP, shard))

    def write_quarantine(self, shard: int, records: list[BadRecord]) -> None:
        """The malformed records of one input shard: the file is rewritten whole (or removed),
        so reading the same input again quarantines the same lines once."""
        path = self.dir / "quarantine" / f"shard-{shard:05d}.jsonl"
        if not records:
            path.unlink(missing_ok=True)
            return
        lines = b"".join(
            orjson.dumps(
                {
                    "path": b.path,
                    "line": b.line,
                    "reason": b.reason,
                    "raw": b.raw.decode("utf-8", "replace"),
                }
            )
            + b"\n"
            for b in records
        )
        write_text_atomic(path, lines)

    def remove_stale_shards(self, n_shards: int, step_dirs: list[str]) -> None:
        """Shards beyond the current input (a shorter input than last time) must not leak into
        the output or the counts."""
        for step_dir in step_dirs:
            for kind in (*SHARD_KINDS, *SIDE_KINDS):
                for f in shard_files(self.dir, kind, step_dir):
                    if int(f.stem.split("-")[1]) >= n_shards:
                        f.unlink()
        for f in (self.dir / "quarantine").glob("shard-*.jsonl"):
            if int(f.stem.split("-")[1]) >= n_shards:
                f.unlink()

    def profile_files(self, step_dir: str) -> list[Path]:
        """The profiles a ``--profile`` session wrote for a step, in shard order."""
        return sorted((self.dir / PROFILES / step_dir).glob("shard-*.pstats"))

    def clear_profiles(self) -> None:
        """A profiled session starts without the profiles of an earlier one (only prepflow's
        files go; see :meth:`_clean`)."""
        self._clean_dir(PROFILES)

    def side_files(self, kind: str, step_dir: str) -> list[Path]:
        """The ``dropped`` or ``failures`` shard files of a step, in shard order."""
        return shard_files(self.dir, kind, step_dir)

    def read_columns(
        self, path: Path, columns: tuple[str, ...], *, missing_ok: bool = False
    ) -> pa.Table:
        """Some columns of a shard file (``missing_ok``: leave out those it lacks)."""
        if missing_ok:
            return shardfile.read(path, columns)
        return shardfile.read(path).select(list(columns))

    # ---- journal -----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[journal.Event], None]) -> None:
        """Call ``listener`` with every event this session appends (live progress)."""
        self._listeners.append(listener)

    def append(self, event: journal.Event) -> None:
        if self._journal is None:
            self._journal = self.journal_path.open("ab")
        self._journal.write(event.to_json() + b"\n")
        self._journal.flush()
        for listener in self._listeners:
            listener(event)

    def commit(self, step: int, shard: int, fingerprint: str, stats: StepStats) -> ShardRecord:
        """Record a finished (step, shard) once its files are in place."""
        self.append(
            journal.ShardCommitted(
                self.session, step=step, shard=shard, fp=fingerprint, stats=stats.to_dict()
            )
        )
        return ShardRecord(step, shard, fingerprint, stats, self.session)

    def resumed(self, step: int, shard: int, stats: StepStats) -> None:
        """Tell listeners a (step, shard) was found done (not journaled: nothing changed)."""
        self.notify(
            journal.ShardResumed(self.session, step=step, shard=shard, stats=stats.to_dict())
        )

    def notify(self, event: journal.Event) -> None:
        """Tell this session's listeners about ``event`` without journaling it (progress)."""
        for listener in self._listeners:
            listener(event)

    def invalidate(self, step: int, shard: int) -> None:
        self.append(journal.ShardInvalidated(self.session, step=step, shard=shard))

    def events(self) -> Iterator[journal.Event]:
        return journal.read(self.journal_path)

    def records(self) -> dict[tuple[int, int], ShardRecord]:
        """Latest commit per (step, shard); an invalidation removes the entry."""
        return read_records(self.dir)

    # ---- documents ---------------------------------------------------------------------------

    def write_json(self, name: str, data: Any) -> None:
        write_text_atomic(
            self.dir / name, json.dumps(data, indent=2, ensure_ascii=False, default=str)
        )

    def read_json(self, name: str) -> Any:
        path = self.dir / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise RunDirectoryError(f"{path}: not valid JSON ({e}); was it edited?") from None

    def write_text(self, name: str, text: str) -> None:
        write_text_atomic(self.dir / name, text)

    @property
    def pipeline_path(self) -> Path:
        return self.dir / "pipeline.yaml"

    @property
    def cache_path(self) -> Path:
        return self.dir / CACHE_FILE

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def scratch_path(self, step_dir: str) -> Path:
        """The scratch directory of a step (its context creates it when first used)."""
        return self.dir / "scratch" / step_dir

    # ---- cleanup -----------------------------------------------------------------------------

    def _clean(self) -> None:
        """``--fresh``: delete what prepflow wrote here, and nothing else."""
        for name in _OWN_FILES:
            (self.dir / name).unlink(missing_ok=True)
        for name in _OWN_DIRS:
            self._clean_dir(name)

    def _clean_dir(self, name: str) -> None:
        """Delete the files of one of prepflow's directories that prepflow names so, then the
        folders left empty; a foreign file keeps its folder."""
        root, pattern = self.dir / name, _OWN_DIRS[name]
        if not root.is_dir():
            return
        for path in sorted(root.rglob("*"), reverse=True):  # children before parents
            relative = path.relative_to(root).as_posix()
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()  # only when empty
            elif pattern.fullmatch(relative) or is_temp_name(path.name):
                path.unlink()
        with contextlib.suppress(OSError):
            root.rmdir()

    def _remove_temp_files(self) -> None:
        """Temporary files of writes a kill interrupted: never data, removed on open."""
        for path in self.dir.glob(f".*{TEMP_SUFFIX}"):
            if is_temp_name(path.name):
                path.unlink(missing_ok=True)
        for kind in (*SHARD_KINDS, *SIDE_KINDS, "quarantine", PROFILES):
            for path in (self.dir / kind).rglob(f".*{TEMP_SUFFIX}"):
                if is_temp_name(path.name):
                    path.unlink(missing_ok=True)


def read_records(run_dir: Path) -> dict[tuple[int, int], ShardRecord]:
    """The latest commit per (step, shard) of a run directory, read without locking it (a
    report, a dashboard); an invalidation removes the entry."""
    out: dict[tuple[int, int], ShardRecord] = {}
    for e in journal.read(run_dir / "journal.jsonl"):
        if isinstance(e, journal.ShardInvalidated):
            out.pop((e.step, e.shard), None)
        elif isinstance(e, journal.ShardCommitted) and not isinstance(e, journal.ShardResumed):
            out[(e.step, e.shard)] = ShardRecord(e.step, e.shard, e.fp, e.step_stats, e.session)
    return out


def read_invocation(run_dir: Path) -> dict[str, Any]:
    """How a finished run was invoked (``run.json``); a clear error when it is not a run."""
    run_json = run_dir / "run.json"
    if not run_json.is_file() or not (run_dir / "pipeline.yaml").is_file():
        raise RunDirectoryError(
            f"{run_dir}: not a prepflow run directory (no run.json / pipeline.yaml)"
        )
    try:
        return json.loads(run_json.read_text(encoding="utf-8"))
    except ValueError as e:
        raise RunDirectoryError(f"{run_json}: not valid JSON ({e})") from None


def final_shards(run_dir: Path) -> list[Path]:
    """The last step's shard files of a finished run, in order (from its manifest)."""
    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        raise RunDirectoryError(f"{run_dir}: no manifest.json: the run has not finished")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    last = data["steps"][-1]
    if last["status"] != "done":
        raise RunDirectoryError(f"{run_dir}: step {last['name']!r} has not finished")
    return [run_dir / s["file"] for s in last["shards"]]


def is_run_directory(path: Path) -> bool:
    return (path / MARKER).is_file()


def _looks_like_old_run(path: Path) -> bool:
    """A run directory prepflow made before it wrote markers."""
    head = (path / "pipeline.yaml").read_text(encoding="utf-8", errors="replace")[:64]
    return (path / "journal.jsonl").is_file() and head.startswith("# prepflow ")


def _acquire(run_dir: Path, command: str) -> Any:
    """Create or check ``run_dir`` and take its lock; a clear error when it is not ours or busy."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir}: exists and is not a directory")
    if run_dir.is_dir() and not is_run_directory(run_dir):
        entries = [p.name for p in run_dir.iterdir()]
        if entries and not ((run_dir / "pipeline.yaml").is_file() and _looks_like_old_run(run_dir)):
            shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
            raise RunDirectoryError(
                f"{run_dir}: refusing to use it as a run directory: it is not empty ({shown}) "
                f"and prepflow did not make it (no {MARKER} marker). Name a new or empty "
                "directory with --run-dir."
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = (run_dir / LOCK).open("a+", encoding="utf-8")
    except PermissionError as e:
        raise RunDirectoryError(
            f"{run_dir}: cannot write the run directory ({e.strerror})"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip()
        lock.close()
        raise RunDirectoryError(
            f"{run_dir}: in use by another prepflow process ({_describe_holder(holder)}); "
            "wait for it to finish, or use another --run-dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "command": command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            }
        )
    )
    lock.flush()
    return lock


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"PID {info['pid']}, {info['command']} started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def _write_marker(run_dir: Path) -> None:
    marker = run_dir / MARKER
    if not marker.exists():
        marker.write_text(
            "This directory was made by prepflow; `prepflow run --fresh` may clean it.\n"
        )
