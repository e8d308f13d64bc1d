"""Symbolic answer equivalence with math-verify, guarded against inputs that hang sympy.

math-verify's own time limits use ``SIGALRM``, which Python allows only in the main thread; the
engine runs CPU-heavy steps in worker processes (main thread: limits on) or, with one worker, in
threads. Off the main thread the limits are off, so answers longer than ``MAX_ANSWER_CHARS`` are
refused before sympy sees them; that bounds the work without a signal.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

#: Longest answer handed to sympy; a final answer is a short expression, not a derivation.
MAX_ANSWER_CHARS = 300
# math-verify warns (once per process) that its time limit is off when it runs off the main
# thread; that is by design here (see the module docstring), so the warning is only noise.
logging.getLogger("math_verify").setLevel(logging.ERROR)


class AnswerUnreadable(ValueError):
    """An answer that is too long or that math-verify cannot read as mathematics."""


def _timeout(seconds: int) -> int | None:
    return seconds if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=4096)
def _parse(answer: str, timeout_s: int) -> tuple[Any, ...]:
    from math_verify import parse

    # As LaTeX math first (what a \boxed{} holds); plain text as a fallback ("18 dollars").
    return tuple(parse(f"${answer}$", parsing_timeout=_timeout(timeout_s))) or tuple(
        parse(answer, parsing_timeout=_timeout(timeout_s))
    )


def parse_answer(answer: str, timeout_s: int = 5) -> tuple[Any, ...]:
    """math-verify's reading of a final answer; raises :class:`AnswerUnreadable` when none."""
    answer = answer.strip()
    if not answer:
        raise AnswerUnreadable("empty answer")
    if len(answer) > MAX_ANSWER_CHARS:
        raise AnswerUnreadable(f"answer longer than {MAX_ANSWER_CHARS} characters")
    parsed = _parse(answer, timeout_s)
    if not parsed:
        raise AnswerUnreadable(f"not a mathematical answer: {answer[:80]!r}")
    return parsed


def equivalent(reference: str, answer: str, timeout_s: int = 5) -> bool:
    """Whether ``answer`` equals ``reference`` symbolically (fractions, decimals, percentages,
    units, LaTeX, sets, intervals). Raises :class:`AnswerUnreadable` for an unreadable side."""
    from math_verify import verify

    gold, pred = parse_answer(reference, timeout_s), parse_answer(answer, timeout_s)
    return bool(verify(list(gold), list(pred), timeout_seconds=_timeout(timeout_s)))
