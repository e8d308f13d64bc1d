"""Schemas as prompt text, and schema linking: the tables a question or query needs.

A schema is the plain dict :meth:`Database.schema` returns (tables with typed columns, primary
and foreign keys, sample values). :func:`render_schema` writes it as ``CREATE TABLE`` statements
with keys and sample values as comments, which models read best; :func:`link_tables` keeps
only the relevant tables of a large schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")


def _quote(name: str) -> str:
    return (
        name
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
        else '"' + name.replace('"', '""') + '"'
    )


def _literal(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, float):
        return format(v, ".6g")
    return repr(v)


def render_schema(
    schema: dict[str, Any], tables: Iterable[str] | None = None, *, samples: bool = True
) -> str:
    """``CREATE TABLE`` statements for ``tables`` (all when None), keys and foreign keys
    declared, sample values as comments."""
    wanted = None if tables is None else {t.lower() for t in tables}
    parts = []
    for t in schema["tables"]:
        if wanted is not None and t["name"].lower() not in wanted:
            continue
        single_pk = t["primary_key"] if len(t["primary_key"]) == 1 else []
        items: list[tuple[str, str]] = []  # (definition, comment)
        for c in t["columns"]:
            line = f"{_quote(c['name'])} {c['type'] or 'TEXT'}"
            if c["name"] in single_pk:
                line += " PRIMARY KEY"
            elif c["not_null"]:
                line += " NOT NULL"
            shown = samples and c["samples"]
            note = "e.g. " + ", ".join(_literal(v) for v in c["samples"]) if shown else ""
            items.append((line, note))
        if len(t["primary_key"]) > 1:
            items.append((f"PRIMARY KEY ({', '.join(map(_quote, t['primary_key']))})", ""))
        for fk in t["foreign_keys"]:
            items.append(
                (
                    f"FOREIGN KEY ({', '.join(map(_quote, fk['columns']))}) REFERENCES "
                    f"{_quote(fk['ref_table'])} ({', '.join(map(_quote, fk['ref_columns']))})",
                    "",
                )
            )
        lines = [
            f"  {d}{',' if i < len(items) - 1 else ''}" + (f"  -- {n}" if n else "")
            for i, (d, n) in enumerate(items)
        ]
        kind = "VIEW" if t["kind"] == "view" else "TABLE"
        rows = f"  -- {t['rows']} rows" if t.get("rows") is not None else ""
        parts.append(f"CREATE {kind} {_quote(t['name'])} (\n" + "\n".join(lines) + f"\n);{rows}")
    return "\n\n".join(parts)


def _words(text: str) -> set[str]:
    words = set(_WORD.findall(text.lower().replace("_", " ")))
    return words | {w[:-1] for w in words if len(w) > 3 and w.endswith("s")}


def link_tables(
    schema: dict[str, Any], question: str = "", sql_tables: Iterable[str] = (), max_tables: int = 8
) -> list[str]:
    """The tables to show for a question: those the SQL reads, then the tables whose name,
    columns or sample values share the most words with the question, then the tables their
    foreign keys reach; at most ``max_tables`` (all when the schema is that small)."""
    tables = schema["tables"]
    names = [t["name"] for t in tables]
    if len(tables) <= max_tables:
        return names
    by_lower = {n.lower(): n for n in names}
    chosen = [by_lower[t.lower()] for t in sql_tables if t.lower() in by_lower]
    asked = _words(question)
    scores = []
    for i, t in enumerate(tables):
        name_hits = len(asked & _words(t["name"]))
        col_hits = sum(len(asked & _words(c["name"])) for c in t["columns"])
        value_hits = sum(
            len(asked & _words(str(v)))
            for c in t["columns"]
            for v in c["samples"]
            if isinstance(v, str)
        )
        scores.append((-(3 * name_hits + 2 * col_hits + value_hits), i))
    for score, i in sorted(scores):
        if score < 0 and names[i] not in chosen:
            chosen.append(names[i])
        if len(chosen) >= max_tables:
            break
    linked = list(chosen)
    for t in tables:  # tables a chosen table references, and tables that reference it
        for fk in t["foreign_keys"]:
            ref = by_lower.get(fk["ref_table"].lower())
            pair = (t["name"], ref)
            for a, b in (pair, pair[::-1]):
                if a in chosen and b and b not in linked and len(linked) < max_tables:
                    linked.append(b)
    return linked or names[:max_tables]
