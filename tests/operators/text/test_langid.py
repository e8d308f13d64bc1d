"""Language ID with both offline backends, and the language filter's reasons."""

import json
from itertools import islice

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from prepflow.operators.text.langid import LanguageFilter, LanguageId, _fasttext, identify

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


def test_fasttext_answers_exactly_as_its_public_predict(shared_data):
    """``identify`` calls the model below fastText's ``predict`` wrapper: on real documents of
    every corpus it must give the wrapper's label and probability."""
    texts = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            texts += [json.loads(line).get("text") for line in islice(f, 60)]
    langs, scores = identify(pa.array(texts, pa.string()), "fasttext", 500)
    prefixes = pc.replace_substring_regex(
        pc.utf8_slice_codeunits(pa.array(texts, pa.string()), 0, 500), r"\s+", " "
    ).to_pylist()
    model = _fasttext()
    for text, lang, score in zip(prefixes, langs, scores, strict=True):
        if lang is None:
            continue
        labels, probs = model.predict(text, k=1)
        assert (lang, score) == (labels[0].removeprefix("__label__"), min(float(probs[0]), 1.0))
    assert sum(lang is not None for lang in langs) > 0.9 * len(texts)
