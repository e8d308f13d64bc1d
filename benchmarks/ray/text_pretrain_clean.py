"""`text-pretrain-clean` on the Ray executor against the local executor, one run each.

Input: every document of the eight corpora in ../shared/data/corpora, concatenated (English and
Chinese: fortunes, KJV chapters, Jargon File, Python docs, Debian reference, zh fortunes, zh man
pages). Each side is ``prepflow run text-pretrain-clean --workers N`` in a subprocess with a
fresh run directory (``--executor local``, then ``--executor ray``, which starts and stops its
own local cluster of N CPUs); wall time covers start-up to exit, memory is the peak resident
size of the process tree's largest process and of the whole tree (sampled every 50 ms). The
outputs' digests (sorted lines) must match.

    .venv/bin/python benchmarks/ray/text_pretrain_clean.py [--workers 2] [--shard-rows N]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "data" / "corpora"
WORK = REPO / ".bench" / "ray_text_pretrain_clean"


def build_input() -> tuple[Path, int]:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "all_corpora.jsonl"
    lines = [
        line
        for f in sorted(CORPORA.glob("*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(lines)


def peak_memory(pid: int, stop: threading.Event, out: dict[str, int]) -> None:
    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            sizes = []
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    sizes.append(p.memory_info().rss)
            out["largest"] = max(out.get("largest", 0), max(sizes, default=0))
            out["tree"] = max(out.get("tree", 0), sum(sizes))
        except psutil.Error:
            pass
        stop.wait(0.05)


def run(executor: str, src: Path, workers: int, shard_rows: int | None) -> dict[str, object]:
    out, run_dir = WORK / f"out-{executor}.jsonl", WORK / f"run-{executor}"
    cmd = [
        sys.executable, "-m", "prepflow", "run", "text-pretrain-clean", "-i", str(src),
        "-o", str(out), "--run-dir", str(run_dir), "--fresh", "--no-progress",
        "--executor", executor, "--workers", str(workers),
    ]  # fmt: skip
    if shard_rows:
        cmd += ["--shard-rows", str(shard_rows)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE)
    stop, mem = threading.Event(), {}
    sampler = threading.Thread(target=peak_memory, args=(proc.pid, stop, mem), daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{executor} failed: {err.decode()[-2000:]}")
    lines = sorted(out.read_bytes().splitlines())
    report = json.loads((run_dir / "report.json").read_text())
    return {
        "executor": executor,
        "wall_s": round(wall, 1),
        "rows_out": len(lines),
        "digest": hashlib.sha256(b"\n".join(lines)).hexdigest()[:16],
        "shards": report.get("shards"),
        "largest_process_mib": mem.get("largest", 0) // 2**20,
        "tree_mib": mem.get("tree", 0) // 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-rows", type=int, default=None)
    args = ap.parse_args()
    src, n = build_input()
    print(f"input: {n:,} documents, {src.stat().st_size / 2**20:.1f} MiB; load {os.getloadavg()}")
    rows = []
    for executor in ("local", "ray"):
        row = run(executor, src, args.workers, args.shard_rows)
        row["docs_per_s"] = round(n / float(row["wall_s"]))  # type: ignore[arg-type]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"same output: {rows[0]['digest'] == rows[1]['digest']}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
