"""Read-only databases for untrusted SQL: SQLite in limited worker processes, PostgreSQL in
read-only transactions.

:func:`open_database` takes what a user names on the command line or in a pipeline:

* a SQLite file (``chinook.sqlite``);
* a directory of SQLite files (``dbs/flights.sqlite`` with ``db_id="flights"``);
* a Spider/BIRD layout (``database/<db_id>/<db_id>.sqlite`` beside ``tables.json``, or BIRD's
  ``dev_databases/`` beside ``dev_tables.json``; the directory given may be the layout's root
  or its databases folder);
* a ``postgresql://`` URL.

Each returned object implements :class:`prepflow.core.context.Database`: ``execute(sql,
timeout_s=, max_rows=)`` gives a :class:`~prepflow.core.context.QueryResult` whose status says
whether it ran, was refused (writes, ATTACH, PRAGMA writes, extensions), timed out or hit a limit;
``schema()`` gives tables, typed columns, keys, foreign keys and sample values as plain data.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from prepflow.core.errors import ConfigError
from prepflow.sandbox.sql.postgres import PostgresDatabase
from prepflow.sandbox.sql.schema import spider_tables, to_spider
from prepflow.sandbox.sql.sqlite import SQLiteDatabase, SQLLimits

__all__ = [
    "PostgresDatabase",
    "SQLLimits",
    "SQLiteDatabase",
    "database_ids",
    "open_database",
    "to_spider",
]

SQLITE_SUFFIXES = (".sqlite", ".db", ".sqlite3")


def open_database(
    source: str | Path, db_id: str | None = None, **limits: Any
) -> SQLiteDatabase | PostgresDatabase:
    """The database ``source`` names (``db_id`` picks one in a directory or Spider layout),
    opened read-only. ``limits`` are :class:`SQLLimits` fields (``timeout_s``, ``max_rows``,
    ``max_bytes``, ``memory_mb``, ``workers``...)."""
    known = {f.name for f in fields(SQLLimits)}
    if unknown := sorted(set(limits) - known):
        raise ConfigError(f"open_database: unknown limit(s) {unknown}; known: {sorted(known)}")
    lim = SQLLimits(**limits)
    text = str(source)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(text, name=db_id, limits=lim)
    if "://" in text:
        raise ConfigError(f"unsupported database URL {text.split('://')[0]}://; use postgresql://")
    path = Path(text).expanduser()
    if path.is_file():
        if db_id is not None and db_id != path.stem:
            raise ConfigError(f"{path} is a single database ({path.stem!r}); asked for {db_id!r}")
        return SQLiteDatabase(path, limits=lim)
    if not path.is_dir():
        raise ConfigError(f"no database at {text}: not a file, directory or postgresql:// URL")
    found = _sqlite_files(path)
    if db_id is None:
        if len(found) != 1:
            listed = ", ".join(sorted(found)[:10]) or "none"
            raise ConfigError(
                f"{path} holds {len(found)} databases ({listed}{'...' if len(found) > 10 else ''}): "
                "give a db_id"
            )
        db_id = next(iter(found))
    if db_id not in found:
        close = ", ".join(sorted(found)[:10]) or "none"
        raise ConfigError(f"no database {db_id!r} in {path}; found: {close}")
    entry = None
    for folder in (path, path.parent):
        for tables in sorted(
            folder.glob("*tables.json")
        ):  # Spider: tables.json; BIRD: dev_tables.json
            entry = entry or spider_tables(tables).get(db_id)
    return SQLiteDatabase(found[db_id], name=db_id, limits=lim, spider_entry=entry)


def database_ids(source: str | Path) -> list[str]:
    """The databases a directory or Spider layout holds (one name for a file)."""
    path = Path(source)
    if path.is_file():
        return [path.stem]
    return sorted(_sqlite_files(path))


def _sqlite_files(root: Path) -> dict[str, Path]:
    """db_id -> file: ``root/<id>.sqlite``, ``root/<id>/<id>.sqlite`` and, in a Spider root,
    ``root/database/<id>/<id>.sqlite`` (BIRD: ``root/dev_databases/<id>/<id>.sqlite``)."""
    found: dict[str, Path] = {}
    nested = [p for p in sorted(root.glob("*database*")) if p.is_dir()]
    bases = [*nested, root]
    for base in bases:
        for child in sorted(base.iterdir()):
            if child.is_file() and child.suffix in SQLITE_SUFFIXES:
                found.setdefault(child.stem, child)
            elif child.is_dir():
                for suffix in SQLITE_SUFFIXES:
                    if (f := child / f"{child.name}{suffix}").is_file():
                        found.setdefault(child.name, f)
                        break
    return found
