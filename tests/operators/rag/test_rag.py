"""The search index, multi-hop questions and search trajectories on real document chunks,
against the scripted OpenAI-compatible server."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError
from prepflow.operators.rag._index import SearchIndex, search_tokens
from prepflow.operators.rag.index import BuildSearchIndex, RetrievalRecall
from prepflow.operators.rag.multihop import MultiHopQuestionGenerator
from prepflow.operators.rag.trajectory import SearchTrajectoryGenerator, TrajectoryVerifier
from prepflow.testing import ChatRequest, ScriptedServer, run_operator


def chunk_id_of(chunks: pa.Table, prefix: str) -> str:
    rows = chunks.select(["chunk_id", "chunk"]).to_pylist()
    return next(r["chunk_id"] for r in rows if r["chunk"].startswith(prefix))


def test_chinese_terms_are_characters_and_bigrams() -> None:
    assert search_tokens("使用 Vim 编辑") == ["使", "用", "vim", "编", "辑", "使用", "编辑"]


def test_bm25_finds_english_and_chinese_sections(index_dir: Path, chunks: pa.Table) -> None:
    index = SearchIndex.load(index_dir)
    assert len(index) == chunks.num_rows
    top = index.search("Where to ask for help with packaging", 3)
    assert top[0].chunk_id == chunk_id_of(chunks, "## 1.4. Where to ask for help")
    zh = index.search("强制退出vim", 3)
    assert zh[0].chunk_id.startswith("zh/debian-reference-vim-table.pdf#")


def test_the_index_does_not_depend_on_shard_order(
    chunks: pa.Table, tmp_path: Path, index_dir: Path
) -> None:
    op = BuildSearchIndex(index_dir=str(tmp_path / "shuffled"))
    summaries = [
        op.summarize(pa.Table.from_batches([b])) for b in chunks.to_batches(max_chunksize=7)
    ]
    random.Random(3).shuffle(summaries)
    op.finalize(functools.reduce(op.merge, summaries))
    assert (tmp_path / "shuffled" / "index.json").read_bytes() == (
        index_dir / "index.json"
    ).read_bytes()
    assert op.run_batch(chunks.slice(0, 4)).kept.equals(chunks.slice(0, 4))  # rows pass through


def test_an_index_directory_prepflow_did_not_write_is_refused(
    chunks: pa.Table, tmp_path: Path
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    op = BuildSearchIndex(index_dir=str(tmp_path / "mine"))
    with pytest.raises(ConfigError, match="is not a prepflow index"):
        op.fit([chunks.slice(0, 3)])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_dense_and_hybrid_search(chunks: pa.Table, tmp_path: Path) -> None:
    rows = chunks.select(["chunk_id", "doc_id", "chunk"]).to_pylist()[:6]
    table = pa.table(
        {
            "_id": list(range(6)),
            "chunk_id": [r["chunk_id"] for r in rows],
            "doc_id": [r["doc_id"] for r in rows],
            "chunk": [r["chunk"] for r in rows],
            "embedding": [[1.0 if i == j else 0.0 for j in range(6)] for i in range(6)],
        }
    )
    op = BuildSearchIndex(index_dir=str(tmp_path / "dense"))
    op.fit([table])
    index = SearchIndex.load(tmp_path / "dense")
    ids = sorted(r["chunk_id"] for r in rows)
    assert (
        next(h.chunk_id for h in index.search("x", 2, "dense", [0, 0, 1, 0, 0, 0]))
        == rows[2]["chunk_id"]
    )
    hybrid = index.search(rows[4]["chunk"], 3, "hybrid", [0, 0, 0, 0, 1.0, 0])
    assert hybrid[0].chunk_id == rows[4]["chunk_id"] and set(ids) >= {h.chunk_id for h in hybrid}


def test_depth_question_follows_retrieval_and_keeps_evidence(
    index_dir: Path, chunks: pa.Table
) -> None:
    seed = chunks.filter(
        pa.compute.starts_with(chunks["chunk"], "## 1.4. Where to ask for help")
    ).slice(0, 1)

    def responder(req: ChatRequest) -> str:
        assert "needs a chain of 2 lookups" in req.prompt and "Passage 2:" in req.prompt
        return json.dumps(
            {
                "question": "Which list answers packaging questions?",
                "answer": "debian-mentors",
                "hops": [
                    {"query": "where to ask for help", "evidence": "Where to ask for help"},
                    {"query": "mentors mailing list", "evidence": "mentors"},
                ],
            }
        )

    with ScriptedServer(responder) as server:
        result = run_operator(
            MultiHopQuestionGenerator(index_dir=str(index_dir), hops=2), seed, server
        )
    (row,) = result.kept.to_pylist()
    assert row["evidence_ids"][0] == seed["chunk_id"][0].as_py()
    assert len(set(row["evidence_ids"])) == 2 and row["hop_kind"] == "depth"
    index = SearchIndex.load(index_dir)
    assert row["contexts"][1] == index.text(row["evidence_ids"][1])
    assert row["hop_queries"] == ["where to ask for help", "mentors mailing list"]


def test_width_question_with_wrong_hop_count_fails_the_row(
    index_dir: Path, chunks: pa.Table
) -> None:
    seed = chunks.slice(5, 1)
    reply = json.dumps({"question": "q", "answer": "a", "hops": [{"query": "x", "evidence": "y"}]})
    with ScriptedServer(lambda req: reply) as server:
        op = MultiHopQuestionGenerator(
            index_dir=str(index_dir), kind="width", hops=3, cross_document=True
        )
        result = run_operator(op, seed, server, max_reasks=0)
        assert "combines one fact from every passage" in server.received[0].prompt
    assert "hops: List should have at least 3 items" in result.failed.column("_error")[0].as_py()


def agent(req: ChatRequest) -> str:
    """Searches the question, then answers from the first result, citing it."""
    turns = [m for m in req.messages if m["role"] == "user"]
    if len(turns) == 1:
        return json.dumps({"action": "search", "query": turns[0]["content"]})
    first = turns[-1]["content"].split("\n\n", 1)[1]
    cited = first[1 : first.index("]")]
    answer = "debian-mentors" if "mentors" in first else "vimtutor"
    return json.dumps({"action": "answer", "answer": answer, "cite": [cited]})


def test_trajectory_in_openai_tool_format_is_verified_by_replay(index_dir: Path) -> None:
    questions = pa.table(
        {
            "_id": [0, 1],
            "question": ["vimtutor 程序学习 vim", "Where to ask for help with packaging"],
            "answer": ["vimtutor", "the debian-mentors mailing list"],
        }
    )
    with ScriptedServer(agent) as server:
        result = run_operator(
            SearchTrajectoryGenerator(index_dir=str(index_dir), k=3), questions, server
        )
    rows = result.kept.to_pylist()
    msgs = rows[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    call = msgs[1]["tool_calls"][0]
    assert call["function"] == {
        "name": "search",
        "arguments": json.dumps(
            {"query": "vimtutor 程序学习 vim"}, separators=(",", ":"), ensure_ascii=False
        ),
    }
    assert msgs[2]["tool_call_id"] == call["id"] and msgs[2]["content"].startswith(
        f"[{rows[0]['retrieved_ids'][0][0]}]"
    )
    assert json.loads(rows[0]["tools"])[0]["function"]["name"] == "search"
    assert rows[0]["cited_ids"] == [rows[0]["retrieved_ids"][0][0]]

    verified = TrajectoryVerifier(index_dir=str(index_dir), k=3).run_batch(result.kept)
    assert verified.n_dropped == 0 and verified.kept.num_rows == 2
    # "debian-mentors" against "the debian-mentors mailing list": token F1 0.67
    strict = TrajectoryVerifier(index_dir=str(index_dir), k=3, min_answer_f1=0.9)
    dropped = strict.run_batch(result.kept).dropped
    assert dropped.column("_reason").to_pylist() == ["min_answer_f1: 0.67 < 0.9"]

    forged = result.kept.set_column(
        result.kept.column_names.index("retrieved_ids"),
        "retrieved_ids",
        pa.array([[["en/README.md#0"]], rows[1]["retrieved_ids"]]),
    )
    dropped = TrajectoryVerifier(index_dir=str(index_dir), k=3).run_batch(forged).dropped
    assert (
        dropped.column("_reason")[0]
        .as_py()
        .startswith("replay: search 1 ('vimtutor 程序学习 vim') returns [")
    )


def test_trajectory_without_an_answer_is_a_failure(index_dir: Path) -> None:
    search_forever = json.dumps({"action": "search", "query": "vim"})
    with ScriptedServer(lambda req: search_forever) as server:
        op = SearchTrajectoryGenerator(index_dir=str(index_dir), max_steps=2)
        result = run_operator(op, pa.table({"_id": [0], "question": ["q"]}), server)
        assert server.count() == 3
    assert result.failed.column("_error")[0].as_py() == "no answer after 2 searches (max_steps 2)"


def test_retrieval_recall(index_dir: Path, chunks: pa.Table) -> None:
    help_id = chunk_id_of(chunks, "## 1.4. Where to ask for help")
    table = pa.table(
        {
            "_id": [0, 1],
            "question": ["Where to ask for help", "Where to ask for help"],
            "evidence_ids": [[help_id], [help_id, "en/README.md#0"]],
        }
    )
    out = RetrievalRecall(index_dir=str(index_dir), k=5).run_batch(table).kept
    assert out.column("recall_at_k").to_pylist()[0] == 1.0


def test_dense_trajectory_embeds_queries_through_the_serving(
    chunks: pa.Table, tmp_path: Path
) -> None:
    from prepflow.testing import embed_text

    sample = chunks.slice(0, 12)
    texts = sample.column("chunk").to_pylist()
    table = sample.append_column("embedding", pa.array([embed_text(t, 8) for t in texts]))
    op = BuildSearchIndex(index_dir=str(tmp_path / "dense"))
    op.fit([table])
    target = texts[7]

    def responder(req: ChatRequest) -> str:
        if len([m for m in req.messages if m["role"] == "user"]) == 1:
            return json.dumps({"action": "search", "query": target})
        cited = req.messages[-1]["content"].split("[", 1)[1].split("]", 1)[0]
        return json.dumps({"action": "answer", "answer": "x", "cite": [cited]})

    questions = pa.table({"_id": [0], "question": ["find it"]})
    with ScriptedServer(responder, embed_dim=8) as server:
        gen = SearchTrajectoryGenerator(index_dir=str(tmp_path / "dense"), mode="dense", k=2)
        result = run_operator(gen, questions, server)
        assert server.count(target) == 1  # the query went to /embeddings once
    (row,) = result.kept.to_pylist()
    assert row["retrieved_ids"][0][0] == sample["chunk_id"][7].as_py()
    assert row["cited_ids"] == [sample["chunk_id"][7].as_py()]
