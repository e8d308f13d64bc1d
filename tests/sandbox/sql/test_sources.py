"""open_database: single files, directories, Spider layouts (with tables.json) and errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from prepflow.core.errors import ConfigError
from prepflow.sandbox.sql import database_ids, open_database

from .conftest import TEXT2SQL_DATA


def test_spider_layout_from_its_root_and_its_database_folder() -> None:
    assert database_ids(TEXT2SQL_DATA) == ["baseball", "flights", "penguins"]
    for root in (TEXT2SQL_DATA, TEXT2SQL_DATA / "database"):
        db = open_database(root, "penguins")
        assert db.name == "penguins"
        assert db.execute("SELECT count(*) FROM penguins").rows == [(344,)]


def test_directory_of_files(chinook: Path, tmp_path: Path) -> None:
    shutil.copy(chinook, tmp_path / "chinook.sqlite")
    shutil.copy(TEXT2SQL_DATA / "database" / "penguins" / "penguins.sqlite", tmp_path / "birds.db")
    assert database_ids(tmp_path) == ["birds", "chinook"]
    assert open_database(tmp_path, "birds").execute("SELECT count(*) FROM penguins").rows == [
        (344,)
    ]
    with pytest.raises(ConfigError, match=r"holds 2 databases .*give a db_id"):
        open_database(tmp_path)
    with pytest.raises(ConfigError, match=r"no database 'nope' in .*found: birds, chinook"):
        open_database(tmp_path, "nope")


def test_single_file_in_a_directory_needs_no_id(chinook: Path, tmp_path: Path) -> None:
    shutil.copy(chinook, tmp_path / "music.sqlite")
    assert open_database(tmp_path).name == "music"


def test_tables_json_adds_foreign_keys_the_file_lacks(chinook: Path, tmp_path: Path) -> None:
    (tmp_path / "database" / "chinook").mkdir(parents=True)
    shutil.copy(chinook, tmp_path / "database" / "chinook" / "chinook.sqlite")
    entry = {
        "db_id": "chinook",
        "table_names_original": ["album", "artist"],
        "column_names_original": [
            [-1, "*"],
            [0, "id"],
            [0, "artist"],
            [0, "title"],
            [1, "id"],
            [1, "name"],
        ],
        "primary_keys": [1, 4],
        "foreign_keys": [[2, 4]],
    }
    (tmp_path / "tables.json").write_text(json.dumps([entry]))
    tables = {t["name"]: t for t in open_database(tmp_path, "chinook").schema()["tables"]}
    assert tables["album"]["foreign_keys"] == [
        {"columns": ["artist"], "ref_table": "artist", "ref_columns": ["id"]}
    ]
    assert tables["artist"]["primary_key"] == ["id"]
    assert tables["artist"]["columns"][0]["primary_key"] is True


def test_shipped_tables_json_matches_the_files() -> None:
    entries = {e["db_id"]: e for e in json.loads((TEXT2SQL_DATA / "tables.json").read_text())}
    flights = entries["flights"]
    assert flights["table_names_original"] == [
        "airlines",
        "airports",
        "planes",
        "weather",
        "flights",
    ]
    names = flights["column_names_original"]
    fk_pairs = {(names[a][1], names[b][1]) for a, b in flights["foreign_keys"]}
    assert ("dest", "faa") in fk_pairs and ("carrier", "carrier") in fk_pairs


@pytest.mark.parametrize(
    ("source", "db_id", "message"),
    [
        ("/nonexistent/x.sqlite", None, "no database at"),
        ("mysql://host/db", None, "unsupported database URL mysql://"),
    ],
)
def test_bad_sources(source: str, db_id: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_database(source, db_id)


def test_file_with_another_db_id(chinook: Path) -> None:
    with pytest.raises(ConfigError, match=r"single database .*asked for 'flights'"):
        open_database(chinook, "flights")


def test_unknown_and_bad_limits(chinook: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown limit.*'timeout'"):
        open_database(chinook, timeout=3)
    with pytest.raises(ConfigError, match="max_rows must be positive"):
        open_database(chinook, max_rows=0)


def test_bird_layout(chinook: Path, tmp_path: Path) -> None:
    (tmp_path / "dev" / "dev_databases" / "music").mkdir(parents=True)
    shutil.copy(chinook, tmp_path / "dev" / "dev_databases" / "music" / "music.sqlite")
    entry = {
        "db_id": "music",
        "table_names_original": ["album", "artist"],
        "column_names_original": [[-1, "*"], [0, "id"], [0, "artist"], [1, "id"]],
        "primary_keys": [1, 3],
        "foreign_keys": [[2, 3]],
    }
    (tmp_path / "dev" / "dev_tables.json").write_text(json.dumps([entry]))
    for root in (tmp_path / "dev", tmp_path / "dev" / "dev_databases"):
        db = open_database(root, "music")
        tables = {t["name"]: t for t in db.schema()["tables"]}
        assert tables["album"]["foreign_keys"][0]["ref_table"] == "artist"
