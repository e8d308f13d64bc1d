"""Database schemas as plain data, the shape :meth:`Database.schema` returns.

A schema is a JSON-ready dict, so operators read it without importing this package::

    {"name": "chinook", "dialect": "sqlite",
     "tables": [{"name": "Album", "kind": "table", "rows": 347,
                 "columns": [{"name": "AlbumId", "type": "INTEGER", "not_null": True,
                              "primary_key": True, "samples": [1, 2, 3]}, ...],
                 "primary_key": ["AlbumId"],
                 "foreign_keys": [{"columns": ["ArtistId"], "ref_table": "Artist",
                                   "ref_columns": ["ArtistId"]}]}, ...]}

``rows`` is None when counting took longer than the schema's time limit. Sample values are
distinct non-null values (strings cut at 64 characters, blobs left out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prepflow.core.errors import ConfigError


def table(
    name: str,
    kind: str,
    columns: list[dict[str, Any]],
    foreign_keys: list[dict[str, Any]],
    rows: int | None,
) -> dict[str, Any]:
    pk = [c["name"] for c in sorted(columns, key=lambda c: c["_pk"]) if c["primary_key"]]
    for c in columns:
        del c["_pk"]
    return {
        "name": name,
        "kind": kind,
        "rows": rows,
        "columns": columns,
        "primary_key": pk,
        "foreign_keys": foreign_keys,
    }


def column(name: str, type_: str, not_null: bool, pk: int, samples: list[Any]) -> dict[str, Any]:
    """One column; ``pk`` is its 1-based position in the primary key, 0 when not part of it."""
    return {
        "name": name,
        "type": type_,
        "not_null": not_null,
        "primary_key": pk > 0,
        "samples": samples,
        "_pk": pk,
    }


def resolve_foreign_keys(tables: list[dict[str, Any]]) -> None:
    """Fill references that name no columns (SQLite's ``REFERENCES t``) with t's primary key."""
    by_name = {t["name"].lower(): t for t in tables}
    for t in tables:
        for fk in t["foreign_keys"]:
            if any(c is None for c in fk["ref_columns"]):
                ref = by_name.get(fk["ref_table"].lower())
                fk["ref_columns"] = list(ref["primary_key"]) if ref else fk["ref_columns"]


def spider_tables(path: Path) -> dict[str, dict[str, Any]]:
    """``tables.json`` of a Spider/BIRD layout, by ``db_id``."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read Spider tables.json: {e}") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a JSON list of databases")
    return {e["db_id"]: e for e in entries if isinstance(e, dict) and "db_id" in e}


def merge_spider(schema: dict[str, Any], entry: dict[str, Any]) -> None:
    """Add what a Spider ``tables.json`` entry declares and the file does not: foreign keys
    (Spider annotates many that the SQLite DDL lacks) and primary keys."""
    names = entry.get("table_names_original") or []
    cols = entry.get("column_names_original") or []
    by_name = {t["name"].lower(): t for t in schema["tables"]}

    def locate(index: int) -> tuple[dict[str, Any], str] | None:
        if not 0 <= index < len(cols) or cols[index][0] < 0 or cols[index][0] >= len(names):
            return None
        t = by_name.get(str(names[cols[index][0]]).lower())
        return (t, cols[index][1]) if t else None

    for pk in entry.get("primary_keys") or []:
        for i in pk if isinstance(pk, list) else [pk]:
            if (hit := locate(i)) and hit[1] not in hit[0]["primary_key"]:
                hit[0]["primary_key"].append(hit[1])
                for c in hit[0]["columns"]:
                    if c["name"] == hit[1]:
                        c["primary_key"] = True
    for src, dst in entry.get("foreign_keys") or []:
        a, b = locate(src), locate(dst)
        if not (a and b):
            continue
        fk = {"columns": [a[1]], "ref_table": b[0]["name"], "ref_columns": [b[1]]}
        known = {
            (tuple(f["columns"]), f["ref_table"].lower(), tuple(f["ref_columns"]))
            for f in a[0]["foreign_keys"]
        }
        if (tuple(fk["columns"]), fk["ref_table"].lower(), tuple(fk["ref_columns"])) not in known:
            a[0]["foreign_keys"].append(fk)


def to_spider(schema: dict[str, Any], db_id: str) -> dict[str, Any]:
    """A schema as a Spider ``tables.json`` entry (for building Spider-layout databases)."""
    tables = [t for t in schema["tables"] if t["kind"] == "table"]
    column_names: list[list[Any]] = [[-1, "*"]]
    types: list[str] = ["text"]
    index: dict[tuple[str, str], int] = {}
    for ti, t in enumerate(tables):
        for c in t["columns"]:
            index[(t["name"], c["name"])] = len(column_names)
            column_names.append([ti, c["name"]])
            low = c["type"].lower()
            types.append(
                "number"
                if any(k in low for k in ("int", "real", "num", "dec", "float", "double"))
                else "time"
                if any(k in low for k in ("date", "time"))
                else "text"
            )
    pks = []
    for t in tables:
        ids = [index[(t["name"], c)] for c in t["primary_key"]]
        pks.extend(ids if len(ids) == 1 else [ids] if ids else [])
    fks = [
        [index[(t["name"], a)], index[(f["ref_table"], b)]]
        for t in tables
        for f in t["foreign_keys"]
        for a, b in zip(f["columns"], f["ref_columns"], strict=False)
        if (f["ref_table"], b) in index
    ]
    natural = [[ti, name.replace("_", " ").lower()] for ti, name in column_names]
    return {
        "db_id": db_id,
        "table_names_original": [t["name"] for t in tables],
        "table_names": [t["name"].replace("_", " ").lower() for t in tables],
        "column_names_original": column_names,
        "column_names": natural,
        "column_types": types,
        "primary_keys": pks,
        "foreign_keys": fks,
    }
