"""Language ID with both offline backends, and the language filter's reasons."""

import pyarrow as pa
import pytest

from prepflow.operators.text.langid import LanguageFilter, LanguageId

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
