"""The buffer-built conversions in ``core.tables`` against pyarrow's own (``pa.array``,
``pa.scalar``, ``Array.to_numpy``), which import pandas and so are kept off the run path."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from prepflow.core.tables import (
    distinct,
    fill_null,
    from_numpy,
    int64_range,
    scalar,
    strings,
    to_numpy,
)

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64,
          np.float32, np.float64]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_numpy_arrays_convert_both_ways_as_pyarrow_does(dtype: type, n: int) -> None:
    rng = np.random.default_rng(n)
    values = (
        rng.integers(0, 100, n) * (1 if dtype is not np.bool_ else 0) + rng.integers(0, 2, n)
    ).astype(dtype)
    valid = rng.integers(0, 4, n) > 0
    assert from_numpy(values).equals(pa.array(values))
    assert from_numpy(values, valid).equals(pa.array(values, mask=~valid))
    arrow = pa.array(values)
    for start, stop in [(0, n), (n // 3, n), (n // 3, 2 * n // 3 + 1)]:
        part = arrow.slice(start, stop - start)  # a sliced array reads its buffer at an offset
        got = to_numpy(part)
        assert got.dtype == part.to_numpy(zero_copy_only=False).dtype
        assert np.array_equal(got, part.to_numpy(zero_copy_only=False))
    chunked = pa.chunked_array([arrow, arrow])
    assert np.array_equal(to_numpy(chunked), chunked.to_numpy())


def test_arrays_with_nulls_or_other_types_fall_back_to_pyarrow() -> None:
    with_nulls = pa.array([1, None, 3])
    assert np.allclose(to_numpy(with_nulls), [1, np.nan, 3], equal_nan=True)
    assert list(to_numpy(pa.array(["a", "b"]))) == ["a", "b"]


@pytest.mark.parametrize(
    "values",
    [[], ["a"], [None], ["", None, "x"], ["é", "中文", "🙂", "a\nb", None, ""], ["w" * 10_000] * 3],
)
def test_python_strings_become_the_array_pyarrow_would_build(values: list) -> None:
    assert strings(values).equals(pa.array(values, pa.string()))


def test_a_string_that_cannot_be_utf8_is_refused_as_pyarrow_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        strings(["\ud800"])


@pytest.mark.parametrize(
    ("value", "kind"),
    [("", pa.string()), ("x", pa.large_string()), (False, pa.bool_()), (0, pa.int32()),
     (7, pa.int64()), (2.5, pa.float64()), (None, pa.string()), (None, pa.int64())],
)  # fmt: skip
def test_scalars_match_pyarrow(value: object, kind: pa.DataType) -> None:
    assert scalar(value, kind).equals(pa.scalar(value, kind))


def test_fill_null_and_ranges() -> None:
    assert fill_null(pa.array(["a", None]), "").equals(pa.array(["a", ""]))
    assert fill_null(pa.array([True, None]), False).equals(pa.array([True, False]))
    assert fill_null(pa.chunked_array([[1, None]]), 0).equals(pa.chunked_array([[1, 0]]))
    assert int64_range(3, 6).equals(pa.array([3, 4, 5], pa.int64()))


def test_none_of_them_imports_pandas() -> None:
    code = (
        "import sys, numpy as np, pyarrow as pa, pyarrow.compute as pc\n"
        "from prepflow.core.tables import fill_null, from_numpy, scalar, strings, to_numpy\n"
        "a = from_numpy(np.arange(5), np.arange(5) > 0)\n"
        "b = fill_null(a, 0); to_numpy(b); to_numpy(pc.greater(b, scalar(2, b.type)))\n"
        "strings(['x', None]); scalar(None, pa.string()); scalar('', pa.string())\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("size", [0, 1, 2, 7, 10_000])
def test_distinct_is_numpys_unique(size: int) -> None:
    values = np.random.default_rng(size).integers(-50, 50, size)
    assert np.array_equal(distinct(values), np.unique(values))
    assert distinct(values).dtype == values.dtype


def test_the_text_filters_and_minhash_never_import_numpy_ma(shared_data) -> None:
    """np.unique imports numpy.ma on its first call (numpy 2.x): 8-15 ms holding the GIL in a
    worker thread, which the text steps and the report avoid."""
    corpus = shared_data / "corpora" / "debian_reference_en.jsonl"
    code = (
        "import json, sys, pyarrow as pa\n"
        "from prepflow.core.tables import int64_range, strings\n"
        "from prepflow.engine.drops import Group, histogram\n"
        "from prepflow.operators.text.dedup import MinHashDedup\n"
        "from prepflow.operators.text.heuristics import GopherQualityFilter\n"
        f"rows = [json.loads(line) for line in open({str(corpus)!r})][:300]\n"
        "texts = strings([r['text'] for r in rows])\n"
        "batch = pa.table({'_id': int64_range(0, len(texts)), 'text': texts})\n"
        "kept = GopherQualityFilter().run_batch(batch).kept\n"
        "op = MinHashDedup(); op.finalize(op.summarize(kept)); op.run_batch(kept)\n"
        "Group('rule', 3, [2.0, 9.0, 4.0]).to_dict(); histogram(__import__('numpy').arange(20.0))\n"
        "print(kept.num_rows, 'numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    kept, imported = out.stdout.split()
    assert int(kept) > 0 and imported == "False", out.stderr
