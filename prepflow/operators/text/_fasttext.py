"""fastText's language ID model read into arrays for the C predictor (``native.c``,
``pf_fasttext_predict``): fastText's own label and probability, without holding the GIL.

fastText's Python binding holds the GIL for every call, so the worker threads took turns at
language ID, the costliest filter left. The predictor handles the models of lid.176's kind (a
quantized input matrix, a dense output matrix, hierarchical softmax, no word n-grams); any other
model is :class:`Unsupported` and fastText's binding predicts. The file layout and the arithmetic
follow fastText 0.9's ``FastText::loadModel`` and ``predictLine``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from prepflow.core.tables import from_numpy, strings
from prepflow.operators.common.native import FastText, Native

_MAGIC, _VERSION = 793712314, 12
_HS, _SUPERVISED = 1, 3
_LABEL = b"__label__"
_KSUB = 256


class Unsupported(ValueError):
    """A model this predictor does not handle (fastText's binding does)."""


@dataclass
class Model:
    """A model's arrays, the C view of them, and its labels without the ``__label__`` prefix."""

    native: Native
    struct: FastText
    labels: pa.Array
    arrays: list[np.ndarray] = field(repr=False)

    def predict(
        self, texts: pa.Array, threshold: float = 0.0, *, newlines_are_spaces: bool = False
    ) -> tuple[pa.Array, np.ndarray]:
        """The most likely label of each text (null where the text gives the model no input)
        and its probability, as fastText's ``predict(text + "\\n", k=1)`` gives them; with
        ``newlines_are_spaces``, as it gives them for the text with its line breaks as spaces."""
        index, probs = self.native.fasttext_predict(
            self.struct, texts, threshold, newlines_are_spaces
        )
        return self.labels.take(from_numpy(index, valid=index >= 0)), probs.astype(np.float64)


def load(path: Path, native: Native) -> Model:
    """Read a fastText model file; :class:`Unsupported` for a kind of model the predictor does
    not handle, ``ValueError`` naming the file where it is not a fastText model."""
    reader = _Reader(path, path.read_bytes())
    magic, version = reader.unpack("<ii")
    if magic != _MAGIC or version > _VERSION:
        raise ValueError(f"{path}: not a fastText model (magic {magic}, version {version})")
    dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, kind, bucket, minn, maxn, _lr = (
        reader.unpack("<12i")
    )
    reader.unpack("<d")
    if version == 11 and kind == _SUPERVISED:
        maxn = 0  # as fastText reads its old supervised models: no character n-grams
    size, nwords, nlabels, _ntokens, pruned = reader.unpack("<iiiqq")
    words, types, counts = [], [], []
    for _ in range(size):
        words.append(reader.until_nul())
        count, kind_of_entry = reader.unpack("<qb")
        counts.append(count)
        types.append(kind_of_entry)
    prune = reader.array(np.int32, 2 * max(pruned, 0)).reshape(-1, 2)
    (quantized,) = reader.unpack("<?")
    problem = (
        "not a supervised model"
        if kind != _SUPERVISED
        else "not hierarchical softmax"
        if loss != _HS
        else "word n-grams"
        if word_ngrams > 1
        else "input matrix not quantized"
        if not quantized
        else None
    )
    if problem:
        raise Unsupported(f"{path}: {problem}")
    qnorm, rows, _cols, codesize = reader.unpack("<?qqi")
    codes = reader.array(np.uint8, codesize)
    pq_dim, nsubq, dsub, lastdsub = reader.unpack("<iiii")
    centroids = reader.array(np.float32, pq_dim * _KSUB)
    norm_codes = norm_centroids = None
    if qnorm:
        norm_codes = reader.array(np.uint8, rows)
        if reader.unpack("<iiii") != (1, 1, 1, 1):
            raise Unsupported(f"{path}: a norm quantizer of more than one dimension")
        norm_centroids = reader.array(np.float32, _KSUB)
    (quantized_output,) = reader.unpack("<?")
    if quantized_output:
        raise Unsupported(f"{path}: output matrix quantized")
    out_rows, out_cols = reader.unpack("<qq")
    output = reader.array(np.float32, out_rows * out_cols)
    reader.end()
    if pq_dim != dim or out_cols != dim or codesize != rows * nsubq or nlabels < 1:
        raise ValueError(f"{path}: inconsistent fastText model (dim {dim}, {rows} rows)")
    if any(t != 0 for t in types[:nwords]) or any(t != 1 for t in types[nwords:]):
        raise ValueError(f"{path}: the dictionary does not list its words before its labels")

    encoded = np.frombuffer(b"".join(words), np.uint8)
    word_offsets = np.cumsum([0, *map(len, words)], dtype=np.int64)
    word_types = np.array(types, np.int8)
    left, right = _huffman_tree(counts[nwords:])
    arrays = [
        encoded,
        word_offsets,
        word_types,
        codes,
        centroids,
        *(a for a in (norm_codes, norm_centroids) if a is not None),
        output,
        left,
        right,
    ]
    model = FastText(
        dim=dim, nsubq=nsubq, dsub=dsub, lastdsub=lastdsub, minn=minn, maxn=maxn, bucket=bucket,
        nwords=nwords, nlabels=nlabels, pruned=pruned,
        words=encoded.ctypes.data, word_offsets=word_offsets.ctypes.data,
        word_types=word_types.ctypes.data, codes=codes.ctypes.data,
        centroids=centroids.ctypes.data,
        norm_codes=None if norm_codes is None else norm_codes.ctypes.data,
        norm_centroids=None if norm_centroids is None else norm_centroids.ctypes.data,
        output=output.ctypes.data, left=left.ctypes.data, right=right.ctypes.data,
    )  # fmt: skip
    arrays += native.fasttext_index(model, encoded, word_offsets, prune)
    labels = [w.removeprefix(_LABEL).decode("utf-8", "replace") for w in words[nwords:]]
    return Model(native, model, strings(labels), arrays)


def _huffman_tree(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Left and right children of fastText's Huffman tree over the labels (its ``buildTree``:
    leaves first, by the dictionary's descending counts; -1 for none)."""
    n = len(counts)
    count = [*counts, *[10**15] * (n - 1)]
    left, right = np.full(2 * n - 1, -1, np.int32), np.full(2 * n - 1, -1, np.int32)
    leaf, node = n - 1, n
    for i in range(n, 2 * n - 1):
        pair = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(node)
                node += 1
        left[i], right[i] = pair
        count[i] = count[pair[0]] + count[pair[1]]
    return left, right


class _Reader:
    """Little-endian fields read in order from a model file's bytes, naming the file when it
    ends early."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data, self.at = path, data, 0

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        self._need(size)
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def until_nul(self) -> bytes:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise ValueError(f"{self.path}: ends at byte {len(self.data)}, inside the model")
        word, self.at = self.data[self.at : end], end + 1
        return word

    def array(self, dtype: type, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        self._need(size)
        values = np.frombuffer(self.data, dtype, count, self.at).copy()  # aligned, for C
        self.at += size
        return values

    def end(self) -> None:
        if self.at != len(self.data):
            raise ValueError(f"{self.path}: {len(self.data) - self.at} bytes after the model")

    def _need(self, size: int) -> None:
        if self.at + size > len(self.data):
            raise ValueError(f"{self.path}: ends at byte {len(self.data)}, inside the model")
