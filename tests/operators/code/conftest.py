"""Real code for the code operators' tests: this machine's Python standard library, C headers
and JavaScript, read from disk."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pyarrow as pa
import pytest

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(limit: int | None = None) -> list[tuple[str, str]]:
    """(relative path, text) of the standard library's own .py files, site-packages excluded,
    in a stable order."""
    out = []
    for path in sorted(STDLIB.rglob("*.py")):
        rel = path.relative_to(STDLIB).as_posix()
        if rel.startswith("site-packages/"):
            continue
        try:
            out.append((rel, path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
        if limit is not None and len(out) >= limit:
            break
    return out


def stdlib(name: str) -> str:
    return (STDLIB / name).read_text(encoding="utf-8")


def files_table(files: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {
            "_id": pa.array(range(len(files)), pa.int64()),
            "path": [p for p, _ in files],
            "text": [t for _, t in files],
        }
    )


def reasons(result) -> dict[str, str]:
    """path -> drop reason of a filter result."""
    if result.dropped is None:
        return {}
    d = result.dropped
    return dict(zip(d.column("path").to_pylist(), d.column("_reason").to_pylist(), strict=True))


@pytest.fixture(scope="session")
def stdlib_files() -> list[tuple[str, str]]:
    return stdlib_sources()
