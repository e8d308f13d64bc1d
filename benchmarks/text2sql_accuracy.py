"""Execution accuracy of the embedded 0.5B and 1.5B models on questions synthesized from a
held-back database.

The held-back database is ``baseball`` (Lahman 2018-2019, built by
scripts/build_text2sql_dbs.py): no prompt, test or tuning of the text2sql operators used it.
1. Synthesis (1.5B): the text2sql-synth pipeline up to and including the correspondence judge
   (SQL by difficulty that parses, runs and returns rows, a question for it, judged to match):
   each kept row is a (question, gold SQL) pair.
2. Evaluation: the text2sql-eval pipeline with each model answering from the linked schema;
   execution accuracy overall and by Spider difficulty of the gold query.

Usage: .venv/bin/python benchmarks/text2sql_accuracy.py [--n 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from collections import defaultdict
from pathlib import Path

import yaml

from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".bench" / "text2sql-accuracy"
DATA = REPO / "tests" / "data" / "text2sql"
PIPELINES = REPO / "prepflow" / "pipelines"
MODELS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")


def synthesize(n: int) -> Path:
    spec = yaml.safe_load((PIPELINES / "text2sql-synth.yaml").read_text())
    spec["serving"] = {"backend": "llamacpp", "model": MODELS[1]}
    names = [s["name"] for s in spec["steps"]]
    spec["steps"] = spec["steps"][: names.index("correspondence") + 1]
    spec["steps"][0]["params"]["n"] = n
    src = WORK / "db.jsonl"
    src.write_text(json.dumps({"database": str(DATA), "db_id": "baseball"}) + "\n")
    out = WORK / "questions.jsonl"
    run_pipeline(
        load_yaml(yaml.safe_dump(spec)),
        input=src,
        output=out,
        run_dir=WORK / "synth",
        progress=False,
        max_failure_rate=1.0,
    )
    pairs = WORK / "pairs.jsonl"
    with pairs.open("w") as f:
        for line in out.read_text().splitlines():
            r = json.loads(line)
            f.write(
                json.dumps(
                    {
                        "database": str(DATA),
                        "db_id": "baseball",
                        "question": r["question"],
                        "gold_sql": r["sql"],
                        "question_style": r["question_style"],
                    }
                )
                + "\n"
            )
    return pairs


def evaluate(pairs: Path, model: str) -> dict:
    spec = yaml.safe_load((PIPELINES / "text2sql-eval.yaml").read_text())
    spec["serving"] = {"backend": "llamacpp", "model": model}
    out = WORK / f"eval-{model}.jsonl"
    start = time.perf_counter()
    run_pipeline(
        load_yaml(yaml.safe_dump(spec)),
        input=pairs,
        output=out,
        run_dir=WORK / f"eval-{model}",
        progress=False,
        max_failure_rate=1.0,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by = defaultdict(lambda: [0, 0])
    reasons: dict[str, int] = defaultdict(int)
    for r in rows:
        by[r["difficulty"]][0] += r["correct"]
        by[r["difficulty"]][1] += 1
        if not r["correct"]:
            reasons[r["reason"]] += 1
    correct = sum(r["correct"] for r in rows)
    return {
        "questions": len(rows),
        "correct": correct,
        "execution_accuracy": round(correct / len(rows), 3) if rows else None,
        "by_difficulty": {d: f"{c}/{t}" for d, (c, t) in sorted(by.items())},
        "misses": dict(reasons),
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }


def main(n: int) -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    start = time.perf_counter()
    pairs = synthesize(n)
    result = {
        "held_back_database": "baseball",
        "synthesis_minutes": round((time.perf_counter() - start) / 60, 2),
        "pairs": len(pairs.read_text().splitlines()),
    }
    for model in MODELS:
        result[model] = evaluate(pairs, model)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores (shared)"
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="queries per difficulty to synthesize")
    print(json.dumps(main(parser.parse_args().n), indent=2))
