"""The text operators' hottest loops in C (``native.c``): the word and token cutters, the
whitespace tidy and the dedup normalisation's whitespace runs, Gopher's n-gram repetition, and
fastText's prediction for language ID.

The numpy cutters (``operators.text._words``, ``operators.common.ngrams``) make about twenty
passes over every character and the regex tidy (``operators.text.refiners``) six; these make
one; fastText's own binding holds the GIL. ctypes releases the GIL while these run, so the
worker threads run them in parallel. The source is compiled once per machine with the system's
C compiler (``$CC``, else ``cc``) into ``<cache root>/native/`` (see ``prepflow.core.paths``),
under a name that hashes the source, so an edited source is rebuilt and never loaded stale.
Where there is no compiler, or ``PREPFLOW_NATIVE=0``, :func:`library` is None and the numpy
cutters, the regex tidy and fastText's binding run: the same result either way (the tests hold
each pair to the same answers).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import time
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.paths import cache_root
from prepflow.core.tables import string_array, to_numpy
from prepflow.operators.common.utf8 import string_data, string_offsets

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.c")
CFLAGS = ("-O3", "-std=c99", "-shared", "-fPIC")
LIBS = ("-lm",)


class FastText(ctypes.Structure):
    """``pf_fasttext`` of ``native.c``: a fastText model's arrays, for
    :meth:`Native.fasttext_predict` (``operators/text/_fasttext.py`` fills it and keeps the
    arrays alive)."""

    _fields_ = [
        *((name, ctypes.c_int32) for name in ("dim", "nsubq", "dsub", "lastdsub")),
        *((name, ctypes.c_int32) for name in ("minn", "maxn", "bucket", "nwords", "nlabels")),
        ("pruned", ctypes.c_int64),
        *((name, ctypes.c_void_p) for name in ("words", "word_offsets", "word_types")),
        ("word_slots", ctypes.c_void_p),
        ("word_mask", ctypes.c_uint32),
        ("prune_slots", ctypes.c_void_p),
        ("prune_mask", ctypes.c_uint32),
        *((name, ctypes.c_void_p) for name in ("codes", "centroids", "norm_codes")),
        *((name, ctypes.c_void_p) for name in ("norm_centroids", "output", "left", "right")),
    ]


class Native:
    """The loaded library, with numpy in and out."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, i32, i64, u32 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint32
        flag, real, model = ctypes.c_int, ctypes.c_float, ctypes.POINTER(FastText)
        self._words = _bind(lib.pf_cut_words, i64, [p, p, i64, i64, *[p] * 10])
        self._tokens = _bind(lib.pf_cut_tokens, i64, [p, p, i64, p, flag, p, p, p])
        self._tidy = _bind(lib.pf_tidy_whitespace, i64, [p, p, i64, p, p])
        self._space_runs = _bind(lib.pf_replace_space_runs, i64, [p, p, i64, i32, p, p])
        self._count_bytes = _bind(lib.pf_count_bytes, None, [p, p, i64, p, i64, p])
        self._line_words = _bind(lib.pf_count_line_words, None, [p, p, i64, p, p])
        self._line_marks = _bind(lib.pf_line_marks, None, [p, p, i64, p, i64, p])
        self._repetition = _bind(lib.pf_ngram_repetition, None, [p, p, p, i64, i32, *[p] * 9])
        self._ft_index = _bind(lib.pf_fasttext_index, None, [p, p, i32, p, u32, p, p, i64, p, u32])
        self._ft_predict = _bind(
            lib.pf_fasttext_predict, None, [model, p, p, i64, flag, real, p, p, p, p]
        )

    def cut_words(
        self, data: np.ndarray, offsets: np.ndarray, table: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The words of the documents whose UTF-8 bytes are ``data`` (``offsets``, int64, into
        it), in one pass: their bytes back to back, and per word its byte size, document,
        length in characters, and the OR and AND of its characters' flags. They are views of
        arrays sized for a word per byte: the pages no word reaches are never touched, and
        nothing is copied (concatenating per-chunk outputs took a third of the time)."""
        data, offsets = _contiguous(data, np.uint8), _contiguous(offsets, np.int64)
        n = len(data)
        widest = int(np.diff(offsets).max()) if len(offsets) > 1 else 0
        kept = np.empty(n, np.uint8)
        sizes, doc, length = (np.empty(n, np.int64) for _ in range(3))
        any_flag, all_flag = np.empty(n, np.uint8), np.empty(n, np.uint8)
        flags, start = np.empty(widest, np.uint8), np.empty(widest, np.uint8)
        lead = np.empty(widest + 1, np.int64)
        count = self._words(
            *_pointers(data, offsets),
            len(offsets) - 1,
            0,
            *_pointers(table, kept, sizes, doc, length, any_flag, all_flag, flags, lead, start),
        )
        sizes = sizes[:count]
        return (
            kept[: int(sizes.sum())],
            sizes,
            doc[:count],
            length[:count],
            any_flag[:count],
            all_flag[:count],
        )

    def cut_tokens(
        self, data: np.ndarray, offsets: np.ndarray, table: np.ndarray, split_spaceless: bool
    ) -> tuple[bytes, np.ndarray, np.ndarray]:
        """The tokens of the documents whose UTF-8 bytes are ``data`` (``offsets`` into it):
        their bytes back to back, their byte sizes, and the number of tokens of each document."""
        data, offsets = _contiguous(data, np.uint8), _contiguous(offsets, np.int64)
        kept = np.empty(len(data), np.uint8)
        sizes = np.empty(len(data), np.int64)
        per_doc = np.empty(len(offsets) - 1, np.int64)
        count = self._tokens(
            *_pointers(data, offsets),
            len(per_doc),
            *_pointers(table),
            int(split_spaceless),
            *_pointers(kept, sizes, per_doc),
        )
        sizes = sizes[:count]
        return kept[: int(sizes.sum())].tobytes(), sizes, per_doc

    def tidy_whitespace(self, texts: pa.Array) -> pa.Array:
        """The whitespace of ``texts`` (strings) tidied as ``refiners._tidy_re2`` does, except
        the final trim (see ``pf_tidy_whitespace``); nulls stay null."""
        data, offsets = _text_bytes(texts)
        out = np.empty(len(data), np.uint8)
        ends = np.empty(len(texts), np.int64)
        size = self._tidy(*_pointers(data, offsets), len(texts), *_pointers(out, ends))
        return _rewritten(texts, out[:size], ends)

    def replace_space_runs(self, texts: pa.Array, with_: str) -> pa.Array:
        """Each run of whitespace of ``texts`` (strings; RE2's ``[\\s\\v\\p{Z}\\x{85}]+``)
        replaced by ``with_`` (one ASCII character, or nothing); nulls stay null."""
        if len(with_) > 1:
            raise ValueError(f"a run of whitespace becomes one character or none, not {with_!r}")
        data, offsets = _text_bytes(texts)
        out = np.empty(len(data), np.uint8)
        ends = np.empty(len(texts), np.int64)
        byte = with_.encode("ascii")[0] if with_ else -1
        size = self._space_runs(*_pointers(data, offsets), len(texts), byte, *_pointers(out, ends))
        return _rewritten(texts, out[:size], ends)

    def count_bytes(self, texts: pa.Array, table: np.ndarray, n_classes: int) -> np.ndarray:
        """Per text (strings), its bytes of each class: an (n texts, n_classes) array whose
        column c - 1 counts the bytes b with ``table[b] == c`` (uint8, 256 entries)."""
        data, offsets = _text_bytes(texts)
        out = np.empty((len(texts), n_classes), np.int64)
        self._count_bytes(
            *_pointers(data, offsets), len(texts), *_pointers(_contiguous(table, np.uint8)),
            n_classes, *_pointers(out),
        )  # fmt: skip
        return out

    def count_line_words(self, texts: pa.Array, table: np.ndarray) -> np.ndarray:
        """Per text (strings), its C4 words (``pf_count_line_words``), with the word flags."""
        data, offsets = _text_bytes(texts)
        out = np.empty(len(texts), np.int64)
        self._line_words(*_pointers(data, offsets), len(texts), *_pointers(table, out))
        return out

    def line_marks(self, texts: pa.Array, bullets: str) -> np.ndarray:
        """Per text (strings): its non-blank lines, those starting with one of ``bullets``,
        those ending in an ellipsis, and its ellipses (``pf_line_marks``), as (n, 4)."""
        data, offsets = _text_bytes(texts)
        marks = np.array([ord(c) for c in bullets], np.uint32)
        out = np.empty((len(texts), 4), np.int64)
        self._line_marks(*_pointers(data, offsets), len(texts), *_pointers(marks), len(marks),
                         *_pointers(out))  # fmt: skip
        return out

    def ngram_repetition(
        self, ids: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, max_n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gopher's n-gram repetition of each document (words ``offsets[d]:offsets[d + 1]`` of
        ``ids``, lower-cased word ids, and ``lengths``, in characters), for n = 1 to ``max_n``
        (``pf_ngram_repetition``): (n docs, max_n) arrays of the characters of the most frequent
        repeated n-gram times its count, and of the characters its repeats cover."""
        ids, lengths = _contiguous(ids, np.int64), _contiguous(lengths, np.int64)
        offsets = _contiguous(offsets, np.int64)
        widest = int(np.diff(offsets).max()) if len(offsets) > 1 else 0
        if len(ids) >= 1 << 32:  # the C keys hold a word id in 32 bits
            raise ValueError(f"{len(ids):,} words in one batch: at most 2^32 - 1")
        scratch = [np.empty(widest + 1, np.int64) for _ in range(6)]
        slots = np.empty(2 * _table_size(widest), np.int64)  # pairs of key and group
        top, dup = (np.empty((len(offsets) - 1, max_n), np.int64) for _ in range(2))
        self._repetition(
            *_pointers(ids, lengths, offsets), len(offsets) - 1, max_n,
            *_pointers(*scratch, slots, top, dup),
        )  # fmt: skip
        return top, dup

    def fasttext_index(
        self, model: FastText, words: np.ndarray, word_offsets: np.ndarray, prune: np.ndarray
    ) -> list[np.ndarray]:
        """Fill ``model``'s two lookup tables (the dictionary by hash, the pruned n-grams: int32
        pairs of bucket and row); returns them, for the caller to keep alive."""
        word_slots = np.full(_table_size(len(word_offsets) - 1), -1, np.int32)
        keys, values = (_contiguous(prune[:, k], np.int32) for k in (0, 1))
        prune_slots = np.zeros(_table_size(len(keys)), np.uint64)
        self._ft_index(
            *_pointers(words, word_offsets),
            len(word_offsets) - 1,
            *_pointers(word_slots),
            len(word_slots) - 1,
            *_pointers(keys, values),
            len(keys),
            *_pointers(prune_slots),
            len(prune_slots) - 1,
        )
        model.word_slots, model.word_mask = word_slots.ctypes.data, len(word_slots) - 1
        model.prune_slots, model.prune_mask = prune_slots.ctypes.data, len(prune_slots) - 1
        return [word_slots, prune_slots]

    def fasttext_predict(
        self, model: FastText, texts: pa.Array, threshold: float, newlines_are_spaces: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """fastText's best label (index, -1 for none) and its probability for each of ``texts``
        (strings without nulls), each read as one line (ended by its first line break, unless
        ``newlines_are_spaces``)."""
        data, offsets = _text_bytes(texts)
        widest = int(np.diff(offsets).max()) if len(texts) else 0
        labels, probs = np.empty(len(texts), np.int32), np.empty(len(texts), np.float32)
        scratch, hidden = np.empty(widest + 2, np.uint8), np.empty(model.dim, np.float32)
        self._ft_predict(
            ctypes.byref(model),
            *_pointers(data, offsets),
            len(texts),
            int(newlines_are_spaces),
            threshold,
            *_pointers(scratch, hidden, labels, probs),
        )
        return labels, probs


@cache
def library() -> Native | None:
    """The compiled cutters, built on first use; None where they cannot be (then the numpy
    cutters run, and an info line says why)."""
    if os.environ.get("PREPFLOW_NATIVE", "1") == "0":
        return None
    target = _target()
    if not target.exists() and _compile(target) is not None:
        return None
    try:
        return Native(ctypes.CDLL(str(target)))
    except OSError as e:  # not a library of this machine (a cache shared across systems)
        log.info("cannot load %s (%s): the text cutters run in numpy", target, e)
        return None


def build() -> str:
    """Compile the cutters unless they are compiled already (the set-up script calls this);
    says where they are, or why the numpy cutters will run."""
    target = _target()
    if target.exists():
        return f"C text cutters: {target}"
    problem = _compile(target)
    return (
        f"C text cutters: {target}"
        if problem is None
        else f"{problem}; the text cutters run in numpy"
    )


def _target() -> Path:
    """Where the library of this source, these flags and this machine's architecture lives."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join(CFLAGS + LIBS).encode() + platform.machine().encode())
    return cache_root() / "native" / f"prepflow-text-{digest.hexdigest()[:16]}.so"


def _compile(target: Path) -> str | None:
    """Compile :data:`SOURCE` to ``target`` (written whole, then renamed, so concurrent builds
    are safe; another version's library, about 20 KB, stays for the checkout that uses it);
    what went wrong, if anything."""
    compiler = shutil.which(os.environ.get("CC") or "cc")
    if compiler is None:
        problem = "no C compiler (install gcc, or set CC)"
    else:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        began = time.perf_counter()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [compiler, *CFLAGS, "-o", str(tmp), str(SOURCE), *LIBS],
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                os.replace(tmp, target)
                log.info("compiled %s in %.2f s", target, time.perf_counter() - began)
                return None
            problem = f"{compiler} could not compile {SOURCE}: {done.stderr.strip()}"
        except OSError as e:
            problem = f"cannot build the C text cutters in {target.parent}: {e}"
        with suppress(OSError):
            tmp.unlink()
    log.info("%s: the text cutters run in numpy", problem)
    return problem


def _bind(function: Any, restype: Any, argtypes: list[Any]) -> Any:
    function.restype, function.argtypes = restype, argtypes
    return function


def _rewritten(texts: pa.Array, data: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The strings a pass wrote back to back (``ends``: each one's end), nulls where ``texts``
    has them."""
    valid = to_numpy(pc.is_valid(texts)) if texts.null_count else None
    return string_array(data.tobytes(), np.diff(ends, prepend=0), valid)


def _text_bytes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of ``texts`` (strings) and each text's offsets into them, from 0."""
    offsets = string_offsets(texts)
    data = _contiguous(string_data(texts)[offsets[0] : offsets[-1]], np.uint8)
    return data, _contiguous(offsets - offsets[0], np.int64)


def _table_size(n: int) -> int:
    """Slots of an open-addressing table for n keys: a power of two, at most half full."""
    return 1 << max(1, 2 * n - 1).bit_length()


def _contiguous(a: np.ndarray, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def _pointers(*arrays: np.ndarray) -> list[int]:
    return [a.ctypes.data for a in arrays]
