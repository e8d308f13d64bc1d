"""The embedded coder models on code: HumanEval pass@1 and code-sft-synth's verified triples.

1. `prepflow eval humaneval --model M` for Qwen2.5-Coder 0.5B and 1.5B Instruct (Q4_K_M GGUF,
   llama.cpp on CPU, the catalog's embedded models; `prepflow models pull NAME` first), greedy
   decoding, 768 tokens at most, on all 164 problems or a random subset (`--limit N`, drawn
   with `--subset-seed`, the task ids listed in the report). The prompt: one user message,
   "Complete the following Python function. Reply with the complete function, including the
   imports it needs, in one ```python block." and the problem's prompt in a fence (see
   prepflow/evals/humaneval.py). Each program runs in the sandbox with the problem's tests.
2. `prepflow run code-sft-synth` on examples/code_seeds.jsonl with the 1.5B model: verified
   (instruction, solution, tests) triples per minute of wall time, every step's counts.

Usage: .venv/bin/python benchmarks/code_models.py [--limit 40] [--subset-seed 0] [--only humaneval|sft]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".bench" / "code_models"
PREPFLOW = str(REPO / ".venv" / "bin" / "prepflow")
MODELS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
#: reported by the Qwen2.5-Coder technical report (Hui et al. 2024), bf16 weights
PUBLISHED = {"qwen2.5-coder-0.5b-instruct": 0.616, "qwen2.5-coder-1.5b-instruct": 0.707}


def humaneval(model: str, limit: int | None, seed: int) -> dict:
    out = WORK / f"humaneval-{model}.json"
    cmd = [PREPFLOW, "eval", "humaneval", "--model", model, "-o", str(out)]
    if limit:
        cmd += ["--limit", str(limit), "--subset-seed", str(seed)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    report = json.loads(out.read_text())
    tokens = sum(s["completion_tokens"] for p in report["problems"] for s in p["samples"])
    return {
        "pass@1": report["pass_at_k"]["pass@1"],
        "problems": len(report["problems"]),
        "wall_s": wall,
        "generate_s": report["seconds"]["generate"],
        "execute_s": report["seconds"]["execute"],
        "tokens_per_s": tokens / report["seconds"]["generate"],
    }


def sft(model: str) -> dict:
    out, run = WORK / "code_sft.jsonl", WORK / "code_sft_run"
    cmd = [PREPFLOW, "run", "code-sft-synth", "-i", str(REPO / "examples" / "code_seeds.jsonl"),
           "-o", str(out), "--run-dir", str(run), "--fresh", "--model", model,
           "--max-failure-rate", "1"]  # a small model's unusable answers are failure records  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    triples = sum(1 for _ in out.open()) if out.exists() else 0
    report = json.loads((run / "report.json").read_text())
    steps = {
        s["name"]: (s["rows_in"], s["kept"], s["dropped"], s["failed"]) for s in report["steps"]
    }
    return {"triples": triples, "wall_s": wall, "per_min": triples / (wall / 60), "steps": steps,
            "llm": {k: report["llm"].get(k) for k in ("requests", "completion_tokens")}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--only", choices=["humaneval", "sft"])
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "humaneval"):
        for model in MODELS:
            r = humaneval(model, args.limit, args.subset_seed)
            print(f"{model}: pass@1 {r['pass@1']:.3f} on {r['problems']} problems "
                  f"(published {PUBLISHED[model]:.3f}); {r['wall_s']:.0f} s, "
                  f"{r['tokens_per_s']:.1f} completion tok/s, execution {r['execute_s']:.1f} s", flush=True)  # fmt: skip
    if args.only in (None, "sft"):
        r = sft(MODELS[1])
        print(f"code-sft-synth, {MODELS[1]}: {r['triples']} verified triples in {r['wall_s']:.0f} s "
              f"= {r['per_min']:.2f}/min; steps (in, kept, dropped, failed): {r['steps']}; {r['llm']}")  # fmt: skip


if __name__ == "__main__":
    main()
