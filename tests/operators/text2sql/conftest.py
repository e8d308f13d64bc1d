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
