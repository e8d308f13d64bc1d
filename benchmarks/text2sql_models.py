"""The embedded models on Text-to-SQL: text2sql-synth verified rows per minute (1.5B), and the
execution accuracy of the 0.5B and 1.5B on questions synthesized from a held-back database.

The held-back database is ``baseball`` (Lahman 2018-2019, built by
scripts/build_text2sql_dbs.py): no prompt, test or tuning of the text2sql operators used it.

1. Synthesis (Qwen2.5-Coder-1.5B, llama.cpp on CPU): the shipped text2sql-synth pipeline, run
   in two parts so that its middle product can be kept: part A up to the correspondence judge
   (SQL by difficulty that parses, runs within the limits and returns rows, its Spider
   difficulty, a question in some style, judged to match), part B the rest (chain of thought
   with execution voting checked against the gold result, schema prompt, chat rows). Verified
   rows per minute = part B's output rows / (A + B minutes).
2. Evaluation: part A's (question, gold SQL) pairs through text2sql-eval with each model
   answering from the linked schema: execution accuracy overall and by Spider difficulty.

Usage: .venv/bin/python benchmarks/text2sql_models.py [--n 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from collections import defaultdict
from pathlib import Path

import yaml

from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".bench" / "text2sql-models"
DATA = REPO / "tests" / "data" / "text2sql"
PIPELINES = REPO / "prepflow" / "pipelines"
SMALL, LARGE = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"


def run(spec: dict, src: Path, name: str, reuse: bool = False) -> tuple[Path, float, dict]:
    """Runs ``spec`` into WORK/<name>; with ``reuse``, a finished earlier run is read back."""
    out, report_file = WORK / f"{name}.jsonl", WORK / name / "report.json"
    if not (reuse and out.exists() and report_file.exists()):
        run_pipeline(
            load_yaml(yaml.safe_dump(spec)),
            input=src,
            output=out,
            run_dir=WORK / name,
            progress=False,
            max_failure_rate=1.0,
            fresh=True,
        )
    report = json.loads(report_file.read_text())
    funnel = {
        s["name"]: {
            "in": s["rows_in"],
            "out": s["rows_out"],
            "dropped": s["drop_reasons"],
            "failed": s["failed"],
        }
        for s in report["steps"]
    }
    return out, report["seconds"] / 60, funnel


def synthesize(n: int, reuse: bool) -> dict:
    spec = yaml.safe_load((PIPELINES / "text2sql-synth.yaml").read_text())
    spec["serving"] = {"backend": "llamacpp", "model": LARGE}
    spec["steps"][0]["params"]["n"] = n
    cut = [s["name"] for s in spec["steps"]].index("correspondence") + 1
    part_a = {**spec, "steps": spec["steps"][:cut]}
    part_b = {**spec, "name": "text2sql-synth-b", "steps": spec["steps"][cut:]}
    src = WORK / "db.jsonl"
    src.write_text(json.dumps({"database": str(DATA), "db_id": "baseball"}) + "\n")
    pairs, minutes_a, funnel_a = run(part_a, src, "synth-a", reuse)
    if not pairs.read_text().strip():
        raise SystemExit(f"no pair survived part A: {json.dumps(funnel_a, indent=1)}")
    verified, minutes_b, funnel_b = run(part_b, pairs, "synth-b")
    rows = len(verified.read_text().splitlines())
    return {
        "model": LARGE,
        "queries_asked": 4 * n,
        "pairs_after_judge": len(pairs.read_text().splitlines()),
        "verified_rows": rows,
        "minutes": round(minutes_a + minutes_b, 2),
        "verified_rows_per_minute": round(rows / (minutes_a + minutes_b), 3),
        "funnel": {**funnel_a, **funnel_b},
    }


def evaluate(model: str, reuse: bool) -> dict:
    pairs = WORK / "eval-input.jsonl"
    if not pairs.exists():
        with pairs.open("w") as f:
            for line in (WORK / "synth-a.jsonl").read_text().splitlines():
                r = json.loads(line)
                f.write(
                    json.dumps(
                        {
                            "database": str(DATA),
                            "db_id": "baseball",
                            "question": r["question"],
                            "gold_sql": r["sql"],
                        }
                    )
                    + "\n"
                )
    spec = yaml.safe_load((PIPELINES / "text2sql-eval.yaml").read_text())
    spec["serving"] = {"backend": "llamacpp", "model": model}
    out, minutes, _ = run(spec, pairs, f"eval-{model}", reuse)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: dict[str, int] = defaultdict(int)
    for r in rows:
        by[r["difficulty"]][0] += r["correct"]
        by[r["difficulty"]][1] += 1
        if not r["correct"]:
            misses[r["reason"]] += 1
    correct = sum(r["correct"] for r in rows)
    return {
        "questions": len(rows),
        "correct": correct,
        "execution_accuracy": round(correct / len(rows), 3) if rows else None,
        "by_difficulty": {d: f"{c}/{t}" for d, (c, t) in sorted(by.items())},
        "misses": dict(misses),
        "minutes": round(minutes, 2),
    }


def main(n: int, reuse: bool) -> dict:
    if not reuse:
        shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    result = {"held_back_database": "baseball", "synthesis": synthesize(n, reuse)}
    for model in (SMALL, LARGE):
        result[model] = evaluate(model, reuse)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores (shared)"
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2, help="queries per difficulty to synthesize")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="read back the finished parts of the last run (part A, evaluations); rerun the rest",
    )
    args = parser.parse_args()
    print(json.dumps(main(args.n, args.reuse), indent=2))
