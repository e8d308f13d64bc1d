"""Pure text helpers shared by the reasoning operators: final answers in ``\\boxed{}``, refusals,
and the canonical form answers are voted on. No optional dependency is imported here."""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_REFUSAL = re.compile(
    r"^\W*(?:i\s*(?:'m|am)\s+(?:sorry|unable|not able)|i\s+(?:can(?:'|no)t|cannot|won't|will not)"
    r"|sorry,|as an ai\b|unfortunately,? i\b)",
    re.IGNORECASE,
)
_SPACING = re.compile(r"\\[,;:!]|\\q?quad|\\left|\\right|\\displaystyle|\s+")
_FRAC = re.compile(r"\\[dt]frac")
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathbf|mathrm)\{(.*)\}$")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced.

    Nested braces are matched (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); ``\\boxed 5``
    without braces gives the next token. ``None`` when there is no box, or when the last box is
    never closed (output cut off): an unclosed box is not an answer.
    """
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    if start >= len(text):
        return None
    if text[start] != "{":
        token = re.match(r"[^\s$.,]+", text[start:])
        return token.group(0) if token else None
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # an escaped brace (\\{ \\}) neither opens nor closes the box
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i].strip() or None
        i += 1
    return None


def is_refusal(text: str) -> bool:
    """Whether a reply opens with a refusal ("I'm sorry, I can't ...", "As an AI ...")."""
    return bool(_REFUSAL.match(text))


def vote_key(answer: str) -> str:
    """The form answers are grouped by when voting: spacing commands, ``\\left``/``\\right``,
    ``$`` and whitespace removed, ``\\dfrac``/``\\tfrac`` as ``\\frac``, a trailing period and a
    wrapping ``\\text{}`` dropped. Cheap and exact: ``0.5`` and ``\\frac{1}{2}`` stay different
    votes (the verifier, not the vote, decides equivalence)."""
    key = _FRAC.sub(r"\\frac", _SPACING.sub("", answer.replace("$", ""))).rstrip(".")
    while (m := _TEXT_WRAP.match(key)) is not None:
        key = m.group(1)
    return key
