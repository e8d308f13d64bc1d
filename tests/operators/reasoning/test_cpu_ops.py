"""Format, length, ground-truth, reference and export operators on literal rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from prepflow.operators.reasoning._tokens import token_counter
from prepflow.operators.reasoning.answers import (
    AnswerFormatFilter,
    AnswerTokenLengthFilter,
    ReferenceAnswer,
)
from prepflow.operators.reasoning.export import ToPretrainText, ToSftChat
from prepflow.operators.reasoning.verify import GroundTruthEvaluator, GroundTruthFilter
from prepflow.operators.text.decontaminate import NgramDecontaminate
from prepflow.testing import FakeContext


def rows(**columns: list) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"_id": pa.array(range(n), pa.int64()), **columns})


def test_format_filter_reasons() -> None:
    answers = [
        "so \\boxed{\\frac{3}{4}}",
        "I'm sorry, I cannot help.",
        "the answer is 4",
        "cut \\boxed{\\frac{1}{2}",
        "\\boxed{" + "1+" * 200 + "1}",
    ]
    r = AnswerFormatFilter().run_batch(rows(answer=answers))
    assert r.kept["answer"].to_pylist() == [answers[0]]
    assert r.dropped["_reason"].to_pylist() == [
        "refusal",
        "no \\boxed{} answer",
        "no \\boxed{} answer",
        "final answer does not parse: answer longer than 300 characters",
    ]


def test_token_length_filter_counts_bpe_tokens_offline() -> None:
    op = AnswerTokenLengthFilter(min_tokens=3, max_tokens=5).bind({"text": "answer"})
    # cl100k_base: "hello world" is 2 tokens, "hello world hello" 3, six words 6
    r = op.run_batch(rows(answer=["hello world", "hello world hello", "a b c d e f"]))
    assert r.kept["answer"].to_pylist() == ["hello world hello"]
    assert r.dropped["_reason"].to_pylist() == [
        "min_tokens: tokens=2 < 3",
        "max_tokens: tokens=6 > 5",
    ]


def test_token_counts_match_the_tiktoken_compatible_wrapper() -> None:
    import bpe_openai

    text = "Ravi buys 53 notebooks at $11 each: 53 * 11 = 583, so \\boxed{589}. 你好世界"
    for name in ("cl100k_base", "o200k_base", "voyage3_base"):
        expected = len(bpe_openai.get_encoding(name).encode_ordinary(text))
        assert token_counter(name)(text) == expected, name


def test_counting_common_encodings_skips_the_slow_wrapper_import() -> None:
    code = (
        "import sys; from prepflow.operators.reasoning._tokens import token_counter; "
        "print(token_counter('cl100k_base')('hello world'), 'bpe_openai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]


def test_token_length_filter_rejects_an_unknown_encoding_at_check() -> None:
    problems = AnswerTokenLengthFilter(encoding="cl99k").check()
    assert len(problems) == 1 and "cl99k" in problems[0]


def test_ground_truth_filter_and_evaluator() -> None:
    table = rows(
        final_answer=["50\\%", "\\{2, 1\\}", "[1,2]", "7", "x"],
        reference=["\\frac{1}{2}", "\\{1,2\\}", "[1, 2)", "", None],
    )
    r = GroundTruthFilter().run_batch(table)
    assert r.kept["final_answer"].to_pylist() == ["50\\%", "\\{2, 1\\}", "7", "x"]
    assert r.dropped["_reason"].to_pylist() == ["answer '[1,2]' != reference '[1, 2)'"]
    strict = GroundTruthFilter(require_reference=True).run_batch(table)
    assert strict.dropped["_reason"].to_pylist()[1:] == ["no reference answer"] * 2
    labels = GroundTruthEvaluator().run_batch(table).kept["verification"].to_pylist()
    assert labels == ["correct", "correct", "incorrect", "no_reference", "no_reference"]


def test_reference_answer_from_gsm8k_math_and_bare() -> None:
    table = rows(
        answer=[
            "She has 3*4=12\n#### 1,200",
            "Thus $\\boxed{\\frac{\\pi}{2}}$.",
            "17",
            "a long explanation without any final marker in it at all",
        ]
    )
    out = ReferenceAnswer().bind({"solution": "answer"}).run_batch(table).kept
    assert out["reference"].to_pylist() == ["1200", "\\frac{\\pi}{2}", "17", ""]


def test_exports() -> None:
    table = rows(question=["1+1?"], answer=["\\boxed{2}"])
    chat = ToSftChat(system_prompt="Be brief.").run_batch(table).kept
    assert chat["messages"].to_pylist() == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "1+1?"},
            {"role": "assistant", "content": "\\boxed{2}"},
        ]
    ]
    text = ToPretrainText().run_batch(table).kept
    assert text["text"].to_pylist() == ["Problem: 1+1?\n\nSolution: \\boxed{2}"]


def test_questions_decontaminated_with_the_text_operator(tmp_path: Path) -> None:
    bench = tmp_path / "test.jsonl"
    bench.write_text(
        json.dumps(
            {"question": "Tom has 5 red balls and 3 blue balls. How many balls does Tom have?"}
        )
        + "\n"
    )
    op = NgramDecontaminate(benchmark=str(bench), column="question", n=8).bind({"text": "question"})
    op.setup(FakeContext())
    r = op.run_batch(
        rows(
            question=[
                "tom has 5 red balls and 3 blue balls, how many balls in all?",
                "Ann has 5 red balls and 4 green balls. How many balls does Ann have?",
            ]
        )
    )
    assert r.kept["question"].to_pylist() == [
        "Ann has 5 red balls and 4 green balls. How many balls does Ann have?"
    ]
    assert (
        r.dropped["_reason"][0]
        .as_py()
        .startswith("shares 8 tokens with benchmark item 1 of test.jsonl")
    )
