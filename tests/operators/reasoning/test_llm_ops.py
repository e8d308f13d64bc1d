"""Reasoning LLM operators against the scripted server, malformed model output included."""

from __future__ import annotations

import orjson
import pyarrow as pa

from prepflow.operators.reasoning.answers import AnswerGenerator
from prepflow.operators.reasoning.questions import (
    QuestionClassifier,
    QuestionQualityFilter,
    QuestionSynthesizer,
)
from prepflow.testing import ChatRequest, Reply, ScriptedServer, run_operator


def rows(**columns: list) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"_id": pa.array(range(n), pa.int64()), **columns})


def problem(req: ChatRequest) -> str:
    """The problem text of a prompt (after the 'Problem:' line of the default templates)."""
    first = next(m["content"] for m in req.messages if m["role"] == "user")
    return first.split("Problem:\n", 1)[1].split("\n", 1)[0]


def test_quality_filter_keeps_drops_and_fails_with_reasons() -> None:
    def judge(req: ChatRequest) -> str:
        q = problem(req)
        if q.startswith("good"):
            return orjson.dumps(
                {"well_posed": True, "self_contained": True, "solvable": True, "reason": "fine"}
            ).decode()
        if q.startswith("vague"):
            return orjson.dumps(
                {
                    "well_posed": False,
                    "self_contained": False,
                    "solvable": True,
                    "reason": "x is never defined",
                }
            ).decode()
        return "I think it is fine."  # not JSON, however often it is re-asked

    table = rows(question=["good: 2+2?", "vague: what is x?", "bad reply"])
    with ScriptedServer(judge) as server:
        r = run_operator(QuestionQualityFilter(), table, server, max_retries=0)
    assert r.kept["question"].to_pylist() == ["good: 2+2?"]
    assert r.dropped.to_pylist() == [
        {
            "_id": 1,
            "question": "vague: what is x?",
            "_reason": "not well_posed, self_contained: x is never defined",
        }
    ]
    assert r.failed["question"].to_pylist() == ["bad reply"]
    assert r.failed["_raw"].to_pylist() == ["I think it is fine."]


def test_judge_answers_are_bounded_unless_the_step_or_serving_says_otherwise() -> None:
    """A small model can loop inside the verdict's JSON string until its context is full: the
    judge asks for at most 256 tokens unless ``max_tokens`` is set, and an answer cut there is
    re-asked, then a failure record with the raw text."""
    asked: list[int | None] = []

    def judge(req: ChatRequest) -> Reply:
        asked.append(req.body.get("max_tokens"))
        if problem(req).startswith("loop"):
            return Reply(
                '{"well_posed": true, "reason": "because because because', finish_reason="length"
            )
        verdict = {"well_posed": True, "self_contained": True, "solvable": True, "reason": "ok"}
        return Reply(orjson.dumps(verdict).decode())

    with ScriptedServer(judge) as server:
        r = run_operator(QuestionQualityFilter(), rows(question=["loop"]), server, max_retries=0)
        assert r.failed["_error_type"].to_pylist() == ["TruncatedOutput"]
        assert r.failed["_raw"].to_pylist()[0].endswith("because because")
        assert set(asked) == {256}
        asked.clear()
        step = QuestionQualityFilter(generation={"max_tokens": 40})
        run_operator(step, rows(question=["fine"]), server)
        run_operator(
            QuestionQualityFilter(), rows(question=["fine"]), server, generation={"max_tokens": 900}
        )
    assert asked == [40, 900]


def test_synthesizer_links_variations_to_seeds_and_fails_refusals() -> None:
    def write(req: ChatRequest) -> str:
        first = req.messages[-1]["content"]
        seed = first.split("Seed problem:\n", 1)[1].split("\n", 1)[0]
        if seed.startswith("refuse"):
            return "I'm sorry, I can't create that."
        kind = (
            "combine"
            if "Second problem:" in first
            else "numbers"
            if "numbers" in first
            else "constraint"
        )
        return f"{kind} of {seed}"

    table = rows(
        question=["A has 3 apples.", "B has 4 pears.", "refuse me"], answer=["3", "4", "1"]
    )
    op = QuestionSynthesizer(n=3, variations=["numbers", "combine"]).bind({"reference": "answer"})
    with ScriptedServer(write) as server:
        r = run_operator(op, table, server)
        assert server.count() == 9
    got = [
        (x["_id"], x["question"], x["seed_question"], x["variation"], x["answer"])
        for x in r.kept.to_pylist()
    ]
    assert got == [
        (0, "A has 3 apples.", "A has 3 apples.", "seed", "3"),
        (0, "numbers of A has 3 apples.", "A has 3 apples.", "numbers", ""),
        (0, "combine of A has 3 apples.", "A has 3 apples.", "combine", ""),
        (0, "numbers of A has 3 apples.", "A has 3 apples.", "numbers", ""),
        (1, "B has 4 pears.", "B has 4 pears.", "seed", "4"),
        (1, "numbers of B has 4 pears.", "B has 4 pears.", "numbers", ""),
        (1, "combine of B has 4 pears.", "B has 4 pears.", "combine", ""),
        (1, "numbers of B has 4 pears.", "B has 4 pears.", "numbers", ""),
    ]
    assert r.failed["question"].to_pylist() == ["refuse me"]
    assert "refused" in r.failed["_error"][0].as_py()


def test_classifier_fixed_labels_and_out_of_set_answer_fails() -> None:
    def classify(req: ChatRequest) -> str:
        q = problem(req)
        label = {"difficulty": "easy", "category": "arithmetic_word_problem"}
        if q == "weird":
            label = {"difficulty": "trivial", "category": "algebra"}
        return orjson.dumps(label).decode()

    with ScriptedServer(classify) as server:
        r = run_operator(
            QuestionClassifier(), rows(question=["1+1?", "weird"]), server, max_retries=0
        )
    assert r.kept.select(["difficulty", "category"]).to_pylist() == [
        {"difficulty": "easy", "category": "arithmetic_word_problem"}
    ]
    assert r.failed["question"].to_pylist() == ["weird"]


def test_answer_generator_votes_and_keeps_unanswered_rows_for_the_format_filter() -> None:
    replies = {
        "vote": [
            "x = 2, so \\boxed{\\dfrac{1}{2}}",
            "\\boxed{3}",
            "so \\boxed{\\frac{1}{2}}",
            "no idea",
        ],
        "none": ["I'm sorry, I can't.", "still no box", "hmm", "nothing"],
    }

    def solve(req: ChatRequest) -> str:
        return replies[problem(req)][req.body["seed"]]

    op = AnswerGenerator(samples=4, generation={"temperature": 0.7})
    with ScriptedServer(solve) as server:
        r = run_operator(op, rows(question=["vote", "none"]), server)
        assert server.count() == 8
    assert r.kept.select(["answer", "final_answer", "agreement"]).to_pylist() == [
        {
            "answer": "x = 2, so \\boxed{\\dfrac{1}{2}}",
            "final_answer": "\\dfrac{1}{2}",
            "agreement": 0.5,
        },
        {"answer": "I'm sorry, I can't.", "final_answer": "", "agreement": 0.0},
    ]
    assert r.failed is None


def test_answer_generator_stops_sampling_once_a_majority_agrees() -> None:
    replies = {
        "agree": ["so \\boxed{4}", "x = 4, \\boxed{4}", "\\boxed{5}"],
        "split": ["\\boxed{4}", "\\boxed{5}", "then \\boxed{5}"],
    }

    def solve(req: ChatRequest) -> str:
        return replies[problem(req)][req.body["seed"]]

    def sent(server: ScriptedServer) -> list[int]:
        asked = [r.prompt.split("Problem:\n", 1)[1].split("\n", 1)[0] for r in server.received]
        server.reset_counts()
        return [asked.count("agree"), asked.count("split")]

    table = rows(question=["agree", "split"])
    with ScriptedServer(solve) as server:
        r = run_operator(AnswerGenerator(samples=3), table, server)
        assert sent(server) == [2, 3]  # samples 0 and 1 of "agree" are a majority of 3
        full = run_operator(AnswerGenerator(samples=3, early_stop=False), table, server)
        assert sent(server) == [3, 3]
    assert r.kept.select(["answer", "final_answer", "agreement"]).to_pylist() == [
        {"answer": "so \\boxed{4}", "final_answer": "4", "agreement": 1.0},
        {"answer": "\\boxed{5}", "final_answer": "5", "agreement": 2 / 3},
    ]
    assert full.kept["final_answer"].to_pylist() == ["4", "5"]
    assert full.kept["agreement"].to_pylist() == [2 / 3, 2 / 3]


def test_answer_generator_empty_reply_is_a_failure_record() -> None:
    with ScriptedServer(lambda req: "   ") as server:
        r = run_operator(AnswerGenerator(), rows(question=["1+1?"]), server)
    assert r.kept.num_rows == 0 and r.failed["_error"][0].as_py().endswith("empty reply")
