"""Cleaning and chunking on the real converted documents."""

from __future__ import annotations

import itertools
import json

import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError
from prepflow.operators.knowledge.chunk import MarkdownChunker
from prepflow.operators.knowledge.clean import (
    LLMCleaner,
    RepeatedLineRemover,
    TextNormalizer,
    edit_ratio,
)
from prepflow.testing import ScriptedServer, run_operator


def docs(converted: dict, *ids: str) -> pa.Table:
    rows = [converted[i] for i in ids]
    table = pa.Table.from_pylist([{k: r[k] for k in ("doc_id", "markdown", "pages")} for r in rows])
    return table.add_column(0, "_id", pa.array(range(len(rows)), pa.int64()))


def test_running_headers_are_removed_and_pages_stay_in_step(converted: dict) -> None:
    table = docs(converted, "en/maint-guide-ch1.pdf", "en/start.html")
    out = RepeatedLineRemover().run_batch(table).kept.to_pylist()
    pdf, html = out
    assert "Debian New Maintainers\u2019 Guide" in converted["en/maint-guide-ch1.pdf"]["markdown"]
    assert "Maintainers\u2019 Guide 2 / 57" not in pdf["markdown"]
    assert "# Getting started The Right Way" in pdf["markdown"]
    for page in pdf["pages"]:
        text = pdf["markdown"][page["start"] : page["end"]]
        assert text == text.strip("\n") and text
    assert pdf["markdown"][pdf["pages"][1]["start"] :].startswith("  - You should be motivated")
    assert html["markdown"] == converted["en/start.html"]["markdown"]  # no pages: unchanged


def test_normalizer_joins_hyphenation_and_drops_control_characters() -> None:
    table = pa.table(
        {
            "_id": [0],
            "markdown": ["infor-\nmation in C-\nTerm\x07 and  two   spaces\n    code  kept"],
        }
    )
    (row,) = TextNormalizer().run_batch(table).kept.to_pylist()
    assert row["markdown"] == "information in C-\nTerm and two spaces\n    code  kept"
    assert row["pages"] == []


def test_heading_chunks_keep_path_pages_and_exact_offsets(converted: dict) -> None:
    table = docs(converted, "en/maint-guide-ch1.pdf", "zh/start.html")
    out = MarkdownChunker(method="headings", size=200).run_batch(table).kept.to_pylist()
    for row in out:
        assert row["chunk"] == row["markdown"][row["start"] : row["end"]]
        assert row["chunk_id"] == f"{row['doc_id']}#{row['chunk_index']}"
    social = next(r for r in out if r["chunk"].startswith("## 1.1 Social dynamics"))
    assert social["heading_path"] == [
        "Getting started The Right Way",
        "1.1 Social dynamics of Debian",
    ]
    assert (social["page_start"], social["page_end"]) == (1, 2)  # the section crosses a page
    programs = next(r for r in out if r["chunk"].startswith("## 1.2 Programs needed"))
    assert programs["page_start"] == 3
    zh = [r for r in out if r["doc_id"] == "zh/start.html"]
    assert zh[0]["heading_path"] == ["第 1 章 正确的起点"] and zh[0]["page_start"] is None


def test_chinese_is_sized_by_characters_not_whitespace(converted: dict) -> None:
    table = docs(converted, "zh/start.html")
    out = MarkdownChunker(method="sentences", size=60).run_batch(table).kept.to_pylist()
    assert len(out) > 20
    # every chunk ends at a sentence end or its section's end, none longer than 60 tokens
    assert all(len(r["chunk"]) < 200 for r in out)
    assert sum(r["chunk"].endswith("。") for r in out) > len(out) // 2


def test_token_windows_overlap(converted: dict) -> None:
    table = docs(converted, "en/maint-guide.txt")
    out = MarkdownChunker(method="tokens", size=50, overlap=10).run_batch(table).kept.to_pylist()
    for a, b in itertools.pairwise(out):
        assert a["start"] < b["start"] < a["end"]  # b starts inside a: the overlap


def test_recursive_packs_small_sections_and_never_exceeds_size(converted: dict) -> None:
    table = docs(converted, "en/start.html")
    heads = MarkdownChunker(method="headings", size=300, unit="chars").run_batch(table).kept
    packed = MarkdownChunker(method="recursive", size=300, unit="chars").run_batch(table).kept
    assert packed.num_rows < heads.num_rows
    assert max(len(c) for c in packed.column("chunk").to_pylist()) <= 300


def test_overlap_must_be_below_size() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        MarkdownChunker(size=10, overlap=10)


def test_llm_cleaner_accepts_small_edits_and_fails_large_ones() -> None:
    passages = [
        "Debian Guide 2 / 57\nThe package system is one of the things that makes Debian great.",
        "Some text that the model will replace by something else entirely.",
    ]
    replies = {
        passages[0]: "The package system is one of the things that makes Debian great.",
        passages[1]: "A completely different answer invented by the model here.",
    }
    table = pa.table({"_id": [0, 1], "text": passages})

    def responder(req):
        return next(v for k, v in replies.items() if k in req.prompt)

    with ScriptedServer(responder) as server:
        result = run_operator(LLMCleaner(max_edit_ratio=0.3), table, server)
    assert result.kept.column("text").to_pylist() == [replies[passages[0]]]
    (failure,) = result.failed.to_pylist()
    assert failure["_error_type"] == "ParseError"
    ratio = edit_ratio(passages[1], replies[passages[1]])
    assert f"max_edit_ratio: {ratio:.2f} > 0.3" in failure["_error"]
    assert json.dumps(failure["_raw"]) == json.dumps(replies[passages[1]])
