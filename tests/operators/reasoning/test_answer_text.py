"""Final-answer extraction, refusal detection and vote keys on literal model outputs."""

from __future__ import annotations

import pytest

from prepflow.operators.reasoning._answers import is_refusal, last_boxed, vote_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the answer is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{ 2 }", "2"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed{\\left(\\frac{a}{b^{2}}\\right)}", "\\left(\\frac{a}{b^{2}}\\right)"),
        ("$\\boxed 5$.", "5"),
        ("\\fbox{7}", "7"),
        ("no box here: 42", None),
        ("cut off \\boxed{\\frac{1}{2}", None),
        ("empty \\boxed{}", None),
        ("trailing \\boxed", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("I cannot solve this problem.", True),
        ("As an AI language model, I ...", True),
        ("Sorry, that is not possible.", True),
        ("Let x be the number of apples. I cannot see why not.", False),
        ("The answer is \\boxed{3}.", False),
    ],
)
def test_is_refusal(text: str, expected: bool) -> None:
    assert is_refusal(text) is expected


def test_vote_key_merges_spellings_not_values() -> None:
    assert vote_key("\\dfrac{1}{2}") == vote_key("\\frac{1}{2}") == vote_key(" \\frac{1}{ 2 } ")
    assert vote_key("\\left(1,2\\right)") == "(1,2)"
    assert vote_key("\\text{C}") == "C"
    assert vote_key("$5$.") == "5"
    assert vote_key("0.5") != vote_key("\\frac{1}{2}")
