"""Benchmark decontamination: drop training documents that share an n-gram with test items."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.operator import FilterOperator, Params, Requirements
from prepflow.core.tables import from_numpy, strings, text_column
from prepflow.operators.common.ngrams import ngram_hashes, word_hashes

_CHUNK_ROWS = 8192  # documents tokenised at once: bounds the transient token arrays


@dataclass(frozen=True)
class _Item:
    number: int  # 1-based position in the benchmark
    text: str
    grams: int  # tokens per matched n-gram: n, or the item's length when shorter


@dataclass(frozen=True)
class _Index:
    """Sorted n-gram hashes of the benchmark, each with the first item that has it."""

    hashes: np.ndarray
    item: np.ndarray
    items: list[_Item]
    lengths: tuple[int, ...]  # n-gram sizes to look for in documents


class NgramDecontaminate(FilterOperator):
    """Drop documents that share an n-gram with any item of a benchmark's test set.

    The standard decontamination of pretraining data (as for GPT-3, with 13-grams): documents and
    test items are NFKC-normalised, lowercased and split into tokens (runs of letters, digits and
    marks; punctuation and whitespace are ignored; each Chinese, Japanese, Thai, Lao, Khmer or
    Myanmar character is a token of its own), and a document is dropped when any ``n``
    consecutive tokens of it also occur in a test item. An item shorter than ``n`` tokens
    contaminates a document that contains all its tokens in a row, provided it has at least
    ``min_item_tokens`` tokens; shorter items are ignored, as phrases that common would drop
    innocent documents. The reason names the item: ``shares 13 tokens with benchmark item 42
    of test.jsonl "<start of the item>"``; when a document matches several, the earliest item
    is named.

    The benchmark is any input prepflow reads (JSONL, JSON, Parquet, CSV, a ``datasets``
    directory: the item is the column named by ``column``; ``.txt``: one item per non-blank
    line), read as a side input with the same readers as the main input. It is read once per
    process into a sorted array of 64-bit n-gram hashes (12 bytes per distinct n-gram).
    """

    domain = "text"
    version = "2"  # the benchmark is a side input; reasons number items, not file lines
    cpu_heavy = True
    requires = Requirements(packages=("numpy", "xxhash"), extra="text")
    inputs = (Column("text", "string", "the document text"),)

    class Params(Params):
        benchmark: str = Field(
            ...,
            description="test set: a file, directory or URL prepflow reads (.txt: one item a line)",
        )
        column: str = Field("text", description="the benchmark's column that holds the item")
        n: int = Field(13, ge=1, le=64, description="tokens per n-gram")
        min_item_tokens: int = Field(
            8,
            ge=1,
            description="an item shorter than n tokens is matched whole if it has this many",
        )
        lowercase: bool = Field(True, description="compare case-insensitively")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._index: _Index | None = None

    def check(self) -> list[str]:
        path = Path(self.params.benchmark)
        if "://" not in self.params.benchmark and not path.exists():
            return [f"{self.name}: parameter 'benchmark': no file {path}"]
        return []

    def fingerprint_extra(self) -> str:
        """The benchmark's content: editing the file must invalidate earlier results."""
        try:
            return hashlib.sha256(Path(self.params.benchmark).read_bytes()).hexdigest()
        except OSError:
            return ""  # check() reports the missing file; a directory or URL: its name only

    def setup(self, ctx: Any) -> None:
        items = _read_items(ctx, self.params.benchmark, self.params.column, self.name)
        self._index = self._build(items)

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        index = self._index
        if index is None:
            raise OperatorContractError(f"{self.name}: setup(ctx) must run before run_batch")
        texts = text_column(batch, self.col("text"), self.name)
        best = np.concatenate(
            [np.zeros(0, np.int64)]
            + [
                self._first_match(index, texts.slice(i, _CHUNK_ROWS))
                for i in range(0, len(texts), _CHUNK_ROWS)
            ]
        )
        drop = best < len(index.items)
        reasons: list[str | None] = [None] * len(texts)
        source = Path(self.params.benchmark).name
        for row in np.flatnonzero(drop):
            item = index.items[best[row]]
            reasons[row] = (
                f"shares {item.grams} tokens with benchmark item {item.number} of {source} "
                f'"{_snippet(item.text)}"'
            )
        return from_numpy(~drop), strings(reasons)

    def _first_match(self, index: _Index, texts: pa.Array) -> np.ndarray:
        """For each text, the first item it shares an n-gram with (``len(items)`` for none)."""
        toks = word_hashes(texts, lowercase=self.params.lowercase)
        best = np.full(len(texts), len(index.items), np.int64)
        for n in index.lengths:
            grams = ngram_hashes(toks, n)
            at = np.minimum(np.searchsorted(index.hashes, grams.values), len(index.hashes) - 1)
            hit = index.hashes[at] == grams.values
            row_of = np.repeat(np.arange(len(texts)), grams.lengths)
            np.minimum.at(best, row_of[hit], index.item[at[hit]])
        return best

    def _build(self, items: list[tuple[int, str]]) -> _Index:
        p = self.params
        toks = word_hashes(strings([text for _, text in items]), lowercase=p.lowercase)
        grams = ngram_hashes(toks, p.n)
        usable = np.flatnonzero(toks.lengths >= min(p.min_item_tokens, p.n))
        if not len(usable):
            raise ConfigError(
                f"{self.name}: benchmark {p.benchmark} has no item of at least "
                f"{min(p.min_item_tokens, p.n)} tokens"
            )
        kept = [_Item(items[i][0], items[i][1], int(min(p.n, toks.lengths[i]))) for i in usable]
        hashes = np.concatenate([grams.row(i) for i in usable])
        item = np.repeat(np.arange(len(usable)), grams.lengths[usable])
        order = np.lexsort((item, hashes))
        hashes, item = hashes[order], item[order]
        first = np.ones(len(hashes), bool)
        first[1:] = hashes[1:] != hashes[:-1]
        lengths = tuple(sorted({it.grams for it in kept}, reverse=True))
        return _Index(hashes[first], item[first], kept, lengths)


def _read_items(ctx: Any, source: str, column: str, op: str) -> list[tuple[int, str]]:
    """(1-based position, text) of each non-blank item of the benchmark side input."""
    items: list[tuple[int, str]] = []
    for table in ctx.side_input(source):
        if column not in table.column_names:
            raise ConfigError(
                f"{op}: benchmark {source} has no column {column!r} "
                f"(columns: {', '.join(table.column_names)})"
            )
        for text in text_column(table, column, op).to_pylist():
            if text is not None and text.strip():
                items.append((len(items) + 1, text))
    return items


def _snippet(text: str, width: int = 60) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"
