"""Export formats, loaded back the way the tools that consume them load them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError
from prepflow.data.export import ColumnMap, ExportError, export

QA = pa.table(
    {
        "question": ["Who works on Debian?", "用什么程序学习 vim?"],
        "answer": ["Volunteers.", "vimtutor"],
        "chunk_id": ["a.pdf#0", "b.pdf#3"],
    }
)
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "search", "arguments": json.dumps({"query": "vim tutor"})},
}
TRAJECTORY = pa.table(
    {
        "messages": [
            [
                {"role": "user", "content": "Which program teaches vim?"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "[b.pdf#3] use vimtutor"},
                {"role": "assistant", "content": "vimtutor", "tool_calls": None},
            ]
        ],
        "tools": [
            json.dumps(
                [
                    {
                        "type": "function",
                        "function": {"name": "search", "parameters": {"type": "object"}},
                    }
                ]
            )
        ],
    }
)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_alpaca_and_chat_with_a_system_prompt(tmp_path: Path) -> None:
    cmap = ColumnMap(system_prompt="Answer from the Debian documentation.")
    rep = export([QA], "alpaca", tmp_path / "a.jsonl", columns=cmap)
    assert rep.rows == 2 and not rep.skipped
    assert lines(tmp_path / "a.jsonl")[1] == {
        "instruction": "用什么程序学习 vim?",
        "input": "",
        "output": "vimtutor",
        "system": "Answer from the Debian documentation.",
    }
    export([QA], "chat", tmp_path / "c.json", columns=cmap)
    rows = json.loads((tmp_path / "c.json").read_text())
    assert rows[0] == {
        "messages": [
            {"role": "system", "content": "Answer from the Debian documentation."},
            {"role": "user", "content": "Who works on Debian?"},
            {"role": "assistant", "content": "Volunteers."},
        ]
    }


def test_tool_calls_survive_chat_and_sharegpt(tmp_path: Path) -> None:
    export([TRAJECTORY], "chat", tmp_path / "t.jsonl")
    (row,) = lines(tmp_path / "t.jsonl")
    assert row["messages"][1]["tool_calls"] == [CALL]
    assert row["messages"][2] == {
        "role": "tool",
        "content": "[b.pdf#3] use vimtutor",
        "tool_call_id": "call_1",
    }
    export([TRAJECTORY], "sharegpt", tmp_path / "s.jsonl")
    (row,) = lines(tmp_path / "s.jsonl")
    assert row["conversations"] == [
        {"from": "human", "value": "Which program teaches vim?"},
        {"from": "function_call", "value": '{"name":"search","arguments":{"query":"vim tutor"}}'},
        {"from": "observation", "value": "[b.pdf#3] use vimtutor"},
        {"from": "gpt", "value": "vimtutor"},
    ]
    assert json.loads(row["tools"])[0]["function"]["name"] == "search"


def test_llamafactory_dataset_info_read_as_its_loader_does(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "lf"
    export([TRAJECTORY], "llamafactory", out, name="rag_traj")
    export([QA], "llamafactory", out, name="knowledge_qa")
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"rag_traj", "knowledge_qa"}
    # LlamaFactory: dataset_info[name] -> load_dataset("json", data_files=dataset_dir/file_name),
    # then the converter reads the mapped columns ("formatting" defaults to alpaca)
    for entry in info.values():
        ds = datasets.load_dataset("json", data_files=str(out / entry["file_name"]), split="train")
        cols = entry["columns"]
        if entry.get("formatting") == "sharegpt":
            turns = ds[0][cols["messages"]]
            roles = [t["from"] for t in turns]
            assert roles == ["human", "function_call", "observation", "gpt"]
            assert all(
                (t["from"] in ("human", "observation")) == (i % 2 == 0) for i, t in enumerate(turns)
            )
            assert json.loads(ds[0][cols["tools"]])[0]["function"]["name"] == "search"
        else:
            assert [r[cols["prompt"]] for r in ds] == QA.column("question").to_pylist()
            assert [r[cols["response"]] for r in ds] == QA.column("answer").to_pylist()
    with pytest.raises(ConfigError, match="already has an entry 'rag_traj'"):
        export([TRAJECTORY], "llamafactory", out, name="rag_traj")


def test_hf_directory_loads_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    export([QA, TRAJECTORY], "hf", tmp_path / "hf")
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert ds.num_rows == 3
    assert ds[0]["messages"][1] == {
        "role": "assistant",
        "content": "Volunteers.",
        "tool_calls": [],
        "tool_call_id": None,
    }
    assert ds[2]["messages"][1]["tool_calls"][0]["function"]["name"] == "search"
    assert ds[0]["tools"] is None and json.loads(ds[2]["tools"])[0]["type"] == "function"


def test_a_row_that_cannot_map_is_reported_with_source_and_row(tmp_path: Path) -> None:
    bad = pa.table({"question": ["ok?", None, "x"], "answer": ["yes", "no", ""]})
    with pytest.raises(
        ExportError, match=r"shard-00003.parquet: row 2: instruction \('question'\) is empty"
    ):
        export([("shard-00003.parquet", bad)], "alpaca", tmp_path / "a.jsonl")
    assert not (tmp_path / "a.jsonl").exists()  # nothing half-written
    rep = export([("s.parquet", bad)], "chat", tmp_path / "c.jsonl", on_error="skip")
    assert rep.rows == 1
    assert [str(e) for e in rep.skipped] == [
        "s.parquet: row 2: instruction ('question') is empty",
        "s.parquet: row 3: output ('answer') is empty",
    ]
    two_users = pa.table(
        {
            "messages": [
                [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    {"role": "assistant", "content": "c"},
                ]
            ]
        }
    )
    with pytest.raises(ExportError, match="turn 2 is human"):
        export([two_users], "sharegpt", tmp_path / "s.jsonl")
    with pytest.raises(ConfigError, match="exports never overwrite"):
        export([QA], "chat", tmp_path / "c.jsonl")
    with pytest.raises(ConfigError, match="unknown export column field"):
        ColumnMap.parse({"prompt": "q"})
    with pytest.raises(ExportError, match="no column 'q' \\(mapped to instruction\\)"):
        export([QA], "alpaca", tmp_path / "m.jsonl", columns=ColumnMap.parse({"instruction": "q"}))
