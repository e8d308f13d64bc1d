"""The word and token cutters and the whitespace tidy in C (``native.c``), for the text
operators' hottest loops.

The numpy cutters (``operators.text._words``, ``operators.common.ngrams``) make about twenty
passes over every character and the regex tidy (``operators.text.refiners``) six; these make
one, and ctypes releases the GIL while they run, so the worker threads run them in parallel. The source is compiled once per machine with the system's C
compiler (``$CC``, else ``cc``) into ``<cache root>/native/`` (see ``prepflow.core.paths``),
under a name that hashes the source, so an edited source is rebuilt and never loaded stale.
Where there is no compiler, or ``PREPFLOW_NATIVE=0``, :func:`library` is None and the numpy
cutters and the regex tidy run: the same result either way (the tests hold both to the regex
definitions).
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.paths import cache_root
from prepflow.core.tables import string_array, to_numpy
from prepflow.operators.common.utf8 import string_data, string_offsets

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.c")
CFLAGS = ("-O3", "-std=c99", "-shared", "-fPIC")


class Native:
    """The loaded library, with numpy in and out."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        self._words = lib.pf_cut_words
        self._words.restype = i64
        self._words.argtypes = [p, p, i64, i64, p, p, p, p, p, p, p, p, p, p]
        self._tokens = lib.pf_cut_tokens
        self._tokens.restype = i64
        self._tokens.argtypes = [p, p, i64, p, ctypes.c_int, p, p, p]
        self._tidy = lib.pf_tidy_whitespace
        self._tidy.restype = i64
        self._tidy.argtypes = [p, p, i64, p, p]

    def cut_words(
        self, data: np.ndarray, offsets: np.ndarray, first_doc: int, table: np.ndarray
    ) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The words of the documents whose UTF-8 bytes are ``data`` (``offsets``, int64, into
        it): their bytes back to back, and per word its byte size, document (from
        ``first_doc``), length in characters, and the OR and AND of its characters' flags."""
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
            first_doc,
            *_pointers(table, kept, sizes, doc, length, any_flag, all_flag, flags, lead, start),
        )
        sizes = sizes[:count]  # views: the caller concatenates the chunks' parts anyway
        return (
            kept[: int(sizes.sum())].tobytes(),
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
        offsets = string_offsets(texts)
        data = string_data(texts)[offsets[0] : offsets[-1]]
        offsets = _contiguous(offsets - offsets[0], np.int64)
        out = np.empty(len(data), np.uint8)
        ends = np.empty(len(texts), np.int64)
        size = self._tidy(
            *_pointers(_contiguous(data, np.uint8), offsets), len(texts), *_pointers(out, ends)
        )
        valid = to_numpy(pc.is_valid(texts)) if texts.null_count else None
        return string_array(out[:size].tobytes(), np.diff(ends, prepend=0), valid)


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
    digest.update(" ".join(CFLAGS).encode() + platform.machine().encode())
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
                [compiler, *CFLAGS, "-o", str(tmp), str(SOURCE)], capture_output=True, text=True
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


def _contiguous(a: np.ndarray, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def _pointers(*arrays: np.ndarray) -> list[int]:
    return [a.ctypes.data for a in arrays]
