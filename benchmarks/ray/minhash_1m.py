"""Global MinHash dedup on a million documents: prepflow's local executor, prepflow on Ray (1 and
2 CPUs) and Data-Juicer's Ray MinHash deduplicator, against exact Jaccard truth.

Input (``build``): ``--docs`` documents (default 1,000,000) of 40-160 words drawn from the
vocabulary of ../shared/data/corpora (English words, Zipf-weighted by their frequency there).
``--families`` of them (default 50,000) get 1-3 planted variants each: a copy with each word
replaced, independently, with probability ``r`` drawn uniformly from [0, 0.06] (exact word
5-gram Jaccard with the source from 1.0 down to about 0.55, so many pairs sit near 0.8). The
documents are shuffled before ``_id``s are given; a ``doc`` column keeps the ``_id`` for the
other tools. Written as Parquet.

Truth is exact: within each family every pair's word 5-gram Jaccard (prepflow's shingling,
computed on the texts, no MinHash); pairs >= 0.8 are duplicates, and a perfect dedup drops every
member of a connected component of them except its smallest ``_id``. Documents of different
families are independent random texts; every cross-family pair a tool links is checked with
exact Jaccard too (reported).

Each tool runs as a subprocess (wall time from start to exit; the process tree's resident memory
sampled every 50 ms: the driver's peak and the largest single worker's peak):

* prepflow: ``prepflow run`` of a one-step pipeline (MinHashDedup, 256 permutations, 28 bands
  of 9 rows, threshold 0.8, verification on), ``--executor local`` and ``--executor ray`` with
  ``--workers`` 1 and 2 (Ray: a local cluster of that many CPUs). The Ray runs log the time of
  each stage of the distributed dedup (``stage_seconds``).
* Data-Juicer: ``RayBTSMinhashDeduplicator`` (space tokenization, window 5, 256 permutations,
  28 x 9, threshold 0.8) in its own virtualenv (``.bench/dj-venv``: ``pip install py-data-juicer
  'ray[data]'``), on a local Ray cluster of 2 CPUs, through ``benchmarks/ray/dj_minhash.py``.

    .venv/bin/python benchmarks/ray/minhash_1m.py [--docs 1000000] [--only local,ray2,dj]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "data" / "corpora"
WORK = REPO / ".bench" / "ray_minhash"
DJ_PY = REPO / ".bench" / "dj-venv" / "bin" / "python"
THRESHOLD = 0.8
PIPELINE = """name: minhash-1m
steps:
  - op: MinHashDedup
    name: minhash_dedup
    params: {threshold: 0.8, num_perm: 256, bands: 28, rows: 9}
"""
RUNNER = """
import json, logging, sys, time
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
stages = {}
class Keep(logging.Handler):
    def emit(self, record):
        if "distributed dedup" in record.getMessage():
            stages["line"] = record.getMessage()
logging.getLogger("prepflow").addHandler(Keep())
logging.getLogger("prepflow").setLevel(logging.INFO)
spec, src, out, run_dir, executor, workers = sys.argv[1:7]
t0 = time.perf_counter()
rep = run_pipeline(load_yaml(spec), input=src, output=out, run_dir=run_dir, fresh=True,
                   progress=False, executor=executor, workers=int(workers))
print(json.dumps({"seconds": time.perf_counter() - t0, "stages": stages.get("line"),
                  "status": rep.status}))
"""


# ---- input -------------------------------------------------------------------------------------


def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    counts: collections.Counter[str] = collections.Counter()
    for name in ("python_docs_en_paragraphs", "fortunes_en", "kjv_bible_chapters_en"):
        with open(CORPORA / f"{name}.jsonl", encoding="utf-8") as f:
            for line in f:
                counts.update(re.findall(r"[A-Za-z]+", json.loads(line)["text"]))
    words, freq = zip(*counts.most_common(), strict=True)
    p = np.asarray(freq, np.float64)
    return np.asarray(words, object), p / p.sum()


def build(n_docs: int, n_families: int, seed: int = 0) -> Path:
    path = WORK / f"input-{n_docs}-{n_families}-{seed}.parquet"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    words, p = vocabulary()
    n_variants = rng.integers(1, 4, n_families)
    n_base = n_docs - int(n_variants.sum())
    lengths = rng.integers(40, 161, n_base)
    flat = rng.choice(len(words), size=int(lengths.sum()), p=p).astype(np.int32)
    ends = np.cumsum(lengths)
    docs = [flat[e - n : e] for e, n in zip(ends, lengths, strict=True)]
    family = np.full(n_docs, -1, np.int64)
    family[:n_families] = np.arange(n_families)  # the first bases are the sources
    rate = np.zeros(n_docs)
    for f in range(n_families):
        for _ in range(int(n_variants[f])):
            r = rng.uniform(0.0, 0.06)
            src = docs[f]
            swap = rng.random(len(src)) < r
            variant = src.copy()
            variant[swap] = rng.choice(len(words), size=int(swap.sum()), p=p)
            family[len(docs)] = f
            rate[len(docs)] = r
            docs.append(variant)
    order = rng.permutation(n_docs)
    texts = [" ".join(words[docs[i]]) for i in order]
    table = pa.table(
        {
            "text": texts,
            "doc": np.arange(n_docs, dtype=np.int64),
            "family": family[order],
            "rate": rate[order],
        }
    )
    pq.write_table(table, path, row_group_size=50_000)
    return path


# ---- truth -------------------------------------------------------------------------------------


def shingle_sets(texts: list[str]) -> list[set[int]]:
    from prepflow.operators.common.ngrams import ngram_hashes, word_hashes

    sh = ngram_hashes(word_hashes(pa.array(texts)), 5)
    off = np.concatenate([[0], np.cumsum(sh.lengths)])
    return [set(sh.values[off[i] : off[i + 1]].tolist()) for i in range(len(texts))]


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / max(1, len(a | b))


def truth(path: Path) -> tuple[set[int], dict[int, int]]:
    """The ``_id``s a perfect dedup drops (all but the smallest of each component of the
    Jaccard >= 0.8 graph), and each family document's component (its smallest ``_id``)."""
    t = pq.read_table(path, columns=["text", "doc", "family"])
    fam = t["family"].to_numpy()
    idx = np.flatnonzero(fam >= 0)
    texts = t["text"].take(pa.array(idx)).to_pylist()
    sets = dict(zip(idx.tolist(), shingle_sets(texts), strict=True))
    by_family: dict[int, list[int]] = collections.defaultdict(list)
    for i in idx.tolist():
        by_family[int(fam[i])].append(i)
    pairs, parent = {}, {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for members in by_family.values():
        members.sort()
        for a_i, a in enumerate(members):
            for b in members[a_i + 1 :]:
                j = jaccard(sets[a], sets[b])
                pairs[(a, b)] = j
                if j >= THRESHOLD:
                    ra, rb = root(a), root(b)
                    parent[max(ra, rb)] = min(ra, rb)
    component = {x: root(x) for x in idx.tolist()}
    return {x for x, r in component.items() if r != x}, component


def score(
    predicted: dict[int, int], path: Path, dropped: set[int], component: dict[int, int]
) -> dict[str, float]:
    """Dropped-document precision/recall against the truth, two ways: exact (the smallest
    ``_id`` of each component is the one kept) and whichever-kept (a dropped document is right
    while its component keeps at least one member: a tool may keep another representative);
    and how many linked pairs cross families (each checked with exact Jaccard)."""
    pred = set(predicted)
    tp = len(pred & dropped)
    size = collections.Counter(component.values())
    hit = collections.Counter(component[d] for d in pred if d in component)
    tp_any = sum(min(c, size[r] - 1) for r, c in hit.items())
    fam = pq.read_table(path, columns=["family"])["family"].to_numpy()
    cross = [(d, r) for d, r in predicted.items() if r >= 0 and (fam[d] < 0 or fam[d] != fam[r])]
    cross_dup = 0
    if cross:
        texts = pq.read_table(path, columns=["text"])["text"]
        for d, r in cross[:2000]:
            a, b = shingle_sets([texts[d].as_py(), texts[r].as_py()])
            cross_dup += jaccard(a, b) >= THRESHOLD
    return {
        "dropped": len(pred),
        "truth_dropped": len(dropped),
        "precision": tp / max(1, len(pred)),
        "recall": tp / max(1, len(dropped)),
        "precision_any_kept": tp_any / max(1, len(pred)),
        "recall_any_kept": tp_any / max(1, len(dropped)),
        "cross_family_links": len(cross),
        "cross_family_links_at_0.8": cross_dup,
    }


# ---- running the tools -------------------------------------------------------------------------


class Sampler:
    """Peak resident memory of a process tree: the root's and the largest other process's."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.driver = self.worker = 0
        self.worker_name = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.driver = max(self.driver, self.root.memory_info().rss)
                for child in self.root.children(recursive=True):
                    try:
                        rss = child.memory_info().rss
                        if rss > self.worker:
                            self.worker, self.worker_name = rss, " ".join(child.cmdline()[:1])
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self._stop.wait(0.05)

    def stop(self) -> dict[str, object]:
        self._stop.set()
        self._thread.join()
        return {
            "driver_peak_mib": round(self.driver / 2**20),
            "worker_peak_mib": round(self.worker / 2**20),
            "worker": self.worker_name[:60],
        }


def run_prepflow(src: Path, executor: str, workers: int) -> tuple[dict[str, object], dict]:
    name = f"{executor}{workers}"
    spec = WORK / "minhash-1m.yaml"
    spec.write_text(PIPELINE)
    run_dir, out = WORK / f"run-{name}", WORK / f"out-{name}.parquet"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [sys.executable, "-c", RUNNER, str(spec), str(src), str(out), str(run_dir)]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, executor, str(workers)], stdout=subprocess.PIPE, env=env)
    sampler = Sampler(proc.pid)
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    mem = sampler.stop()
    if proc.returncode:
        raise SystemExit(f"{name} failed ({proc.returncode})")
    info = json.loads(stdout.decode().strip().splitlines()[-1])
    row = {"tool": f"prepflow {executor}", "cpus": workers, "wall_s": wall, **mem, **info}
    return row, prepflow_predictions(run_dir)


def prepflow_predictions(run_dir: Path) -> dict[int, int]:
    """Dropped ``_id`` -> the kept ``_id`` its reason names."""
    predicted = {}
    for f in sorted((run_dir / "dropped" / "01-minhash_dedup").glob("*.parquet")):
        t = pq.read_table(f, columns=["_id", "_reason"])
        for i, reason in zip(t["_id"].to_pylist(), t["_reason"].to_pylist(), strict=True):
            predicted[i] = int(re.search(r"_id (\d+)", reason).group(1))
    return predicted


def dj_predictions(src: Path) -> dict[int, int]:
    """Every ``doc`` Data-Juicer did not keep (it does not name the kept one: -1)."""
    kept = set(np.load(WORK / "dj-kept.npy").tolist())
    n = pq.ParquetFile(src).metadata.num_rows
    return {i: -1 for i in range(n) if i not in kept}


def run_dj(src: Path, cpus: int) -> tuple[dict[str, object], dict]:
    if not DJ_PY.exists():
        return {"tool": "data-juicer", "error": f"{DJ_PY} missing"}, {}
    out = WORK / "dj-kept.npy"
    cmd = [str(DJ_PY), str(Path(__file__).with_name("dj_minhash.py")), str(src), str(out)]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, str(cpus)], stdout=subprocess.PIPE, env=env, cwd=WORK)
    sampler = Sampler(proc.pid)
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    mem = sampler.stop()
    if proc.returncode:
        return {"tool": "data-juicer", "error": f"exit {proc.returncode}"}, {}
    info = json.loads(stdout.decode().strip().splitlines()[-1])
    row = {"tool": "data-juicer ray", "cpus": cpus, "wall_s": wall, **mem, **info}
    return row, dj_predictions(src)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--families", type=int, default=50_000)
    ap.add_argument("--only", default="local2,ray1,ray2,dj")
    ap.add_argument("--rescore", action="store_true", help="score the outputs already there")
    args = ap.parse_args()
    t0 = time.perf_counter()
    src = build(args.docs, args.families)
    print(f"input {src} ({time.perf_counter() - t0:.0f} s)", flush=True)
    dropped, component = truth(src)
    print(f"truth: {len(dropped)} to drop of {len(component)} family documents", flush=True)
    saved = WORK / "results.json"  # by tool and CPUs; a later run replaces what it reran
    merged = {}
    if saved.exists():
        merged = {f"{r['tool']}{r.get('cpus')}": r for r in json.loads(saved.read_text())}
    results, predictions = [], {}
    for name in args.only.split(","):
        executor, workers = name.rstrip("12"), int(name[-1]) if name[-1].isdigit() else 2
        key = "data-juicer ray2" if name == "dj" else f"prepflow {executor}{workers}"
        if args.rescore:
            row = merged[key]
            pred = (
                dj_predictions(src)
                if name == "dj"
                else prepflow_predictions(WORK / f"run-{executor}{workers}")
            )
        elif name == "dj":
            row, pred = run_dj(src, 2)
        else:
            row, pred = run_prepflow(src, executor, workers)
        if pred or "error" not in row:
            row |= score(pred, src, dropped, component)
            row["docs_per_s"] = round(args.docs / row["wall_s"])
        predictions[name] = set(pred)
        results.append(row)
        print(json.dumps(row), flush=True)
    names = list(predictions)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            inter = len(predictions[a] & predictions[b])
            union = len(predictions[a] | predictions[b])
            print(
                f"agreement {a} / {b}: dropped sets {inter:,} in common of {union:,} "
                f"(Jaccard {inter / max(1, union):.4f})",
                flush=True,
            )
    merged |= {f"{r['tool']}{r.get('cpus')}": r for r in results}
    saved.write_text(json.dumps(list(merged.values()), indent=2))


if __name__ == "__main__":
    main()
