"""Answer matching shared by the domains: SQuAD-style normalization and token F1, CJK-aware.

A token is a run of letters or digits, one CJK character, or one other visible mark, so Chinese
and Japanese are compared without a word segmenter and never split on whitespace.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+|[^\s\w]", re.U
)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize(text: str) -> str:
    """Case-folded NFKC text without punctuation, articles or extra spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in "PSZ" else c for c in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    """Tokens of the normalized text: words, and each CJK character on its own."""
    return [m.group() for m in TOKEN.finditer(normalize(text))]


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between two answers."""
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_recall(answer: str, evidence: str) -> float:
    """Share of the answer's tokens that occur in the evidence."""
    tokens = answer_tokens(answer)
    have = Counter(answer_tokens(evidence))
    return sum(min(n, have[t]) for t, n in Counter(tokens).items()) / max(1, len(tokens))
