"""Each embedded catalog model as the general LLM judge, on the labelled set of judge_set.py.

    .venv/bin/python benchmarks/judges.py [--models NAME ...] [--samples 2] [--limit N]

For each model one llama.cpp server is launched the way a pipeline launches it (prepflow's
``open_serving`` with ``backend: llamacpp``, default launch options, no response cache), and the
shipped :class:`~prepflow.operators.general.llm.PromptedEvaluator` runs through the operator API
(``setup`` + ``arun_batch``, as the engine does) over every item, once per sample, with the
item's ``criteria`` and ``generation: {seed: s}`` (s = 0, 1, ...; the temperature is the
server's default, 0.8 for llama.cpp, as in a pipeline that sets none).

Per model: accuracy and balanced accuracy of "score >= 3 means good" (over all samples), the
mean score of good and of bad items, the score histograms, failures (failure records: the
answer never parsed into a score on the scale after the re-asks), agreement (items whose samples
all give the same verdict, and the same score) and wall time. ``--limit N`` judges a balanced,
seeded subset of N items (for the slowest model). Results go to ``.bench/judges/<model>.json``;
the Markdown table is printed at the end (``--table`` prints it from saved results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

from prepflow.core.operator import ERROR, ERROR_TYPE, RAW
from prepflow.operators.general.llm import PromptedEvaluator
from prepflow.serving import ServingConfig, open_serving
from prepflow.serving.catalog import CATALOG
from prepflow.testing import FakeContext

REPO = Path(__file__).resolve().parents[1]
SET = REPO / "benchmarks" / "data" / "judge_set.jsonl"
WORK = REPO / ".bench" / "judges"
THRESHOLD = 3.0


def load(limit: int | None) -> list[dict]:
    items = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines()]
    if limit:
        rng = random.Random(14)
        half = [
            sorted(
                rng.sample([i for i in items if i["label"] == lab], limit // 2),
                key=lambda i: i["id"],
            )
            for lab in ("good", "bad")
        ]
        items = sorted(half[0] + half[1], key=lambda i: i["id"])
    return items


async def judge(model: str, items: list[dict], samples: int) -> dict:
    config = ServingConfig(backend="llamacpp", model=model)
    by_criteria: dict[str, list[int]] = {}
    for k, it in enumerate(items):
        by_criteria.setdefault(it["criteria"], []).append(k)
    scores: list[list[float | None]] = [[None] * samples for _ in items]
    failures: list[dict] = []
    t_start = time.perf_counter()
    async with open_serving(config, log_dir=WORK / "logs" / model) as serving:
        t_ready = time.perf_counter()
        for s in range(samples):
            for criteria, ks in by_criteria.items():
                op = PromptedEvaluator(criteria=criteria, generation={"seed": s})
                op.setup(FakeContext(serving=serving))
                table = pa.table(
                    {"_id": pa.array(ks, pa.int64()), "text": [items[k]["text"] for k in ks]}
                )
                result = await op.arun_batch(table)
                for k, score in zip(
                    result.kept["_id"].to_pylist(), result.kept["score"].to_pylist(), strict=True
                ):
                    scores[k][s] = score
                if result.failed is not None:
                    for f in result.failed.to_pylist():
                        failures.append(
                            {
                                "id": items[f["_id"]]["id"],
                                "sample": s,
                                **{c: f[c] for c in (ERROR_TYPE, ERROR, RAW)},
                            }
                        )
            print(
                f"  {model}: sample {s + 1}/{samples} done ({time.perf_counter() - t_ready:.0f} s)",
                flush=True,
            )
    return {
        "model": model,
        "items": [
            {"id": it["id"], "kind": it["kind"], "label": it["label"], "scores": sc}
            for it, sc in zip(items, scores, strict=True)
        ],
        "failures": failures,
        "samples": samples,
        "load_s": t_ready - t_start,
        "judge_s": time.perf_counter() - t_ready,
    }


def summarize(r: dict) -> dict:
    items, n_samples = r["items"], r["samples"]
    right = Counter()
    total = Counter()
    hist = {"good": Counter(), "bad": Counter()}
    sums = {"good": [], "bad": []}
    verdict_agree = score_agree = 0
    for it in items:
        verdicts = []
        for sc in it["scores"]:
            total[it["label"]] += 1
            if sc is None:  # a failure is never counted as right
                hist[it["label"]]["fail"] += 1
                verdicts.append(None)
                continue
            good = sc >= THRESHOLD
            right[it["label"]] += good == (it["label"] == "good")
            hist[it["label"]][f"{sc:g}"] += 1
            sums[it["label"]].append(sc)
            verdicts.append(good)
        verdict_agree += len(set(verdicts)) == 1 and None not in verdicts
        score_agree += len(set(it["scores"])) == 1 and None not in it["scores"]
    n_good = sum(it["label"] == "good" for it in items)
    n_bad = len(items) - n_good
    tpr = right["good"] / total["good"]
    tnr = right["bad"] / total["bad"]
    n = total["good"] + total["bad"]
    acc = (right["good"] + right["bad"]) / n
    by_kind: dict[str, list[int]] = {}
    for it in items:
        kind = f"answer_pair ({it['label']})" if it["kind"].startswith("answer_") else it["kind"]
        for sc in it["scores"]:
            right_total = by_kind.setdefault(kind, [0, 0])
            right_total[0] += sc is not None and (sc >= THRESHOLD) == (it["label"] == "good")
            right_total[1] += 1
    return {
        "model": r["model"],
        "by_kind": {k: f"{a}/{b}" for k, (a, b) in sorted(by_kind.items())},
        "items": len(items),
        "samples": n_samples,
        "accuracy": acc,
        "balanced": (tpr + tnr) / 2,
        "tpr": tpr,
        "tnr": tnr,
        # sd of the balanced accuracy of a coin-flip judge on these items (samples of one item
        # are not independent, so items count, not judgements)
        "chance_sd": 0.5 * math.sqrt(0.25 / n_good + 0.25 / n_bad),
        "mean_good": sum(sums["good"]) / max(1, len(sums["good"])),
        "mean_bad": sum(sums["bad"]) / max(1, len(sums["bad"])),
        "hist": {k: dict(sorted(v.items())) for k, v in hist.items()},
        "failures": len(r["failures"]),
        "failure_types": dict(Counter(f[ERROR_TYPE] for f in r["failures"])),
        "verdict_agreement": verdict_agree / len(items),
        "score_agreement": score_agree / len(items),
        "judge_s": r["judge_s"],
        "per_judgement_s": r["judge_s"] / (len(items) * n_samples),
    }


def table(summaries: list[dict]) -> str:
    lines = [
        "| model | items x samples | accuracy | balanced acc. | good kept | bad caught "
        "| mean score good / bad | failures | same verdict | same score | wall (s/judgement) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['model']} | {s['items']} x {s['samples']} | {s['accuracy']:.2f} "
            f"| {s['balanced']:.2f} | {s['tpr']:.2f} | {s['tnr']:.2f} "
            f"| {s['mean_good']:.2f} / {s['mean_bad']:.2f} | {s['failures']} "
            f"| {s['verdict_agreement']:.2f} | {s['score_agreement']:.2f} "
            f"| {s['judge_s']:.0f} s ({s['per_judgement_s']:.2f}) |"
        )
    lines.append("")
    for s in summaries:
        lines.append(
            f"- {s['model']}: scores of good items {s['hist']['good']}, of bad items "
            f"{s['hist']['bad']}; failures {s['failure_types'] or 'none'}; chance spread "
            f"(sd of a coin-flip judge's balanced accuracy on these items) {s['chance_sd']:.3f}"
        )
        kinds = ", ".join(f"{k} {v}" for k, v in s["by_kind"].items())
        lines.append(f"  right verdicts by kind: {kinds}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(CATALOG), choices=list(CATALOG))
    ap.add_argument("--samples", type=int, default=2, help="judgements per item (seeds 0..)")
    ap.add_argument("--limit", type=int, help="a balanced seeded subset of this many items")
    ap.add_argument("--table", action="store_true", help="only print the table of saved results")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.table:
        items = load(args.limit)
        for model in args.models:
            print(f"{model}: {len(items)} items x {args.samples} samples", flush=True)
            result = asyncio.run(judge(model, items, args.samples))
            (WORK / f"{model}.json").write_text(json.dumps(result, indent=1))
    summaries = [
        summarize(json.loads((WORK / f"{m}.json").read_text()))
        for m in args.models
        if (WORK / f"{m}.json").exists()
    ]
    (WORK / "summary.json").write_text(json.dumps(summaries, indent=1))
    print(table(summaries))


if __name__ == "__main__":
    main()
