"""CPU cost of each stage of the distributed MinHash dedup, measured in one process on one CPU
(RAYON_NUM_THREADS=1), over the input of ``minhash_1m.py`` cut into 50,000-row shards: the stage
functions the Ray executor runs in its tasks (prepflow.engine.executors.ray_dedup), one after the
other, with ``time.process_time`` around each. CPU-seconds do not depend on what else runs on the
machine, unlike wall time on a shared one; ``scaling_model.py`` builds on them.

    RAYON_NUM_THREADS=1 .venv/bin/python benchmarks/ray/stage_costs.py [--parts 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prepflow.core.operator import ID
from prepflow.engine.context import WorkerContextSpec
from prepflow.engine.executors import ray_dedup as dd
from prepflow.engine.executors.worker import worker_ops

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".bench" / "ray_minhash"
SHARD_ROWS = 50_000


def shards(src: Path) -> list[str]:
    out = WORK / "shards"
    out.mkdir(exist_ok=True)
    paths = []
    f = pq.ParquetFile(src)
    for k, batch in enumerate(f.iter_batches(SHARD_ROWS, columns=["text", "doc"])):
        path = out / f"shard-{k:05d}.parquet"
        if not path.exists():
            table = pa.table({"text": batch["text"], ID: batch["doc"]})
            pq.write_table(table, path)
        paths.append(str(path))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default=str(WORK / "input-1000000-50000-0.parquet"))
    ap.add_argument("--parts", type=int, default=10)
    args = ap.parse_args()
    assert os.environ.get("RAYON_NUM_THREADS") == "1", "run with RAYON_NUM_THREADS=1"
    paths = shards(Path(args.input))
    params = {"threshold": 0.8, "num_perm": 256, "bands": 28, "rows": 9}
    spec = ("bench", "prepflow.operators.text.dedup", "MinHashDedup", params, {},
            WorkerContextSpec(WORK / "scratch", 0))  # fmt: skip
    cpu: dict[str, float] = {}
    clock = [time.process_time()]

    def lap(name: str) -> None:
        now = time.process_time()
        cpu[name] = cpu.get(name, 0.0) + now - clock[0]
        clock[0] = now

    summaries = [dd.summarize(spec, p) for p in paths]
    lap("summarize")
    owners = dd.Owners([b[0] for _, b in summaries], min(args.parts, len(paths)))
    groups: list[list[dd.Summary]] = [[] for _ in range(owners.parts)]
    for i, (s, _) in enumerate(summaries):
        groups[int(owners.group_of_position(i))].append(s)
    buckets = [dd.bucket(spec, s, args.parts) for s, _ in summaries]
    lap("bucket")
    edges = [dd.pairs(*(b[p] for b in buckets)) for p in range(args.parts)]
    del buckets
    lap("pairs")

    def join(edge_list: list[dd.Edges], threshold: float | None) -> list:
        split = [dd.split_edges(owners, e) for e in edge_list]
        hop1 = [dd.attach(owners, len(split), *(s[g] for s in split), *groups[g])
                for g in range(owners.parts)]  # fmt: skip
        return [dd.score(spec, threshold, len(hop1), *(h[g] for h in hop1), *groups[g])
                for g in range(owners.parts)]  # fmt: skip

    verified = [(u, v) for u, v, _ in join(edges, 0.8)]
    lap("verify")
    forests = verified
    while len(forests) > 1:
        forests = [dd.components(spec, *forests[i : i + 4]) for i in range(0, len(forests), 4)]
    dropped, heads = dd.components(spec, forests[0])
    lap("components")
    scored = join([(dropped, heads)], None)
    lap("score")
    op = worker_ops([spec])[0]
    dropped = np.concatenate([s[0] for s in scored])
    order = np.argsort(dropped)
    verdict = [dropped[order]] + [np.concatenate([s[i] for s in scored])[order] for i in (1, 2)]
    for (summary, _), path in zip(summaries, paths, strict=True):
        op.install(summary[0], *verdict)
        op.run_batch(pq.read_table(path))
    lap("apply")
    n = sum(len(s[0][0]) for s in summaries)
    result = {
        "docs": n,
        "candidate_pairs": int(sum(len(e[0]) for e in edges)),
        "verified_pairs": int(sum(len(e[0]) for e in verified)),
        "dropped": len(dropped),
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_us_per_doc": {k: round(v / n * 1e6, 2) for k, v in cpu.items()},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "load": os.getloadavg(),
    }
    (WORK / "stage_costs.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
