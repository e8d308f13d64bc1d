"""MinHash signatures, LSH banding and clustering for near-duplicate detection.

Signatures come from rensa's R-MinHash (Rust; 32-bit slots whose collision rate estimates the
Jaccard similarity of the shingle sets). Banding, candidate pairs, verification and clustering
are vectorised numpy over the whole signature matrix, so finalising a million documents takes
seconds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from prepflow.core.tables import distinct
from prepflow.operators.common.ngrams import Ragged, mix64


def signatures(shingles: Ragged, num_perm: int, seed: int) -> np.ndarray:
    """A ``(rows, num_perm)`` uint16 signature matrix; every row must have a shingle.

    Only the low 16 bits of each 32-bit slot are kept (b-bit MinHash): two different slot
    values then agree by chance with probability 2**-16, which moves a Jaccard estimate by at
    most 0.00002, and the matrix takes half the memory.
    """
    from rensa import RMinHash

    matrix = RMinHash.digest_matrix_from_flat_token_hashes(
        shingles.values, shingles.offsets.astype(np.uint64), num_perm, seed
    )
    full = np.array(matrix.to_rows(), dtype=np.uint32).reshape(-1, num_perm)
    return full.astype(np.uint16)


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, false_negative_weight: float) -> tuple[int, int]:
    """The (bands, rows) that minimise the weighted LSH error at ``threshold``.

    As datasketch's ``_optimal_param``: a pair with Jaccard ``s`` becomes a candidate with
    probability ``1 - (1 - s**rows)**bands``; the false-positive error is that probability
    integrated over ``[0, threshold]``, the false-negative error its complement over
    ``[threshold, 1]``; the pair with the smallest weighted sum wins (ties: fewer bands).
    """
    grid = np.linspace(0.0, 1.0, 2001)
    below, above = grid <= threshold, grid >= threshold
    best, best_error = (1, 1), np.inf
    for bands in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // bands + 1)[:, None]
        p = 1.0 - (1.0 - grid[None, :] ** rows) ** bands
        fp = np.trapezoid(p[:, below], grid[below], axis=1)
        fn = np.trapezoid(1.0 - p[:, above], grid[above], axis=1)
        error = (1.0 - false_negative_weight) * fp + false_negative_weight * fn
        i = int(np.argmin(error))
        if error[i] < best_error - 1e-12:
            best, best_error = (bands, int(rows[i, 0])), float(error[i])
    return best


_KEY_CHUNK = 1 << 20


def candidate_pairs(sig: np.ndarray, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique pairs ``(u, v)``, ``u < v``, of rows that share a band.

    Within each band bucket every member is paired with the bucket's first (smallest) row, so
    the number of pairs grows with the number of rows, not with the square of a bucket's size.
    A band's key is a 64-bit hash of its slots: a chance collision only adds a candidate, which
    verification then rejects.
    """
    n = sig.shape[0]
    codes = []
    for b in range(bands):
        key = band_keys(sig, b, rows)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        head = np.ones(n, bool)
        head[1:] = sorted_key[1:] != sorted_key[:-1]
        first = order[np.maximum.accumulate(np.where(head, np.arange(n), 0))]
        members = ~head
        codes.append(first[members].astype(np.int64) * n + order[members])
    code = distinct(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
    return code // n, code % n


def band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    """One 64-bit hash per row of the slots of LSH band ``band`` (rows equal in the band hash
    equal; unequal ones collide with probability 2**-64)."""
    n = sig.shape[0]
    mult = mix64(np.arange(1, rows + 1, dtype=np.uint64)) | np.uint64(1)
    key = np.empty(n, np.uint64)
    for start in range(0, n, _KEY_CHUNK):  # bounds the uint64 copy of the band
        part = sig[start : start + _KEY_CHUNK, band * rows : (band + 1) * rows].astype(np.uint64)
        key[start : start + _KEY_CHUNK] = (part * mult).sum(axis=1, dtype=np.uint64)
    return key


def similar_pairs(
    sig: np.ndarray, bands: int, rows: int, threshold: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs, keeping (when ``threshold`` is given) those whose estimate reaches it."""
    u, v = candidate_pairs(sig, bands, rows)
    if threshold is None:
        return u, v
    similar = agreement(sig, u, v) >= threshold
    return u[similar], v[similar]


def agreement(sig: np.ndarray, u: np.ndarray, v: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Estimated Jaccard similarity of row pairs: the fraction of equal signature slots."""
    out = np.empty(len(u), np.float64)
    for i in range(0, len(u), chunk):
        a, b = u[i : i + chunk], v[i : i + chunk]
        out[i : i + chunk] = np.count_nonzero(sig[a] == sig[b], axis=1) / sig.shape[1]
    return out


def cluster_heads(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each of ``n`` rows, the smallest row connected to it through the edges ``(u, v)``.

    Union-find in whole-array steps (hook each edge's larger root under the smaller, then jump
    pointers to the roots, until every edge joins equal roots): a handful of passes, and no
    scipy import (~150 ms, most of a small run's dedup time). ``head[i] <= i`` always holds and
    stays inside ``i``'s component, so a component's root ends as its smallest row.
    """
    head = np.arange(n, dtype=np.int64)
    u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
    while len(u):
        hu, hv = head[u], head[v]
        apart = hu != hv
        if not apart.any():
            break
        hu, hv = hu[apart], hv[apart]
        low = np.minimum(hu, hv)
        np.minimum.at(head, np.maximum(hu, hv), low)
        while not np.array_equal(jumped := head[head], head):
            head = jumped
        u, v = u[apart], v[apart]  # edges already inside one tree stay there
    return head
