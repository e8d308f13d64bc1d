"""MinHashDedup quality and speed against exact Jaccard ground truth.

Corpus: every English document of ../shared/data/corpora (Python docs paragraphs, fortunes, KJV
chapters, Jargon File entries: about 36k real texts, with their own natural duplicates) plus
planted near-duplicates: for randomly chosen sources of at least 40 tokens, 1-3 variants each,
made by random word substitutions, insertions and deletions until the word-shingle Jaccard with
the source is as close as possible to a target drawn uniformly from [0.5, 1.0]. The documents
are shuffled before ``_id`` assignment.

Ground truth is exact and covers every pair: the documents' shingle sets (the operator's own
shingling: 5-word shingles, 64-bit hashes) form a sparse binary matrix X; X @ X.T gives the
intersection of every pair that shares a shingle (all other pairs have Jaccard 0), computed in
row blocks. Two figures come out:

* pairs: a pair is predicted when the operator puts both documents in one cluster (the dropped
  one names the kept one); truth is Jaccard >= threshold. Transitive clusters count against
  precision when they join documents below the threshold.
* dropped docs: truth drops every member of a connected component of the truth graph except its
  smallest ``_id``; the operator's dropped set is compared with it.

Speed is summarize + merge + finalize + run_batch over all batches in one process, wall clock.

    .venv/bin/python benchmarks/minhash_dedup.py [--num-perm 128] [--threshold 0.8] ...
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash
from scipy import sparse

from prepflow.core.operator import ID, REASON
from prepflow.operators.common.minhash import signatures, similar_pairs
from prepflow.operators.common.ngrams import Ragged, ngram_hashes, tokens, word_hashes
from prepflow.operators.text.dedup import MinHashDedup

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpora"
FILES = (
    "python_docs_en_paragraphs.jsonl",
    "fortunes_en.jsonl",
    "kjv_bible_chapters_en.jsonl",
    "jargon_en_entries.jsonl",
)


def load_corpus() -> list[str]:
    texts = []
    for name in FILES:
        with open(CORPORA / name, encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    return texts


def shingle_set(words: list[str], n: int) -> np.ndarray:
    h = np.fromiter((xxhash.xxh3_64_intdigest(w.encode()) for w in words), np.uint64, len(words))
    return np.unique(ngram_hashes(Ragged(h, np.array([0, len(h)])), n).values)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def plant(
    texts: list[str], n_sources: int, ngram: int, rng: np.random.Generator
) -> tuple[list[str], list[tuple[int, float]]]:
    """Variants of random sources at a target Jaccard; returns them and (source, achieved J)."""
    toks = tokens(pa.array(texts), nfkc=True, lowercase=True, split_spaceless=True).to_pylist()
    vocab = sorted({w for doc in toks[:5000] for w in doc})
    eligible = [i for i, doc in enumerate(toks) if len(doc) >= 40]
    variants, meta = [], []
    for src in rng.choice(eligible, n_sources, replace=False):
        words = toks[src]
        base = shingle_set(words, ngram)
        for _ in range(rng.integers(1, 4)):
            target = rng.uniform(0.5, 1.0)
            edits = [
                (rng.integers(3), rng.integers(len(words)), vocab[rng.integers(len(vocab))])
                for _ in range(len(words))
            ]
            lo, hi = 0, len(edits)  # smallest edit count whose Jaccard drops to the target
            while lo < hi:
                mid = (lo + hi) // 2
                if jaccard(base, shingle_set(edit(words, edits[:mid]), ngram)) > target:
                    lo = mid + 1
                else:
                    hi = mid
            closest = min(
                (edit(words, edits[:k]) for k in (max(lo - 1, 0), lo)),
                key=lambda out: abs(jaccard(base, shingle_set(out, ngram)) - target),
            )
            variants.append(" ".join(closest))
            meta.append((int(src), jaccard(base, shingle_set(closest, ngram))))
    return variants, meta


def edit(words: list[str], edits: list[tuple[int, int, str]]) -> list[str]:
    out = list(words)
    for op, pos, word in edits:
        pos = pos % max(len(out), 1)
        if op == 0:
            out[pos] = word
        elif op == 1:
            out.insert(pos, word)
        elif len(out) > 1:
            del out[pos]
    return out


def truth_pairs(texts: list[str], ngram: int, threshold: float, block: int = 2000) -> np.ndarray:
    """Every pair (i < j) with exact shingle Jaccard >= threshold, by sparse X @ X.T."""
    shingles = ngram_hashes(word_hashes(pa.array(texts)), ngram)
    rows = np.repeat(np.arange(len(texts)), shingles.lengths)
    pairs = np.unique(np.stack([rows, shingles.values.view(np.int64)], 1), axis=0)
    _, cols = np.unique(pairs[:, 1], return_inverse=True)
    x = sparse.csr_matrix(
        (np.ones(len(pairs), np.int32), (pairs[:, 0], cols)), shape=(len(texts), cols.max() + 1)
    )
    size = np.asarray(x.sum(axis=1)).ravel()
    xt = x.T.tocsr()
    found = []
    for start in range(0, len(texts), block):
        inter = (x[start : start + block] @ xt).tocoo()
        i, j, c = inter.row + start, inter.col, inter.data
        keep = (i < j) & (c >= threshold * (size[i] + size[j] - c))
        found.append(np.stack([i[keep], j[keep]], 1))
    return np.concatenate(found)


def drop_set(n: int, pairs: np.ndarray) -> set[int]:
    """Members of connected components except the smallest index of each."""
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = sparse.csgraph.connected_components(graph, directed=False)
    first = np.full(label.max() + 1, n)
    np.minimum.at(first, label, np.arange(n))
    return set(np.flatnonzero(first[label] != np.arange(n)).tolist())


def cluster_pairs(rep: dict[int, int]) -> set[tuple[int, int]]:
    """Every pair of documents in one cluster, from each dropped document's representative."""
    clusters: dict[int, list[int]] = {}
    for doc, head in rep.items():
        clusters.setdefault(head, [head]).append(doc)
    out = set()
    for members in clusters.values():
        members.sort()
        out.update((a, b) for k, a in enumerate(members) for b in members[k + 1 :])
    return out


def linked_pairs(texts: list[str], op: MinHashDedup) -> set[tuple[int, int]]:
    """The pairs the operator links before clustering (LSH candidates that pass verification),
    recomputed with its own helpers; ``_id`` equals position here, as in ``run_operator``."""
    p = op.params
    shingles = ngram_hashes(word_hashes(pa.array(texts)), p.ngram)
    has = np.flatnonzero(shingles.lengths > 0)
    sig = signatures(
        Ragged(shingles.values, np.concatenate([[0], np.cumsum(shingles.lengths[has])])),
        p.num_perm,
        p.seed,
    )
    u, v = similar_pairs(sig, *op.lsh_params(), p.threshold)
    return set(zip(has[u].tolist(), has[v].tolist(), strict=True))


def run_operator(texts: list[str], batch: int, op: MinHashDedup) -> tuple[dict[int, int], dict]:
    """The global protocol over ``texts`` in batches (summarize each, merge, finalize, then
    apply); each dropped row's representative, and timings."""
    table = pa.table({ID: pa.array(range(len(texts)), pa.int64()), "text": texts})
    batches = [table.slice(i, batch) for i in range(0, len(texts), batch)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    state = functools.reduce(op.merge, (op.summarize(b) for b in batches))
    t1 = time.perf_counter()
    op.finalize(state)
    t2 = time.perf_counter()
    dropped = [op.run_batch(b).dropped for b in batches]
    cpu, t3 = time.process_time() - cpu0, time.perf_counter()
    rep = {}
    for d in dropped:
        if d is not None:
            for i, reason in zip(d[ID].to_pylist(), d[REASON].to_pylist(), strict=True):
                rep[i] = int(reason.split("_id ")[1].split(" ")[0])
    return rep, {
        "summarize": t1 - t0,
        "finalize": t2 - t1,
        "run_batch": t3 - t2,
        "total": t3 - t0,
        "cpu": cpu,
    }


def prf(predicted: set, truth: set) -> tuple[float, float]:
    hit = len(predicted & truth)
    return hit / max(len(predicted), 1), hit / max(len(truth), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, default=2500, help="documents that get variants")
    ap.add_argument("--num-perm", type=int, default=256)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    real = load_corpus()
    variants, meta = plant(real, args.sources, args.ngram, rng)
    texts = real + variants
    order = rng.permutation(len(texts))  # new _id = position after shuffling
    texts = [texts[i] for i in order]
    new_id = np.empty(len(order), np.int64)
    new_id[order] = np.arange(len(order))

    t0 = time.perf_counter()
    truth = truth_pairs(texts, args.ngram, args.threshold)
    truth_s = time.perf_counter() - t0
    op = MinHashDedup(num_perm=args.num_perm, threshold=args.threshold, ngram=args.ngram)
    rep, t = run_operator(texts, args.batch, op)

    true_pairs = set(map(tuple, truth.tolist()))
    linked = linked_pairs(texts, op)
    clusters = cluster_pairs(rep)
    assert drop_set(len(texts), np.array(sorted(linked))) == set(rep), "replica != operator"
    oracle = cluster_pairs(
        {d: min(c) for c in _components(len(texts), truth) for d in c if d != min(c)}
    )
    rows = [
        (
            "pairs: linked precision, same-cluster recall",
            (prf(linked, true_pairs)[0], prf(clusters, true_pairs)[1]),
        ),
        ("dropped documents", prf(set(rep), drop_set(len(texts), truth))),
        ("same-cluster pairs", prf(clusters, true_pairs)),
        ("same-cluster pairs, exact-Jaccard clustering", prf(oracle, true_pairs)),
    ]
    print(f"docs: {len(texts)} ({len(real)} real + {len(variants)} planted variants)")
    print(f"num_perm={args.num_perm} (bands, rows)={op.lsh_params()} threshold={args.threshold}")
    print(f"truth: {len(true_pairs)} pairs with Jaccard >= {args.threshold} ({truth_s:.1f} s)")
    for name, (p, r) in rows:
        print(f"{name:46s} precision {p:.4f}  recall {r:.4f}")
    print(f"dropped: {len(rep)}; truth drops {len(drop_set(len(texts), truth))}")
    print("planted (variant, source) pairs in one cluster, by exact Jaccard:")
    for lo, hi in ((0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01)):
        sel = [
            tuple(sorted((int(new_id[len(real) + k]), int(new_id[src]))))
            for k, (src, j) in enumerate(meta)
            if lo <= j < hi and j >= args.threshold
        ]
        found = sum(p in clusters for p in sel)
        print(f"  [{lo:.2f}, {min(hi, 1.0):.2f}]: {found}/{len(sel)}")
    print(
        f"speed: {len(texts) / t['total']:,.0f} docs/s wall ({len(texts) / t['cpu']:,.0f} per "
        f"CPU-second); summarize+merge {t['summarize']:.2f} s, finalize {t['finalize']:.2f} s, "
        f"run_batch {t['run_batch']:.2f} s; signatures {len(texts) * args.num_perm * 2 / 2**20:.1f} MiB"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f}")


def _components(n: int, pairs: np.ndarray) -> list[list[int]]:
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = sparse.csgraph.connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for i in np.flatnonzero(np.bincount(label)[label] > 1):
        groups.setdefault(int(label[i]), []).append(int(i))
    return list(groups.values())


if __name__ == "__main__":
    sys.exit(main())
