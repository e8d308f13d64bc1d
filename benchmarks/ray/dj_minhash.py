"""Data-Juicer's Ray MinHash deduplicator on a Parquet input (run inside .bench/dj-venv by
minhash_1m.py): writes the ``doc`` ids it keeps to a .npy file and prints its timings as JSON.

    .bench/dj-venv/bin/python benchmarks/ray/dj_minhash.py INPUT.parquet KEPT.npy CPUS
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time

import numpy as np
import ray


def main() -> None:
    src, out, cpus = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.perf_counter()
    work_dir = tempfile.mkdtemp(prefix="dj-", dir=".")
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    from data_juicer.ops.deduplicator.ray_bts_minhash_deduplicator import (
        RayBTSMinhashDeduplicator,
    )

    op = RayBTSMinhashDeduplicator(
        tokenization="space",
        window_size=5,
        lowercase=True,
        num_permutations=256,
        jaccard_threshold=0.8,
        num_bands=28,
        num_rows_per_band=9,
        text_key="text",
        work_dir=work_dir,  # its intermediate files: a fresh directory, removed after
    )
    started = time.perf_counter()
    ds = ray.data.read_parquet(src).select_columns(["text", "doc"])
    kept = op.run(ds).select_columns(["doc"]).to_arrow_refs()
    docs = np.concatenate([t["doc"].to_numpy() for t in ray.get(kept)])
    done = time.perf_counter()
    np.save(out, np.sort(docs))
    unique = len(np.unique(docs))
    print(json.dumps({"dedup_s": done - started, "startup_s": started - t0, "kept": unique}))
    ray.shutdown()
    shutil.rmtree(work_dir)


if __name__ == "__main__":
    main()
