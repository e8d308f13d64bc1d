"""Language ID with both offline backends, and the language filter's reasons."""

import json
import random
import re
import struct
from itertools import islice

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from prepflow.operators.common import native
from prepflow.operators.text import _fasttext as fasttext_arrays
from prepflow.operators.text import langid
from prepflow.operators.text.langid import LanguageFilter, LanguageId, _fasttext_binding, identify

TEXTS = [
    "The committee will publish its report on the new railway line next week.",
    "委员会将于下周发布关于新铁路线的报告。",
    "Le comité publiera la semaine prochaine son rapport sur la nouvelle ligne.",
    "12345 67890",
    None,
]


@pytest.mark.parametrize("backend", ["fasttext", "py3langid"])
def test_language_id(run, backend):
    out = run(LanguageId(backend=backend), TEXTS).kept
    assert out.column("lang").to_pylist() == ["en", "zh", "fr", None, None]
    scores = out.column("lang_score").to_pylist()
    assert all(s > 0.5 for s in scores[:3]) and scores[3:] == [0.0, 0.0]


def test_language_filter_reasons(run):
    table = {
        "lang": pa.array(["en", "zh", "fr", "en", None]),
        "lang_score": pa.array([0.9, 0.99, 0.95, 0.4, 0.0]),
    }
    result = run(LanguageFilter(languages=["en", "zh"], min_score=0.65), ["a"] * 5, **table)
    assert result.kept.column("_id").to_pylist() == [0, 1]
    assert result.dropped.column("_reason").to_pylist() == [
        "languages: lang=fr not in [en, zh]",
        "min_score: lang_score=0.4 < 0.65; lang=en",
        "languages: no language identified",
    ]


def _corpus_texts(shared_data, per_corpus=None):
    texts = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            texts += [json.loads(line).get("text") for line in islice(f, per_corpus)]
    return texts


def _binding(text):
    """fastText's own answer, as its public ``predict`` gives it: (label, probability), or None."""
    labels, probs = _fasttext_binding().predict(text, k=1)
    return (labels[0].removeprefix("__label__"), float(probs[0])) if labels else None


@pytest.fixture(params=["c", "binding"])
def predictor(request, monkeypatch):
    """Language ID through the C predictor, then through fastText's binding."""
    if request.param == "binding":
        monkeypatch.setattr(langid, "_fasttext_native", lambda: None)
    elif langid._fasttext_native() is None:
        pytest.skip(native.build())
    return request.param


@pytest.mark.parametrize("per_corpus", [60, pytest.param(None, marks=pytest.mark.slow)])
def test_fasttext_answers_exactly_as_its_public_predict(shared_data, predictor, per_corpus):
    """``identify`` calls the model below fastText's ``predict`` wrapper, or predicts in C: on
    real documents of every corpus (all of them in the full suite) it must give the wrapper's
    label and probability, bit for bit."""
    if predictor == "binding" and per_corpus is None:
        pytest.skip("the binding's own call is held to its wrapper on 60 documents per corpus")
    texts = _corpus_texts(shared_data, per_corpus)
    langs, scores = identify(pa.array(texts, pa.string()), "fasttext", 500)
    prefixes = pc.replace_substring_regex(
        pc.utf8_slice_codeunits(pa.array(texts, pa.string()), 0, 500), r"\s+", " "
    ).to_pylist()
    for text, lang, score in zip(prefixes, langs.to_pylist(), scores, strict=True):
        if lang is not None:
            label, prob = _binding(text)
            assert (lang, score) == (label, min(prob, 1.0)), text
    assert langs.null_count < 0.1 * len(texts)


def test_the_c_predictor_reads_a_line_as_fasttext_does():
    """fastText's reading of a line, where a text is not a tidy prefix: every separator byte
    (NUL and vertical tab included), a line break that ends the line early, a literal ``</s>``
    (which ends it too), words of the dictionary's labels and label-like words (never inputs),
    long tokens, every script; and, with line breaks read as spaces, what the model answers for
    the text with each whitespace run one space (what ``identify`` asks, without rewriting)."""
    model = langid._fasttext_native()
    if model is None:
        pytest.skip(native.build())
    rng = random.Random(7)
    pieces = [
        " ", "  ", "\t", "\v", "\f", "\r", "\0", "\n", "</s>", "__label__en", "__label__",
        "__label__zz", "the", "and", "der", "的", "是", "мир", "שלום", "नमस्ते", "é", "e\u0301",
        "😀", "\uff57\uff4f\uff52\uff44", "a" * 300, "字" * 200, "x", "12", "—", "<", ">", "<>", "\u200b",
    ]  # fmt: skip
    texts = ["", " ", "\n", "</s>", "__label__en", "\0\0", "a\nb", "b c</s> d"]
    for _ in range(5000):
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))))
    labels, probs = model.predict(pa.array(texts, pa.string()))
    spaced, spaced_probs = model.predict(pa.array(texts, pa.string()), newlines_are_spaces=True)
    predict = _fasttext_binding().f.predict  # the model's own call (the wrapper refuses "\n")
    for text, label, prob, as_spaces in zip(
        texts,
        labels.to_pylist(),
        probs,
        zip(spaced.to_pylist(), spaced_probs, strict=True),
        strict=True,
    ):
        for line, got in ((text, (label, prob)), (re.sub(r"[\t\n\f\r ]+", " ", text), as_spaces)):
            expected = [
                (p, name.removeprefix("__label__"))
                for p, name in predict(line + "\n", 1, 0.0, "strict")
            ]
            assert ([got[::-1]] if got[0] is not None else []) == expected, repr(text)


def test_models_the_c_predictor_does_not_handle_are_said_so(tmp_path):
    """Another kind of fastText model is Unsupported (then the binding predicts); a file that is
    no model, or ends early, is an error naming it."""
    library = native.library()
    if library is None:
        pytest.skip(native.build())
    model = langid._bundled_model().read_bytes()
    softmax = tmp_path / "softmax.ftz"
    softmax.write_bytes(model[:32] + struct.pack("<i", 3) + model[36:])  # the loss field
    with pytest.raises(fasttext_arrays.Unsupported, match="not hierarchical softmax"):
        fasttext_arrays.load(softmax, library)
    short = tmp_path / "short.ftz"
    short.write_bytes(model[: len(model) // 2])
    with pytest.raises(ValueError, match=f"{short}: ends at byte {len(model) // 2}"):
        fasttext_arrays.load(short, library)
    other = tmp_path / "other.bin"
    other.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match=f"{other}: not a fastText model"):
        fasttext_arrays.load(other, library)
