"""A scaling model of the distributed MinHash dedup, from the stage times measured by
``minhash_1m.py`` on 1 and 2 CPUs (its results.json), projected to a billion documents on a
stated cluster.

Each stage's measured wall time on 1 CPU gives its cost per document (CPU-seconds); the 2-CPU
run gives its parallel efficiency on this machine. The model:

* the parallel stages (summarize, bucket, pairs, verify, score, apply) take
  ``cost_per_doc * docs / (cpus * efficiency)``, efficiency taken from the 1 -> 2 CPU step
  (capped at 1);
* the component merge ends in one task over every row that has a duplicate: its 1-CPU time
  scales with that number (the planted duplicate rate is kept);
* the shuffle moves ``bands * 24`` bytes per document (a band hash, its index, a row key) and the
  joins about ``2 * 512`` bytes per candidate pair; at a stated per-node bandwidth it is added
  as a floor under the bucket and pairs stages;
* ingest (the driver cuts the input into shards, one process) and writing the output file (one
  process) are serial: their measured rates are projected as they are.

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


def stages(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) s", line.split(";", 1)[1])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=float, default=1e9)
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--cpus-per-node", type=int, default=32)
    ap.add_argument("--node-gbit", type=float, default=25.0, help="network per node, Gbit/s")
    ap.add_argument("--bands", type=int, default=28)
    args = ap.parse_args()
    results = {
        r["tool"] + str(r.get("cpus")): r for r in json.loads((WORK / "results.json").read_text())
    }
    one, two = results["prepflow ray1"], results["prepflow ray2"]
    n = 1_000_000
    s1, s2 = stages(one["stages"]), stages(two["stages"])
    cpus = args.nodes * args.cpus_per_node
    scale = args.docs / n
    rows = []
    total = 0.0
    for name in s1:
        cost = s1[name] / n
        eff = min(1.0, s1[name] / (2 * s2[name])) if s2.get(name) else 1.0
        # components: the last merge is one task over the rows that have a duplicate
        t = cost * args.docs / (cpus * max(eff, 0.05)) if name in PARALLEL else s1[name] * scale
        rows.append((name, s1[name], s2.get(name, 0.0), cost * 1e6, eff, t))
        total += t
    shuffle_bytes = args.docs * args.bands * 24
    shuffle_s = shuffle_bytes / (args.nodes * args.node_gbit / 8 * 1e9)
    serial_1 = one["wall_s"] - sum(s1.values())  # start-up, ingest and output in the driver
    serial = serial_1 * scale
    print(
        f"measured on 1M documents: ray 1 CPU {one['wall_s']:.0f} s, 2 CPUs {two['wall_s']:.0f} s"
    )
    print("| stage | 1 CPU (s) | 2 CPUs (s) | CPU-us per doc | efficiency 1->2 | 1B docs (s) |")
    print("|---|---|---|---|---|---|")
    for name, a, b, us, eff, t in rows:
        print(f"| {name} | {a:.1f} | {b:.1f} | {us:.1f} | {eff:.2f} | {t:,.0f} |")
    print(
        f"| shuffle floor ({args.bands * 24} B/doc at {args.node_gbit:g} Gbit/s/node) | | | | | "
        f"{shuffle_s:,.0f} |"
    )
    print(
        f"| driver: start-up, ingest, output (serial, measured {serial_1:.0f} s per 1M) | | | | | "
        f"{serial:,.0f} |"
    )
    print(
        f"\ndistributed stages: {total / 3600:.2f} h on {args.nodes} x {args.cpus_per_node} CPUs; "
        f"with the serial driver work as measured: {(total + serial) / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
