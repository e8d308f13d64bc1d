"""Unicode tables kept between processes: built once, loaded after, rebuilt when what they
depend on changes, and built anyway where the cache cannot be written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prepflow.operators.common import utf8
from prepflow.operators.common.ngrams import _token_classes
from prepflow.operators.text._words import _ask_char_flags, char_flags


def counting(table: np.ndarray) -> tuple[list[int], object]:
    calls: list[int] = []

    def build() -> np.ndarray:
        calls.append(1)
        return table

    return calls, build


def test_a_table_is_built_once_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREPFLOW_CACHE_DIR", str(tmp_path))
    table = np.arange(0x110000, dtype=np.uint32).astype(np.uint8)
    calls, build = counting(table)
    assert np.array_equal(utf8.stored("t", __file__, build), table)
    assert np.array_equal(utf8.stored("t", __file__, build), table)
    assert calls == [1]
    (saved,) = (tmp_path / "unicode").glob("t-*.npy")
    assert not list((tmp_path / "unicode").glob(".*"))  # no temporary file left
    # another builder's source (or pyarrow version) is another file
    other = tmp_path / "other.py"
    other.write_text("# another definition\n")
    utf8.stored("t", str(other), build)
    assert calls == [1, 1]
    monkeypatch.setattr(utf8.pa, "__version__", "0.0.0")
    utf8.stored("t", __file__, build)
    assert calls == [1, 1, 1]
    # a file that is not such a table is built again
    saved.write_bytes(b"not a table")
    monkeypatch.undo()
    monkeypatch.setenv("PREPFLOW_CACHE_DIR", str(tmp_path))
    assert np.array_equal(utf8.stored("t", __file__, build), table)
    assert calls == [1, 1, 1, 1]


def test_a_cache_that_cannot_be_written_builds_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("PREPFLOW_CACHE_DIR", str(blocked))
    table = np.zeros(0x110000, np.uint8)
    calls, build = counting(table)
    assert np.array_equal(utf8.stored("t", __file__, build), table)
    assert np.array_equal(utf8.stored("t", __file__, build), table)
    assert calls == [1, 1]


def test_the_kept_tables_are_what_re2_says_now() -> None:
    assert np.array_equal(char_flags(), _ask_char_flags())
    fresh = utf8.classify(
        {
            1: r"[\p{L}\p{N}\p{M}_]",
            2: r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]",
        },
        [(0, 0x40000), (0xE0000, 0xE1000)],
    )
    assert np.array_equal(_token_classes(), fresh)
