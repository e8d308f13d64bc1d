"""`text-pretrain-clean` at 1M and 4M rows: wall time and peak RSS of the process tree.

Input: documents of the short corpora (``text_pretrain_clean.SHORT_CORPORA``) drawn with a fixed
seed, each copy numbered so that deduplication keeps its work (a numbered copy is not an exact
duplicate; near-duplicate detection sees the shared text), one JSON line each. The run is the
CLI as users run it (the text-only install, 2 workers: worker processes from 50,000 rows);
peak RSS is the largest sum of resident memory over the process tree, sampled every 20 ms. Usage:

    .venv/bin/python benchmarks/text_clean_scale.py [--rows 1000000 4000000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from text_pretrain_clean import CORPORA, SHORT_CORPORA, count_lines, measure, prepflow_bin

WORK = Path(__file__).resolve().parents[1] / ".bench" / "text_clean_scale"


def build(rows: int, seed: int = 0) -> Path:
    path = WORK / f"input-{rows}.jsonl"
    if path.exists():
        return path
    docs = []
    for name in SHORT_CORPORA:
        with (CORPORA / name).open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in f]
    rng = random.Random(seed)
    WORK.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"text": f"{rng.choice(docs)}\n\n(copy {i})"}, ensure_ascii=False))
            f.write("\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    prepflow = prepflow_bin("text")
    print(
        f"{'rows':>10} {'input MiB':>10} {'wall s':>8} {'docs/s':>8} {'peak RSS MB':>12} {'kept':>9}"
    )
    for rows in args.rows:
        source = build(rows)
        out = WORK / "output.jsonl"
        cmd = [prepflow, "run", "text-pretrain-clean", "-i", str(source), "-o", str(out),
               "--run-dir", str(WORK / "run"), "--fresh", "--workers", str(args.workers)]  # fmt: skip
        wall, rss, rc = measure(cmd)
        if rc != 0:
            raise SystemExit(f"prepflow failed on {rows} rows (exit {rc})")
        size = source.stat().st_size / 2**20
        kept = count_lines([out])
        print(
            f"{rows:>10,} {size:>10.0f} {wall:>8.1f} {rows / wall:>8,.0f} {rss:>12.0f} {kept:>9,}"
        )


if __name__ == "__main__":
    main()
