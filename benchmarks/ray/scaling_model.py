"""A scaling model of global MinHash dedup on the Ray executor, from costs measured on the
million-document input of ``minhash_1m.py``, projected to a billion documents on a stated
cluster.

Measured (this machine):

* each stage's CPU-seconds in one process on one CPU (``stage_costs.py``: contention-free);
* each stage's wall time in the Ray runs on 1 and 2 CPUs (``minhash_1m.py``'s results, from the
  executor's log) and the driver's serial work in them, from the run's journal: cluster start-up,
  ingest (the driver cuts the input into Parquet shards, one process) and writing the output
  file (one process).

Model, for ``--docs`` documents on ``--nodes`` x ``--cpus-per-node`` CPUs:

* parallel stages (summarize, bucket, pairs, verify, score, apply): CPU-seconds per document x
  documents / (CPUs x ``--efficiency``); the 1 -> 2 CPU speed-up measured here is shown but not
  used, because this machine is shared (load 4-6 on 2 cores) and cannot measure it;
* components: the last merge is one task over every row that has a duplicate; its CPU time
  scales with that number (the planted duplicate rate is kept);
* shuffle: ``bands x 24`` bytes per document (band index, band hash, row key) cross the network
  once; at ``--node-gbit`` per node this is a floor under the bucket and pairs stages;
* the driver's ingest and output are serial: their measured time per document, as is.

    .venv/bin/python benchmarks/ray/scaling_model.py [--nodes 32] [--cpus-per-node 32]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".bench" / "ray_minhash"
PARALLEL = ("summarize", "bucket", "pairs", "verify", "score", "apply")


def stage_walls(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) s", line.split(";", 1)[1])}


def driver_times(run_dir: Path) -> dict[str, float]:
    """Start-up, ingest and output seconds of a run, from its journal's timestamps."""
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    started = next(e["t"] for e in events if e["type"] == "run_started")
    inputs = [e["t"] for e in events if e["type"] == "shard" and e["step"] == 0]
    last_step = max(e["t"] for e in events if e["type"] == "shard" and e["step"] > 0)
    finished = next(e["t"] for e in events if e["type"] == "run_finished")
    return {
        "start-up": inputs[0] - started,
        "ingest": inputs[-1] - inputs[0],
        "output": finished - last_step,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=float, default=1e9)
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--cpus-per-node", type=int, default=32)
    ap.add_argument("--efficiency", type=float, default=0.8, help="assumed parallel efficiency")
    ap.add_argument("--node-gbit", type=float, default=25.0, help="network per node, Gbit/s")
    ap.add_argument("--bands", type=int, default=28)
    args = ap.parse_args()
    costs = json.loads((WORK / "stage_costs.json").read_text())
    results = {
        f"{r['tool']}{r.get('cpus')}": r for r in json.loads((WORK / "results.json").read_text())
    }
    one, two = results["prepflow ray1"], results["prepflow ray2"]
    w1, w2 = stage_walls(one["stages"]), stage_walls(two["stages"])
    n = costs["docs"]
    cpus = args.nodes * args.cpus_per_node
    scale = args.docs / n
    print(
        f"measured on {n:,} documents; projected: {args.docs:,.0f} documents on {args.nodes} "
        f"nodes x {args.cpus_per_node} CPUs, efficiency {args.efficiency}\n"
    )
    print(
        "| stage | CPU-s, 1 process | Ray wall, 1 CPU (s) | Ray wall, 2 CPUs (s) | "
        "CPU-us per doc | projected (s) |"
    )
    print("|---|---|---|---|---|---|")
    total = 0.0
    for name, cpu_s in costs["cpu_s"].items():
        # components: one task over the rows that have a duplicate
        parallel = name in PARALLEL
        t = cpu_s / n * args.docs / (cpus * args.efficiency) if parallel else cpu_s * scale
        total += t
        print(
            f"| {name} | {cpu_s:.1f} | {w1.get(name, 0):.1f} | {w2.get(name, 0):.1f} | "
            f"{cpu_s / n * 1e6:.1f} | {t:,.0f} |"
        )
    shuffle_s = args.docs * args.bands * 24 / (args.nodes * args.node_gbit / 8 * 1e9)
    print(
        f"| shuffle floor ({args.bands * 24} B/doc, {args.node_gbit:g} Gbit/s per node) | | | "
        f"| | {shuffle_s:,.0f} |"
    )
    serial = 0.0
    d1, d2 = driver_times(WORK / "run-ray1"), driver_times(WORK / "run-ray2")
    for name in ("ingest", "output"):
        t = d1[name] * scale
        serial += t
        print(
            f"| driver {name} (serial) | | {d1[name]:.1f} | {d2[name]:.1f} | "
            f"{d1[name] / n * 1e6:.1f} | {t:,.0f} |"
        )
    print(f"| driver start-up | | {d1['start-up']:.1f} | {d2['start-up']:.1f} | | |")
    print(f"\nRay runs, whole: 1 CPU {one['wall_s']:.0f} s, 2 CPUs {two['wall_s']:.0f} s")
    print(
        f"projected: distributed stages {total / 60:.1f} min; with the driver's serial ingest "
        f"and output {(total + serial) / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
