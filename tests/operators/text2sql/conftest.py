"""Databases for the Text-to-SQL tests: chinook (shared data) and the built test databases."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TEXT2SQL_DATA = REPO / "tests" / "data" / "text2sql"
CHINOOK = REPO.parent / "shared" / "data" / "sql" / "chinook.sqlite"


def source_of(name: str) -> tuple[str, str | None]:
    """(source, db_id) of a test database by name."""
    if name == "chinook":
        if not CHINOOK.is_file():
            pytest.skip(f"chinook not found at {CHINOOK}")
        return str(CHINOOK), None
    return str(TEXT2SQL_DATA), name


@pytest.fixture(scope="session")
def chinook() -> Path:
    if not CHINOOK.is_file():
        pytest.skip(f"chinook not found at {CHINOOK}")
    return CHINOOK


def table(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows)


def context(tmp_path: Path, serving=None):
    """The engine's run context (it opens databases through prepflow.sandbox.sql)."""
    from prepflow.engine.context import EngineContext

    return EngineContext(scratch=tmp_path / "scratch", serving=serving)


def run_cpu(op, rows: list[dict], tmp_path: Path):
    op.setup(context(tmp_path))
    return op.run_batch(table(rows))


def run_llm(op, rows: list[dict], server, tmp_path: Path):
    """An LLM operator over one batch against the scripted server, with databases."""
    import asyncio

    from prepflow.serving.client import OpenAIServing

    async def main():
        async with OpenAIServing(server.url, server.model) as serving:
            op.setup(context(tmp_path, serving))
            return await op.arun_batch(table(rows))

    return asyncio.run(main())
