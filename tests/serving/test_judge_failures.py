"""A judge's verdict that does not parse is a failure record with the raw reply, never a score.

Each unusable reply (not JSON, no score, a score off the scale, a word or a bool for a score) is
re-asked ``max_reasks`` times; when every answer is unusable, the row fails with the last raw
reply: the evaluator writes no score for it and the filter neither keeps nor drops it.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from prepflow.operators.general.llm import PromptedEvaluator, PromptedFilter
from prepflow.operators.sft.judges import QualityJudge
from prepflow.testing import run_operator

UNUSABLE = {
    "not JSON": "Score: 5/5. Excellent text, very clear.",
    "missing score": '{"rationale": "clear and useful"}',
    "score above the scale": '{"rationale": "perfect", "score": 10}',
    "score below the scale": '{"rationale": "awful", "score": 0}',
    "non-numeric score": '{"rationale": "great", "score": "excellent"}',
    "fraction as text": '{"rationale": "great", "score": "5/5"}',
    "bool score": '{"rationale": "yes", "score": true}',
    "empty reply": "",
}
REASKS = 2


def rows(texts: list[str]) -> pa.Table:
    return pa.table({"_id": pa.array(range(len(texts)), pa.int64()), "text": texts})


def responder(bad: str):
    """``bad`` for the text 'bad' (every ask, re-asks included), a valid 4 for the others."""

    def reply(req) -> str:
        text = req.messages[1]["content"].split("Text:\n", 1)[1].split("\n", 1)[0]
        return bad if text == "bad" else '{"rationale": "fine", "score": 4}'

    return reply


def assert_failed_with_raw(result, bad: str) -> None:
    failed = result.failed.to_pydict()
    assert failed["_id"] == [1]
    assert failed["_error_type"] == ["InvalidOutput"]
    assert f"after {REASKS} re-asks" in failed["_error"][0]
    assert failed["_raw"] == [bad]
    assert failed["_attempts"] == [REASKS + 1]


@pytest.mark.parametrize("bad", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_evaluator_fails_the_row_it_cannot_score(scripted, bad):
    server = scripted(responder(bad))
    result = run_operator(
        PromptedEvaluator(), rows(["good", "bad", "also good"]), server, max_reasks=REASKS
    )
    assert result.kept.to_pydict() == {
        "_id": [0, 2],
        "text": ["good", "also good"],
        "score": [4.0, 4.0],
        "rationale": ["fine", "fine"],
    }
    assert_failed_with_raw(result, bad)
    asked = [r for r in server.received if "Text:\nbad\n" in r.body["messages"][1]["content"]]
    assert len(asked) == REASKS + 1  # the first ask and each re-ask


@pytest.mark.parametrize("bad", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_filter_neither_keeps_nor_drops_the_row_it_cannot_score(scripted, bad):
    server = scripted(responder(bad))
    result = run_operator(
        PromptedFilter(threshold=3), rows(["good", "bad", "also good"]), server, max_reasks=REASKS
    )
    assert result.kept.to_pydict() == {"_id": [0, 2], "text": ["good", "also good"]}
    assert result.dropped is None
    assert_failed_with_raw(result, bad)


def test_a_domain_judge_fails_the_same_way(scripted):
    bad = '{"rationale": "top marks", "score": true}'
    server = scripted(lambda req: bad)
    table = pa.table(
        {"_id": pa.array([0], pa.int64()), "instruction": ["Add 2+2."], "response": ["4"]}
    )
    result = run_operator(QualityJudge(), table, server, max_reasks=0)
    assert result.kept.num_rows == 0
    assert result.failed.to_pydict()["_raw"] == [bad]


def test_a_corrected_reask_gives_the_corrected_score(scripted):
    answers = iter(['{"rationale": "perfect", "score": 10}', '{"rationale": "ok", "score": 2}'])
    server = scripted(lambda req: next(answers))
    result = run_operator(PromptedFilter(threshold=3), rows(["x"]), server, max_reasks=REASKS)
    assert result.kept.num_rows == 0 and result.failed is None
    assert result.dropped.to_pydict()["_reason"] == ["threshold: score=2 < 3; ok"]
