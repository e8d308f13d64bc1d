"""Small n-gram language models: text normalisation, a Kneser-Ney trainer writing ARPA, scoring.

``ufal-kenlm`` ships KenLM's query side only (no ``lmplz``/``build_binary``), and no pretrained
model can be downloaded here, so models are trained in Python: interpolated modified
Kneser-Ney (Chen & Goodman 1998, the estimate ``lmplz`` makes) with lmplz's discount fallback
(0.5, 1, 1.5) when counts are too few for the closed-form discounts. Probabilities are exact
(each context's distribution sums to one); it holds all counts in memory, which suits reference
corpora of up to some tens of megabytes. KenLM loads the ARPA file for scoring.

Training and scoring normalise text the same way (:func:`lm_lines`): one sentence per
non-blank line, lower-cased, digits mapped to 0 (as CCNet does), CJK-aware words.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.tables import fill_null, scalar, to_numpy
from prepflow.operators.text._words import word_lists

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def lm_lines(texts: pa.Array) -> tuple[list[str], np.ndarray]:
    """Normalised non-blank lines of every text (words joined by one space) and their text index."""
    lists = pc.split_pattern(fill_null(texts, ""), "\n")
    doc = to_numpy(pc.list_parent_indices(lists))
    lines = pc.replace_substring_regex(pc.utf8_lower(pc.list_flatten(lists)), r"\d", "0")
    words = pc.binary_join(word_lists(lines), scalar(" ", pa.string()))
    lengths = pc.utf8_length(words)
    keep = pc.greater(lengths, scalar(0, lengths.type))
    return pc.filter(words, keep).to_pylist(), doc[to_numpy(keep)]


# ---- training ------------------------------------------------------------------------------


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from counts of counts (lmplz's formula)."""
    t = Counter(min(c, 4) for c in counts)
    t1, t2, t3, t4 = (t[k] for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    return d if all(0 < dk < k + 1 for k, dk in enumerate(d)) else FALLBACK_DISCOUNTS


def _ngram_counts(sentences: Iterable[str], order: int) -> list[Counter[tuple[str, ...]]]:
    """Per order, the counts Kneser-Ney estimates from: raw counts for the highest order and
    for n-grams starting with <s>, otherwise the number of distinct left extensions."""
    raw: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order + 1)]
    for sentence in sentences:
        tokens = (BOS, *sentence.split(), EOS)
        for i in range(len(tokens) - order + 1):
            raw[order][tokens[i : i + order]] += 1
        for n in range(1, min(order, len(tokens) + 1)):
            raw[n][tokens[:n]] += 1  # n-grams at the sentence start: nothing to their left
    counts = [Counter() for _ in range(order + 1)]
    counts[order] = raw[order]
    for n in range(order - 1, 0, -1):
        for gram in counts[n + 1]:
            counts[n][gram[1:]] += 1
        for gram, c in raw[n].items():
            counts[n][gram] = c
    return counts


def train_arpa(sentences: Iterable[str], order: int, out: IO[str]) -> dict[str, int]:
    """Estimate an interpolated modified Kneser-Ney model of ``order`` and write it as ARPA.

    ``sentences`` are normalised lines (see :func:`lm_lines`). Returns the n-gram count per order.
    """
    if order < 2:
        raise ValueError(f"order must be >= 2 (KenLM loads bigram models and up), got {order}")
    counts = _ngram_counts(sentences, order)
    if not counts[1]:
        raise ValueError("the training corpus has no words")
    probs: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    backoff: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    vocab = [w for (w,) in counts[1] if w != BOS] + [UNK]  # what a unigram can predict
    counts[1].pop((BOS,), None)  # <s> is never predicted: it gets no probability mass
    for n in range(1, order + 1):
        d = _discounts(counts[n].values())
        total: dict[tuple[str, ...], int] = defaultdict(int)
        kinds: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for gram, c in counts[n].items():
            total[gram[:-1]] += c
            kinds[gram[:-1]][min(c, 3) - 1] += 1
        gamma = {
            h: sum(dk * nk for dk, nk in zip(d, kinds[h], strict=True)) / total[h] for h in total
        }
        for gram, c in counts[n].items():
            h = gram[:-1]
            lower = probs[n - 1][gram[1:]] if n > 1 else 1 / len(vocab)
            probs[n][gram] = (c - d[min(c, 3) - 1]) / total[h] + gamma[h] * lower
        if n == 1:
            probs[1][(UNK,)] = gamma[()] / len(vocab)
            probs[1][(BOS,)] = 0.0  # written as log10 -99, the ARPA convention
        else:
            backoff[n - 1] = gamma
    _write_arpa(out, order, probs, backoff)
    return {f"{n}-grams": len(probs[n]) for n in range(1, order + 1)}


def _write_arpa(
    out: IO[str],
    order: int,
    probs: list[dict[tuple[str, ...], float]],
    backoff: list[dict[tuple[str, ...], float]],
) -> None:
    out.write("\\data\\\n")
    for n in range(1, order + 1):
        out.write(f"ngram {n}={len(probs[n])}\n")
    for n in range(1, order + 1):
        out.write(f"\n\\{n}-grams:\n")
        for gram, p in probs[n].items():
            logp = -99.0 if gram == (BOS,) else math.log10(p)
            line = f"{logp:.6f}\t{' '.join(gram)}"
            if n < order:
                line += f"\t{math.log10(backoff[n][gram]) if gram in backoff[n] else 0.0:.6f}"
            out.write(line + "\n")
    out.write("\n\\end\\\n")


# ---- scoring -------------------------------------------------------------------------------


@cache
def load_model(path: str) -> Any:
    """The KenLM model at ``path`` (ARPA or KenLM binary), loaded once per process."""
    import kenlm

    if not Path(path).is_file():
        raise FileNotFoundError(
            f"no language model at {path!r}; train one with `prepflow lm train`"
        )
    config = kenlm.Config()
    config.show_progress = False
    return kenlm.Model(path, config)


def perplexity(model: Any, texts: pa.Array) -> np.ndarray:
    """Per text, 10 ** (-log10 P / tokens) over its lines, each scored as a sentence (with
    </s> counted, as KenLM and CCNet do); NaN for a text without words."""
    lines, doc = lm_lines(texts)
    logp = np.fromiter((model.score(s, bos=True, eos=True) for s in lines), np.float64, len(lines))
    tokens = np.fromiter((s.count(" ") + 2 for s in lines), np.float64, len(lines))
    total = np.bincount(doc, weights=logp, minlength=len(texts))
    n = np.bincount(doc, weights=tokens, minlength=len(texts))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, 10.0 ** (-total / np.where(n > 0, n, 1)), np.nan)
