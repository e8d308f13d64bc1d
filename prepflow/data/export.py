"""Export a dataset to the formats fine-tuning tools read: Alpaca, ShareGPT, OpenAI chat
messages, a LlamaFactory dataset (data file + ``dataset_info.json`` entry) and a Hugging Face
``datasets`` directory.

Rows come as a stream of Arrow tables (a run's output shards). A row already holding chat
``messages`` (OpenAI shape: ``role``, ``content``, assistant ``tool_calls``, ``tool`` replies) is
exported from them; otherwise it is built from the mapped instruction/input/output columns
(``question``/``answer`` by default). A row that cannot be expressed in the target format (no
instruction, turns ShareGPT cannot alternate, a malformed tool call) is an :class:`ExportError`
naming its source and row: ``on_error="stop"`` raises at the first one, ``"skip"`` writes the
others and lists every skipped row in the returned :class:`ExportReport`. Nothing is dropped
silently, and an existing output is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa

from prepflow.core.errors import ConfigError, PrepflowError

EXPORT_FORMATS = ("alpaca", "sharegpt", "chat", "llamafactory", "hf")
"""Every format name :func:`export` accepts."""


class ExportError(PrepflowError):
    """A row that cannot be written in the target format."""

    def __init__(self, source: str, row: int, message: str):
        self.source, self.row, self.reason = source, row, message
        super().__init__(f"{source}: row {row}: {message}")


@dataclass(frozen=True)
class ColumnMap:
    """Which dataset columns feed the exported fields (None: not used)."""

    instruction: str = "question"
    input: str | None = None
    output: str = "answer"
    system: str | None = None  # a column with a per-row system prompt
    messages: str = "messages"  # a column of OpenAI chat messages, used when present
    tools: str | None = "tools"  # a column of OpenAI tool definitions, used when present
    system_prompt: str | None = None  # a system prompt for rows without one

    @classmethod
    def parse(cls, mapping: dict[str, Any] | None) -> ColumnMap:
        """From a ``{field: column}`` mapping (YAML or CLI), rejecting unknown fields."""
        mapping = dict(mapping or {})
        unknown = set(mapping) - set(cls.__dataclass_fields__)
        if unknown:
            known = ", ".join(cls.__dataclass_fields__)
            raise ConfigError(f"unknown export column field(s) {sorted(unknown)}; known: {known}")
        return cls(**mapping)


@dataclass
class ExportReport:
    """What an export wrote, where, and the rows it could not write (``on_error="skip"``)."""

    format: str
    path: Path
    rows: int = 0
    skipped: list[ExportError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


Source = pa.Table | tuple[str, pa.Table]


def export(
    tables: Iterable[Source],
    format: str,
    output: str | os.PathLike[str],
    *,
    columns: ColumnMap | None = None,
    name: str = "prepflow",
    on_error: Literal["stop", "skip"] = "stop",
) -> ExportReport:
    """Write ``tables`` to ``output`` in ``format`` (see :data:`EXPORT_FORMATS`).

    ``alpaca``, ``sharegpt`` and ``chat`` write one file: JSON Lines, or a JSON array when
    ``output`` ends in ``.json``. ``llamafactory`` and ``hf`` write a directory: ``llamafactory``
    puts ``<name>.json`` (ShareGPT when the rows carry messages or tools, else Alpaca) beside a
    ``dataset_info.json`` holding the entry ``name`` (added to an existing file, never replacing
    an entry); ``hf`` writes a ``datasets`` ``save_to_disk`` directory of chat ``messages``.
    Each ``tables`` item is a table or ``(source name, table)``; errors name the source and the
    1-based row within it.
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown export format {format!r}; expected one of {', '.join(EXPORT_FORMATS)}"
        )
    cmap = columns or ColumnMap()
    path = Path(output)
    report = ExportReport(format, path)
    records = _records(tables, format, cmap, on_error, report)
    if format in ("alpaca", "sharegpt", "chat"):
        _refuse_existing(path)
        report.rows = _write_json(records, path, array=path.suffix == ".json")
        report.files.append(path)
    elif format == "llamafactory":
        report.rows = _write_llamafactory(records, path, name, report)
    else:
        report.rows = _write_hf(records, path)
        report.files.append(path)
    return report


# ---- rows -> records -------------------------------------------------------------------------


def _records(
    tables: Iterable[Source],
    format: str,
    cmap: ColumnMap,
    on_error: str,
    report: ExportReport,
) -> Iterator[dict[str, Any]]:
    counters: dict[str, int] = {}
    for item in tables:
        source, table = item if isinstance(item, tuple) else ("<input>", item)
        for row in table.to_pylist():
            counters[source] = number = counters.get(source, 0) + 1
            try:
                yield _record(row, format, cmap)
            except (ValueError, TypeError, KeyError) as e:
                error = ExportError(source, number, str(e))
                if on_error == "stop":
                    raise error from None
                report.skipped.append(error)


def _record(row: dict[str, Any], format: str, cmap: ColumnMap) -> dict[str, Any]:
    if format == "alpaca" or (format == "llamafactory" and not _has_chat(row, cmap)):
        return alpaca_record(row, cmap)
    messages, tools = chat_messages(row, cmap)
    if format in ("chat", "hf"):
        out: dict[str, Any] = {"messages": messages}
        if format == "hf":  # one Arrow type for every row: the definitions as JSON text
            out["tools"] = orjson.dumps(tools).decode() if tools else None
        elif tools:
            out["tools"] = tools
        return out
    return sharegpt_record(messages, tools)


def _has_chat(row: dict[str, Any], cmap: ColumnMap) -> bool:
    return row.get(cmap.messages) is not None or bool(cmap.tools and row.get(cmap.tools))


def _text(row: dict[str, Any], column: str | None, what: str) -> str:
    if column is None:
        raise ValueError(f"no column is mapped to {what}")
    if column not in row:
        raise KeyError(f"no column {column!r} (mapped to {what})")
    value = row[column]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{what} ({column!r}) is empty")
    if not isinstance(value, str):
        raise TypeError(f"{what} ({column!r}) is not text: {type(value).__name__}")
    return value


def _system(row: dict[str, Any], cmap: ColumnMap) -> str | None:
    value = row.get(cmap.system) if cmap.system else None
    return value if value else cmap.system_prompt


def alpaca_record(row: dict[str, Any], cmap: ColumnMap) -> dict[str, Any]:
    """``{instruction, input, output[, system]}``."""
    out = {
        "instruction": _text(row, cmap.instruction, "instruction"),
        "input": _text(row, cmap.input, "input") if cmap.input else "",
        "output": _text(row, cmap.output, "output"),
    }
    if system := _system(row, cmap):
        out["system"] = system
    return out


def chat_messages(
    row: dict[str, Any], cmap: ColumnMap
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """OpenAI chat messages (system first) and tool definitions of a row, checked."""
    tools = row.get(cmap.tools) if cmap.tools else None
    if isinstance(tools, str):
        tools = orjson.loads(tools)
    raw = row.get(cmap.messages)
    if raw is None:
        user = _text(row, cmap.instruction, "instruction")
        if cmap.input and row.get(cmap.input):
            user = f"{user}\n\n{_text(row, cmap.input, 'input')}"
        raw = [
            {"role": "user", "content": user},
            {"role": "assistant", "content": _text(row, cmap.output, "output")},
        ]
    if isinstance(raw, str):
        raw = orjson.loads(raw)
    messages = [_message(m, i) for i, m in enumerate(raw, 1)]
    system = _system(row, cmap)
    if system and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": system})
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("the conversation has no assistant message")
    return messages, tools or None


def _message(m: Any, index: int) -> dict[str, Any]:
    if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
        raise ValueError(f"message {index} has no valid role: {m!r}"[:200])
    out: dict[str, Any] = {"role": m["role"], "content": m.get("content")}
    if m["role"] == "assistant" and m.get("tool_calls"):
        calls = []
        for call in m["tool_calls"]:
            fn = (call or {}).get("function") or {}
            if not fn.get("name"):
                raise ValueError(f"message {index}: a tool call without a function name")
            args = fn.get("arguments")
            if not isinstance(args, str):
                args = orjson.dumps(args or {}).decode()
            try:
                orjson.loads(args)
            except orjson.JSONDecodeError:
                raise ValueError(f"message {index}: tool call arguments are not JSON") from None
            calls.append(
                {
                    "id": call.get("id"),
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": args},
                }
            )
        out["tool_calls"] = calls
    elif m["role"] == "tool":
        out["tool_call_id"] = m.get("tool_call_id")
    if out["content"] is None and "tool_calls" not in out:
        raise ValueError(f"message {index} ({m['role']}) has no content")
    return out


_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation"}


def sharegpt_record(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """LlamaFactory's ShareGPT shape: ``conversations`` of human/gpt/function_call/observation
    turns (human or observation at odd positions), ``system`` and ``tools`` (JSON text)."""
    system = None
    turns: list[dict[str, str]] = []
    for m in messages:
        if m["role"] == "system":
            if turns or system is not None:
                raise ValueError("sharegpt takes one system message, before the first turn")
            system = m["content"]
            continue
        if m.get("tool_calls"):
            calls = [
                {
                    "name": c["function"]["name"],
                    "arguments": orjson.loads(c["function"]["arguments"]),
                }
                for c in m["tool_calls"]
            ]
            value = orjson.dumps(calls[0] if len(calls) == 1 else calls).decode()
            turns.append({"from": "function_call", "value": value})
        else:
            turns.append({"from": _SHAREGPT_ROLE[m["role"]], "value": m["content"] or ""})
    # consecutive tool replies answer one function_call turn: merge them
    merged: list[dict[str, str]] = []
    for t in turns:
        if merged and t["from"] == "observation" and merged[-1]["from"] == "observation":
            merged[-1]["value"] += "\n" + t["value"]
        else:
            merged.append(t)
    for i, t in enumerate(merged):
        odd = t["from"] in ("human", "observation")
        if odd != (i % 2 == 0):
            raise ValueError(
                f"sharegpt needs human/observation and gpt/function_call turns alternating; "
                f"turn {i + 1} is {t['from']}"
            )
    if not merged or merged[-1]["from"] != "gpt":
        raise ValueError("sharegpt conversations end with a gpt turn")
    out: dict[str, Any] = {"conversations": merged}
    if system:
        out["system"] = system
    if tools:
        out["tools"] = orjson.dumps(tools).decode()
    return out


# ---- writers ---------------------------------------------------------------------------------


def _refuse_existing(path: Path) -> None:
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise ConfigError(f"{path} exists: choose a new output (exports never overwrite)")


def _write_json(records: Iterable[dict[str, Any]], path: Path, *, array: bool) -> int:
    """Write atomically: a temporary file beside ``path``, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"[\n" if array else b"")
            for record in records:
                if array and n:
                    f.write(b",\n")
                f.write(orjson.dumps(record))
                f.write(b"" if array else b"\n")
                n += 1
            f.write(b"\n]\n" if array else b"")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _write_llamafactory(
    records: Iterator[dict[str, Any]], directory: Path, name: str, report: ExportReport
) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    info_path = directory / "dataset_info.json"
    info = orjson.loads(info_path.read_bytes()) if info_path.exists() else {}
    if name in info:
        raise ConfigError(f"{info_path} already has an entry {name!r}: choose another name")
    data = directory / f"{name}.json"
    _refuse_existing(data)
    first = next(records, None)
    sharegpt = first is not None and "conversations" in first
    rows = _write_json(_chain(first, records), data, array=True)
    entry: dict[str, Any] = {"file_name": data.name}
    if sharegpt:
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": "conversations", "system": "system", "tools": "tools"}
    else:
        entry["columns"] = {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
        }
    info[name] = entry
    tmp = info_path.with_name(f".{info_path.name}.tmp")
    tmp.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    os.replace(tmp, info_path)
    report.files += [data, info_path]
    return rows


def _chain(
    first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    if first is not None:
        yield first
        yield from rest


def _write_hf(records: Iterable[dict[str, Any]], directory: Path) -> int:
    try:
        import datasets
    except ImportError:
        raise ConfigError("the hf export needs `pip install 'prepflow[hf]'`") from None
    _refuse_existing(directory)
    rows = list(records)  # datasets builds its Arrow table from the whole list
    schema = datasets.Features(
        {
            "messages": [
                {
                    "role": datasets.Value("string"),
                    "content": datasets.Value("string"),
                    "tool_calls": [
                        {
                            "id": datasets.Value("string"),
                            "type": datasets.Value("string"),
                            "function": {
                                "name": datasets.Value("string"),
                                "arguments": datasets.Value("string"),
                            },
                        }
                    ],
                    "tool_call_id": datasets.Value("string"),
                }
            ],
            "tools": datasets.Value("string"),
        }
    )
    for r in rows:
        for m in r["messages"]:
            m.setdefault("tool_calls", [])
            m.setdefault("tool_call_id", None)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bar()  # the caller reports what was written
        try:
            datasets.Dataset.from_list(rows, features=schema).save_to_disk(str(tmp))
        finally:
            if bars:
                datasets.enable_progress_bar()
        if directory.exists():
            directory.rmdir()  # empty (checked above)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(rows)
