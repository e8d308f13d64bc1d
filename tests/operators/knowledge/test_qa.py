"""Knowledge QA generation and checks against the scripted OpenAI-compatible server."""

from __future__ import annotations

import json

import pyarrow as pa

from prepflow.operators.common.textmatch import token_f1
from prepflow.operators.knowledge.qa import (
    AnswerF1,
    ChunkQAGenerator,
    ClosedBookFilter,
    EvidenceSupportFilter,
    MultiHopQAGenerator,
    SingleChunkFilter,
)
from prepflow.testing import ChatRequest, ScriptedServer, run_operator

CHUNK_EN = (
    "## 1.1 Social dynamics of Debian\nWe all are volunteers. Friendly cooperation is the "
    "driving force. Debian is not a school where someone automatically pays attention to you."
)
CHUNK_ZH = '## 1.4.8 使用 vim\n在普通模式下输入":q!"强制退出vim。请使用"vimtutor"程序来学习 vim。'


def chunks() -> pa.Table:
    return pa.table(
        {"_id": [0, 1], "chunk_id": ["a.pdf#0", "b.pdf#3"], "chunk": [CHUNK_EN, CHUNK_ZH]}
    )


def test_chunk_qa_fans_out_pairs_with_evidence() -> None:
    def responder(req: ChatRequest) -> str:
        if "volunteers" in req.prompt:
            pairs = [
                {
                    "question": "Who works on Debian?",
                    "answer": "volunteers",
                    "evidence": "We all are volunteers.",
                },
                {
                    "question": "What drives Debian?",
                    "answer": "Friendly cooperation",
                    "evidence": "Friendly cooperation is the driving force.",
                },
            ]
        else:
            pairs = [
                {
                    "question": "用什么程序学习 vim?",
                    "answer": "vimtutor",
                    "evidence": '请使用"vimtutor"程序来学习 vim。',
                },
                {"question": "如何强制退出vim?", "answer": ":q!", "evidence": "强制退出vim"},
            ]
        return json.dumps({"pairs": pairs}, ensure_ascii=False)

    with ScriptedServer(responder) as server:
        result = run_operator(ChunkQAGenerator(n=2), chunks(), server)
        body = server.received[0].body
    rows = result.kept.to_pylist()
    assert [r["answer"] for r in rows] == ["volunteers", "Friendly cooperation", "vimtutor", ":q!"]
    assert rows[0]["evidence_ids"] == ["a.pdf#0"] and rows[2]["contexts"] == [CHUNK_ZH]
    assert body["max_tokens"] == 160 * 2 + 64
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["pairs"]

    checked = EvidenceSupportFilter().run_batch(result.kept)
    assert checked.kept.column("answer").to_pylist() == [
        "volunteers",
        "Friendly cooperation",
        "vimtutor",
    ]
    # ":q!" normalizes to "q", found in the quote? no: the quote "强制退出vim" lacks it
    assert checked.dropped.column("_reason").to_pylist() == ["min_answer_recall: 0.00 < 0.8"]


def test_evidence_must_be_quoted_from_its_chunk() -> None:
    table = pa.table(
        {
            "_id": [0],
            "answer": ["volunteers"],
            "evidence": [["All Debian developers are paid volunteers."]],
            "contexts": [[CHUNK_EN]],
        }
    )
    result = EvidenceSupportFilter().run_batch(table)
    assert result.dropped.column("_reason").to_pylist() == [
        "evidence_in_chunk: quote 1 of 1 is not in its chunk"
    ]


def test_the_schema_asks_for_exactly_n_pairs() -> None:
    pairs = ChunkQAGenerator(n=3).schema.model_json_schema()["properties"]["pairs"]
    assert (pairs["minItems"], pairs["maxItems"]) == (3, 3)


def test_wrong_number_of_pairs_is_a_failure_record() -> None:
    reply = json.dumps({"pairs": [{"question": "q", "answer": "a", "evidence": "e"}]})
    with ScriptedServer(lambda req: reply) as server:
        result = run_operator(ChunkQAGenerator(n=2), chunks().slice(0, 1), server, max_reasks=0)
    assert result.kept.num_rows == 0
    assert "pairs: List should have at least 2 items" in result.failed.column("_error")[0].as_py()


def test_multihop_pairs_each_chunk_with_the_next_and_single_chunk_check() -> None:
    def responder(req: ChatRequest) -> str:
        a = req.prompt.split("Passage A:\n")[1].split("\n\nPassage B")[0]
        if "volunteers" in a:
            return json.dumps(
                {
                    "question": "Q1",
                    "answer": "volunteers vimtutor",
                    "evidence_a": "We all are volunteers.",
                    "evidence_b": "vimtutor",
                },
                ensure_ascii=False,
            )
        return json.dumps(
            {
                "question": "Q2",
                "answer": "vimtutor",
                "evidence_a": "vimtutor",
                "evidence_b": "volunteers",
            }
        )

    with ScriptedServer(responder) as server:
        result = run_operator(MultiHopQAGenerator(), chunks(), server)
    rows = result.kept.to_pylist()
    assert [r["evidence_ids"] for r in rows] == [["a.pdf#0", "b.pdf#3"], ["b.pdf#3", "a.pdf#0"]]
    assert rows[0]["contexts"] == [CHUNK_EN, CHUNK_ZH]

    def one_passage(req: ChatRequest) -> str:  # answers what its one passage says
        return "vimtutor" if "vimtutor" in req.prompt.split("Question:")[0] else "unknown"

    with ScriptedServer(one_passage) as server:
        checked = run_operator(SingleChunkFilter(), result.kept, server)
        assert server.count() == 4
    # Q1 needs both chunks (F1 of "vimtutor" vs "volunteers vimtutor" is 0.67 >= 0.5, dropped);
    # so is Q2, answered by chunk b.pdf#3 alone
    reasons = checked.dropped.column("_reason").to_pylist()
    assert reasons == [
        "max_f1: chunk b.pdf#3 alone answers with F1 0.67 >= 0.5",
        "max_f1: chunk b.pdf#3 alone answers with F1 1.00 >= 0.5",
    ]
    with ScriptedServer(one_passage) as server:
        strict = run_operator(SingleChunkFilter(max_f1=0.9), result.kept, server)
    assert strict.kept.column("question").to_pylist() == ["Q1"]


def test_closed_book_filter_drops_what_the_model_knows_alone() -> None:
    table = pa.table(
        {
            "_id": [0, 1],
            "question": ["Capital of France?", "Who works on Debian?"],
            "answer": ["Paris", "volunteers"],
        }
    )
    replies = {"Capital of France?": "Paris.", "Who works on Debian?": "unknown"}
    with ScriptedServer(lambda req: replies[req.prompt.split("Question: ")[1]]) as server:
        result = run_operator(ClosedBookFilter(), table, server)
        assert "document" not in server.received[0].prompt
    assert result.kept.column("question").to_pylist() == ["Who works on Debian?"]
    assert result.dropped.column("_reason").to_pylist() == [
        "max_f1: closed-book answer F1 1.00 >= 0.5"
    ]


def test_answer_f1_is_cjk_aware() -> None:
    assert token_f1("The Paris!", "paris") == 1.0
    assert round(token_f1("强制退出", "退出vim"), 2) == round(
        2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3), 2
    )
    table = pa.table(
        {"_id": [0, 1], "prediction": ["volunteers", None], "reference": ["Volunteers.", "x"]}
    )
    out = AnswerF1().run_batch(table).kept
    assert out.column("answer_f1").to_pylist() == [1.0, None]
