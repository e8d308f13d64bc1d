"""Reading a run's shard files for the pages: some columns of a file, the rows of some ids, the
schema of a step's rows. Only ever one shard at a time, and only the columns asked for."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.operator import ID
from prepflow.data import shardfile
from prepflow.data.runstore import INPUT_STEP, shard_file
from prepflow.engine.drops import snippet

SNIPPET_CHARS = 240


def columns(path: Path, names: Iterable[str]) -> pa.Table | None:
    """The columns ``names`` of a shard file that it has (None: no such file)."""
    try:
        return shardfile.read(path, names)
    except FileNotFoundError:
        return None


def schema(path: Path) -> pa.Schema | None:
    try:
        return shardfile.schema(path)
    except FileNotFoundError:
        return None


def rows_with_ids(path: Path, ids: Iterable[int], names: list[str] | None = None) -> list[dict]:
    """The rows of a shard file whose ``_id`` is one of ``ids``, in file order (only the pages
    of the ``_id`` column are read, and the other columns' only when a row matches)."""
    wanted = pa.array(sorted(set(ids)), pa.int64())
    try:
        table = shardfile.read(path)
    except FileNotFoundError:
        return []
    found = pc.is_in(table[ID], value_set=wanted)
    if not pc.any(found).as_py():
        return []
    return (table if names is None else table.select(names)).filter(found).to_pylist()


def input_dir(steps: list[dict[str, Any]], index: int) -> str:
    """The directory of the rows step ``index`` read: the step before it, or the input."""
    return INPUT_STEP if index == 1 else steps[index - 2]["dir"]


def example_texts(
    run_dir: Path, source_dir: str, examples: list[tuple[int, int]]
) -> dict[int, dict[str, Any]]:
    """For (``_id``, shard) pairs, each row's longest text column as a short snippet, read from
    the rows step ``source_dir`` wrote: {id: {"column": name, "text": snippet}}."""
    by_shard: dict[int, set[int]] = {}
    for row_id, shard in examples:
        by_shard.setdefault(shard, set()).add(row_id)
    out: dict[int, dict[str, Any]] = {}
    for shard, ids in sorted(by_shard.items()):
        path = shard_file(run_dir, "steps", source_dir, shard)
        found = schema(path)
        if found is None:
            continue
        texts = [f.name for f in found if pa.types.is_string(f.type) and not f.name.startswith("_")]
        for row in rows_with_ids(path, ids, [ID, *texts]):
            present = {k: v for k, v in row.items() if k != ID and isinstance(v, str)}
            if present:
                column = max(present, key=lambda k: len(present[k]))
                out[row[ID]] = {"column": column, "text": snippet(present[column], SNIPPET_CHARS)}
    return out
