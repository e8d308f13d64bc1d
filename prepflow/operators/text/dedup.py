"""Global text deduplication: exact (normalised hash) and MinHash-LSH near-duplicates.

Both are two-pass filters: ``observe`` records a compact fingerprint per row (a digest, or a
MinHash signature), ``finalize`` decides which rows are duplicates of which, and ``keep`` looks
the rows of each batch up. What is held is fingerprints keyed by row, never texts, and the
verdict depends on the set of rows only, not on how the stream is cut into batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from prepflow.core.columns import Column
from prepflow.core.errors import OperatorContractError
from prepflow.core.operator import ID, FilterOperator, Params, Requirements
from prepflow.operators.text._minhash import (
    agreement,
    cluster_heads,
    optimal_bands,
    signatures,
    similar_pairs,
)
from prepflow.operators.text._ngrams import (
    Ragged,
    char_hashes,
    ngram_hashes,
    normalise,
    text_column,
    word_hashes,
)

# A row's key is its _id shifted left, plus its rank among the rows of its batch that share the
# _id (siblings from a fan-out step): one sortable int64 per row, ordered like (_id, rank).
_RANK_BITS = 20
_MAX_ID = 1 << (63 - _RANK_BITS)
_CHUNK_ROWS = 8192  # rows shingled at once: bounds the transient token and signature arrays


def row_keys(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """One int64 key per row, increasing with ``_id`` and, among siblings, with batch order."""
    ids = np.asarray(ids.to_numpy(), dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= _MAX_ID):
        raise OperatorContractError(
            f"_id values must lie in [0, 2**{63 - _RANK_BITS}); got {ids.min()}..{ids.max()}"
        )
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    pos = np.arange(len(ids))
    head = np.ones(len(ids), bool)
    head[1:] = ordered[1:] != ordered[:-1]
    rank = pos - np.maximum.accumulate(np.where(head, pos, 0))
    if len(rank) and rank.max() >= 1 << _RANK_BITS:
        raise OperatorContractError(f"more than {1 << _RANK_BITS} rows share one _id in a batch")
    keys = np.empty_like(ids)
    keys[order] = (ordered << _RANK_BITS) | rank
    return keys


@dataclass(frozen=True)
class _Verdict:
    """The rows to drop (sorted keys), the kept row each duplicates, and a similarity score."""

    dropped: np.ndarray
    representative: np.ndarray
    score: np.ndarray


class _GlobalTextDedup(FilterOperator):
    """Two-pass bookkeeping shared by the text dedup filters: keys, lookup, reasons."""

    _abstract = True
    domain = "text"
    is_global = True
    cpu_heavy = True
    inputs = (Column("text", "string", "the document text"),)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._observed: list[np.ndarray] | None = None
        self._seen: np.ndarray | None = None  # sorted keys of every observed row
        self._verdict: _Verdict | None = None

    def observe(self, batch: pa.Table) -> None:
        self.absorb(self.summarize(batch))

    def summarize(self, batch: pa.Table) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """The batch's row keys and (keys, fingerprints) of its rows that have one."""
        texts = text_column(batch, self.col("text"), self.name)
        keys = row_keys(batch.column(ID))
        parts = [
            self._fingerprints(keys[i : i + _CHUNK_ROWS], texts.slice(i, _CHUNK_ROWS))
            for i in range(0, len(keys), _CHUNK_ROWS)
        ]
        return keys, parts

    def absorb(self, summary: tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]) -> None:
        if self._verdict is not None:
            raise OperatorContractError(f"{self.name}: observe() called after finalize()")
        if self._observed is None:
            self._observed = []
            self._start()
        keys, parts = summary
        self._observed.append(keys)
        for fingerprinted, values in parts:
            self._keys.append(fingerprinted)
            self._values.append(values)

    def finalize(self) -> None:
        if self._verdict is not None:
            raise OperatorContractError(f"{self.name}: finalize() called twice")
        if self._observed is None:
            self._start()
        seen = np.sort(np.concatenate(self._observed or [np.zeros(0, np.int64)]))
        twice = seen[1:][seen[1:] == seen[:-1]]
        if len(twice):
            raise OperatorContractError(
                f"{self.name}: the row with _id {twice[0] >> _RANK_BITS} was observed twice"
            )
        self._observed, self._seen = None, seen
        self._verdict = self._resolve()

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        if self._verdict is None or self._seen is None:
            raise OperatorContractError(
                f"{self.name} is a global operator: observe() every batch "
                "and finalize() before run_batch()"
            )
        keys = row_keys(batch.column(ID))
        unseen = ~_lookup(self._seen, keys)[1]
        if unseen.any():
            raise OperatorContractError(
                f"{self.name}: the row with _id {keys[unseen][0] >> _RANK_BITS} was not observed"
            )
        v = self._verdict
        at, drop = _lookup(v.dropped, keys)
        reasons: list[str | None] = [None] * len(keys)
        for row in np.flatnonzero(drop):
            j = at[row]
            reasons[row] = self._reason(int(v.representative[j]) >> _RANK_BITS, float(v.score[j]))
        return pa.array(~drop), pa.array(reasons, pa.string())

    # ---- what each dedup implements ----------------------------------------------------------

    def _start(self) -> None:
        """Reset the fingerprint state (``_keys`` and ``_values`` lists) before the first batch."""
        raise NotImplementedError

    def _fingerprints(self, keys: np.ndarray, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(keys of the rows that have a fingerprint, one fingerprint row each); no state."""
        raise NotImplementedError

    def _resolve(self) -> _Verdict:
        raise NotImplementedError

    def _reason(self, representative_id: int, score: float) -> str:
        raise NotImplementedError


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key sits in ``sorted_keys``, and whether it is there."""
    if not len(sorted_keys):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at, sorted_keys[at] == keys


def _stack(chunks: list[np.ndarray]) -> np.ndarray:
    """Stack row blocks, releasing each as it is copied: peak memory is the result plus a block."""
    out = np.empty((sum(len(c) for c in chunks), chunks[0].shape[1]), chunks[0].dtype)
    at = 0
    while chunks:
        block = chunks.pop(0)
        out[at : at + len(block)] = block
        at += len(block)
    return out


def _digester(name: str, bits: int) -> Callable[[bytes], bytes]:
    if name == "blake2b":
        return lambda data: hashlib.blake2b(data, digest_size=bits // 8).digest()
    import xxhash

    return xxhash.xxh3_64_digest if bits == 64 else xxhash.xxh3_128_digest


class TextExactDedup(_GlobalTextDedup):
    """Drop documents whose normalised text equals that of a document with a smaller ``_id``.

    Each text is normalised (Unicode NFKC, lowercase, punctuation stripped, whitespace collapsed
    or removed — each switchable), hashed to a 64- or 128-bit digest (xxHash XXH3, or BLAKE2b),
    and only the digest and the row's key are held. Of every group of equal digests the row with
    the smallest ``_id`` is kept; the others are dropped with the reason ``exact duplicate of
    _id N``. Rows that share an ``_id`` (siblings from a fan-out step) are ordered by their
    position in the batch.

    Rows whose text is null are always kept: a missing text is no evidence of duplication (filter
    them explicitly). Empty texts are equal to each other. With 64-bit digests two different
    texts collide with probability about n²/2⁶⁵ (3% at a billion documents); use 128 bits
    beyond a few hundred million.
    """

    version = "1"
    requires = Requirements(packages=("numpy", "xxhash"), extra="text")

    class Params(Params):
        nfkc: bool = Field(
            True,
            description="fold Unicode compatibility forms (NFKC: full-width, ligatures)",
        )
        lowercase: bool = Field(True, description="compare texts case-insensitively")
        strip_punctuation: bool = Field(
            False,
            description="delete punctuation and symbols (Unicode P and S classes) before comparing",
        )
        whitespace: Literal["keep", "collapse", "remove"] = Field(
            "collapse",
            description="keep it, collapse runs to one space (ends trimmed), or remove it",
        )
        hash: Literal["xxhash", "blake2b"] = Field(
            "xxhash", description="digest function: xxHash XXH3 (fast) or BLAKE2b (cryptographic)"
        )
        hash_bits: Literal[64, 128] = Field(128, description="digest size in bits")

    def _start(self) -> None:
        self._keys = [np.zeros(0, np.int64)]
        self._values = [np.zeros((0, self.params.hash_bits // 64), np.uint64)]

    def _fingerprints(self, keys: np.ndarray, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        norm = normalise(
            texts,
            nfkc=p.nfkc,
            lowercase=p.lowercase,
            strip_punctuation=p.strip_punctuation,
            whitespace=p.whitespace,
        )
        present = ~np.asarray(norm.is_null().to_numpy(zero_copy_only=False))
        digest = _digester(p.hash, p.hash_bits)
        raw = b"".join(
            digest(s) for s in norm.filter(pa.array(present)).cast(pa.binary()).to_pylist()
        )
        return keys[present], np.frombuffer(raw, np.uint64).reshape(-1, p.hash_bits // 64)

    def _resolve(self) -> _Verdict:
        keys = np.concatenate(self._keys)
        digests = np.concatenate(self._values)
        self._keys, self._values = [], []
        order = np.lexsort([keys, *digests.T[::-1]])  # by digest, then key
        keys, digests = keys[order], digests[order]
        head = np.ones(len(keys), bool)
        head[1:] = (digests[1:] != digests[:-1]).any(axis=1)
        first = keys[np.maximum.accumulate(np.where(head, np.arange(len(keys)), 0))]
        dup = ~head
        by_key = np.argsort(keys[dup])
        return _Verdict(keys[dup][by_key], first[dup][by_key], np.ones(int(dup.sum())))

    def _reason(self, representative_id: int, score: float) -> str:
        return f"exact duplicate of _id {representative_id}"


class MinHashDedup(_GlobalTextDedup):
    """Drop near-duplicate documents (MinHash LSH), keeping the smallest ``_id`` of each cluster.

    Global across the whole dataset. Pass 1 turns each text into a set of shingles and a MinHash
    signature (``num_perm`` slots from rensa's R-MinHash, 16 bits of each kept; the fraction of
    equal slots estimates the Jaccard similarity of two shingle sets). ``finalize`` cuts the
    signatures into ``bands`` bands of ``rows`` slots; documents with an identical band become
    candidate pairs, which (with ``verify``) are kept only when their estimated Jaccard is at
    least ``threshold``. Clusters are the connected components of the remaining pairs (union-find);
    the row with the smallest ``_id`` of each is kept and every other one is dropped with the
    reason ``near-duplicate of _id N (est. jaccard J)``, J being its estimated similarity to
    that kept row (below the threshold when it joined the cluster through a chain).

    Shingles: the text is NFKC-normalised and lowercased, and split into tokens (runs of
    letters, digits and marks; punctuation and whitespace only separate). ``word`` shingles
    are ``ngram`` consecutive tokens; ``char`` shingles are ``ngram`` consecutive characters of
    the tokens joined by single spaces. Chinese, Japanese, Thai, Lao, Khmer and Myanmar text has
    no spaces between words, so in ``word`` mode each of its characters counts as one token:
    a Chinese passage gets character n-grams while English words next to it stay words. A text
    with fewer than ``ngram`` tokens is one shingle; an empty or null text has none and is
    always kept.

    Without ``bands``/``rows`` they are derived from ``threshold`` and ``num_perm`` as in
    datasketch: minimise the weighted probability of false positives (pairs below the
    threshold becoming candidates) and false negatives (pairs above it missed). Verification
    removes most false positives, so by default false negatives weigh more. State is the
    signature matrix (``2 * num_perm`` bytes per document) plus one key per row.
    """

    version = "1"
    requires = Requirements(packages=("numpy", "rensa", "xxhash"), extra="text")

    class Params(Params):
        shingle: Literal["word", "char"] = Field(
            "word",
            description="word n-grams (characters in scripts without spaces) or char n-grams",
        )
        ngram: int = Field(5, ge=1, le=64, description="tokens (or characters) per shingle")
        num_perm: int = Field(
            256,
            ge=8,
            le=1024,
            description="MinHash signature slots; more slots estimate Jaccard more precisely",
        )
        bands: int | None = Field(
            None,
            ge=1,
            description="LSH bands (with rows); derived from threshold when omitted",
        )
        rows: int | None = Field(
            None, ge=1, description="signature slots per LSH band; bands * rows <= num_perm"
        )
        threshold: float = Field(
            0.8,
            gt=0.0,
            le=1.0,
            description="Jaccard similarity at which two documents are duplicates",
        )
        verify: bool = Field(
            True,
            description="keep a candidate pair only if its estimated Jaccard >= threshold",
        )
        false_negative_weight: float = Field(
            0.99,
            ge=0.0,
            le=1.0,
            description="weight of missed pairs vs false candidates when deriving bands/rows "
            "(use about 0.5 without verify)",
        )
        lowercase: bool = Field(True, description="compare texts case-insensitively")
        seed: int = Field(42, ge=0, lt=2**64, description="seed of the MinHash permutations")

        @model_validator(mode="after")
        def _bands_fit(self) -> MinHashDedup.Params:
            if (self.bands is None) != (self.rows is None):
                raise ValueError("give bands and rows together, or neither to derive them")
            if (
                self.bands is not None
                and self.rows is not None
                and self.bands * self.rows > self.num_perm
            ):
                raise ValueError(
                    f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
                )
            return self

    def fingerprint_extra(self) -> str:
        """rensa's sketch algorithm version: a new one gives other signatures, so other results."""
        try:
            from rensa import RMinHash
        except ImportError:
            return ""  # compile reports the missing package
        return f"rensa-rminhash-{RMinHash.ALGORITHM_VERSION}"

    def lsh_params(self) -> tuple[int, int]:
        """The (bands, rows) in use: the given ones, or the optimum for the threshold."""
        p = self.params
        if p.bands is not None and p.rows is not None:
            return p.bands, p.rows
        return optimal_bands(p.threshold, p.num_perm, p.false_negative_weight)

    def _start(self) -> None:
        self._keys = [np.zeros(0, np.int64)]
        self._values = [np.zeros((0, self.params.num_perm), np.uint16)]

    def _fingerprints(self, keys: np.ndarray, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        units = (word_hashes if p.shingle == "word" else char_hashes)(texts, lowercase=p.lowercase)
        shingles = ngram_hashes(units, p.ngram)
        lengths = shingles.lengths
        has = lengths > 0
        offsets = np.zeros(int(has.sum()) + 1, np.int64)
        np.cumsum(lengths[has], out=offsets[1:])
        return keys[has], signatures(Ragged(shingles.values, offsets), p.num_perm, p.seed)

    def _resolve(self) -> _Verdict:
        keys, self._keys = np.concatenate(self._keys), []
        sig = _stack(self._values)
        if len(keys) > 1 and (keys[1:] < keys[:-1]).any():
            order = np.argsort(keys)
            keys, sig = keys[order], sig[order]
        p = self.params
        u, v = similar_pairs(sig, *self.lsh_params(), p.threshold if p.verify else None)
        head = cluster_heads(len(keys), u, v)
        dup = np.flatnonzero(head != np.arange(len(keys)))
        return _Verdict(keys[dup], keys[head[dup]], agreement(sig, dup, head[dup]))

    def _reason(self, representative_id: int, score: float) -> str:
        return f"near-duplicate of _id {representative_id} (est. jaccard {score:.2f})"
