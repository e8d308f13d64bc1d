"""The C cutters' build: compiled once into the cache, rebuilt for another source, and the numpy
cutters where there is no compiler or ``PREPFLOW_NATIVE=0``; the same words either way."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from prepflow.operators.common import native
from prepflow.operators.common.ngrams import _WHITESPACE, tokens
from prepflow.operators.text._words import words


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PREPFLOW_CACHE_DIR", str(tmp_path))
    native.library.cache_clear()
    yield tmp_path / "native"
    native.library.cache_clear()


def same_cut(texts: pa.Array, monkeypatch: pytest.MonkeyPatch) -> None:
    """Words and tokens of ``texts`` with the library, then with numpy."""
    assert native.library() is not None
    got_words = words(texts)
    got_tokens = tokens(texts, nfkc=True, lowercase=True, split_spaceless=True)
    monkeypatch.setenv("PREPFLOW_NATIVE", "0")
    native.library.cache_clear()
    assert native.library() is None
    want_words = words(texts)
    assert got_tokens.equals(tokens(texts, nfkc=True, lowercase=True, split_spaceless=True))
    assert got_words.values.equals(want_words.values)
    for name in ("doc", "length", "symbol", "no_letter", "all_caps"):
        assert np.array_equal(getattr(got_words, name), getattr(want_words, name)), name


@pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None, reason="no C compiler")
def test_the_library_is_compiled_once_into_the_cache_and_named_after_its_source(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert native.build() == f"C text cutters: {native._target()}"
    built = list(cache.glob("prepflow-text-*.so"))
    assert built == [native._target()]
    stamp = built[0].stat().st_mtime_ns
    assert native.library() is not None
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt
    # an edited source is another library: the former one is never loaded for it
    edited = tmp_path / "native.c"
    edited.write_text(native.SOURCE.read_text() + "\n/* edited */\n")
    monkeypatch.setattr(native, "SOURCE", edited)
    assert native._target() != built[0]
    native.library.cache_clear()
    assert native.library() is not None
    assert len(list(cache.glob("prepflow-text-*.so"))) == 2
    assert not list(cache.glob(".*.tmp"))  # written whole, then renamed


def test_without_a_compiler_the_numpy_cutters_run(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert native.library() is None
    assert native.build() == "no C compiler (install gcc, or set CC); the text cutters run in numpy"
    assert not cache.exists() or not list(cache.iterdir())
    assert words(pa.array(["two words"], pa.string())).values.to_pylist() == ["two", "words"]


def test_a_compiler_error_is_reported_and_the_numpy_cutters_run(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    assert native.library() is None
    message = native.build()
    assert message.startswith(f"{shutil.which('cc')} could not compile {broken}: ")
    assert "error" in message
    assert not list(cache.glob("*"))


@pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None, reason="no C compiler")
def test_one_document_larger_than_a_chunk_and_empty_ones_cut_the_same(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = "Ünïcödé (words), e.g. U.S.A 中文字, " * 40_000  # 1.4 MB, beyond CHUNK_BYTES
    same_cut(pa.array(["", long, None, " ", "a", long[:1001]], pa.string()), monkeypatch)


SPACES = list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u180e\u2000\u200a\u200b\u2028\u2029\u202f")
SPACES += list("\u205f\u3000\ufeff")


@pytest.mark.parametrize("with_", [" ", ""])
def test_the_c_space_runs_are_re2_s(with_: str, shared_data: Path) -> None:
    """The dedup normalisation's whitespace pass against its RE2 definition, on every document of
    the corpora and on random texts of every kind of space, nulls and a slice included."""
    lib = native.library()
    if lib is None:
        pytest.skip(native.build())
    texts: list[str | None] = [None, "", " ", "a"]
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    rng = random.Random(12)
    pieces = SPACES + list("ab中é.")
    texts += [
        "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 24))) for _ in range(20_000)
    ]
    array = pa.array(texts, pa.string())
    for part in (array, array.slice(3, 5_000)):
        want = pc.replace_substring_regex(part, _WHITESPACE, with_)
        got = lib.replace_space_runs(part, with_)
        if not got.equals(want):
            for text, have, expected in zip(
                part.to_pylist(), got.to_pylist(), want.to_pylist(), strict=True
            ):
                assert have == expected, f"spaces of {str(text)[:200]!r}"
