"""Global text deduplication: exact (normalised hash) and MinHash-LSH near-duplicates.

Both are mergeable global filters (:mod:`prepflow.operators.common.dedup`): each shard is
summarized to fingerprints keyed by row (a digest, or a MinHash signature), the summaries are
merged, ``finalize`` decides which rows are duplicates of which, and ``keep`` looks the rows of
each shard up. What is held is fingerprints keyed by row, never texts, and the verdict depends on
the set of rows only, not on how the stream is cut into shards or in which order they come.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from prepflow.core.columns import Column
from prepflow.core.operator import Params, Requirements
from prepflow.core.tables import from_numpy, text_column, to_numpy
from prepflow.operators.common.dedup import DigestDedup, GlobalDedup, Verdict
from prepflow.operators.common.minhash import (
    agreement,
    band_keys,
    cluster_heads,
    optimal_bands,
    signatures,
    similar_pairs,
)
from prepflow.operators.common.ngrams import (
    Ragged,
    char_hashes,
    ngram_hashes,
    normalise,
    word_hashes,
)


class _TextDedup(GlobalDedup):
    """A dedup over one text column: fingerprints are computed from its non-null texts."""

    abstract = True
    domain = "text"
    inputs = (Column("text", "string", "the document text"),)

    def _fingerprints(self, keys: np.ndarray, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        return self._text_fingerprints(keys, text_column(rows, self.col("text"), self.name))

    def _text_fingerprints(
        self, keys: np.ndarray, texts: pa.Array
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _digester(name: str, bits: int) -> Callable[[bytes], bytes]:
    if name == "blake2b":
        return lambda data: hashlib.blake2b(data, digest_size=bits // 8).digest()
    import xxhash

    return xxhash.xxh3_64_digest if bits == 64 else xxhash.xxh3_128_digest


class TextExactDedup(_TextDedup, DigestDedup):
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

    def _empty_values(self) -> np.ndarray:
        return np.zeros((0, self.params.hash_bits // 64), np.uint64)

    def _text_fingerprints(
        self, keys: np.ndarray, texts: pa.Array
    ) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        norm = normalise(
            texts,
            nfkc=p.nfkc,
            lowercase=p.lowercase,
            strip_punctuation=p.strip_punctuation,
            whitespace=p.whitespace,
        )
        present = to_numpy(norm.is_valid())
        digest = _digester(p.hash, p.hash_bits)
        raw = b"".join(
            digest(s) for s in norm.filter(from_numpy(present)).cast(pa.binary()).to_pylist()
        )
        return keys[present], np.frombuffer(raw, np.uint64).reshape(-1, p.hash_bits // 64)

    def _reason(self, representative_id: int, score: float) -> str:
        return f"exact duplicate of _id {representative_id}"


class MinHashDedup(_TextDedup):
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

    def _empty_values(self) -> np.ndarray:
        return np.zeros((0, self.params.num_perm), np.uint16)

    def _text_fingerprints(
        self, keys: np.ndarray, texts: pa.Array
    ) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        units = (word_hashes if p.shingle == "word" else char_hashes)(texts, lowercase=p.lowercase)
        shingles = ngram_hashes(units, p.ngram)
        lengths = shingles.lengths
        has = lengths > 0
        offsets = np.zeros(int(has.sum()) + 1, np.int64)
        np.cumsum(lengths[has], out=offsets[1:])
        return keys[has], signatures(Ragged(shingles.values, offsets), p.num_perm, p.seed)

    def _resolve(self, keys: np.ndarray, sig: np.ndarray) -> Verdict:
        p = self.params
        u, v = similar_pairs(sig, *self.lsh_params(), p.threshold if p.verify else None)
        head = cluster_heads(len(keys), u, v)
        dup = np.flatnonzero(head != np.arange(len(keys)))
        return Verdict(keys[dup], keys[head[dup]], agreement(sig, dup, head[dup]))

    def groups(self, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One bucket row per (band, row): the band's index and the hash of its slots."""
        bands, rows = self.lsh_params()
        out = np.empty((bands * len(keys), 2), np.uint64)
        for b in range(bands):
            out[b * len(keys) : (b + 1) * len(keys), 0] = b
            out[b * len(keys) : (b + 1) * len(keys), 1] = band_keys(values, b, rows)
        return out

    @property
    def verify_threshold(self) -> float | None:
        return self.params.threshold if self.params.verify else None

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Estimated Jaccard: the fraction of equal signature slots."""
        return np.count_nonzero(a == b, axis=1) / max(1, a.shape[1])

    def _reason(self, representative_id: int, score: float) -> str:
        return f"near-duplicate of _id {representative_id} (est. jaccard {score:.2f})"
