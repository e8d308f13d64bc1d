"""Math reasoning pipeline: prepflow's ``reasoning-math`` against DataFlow's, and kill/resume.

    .venv/bin/python benchmarks/reasoning_math.py [--seeds 200] [--quick] [--no-dataflow]
    .venv/bin/python benchmarks/reasoning_math.py --only compare|resume|client
    .venv/bin/python benchmarks/reasoning_math.py --embedded [--seeds 16] [--model NAME]

1. compare: the scripted OpenAI-compatible server (its own process, pinned to CPU 1; 300 ms per
   answer, 5% of requests answered 429 with ``Retry-After``) serves both tools in turn, each
   pinned to CPU 0: ``prepflow run reasoning-math`` (the real CLI) and DataFlow's shipped
   ``ReasoningMath_APIPipeline`` (PyPI ``open-dataflow``, own virtualenv, see
   ``reasoning_math_dataflow.py``). prepflow is configured with ``--set`` so that both make 20
   requests per seed (see ``PREPFLOW_MATCHED``). Seeds are GSM8K-style templated problems with
   known answers; the responder recognises each tool's prompts by their wording and answers
   them correctly, including the problems it synthesised itself (it can solve any instance of
   its templates). Figures: wall time, requests the server received, 429s, rows lost.
2. resume: ``prepflow run reasoning-math`` (as shipped) against the same server, SIGKILLed (its
   whole process group) after ``--kill-after`` of its expected requests, then run again with
   the same command. Every request the server saw twice must be explained by a 429 retry or by
   a request that was in flight (not yet answered) at the kill. A third run must send nothing.
3. client: ``OpenAIServing`` alone against the same server (no pipeline), with and without the
   429s: the share of the ideal request rate it keeps and where its adaptive cap settles.
4. --embedded: the shipped pipeline as shipped (embedded llama.cpp, default model) on the
   shipped seeds; verified question-answer pairs per minute, read from the run report.
5. --solve-prompts: the solution step's prompt against shorter ones on the embedded model: each
   shipped seed solved once per generation seed, as the pipeline samples (temperature 0.7);
   completion tokens and the share whose boxed answer matches the reference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from prepflow.serving.config import DEFAULT_CONCURRENCY

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "reasoning_math"
PREPFLOW = ROOT / ".venv" / "bin" / "prepflow"
DATAFLOW_VENV = ROOT / ".bench" / "dataflow"
DATAFLOW_RUNNER = Path(__file__).resolve().parent / "reasoning_math_dataflow.py"
#: Qwen2.5 tokenizer for DataFlow's token-length filter (it asks the hub for
#: Qwen/Qwen2.5-0.5B-Instruct); Qwen2.5-Coder shares the vocabulary, so it is read from the
#: catalog's GGUF and saved here once.
TOKENIZER_DIR = ROOT / ".bench" / "qwen2.5-tokenizer"
TOKENIZER_GGUF = "qwen2.5-coder-0.5b-instruct"
SHIPPED_SEEDS = ROOT / "examples" / "math_seeds.jsonl"
#: What DataFlow's modules import (its full dependency set, with gradio, vLLM... is not needed):
#: the same set as text_pretrain_clean.py installs into this virtualenv, plus what the reasoning
#: operators import and gguf (to read the tokenizer out of the GGUF file).
DATAFLOW_DEPS = (
    "numpy<2 datasets pandas==2.3.3 pyarrow==20.0.0 transformers tqdm colorlog appdirs rich "
    "pydantic pyyaml scipy json5 docstring_parser addict psutil tiktoken colorama datasketch "
    "nltk requests"
)
REASONING_DEPS = "math-verify word2number rapidfuzz gguf"

#: prepflow overrides that give 20 requests per seed, as DataFlow's pipeline makes: 1 seed check
#: + 3 variants + 4 checks (seed re-checked: DataFlow re-asks it; here a distinct generation
#: seed keeps prepflow's cache from answering it) + 4 classifications (DataFlow: 4 difficulty +
#: 4 category) + 8 solutions (2 samples each; DataFlow: 4 single solutions).
PREPFLOW_MATCHED = [
    "synthesize.n=3",
    "filter_synthetic.generation={seed: 1}",
    "solve.samples=2",
]
SHIPPED_CALLS_PER_SEED = 14  # 1 + 2 variants + 2 checks (seed cached) + 3 classify + 3 x 2 solve
# (the responder solves every problem right, so the first 2 of 3 samples agree: early_stop)


# ---- problems with known answers ----------------------------------------------------------------

NAMES = ["Maya", "Leo", "Ava", "Omar", "Lena", "Ravi", "Zoe", "Ben", "Ines", "Kofi", "Mei", "Tom"]

#: (question template, answer from the fields, worked solution). Fields in braces are whole
#: numbers, {name} a name; a field used twice holds the same value (the solver checks it).
TEMPLATES: list[tuple[str, Callable[[dict[str, int]], int], str]] = [
    (
        "{name}'s shop sells {a} apples a day for {b} days and then {c} more apples on market "
        "day. How many apples does the shop sell in total?",
        lambda v: v["a"] * v["b"] + v["c"],
        "Over {b} days it sells {a}*{b}={ab} apples. With market day that is {ab}+{c}={ans}.",
    ),
    (
        "{name} buys {a} notebooks at ${b} each and a pen for ${c}. "
        "How many dollars does {name} spend in total?",
        lambda v: v["a"] * v["b"] + v["c"],
        "The notebooks cost {a}*{b}={ab} dollars. With the pen: {ab}+{c}={ans} dollars.",
    ),
    (
        "{name} bakes {t} muffins and packs them in boxes of {b}. How many boxes does {name} fill?",
        lambda v: v["t"] // v["b"],
        "{name} fills {t}/{b}={ans} boxes.",
    ),
    (
        "{name} reads {a} pages a day. How many pages does {name} read in {b} weeks?",
        lambda v: v["a"] * 7 * v["b"],
        "{b} weeks have 7*{b}={w} days, so {name} reads {a}*{w}={ans} pages.",
    ),
    (
        "A water tank holds {t} liters. {name} uses {a} liters a day for {b} days. "
        "How many liters are left in the tank?",
        lambda v: v["t"] - v["a"] * v["b"],
        "{name} uses {a}*{b}={ab} liters, so {t}-{ab}={ans} liters are left.",
    ),
    (
        "A class has {a} girls and {b} boys, and {name} gives each student {c} pencils. "
        "How many pencils does {name} hand out?",
        lambda v: (v["a"] + v["b"]) * v["c"],
        "There are {a}+{b}={s} students, who get {s}*{c}={ans} pencils.",
    ),
    (
        "{name} earns ${a} an hour and works {b} hours a week. "
        "How many dollars does {name} earn in {c} weeks?",
        lambda v: v["a"] * v["b"] * v["c"],
        "A week pays {a}*{b}={ab} dollars, so {c} weeks pay {ab}*{c}={ans} dollars.",
    ),
    (
        "{name} plants {a} rows of {b} tomato plants, and {c} of the plants die. "
        "How many tomato plants are left?",
        lambda v: v["a"] * v["b"] - v["c"],
        "{name} plants {a}*{b}={ab} plants; {ab}-{c}={ans} are left.",
    ),
]


def _numbers(k: int, rng: random.Random) -> dict[str, Any]:
    a, b, c = rng.randint(3, 60), rng.randint(2, 15), rng.randint(1, 40)
    values: dict[str, Any] = {"a": a, "b": b, "c": c, "name": rng.choice(NAMES)}
    if k == 2:
        values["t"] = a * b
    if k == 4:
        values["t"] = a * b + rng.randint(5, 200)
    if k == 7:
        values["c"] = rng.randint(1, a * b - 1)
    return values


def instance(k: int, rng: random.Random) -> tuple[str, int, str]:
    """(question, answer, GSM8K-style solution ending in ``#### answer``) of template ``k``."""
    v = _numbers(k, rng)
    ans = TEMPLATES[k][1](v)
    extra = {"ab": v["a"] * v["b"], "w": 7 * v["b"], "s": v["a"] + v["b"], "ans": ans}
    question = TEMPLATES[k][0].format(**v)
    return question, ans, TEMPLATES[k][2].format(**v, **extra) + f"\n#### {ans}"


def make_seeds(n: int) -> list[dict[str, Any]]:
    """``n`` distinct seed problems, the same on every call."""
    seeds, seen = [], set()
    rng = random.Random(20261121)
    while len(seeds) < n:
        q, ans, solution = instance(len(seeds) % len(TEMPLATES), rng)
        if q not in seen:
            seen.add(q)
            seeds.append(
                {"question": q, "instruction": q, "answer": solution, "golden_answer": str(ans)}
            )
    return seeds


def _pattern(template: str) -> re.Pattern[str]:
    out, seen = [], set()
    for part in re.split(r"(\{\w+\})", template):
        if m := re.fullmatch(r"\{(\w+)\}", part):
            name = m.group(1)
            if name in seen:
                out.append(f"(?P={name})")
            else:
                seen.add(name)
                out.append(f"(?P<{name}>[A-Z][a-z]+)" if name == "name" else rf"(?P<{name}>\d+)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


PATTERNS = [_pattern(t[0]) for t in TEMPLATES]


def solve(text: str) -> int | None:
    """The answer of the first template instance found in ``text``."""
    found = [(m.start(), k, m) for k, p in enumerate(PATTERNS) if (m := p.search(text))]
    if not found:
        return None
    _, k, m = min(found, key=lambda f: f[0])
    v = {n: (x if n == "name" else int(x)) for n, x in m.groupdict().items()}
    return TEMPLATES[k][1](v)


# ---- the responder (runs in the server process) -------------------------------------------------

UNKNOWN: Counter[str] = Counter()
#: Synthesised problems by request, and every problem handed out so far (seeds included): a new
#: problem never repeats another, so no tool can answer one row from another row's requests.
VARIANTS: dict[str, str] = {}
TAKEN: set[str] = set()


def _variant(req: Any) -> str:
    """A new problem for a synthesis request: another template instance, fixed by the request."""
    key = json.dumps([req.prompt, req.body.get("seed")])
    if key not in VARIANTS:
        rng = random.Random(hashlib.blake2b(key.encode(), digest_size=8).digest())
        while (question := instance(rng.randrange(len(TEMPLATES)), rng)[0]) in TAKEN:
            pass
        TAKEN.add(question)
        VARIANTS[key] = question
    return VARIANTS[key]


def respond(req: Any) -> str:
    """Answers both tools' math-pipeline prompts, told apart by their wording."""
    p = req.prompt
    if p.startswith("Check whether this math problem"):  # prepflow QuestionQualityFilter
        return json.dumps(
            {"well_posed": True, "self_contained": True, "solvable": True, "reason": "Clear."}
        )
    if "Follow these four steps in order" in p:  # DataFlow ReasoningQuestionFilter
        return '{"judgement_test": true, "error_type": null}'
    if p.startswith("Write a new math problem") or "Create a new reasonable and solvable" in p:
        return _variant(req)
    if p.startswith("Classify this math problem."):  # prepflow QuestionClassifier
        return json.dumps({"difficulty": "easy", "category": "arithmetic_word_problem"})
    if "classification assistant specialized in mathematics" in p:  # DataFlow category
        return json.dumps(
            {
                "primary_category": "Arithmetic",
                "secondary_category": "Word Problems and Real-Life Applications",
            }
        )
    if "evaluate the difficulty of these math problems" in p:  # DataFlow difficulty
        return "## Difficulty\nRating: 2\nReason: a short multi-step arithmetic word problem."
    answer = solve(p)
    if answer is not None and p.startswith("Solve the following problem"):  # prepflow
        return (
            "First, read off the quantities given in the problem. Next, combine them in "
            f"the order the question asks for. Checking the arithmetic once more, the result "
            f"is \\boxed{{{answer}}}."
        )
    if answer is not None and "writing the answer of the given math question" in p:  # DataFlow
        return (
            "Solution:\n1. Identify key components:\n→ the quantities given in the problem\n"
            "2. Apply the operations step by step:\n→ combine them in the order asked\n"
            f"3. Verify the arithmetic:\n→ the total checks out\n\n\\boxed{{{answer}}}"
        )
    UNKNOWN[p[:60]] += 1
    return "I cannot tell what this prompt asks."


# ---- the server process -------------------------------------------------------------------------


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _body_key(body: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=8).hexdigest()


def _serve(conn: Any, latency: float, fault_rate: float, retry_after: float, seeds: int) -> None:
    from prepflow.testing import ScriptedServer

    _pin(1)
    TAKEN.update(s["question"] for s in make_seeds(seeds))
    server = ScriptedServer(
        respond,
        latency=latency,
        fault_rate=fault_rate,
        faults=("rate_limit",),
        retry_after=retry_after,
        seed=1,
    )
    with server:
        conn.send(server.url)
        while (msg := conn.recv()) != "stop":
            if msg == "count":
                conn.send(server.count())
            elif msg == "stats":
                conn.send(
                    {
                        "requests": server.count(),
                        "faults": dict(server.injected),
                        "distinct": len({_body_key(r.body) for r in server.received}),
                        "peak_in_flight": server.peak_active,
                        "unknown_prompts": dict(UNKNOWN),
                        "responder_errors": [repr(e) for e in server.responder_errors],
                    }
                )
            elif msg == "records":
                conn.send([(_body_key(r.body), r.at, r.fault) for r in server.received])
            elif msg == "reset":
                server.reset_counts()
                UNKNOWN.clear()
                conn.send(True)


class Server:
    """The scripted server in a child process; ``ask`` sends it a command."""

    def __init__(
        self, latency: float, fault_rate: float, retry_after: float, seeds: int = 0
    ) -> None:
        self.conn, child = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(
            target=_serve, args=(child, latency, fault_rate, retry_after, seeds), daemon=True
        )

    def __enter__(self) -> Server:
        self.proc.start()
        self.url: str = self.conn.recv()
        return self

    def ask(self, msg: str) -> Any:
        self.conn.send(msg)
        return self.conn.recv()

    def __exit__(self, *exc: Any) -> None:
        self.conn.send("stop")
        self.proc.join(10)


# ---- running the tools --------------------------------------------------------------------------


def write_seeds(seeds: list[dict[str, Any]], path: Path, fields: tuple[str, ...]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for s in seeds:
            f.write(json.dumps({k: s[k] for k in fields}) + "\n")
    return path


def prepflow_cmd(
    source: Path, run: Path, url: str | None, overrides: list[str], *, fresh: bool
) -> list[str]:
    cmd = [str(PREPFLOW), "run", "reasoning-math", "-i", str(source), "-o"]
    cmd += [str(run / "output.jsonl"), "--run-dir", str(run), "--no-progress"]
    if url:
        cmd += ["--base-url", url, "--model", "test-model"]
    for item in overrides:
        cmd += ["--set", item]
    return cmd + (["--fresh"] if fresh else [])


def run_pinned(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``cmd`` on the tools' CPU; (the finished process, wall seconds). Its output's tail is
    printed when it fails."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_pinned)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)  # type: ignore[attr-defined]
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
    return proc, wall


def _pinned() -> None:
    _pin(0)


def rows_lost(report: dict[str, Any]) -> dict[str, int]:
    """Failed rows and rows no step accounts for (``rows_in != kept + dropped + failed``)."""
    failed = sum(s["failed"] for s in report["steps"])
    unaccounted = sum(
        abs(s["rows_in"] - s["kept"] - s["dropped"] - s["failed"]) for s in report["steps"]
    )
    return {"failed": failed, "unaccounted": unaccounted}


def run_prepflow(
    server: Server, source: Path, name: str, overrides: list[str], concurrency: int | None
) -> dict[str, Any]:
    run = WORK / name
    sets = [*overrides, *([f"serving.concurrency={concurrency}"] if concurrency else [])]
    server.ask("reset")
    proc, wall = run_pinned(prepflow_cmd(source, run, server.url, sets, fresh=True))
    report = json.loads((run / "report.json").read_text())
    return {
        "wall": wall,
        "cpu_s": proc.cpu_s,  # type: ignore[attr-defined]
        "engine_s": report["seconds"],
        "rc": proc.returncode,
        "rows_in": report["input_rows"],
        "rows_out": report["output_rows"],
        "dropped": sum(s["dropped"] for s in report["steps"]),
        **rows_lost(report),
        "server": server.ask("stats"),
    }


def ensure_dataflow() -> Path:
    """DataFlow's virtualenv (created by text_pretrain_clean.py; the reasoning operators also
    import math-verify and word2number) and the tokenizer its length filter loads."""
    python = DATAFLOW_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DATAFLOW_VENV)], check=True)
        pip = [str(DATAFLOW_VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "--no-deps", "open-dataflow==1.0.13"], check=True)
        subprocess.run([*pip, *DATAFLOW_DEPS.split()], check=True)
    if subprocess.run([str(python), "-c", "import math_verify, word2number, gguf"]).returncode:
        pip = [str(DATAFLOW_VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run([*pip, *REASONING_DEPS.split()], check=True)
    if not (TOKENIZER_DIR / "tokenizer.json").exists():
        from prepflow.serving.catalog import resolve_model

        gguf = Path(resolve_model(TOKENIZER_GGUF))
        code = (
            "import sys; from transformers import AutoTokenizer; "
            "AutoTokenizer.from_pretrained(sys.argv[1], gguf_file=sys.argv[2])"
            ".save_pretrained(sys.argv[3])"
        )
        subprocess.run(
            [str(python), "-c", code, str(gguf.parent), gguf.name, str(TOKENIZER_DIR)], check=True
        )
    return python


def run_dataflow(python: Path, server: Server, source: Path, workers: int) -> dict[str, Any]:
    work = WORK / f"dataflow-{workers or 'shipped'}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server.ask("reset")
    cmd = [str(python), str(DATAFLOW_RUNNER), str(source), str(work), server.url]
    cmd += [str(TOKENIZER_DIR), "--workers", str(workers)]
    proc, wall = run_pinned(cmd)
    (work / "log.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"DataFlow run failed (log in {work / 'log.txt'})")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": wall, **out, "server": server.ask("stats")}


# ---- kill and resume ----------------------------------------------------------------------------


#: Time the client may take to receive, parse and commit an answer the server has finished: with
#: 128 requests in flight on one pinned core it is some milliseconds (the "unexplained" repeats
#: of a run with no slack were all answers due 1-7 ms before the kill).
RECEIVE_SLACK_S = 0.1


def repeats(
    records: list[tuple[str, float, str | None]], t_kill: float, t_resume: float, latency: float
) -> dict[str, Any]:
    """Classify every request the server saw again: after a 429 to the same request (a retry),
    after the same request was in flight at the kill (sent by the killed run, which is
    everything the server read before the resumed run started at ``t_resume``, and not yet
    received by it: its answer was due less than RECEIVE_SLACK_S before the kill), or neither
    (with how long before the kill its first copy's answer was due). A request the server read
    just after ``t_kill`` was still sent by the killed run: ``t_kill`` is taken just before the
    signal, and the server reads what is in its sockets when its loop gets to it."""
    by_key: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
    for key, at, fault in records:
        by_key[key].append((at, fault))
    out, late = Counter(), []
    for reqs in by_key.values():
        reqs.sort()
        for (at, fault), _ in pairwise(reqs):
            if fault is not None:
                out["after_429"] += 1
            elif at < t_resume and t_kill < at + latency + RECEIVE_SLACK_S:
                out["in_flight_at_kill"] += 1
            else:
                out["unexplained"] += 1
                late.append(round(t_kill - at - latency, 3))
    return {
        **{k: out[k] for k in ("after_429", "in_flight_at_kill", "unexplained")},
        "unexplained_due_before_kill_s": late,
    }


def kill_and_resume(args: argparse.Namespace, source: Path) -> dict[str, Any]:
    run = WORK / "resume"
    expected = SHIPPED_CALLS_PER_SEED * args.seeds
    kill_at = int(expected * args.kill_after)
    with Server(args.latency, args.fault_rate, args.retry_after, args.seeds) as server:
        proc = subprocess.Popen(
            prepflow_cmd(source, run, server.url, [], fresh=True),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_pinned,
        )
        while (n := server.ask("count")) < kill_at and proc.poll() is None:
            time.sleep(0.02)
        t_kill = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(args.latency + 0.2)  # let the server finish what was in flight
        at_kill = sum(1 for _, at, _ in server.ask("records") if at <= t_kill)
        t_resume = time.monotonic()
        resumed, resume_wall = run_pinned(prepflow_cmd(source, run, server.url, [], fresh=False))
        stats, records = server.ask("stats"), server.ask("records")
        report = json.loads((run / "report.json").read_text())
        server.ask("reset")
        subprocess.run(prepflow_cmd(source, run, server.url, [], fresh=False), capture_output=True)
        rerun = server.ask("count")
    return {
        "polled_at_kill": n,
        "requests_at_kill": at_kill,
        "total_requests": stats["requests"],
        "distinct_requests": stats["distinct"],
        "faults": stats["faults"],
        "repeats": repeats(records, t_kill, t_resume, args.latency),
        "resume_wall": resume_wall,
        "resume_rc": resumed.returncode,
        "rows_in": report["input_rows"],
        "rows_out": report["output_rows"],
        "resumed_shards": report["resumed_shards"],
        **rows_lost(report),
        "third_run_requests": rerun,
        "unknown_prompts": stats["unknown_prompts"],
    }


# ---- the client alone --------------------------------------------------------------------------


async def _client_rate(url: str, n: int, concurrency: int) -> dict[str, float]:
    import asyncio
    import statistics

    from prepflow.serving.client import OpenAIServing

    caps: list[int] = []
    async with OpenAIServing(url, "test-model", concurrency=concurrency) as serving:

        async def poll() -> None:
            while True:
                caps.append(serving.current_concurrency)
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll())
        start = time.perf_counter()
        await asyncio.gather(
            *(serving.chat([{"role": "user", "content": f"Say ok {i}."}]) for i in range(n))
        )
        seconds = time.perf_counter() - start
        poller.cancel()
    return {"rate": n / seconds, "mean_cap": statistics.mean(caps)}


def client_alone(args: argparse.Namespace) -> None:
    """``OpenAIServing`` with no pipeline around it: how much of the ideal rate
    (concurrency / latency) it keeps under the same 429s, and where its adaptive cap settles."""
    import asyncio

    n, c = (300 if args.quick else 1000), 32
    print(f"\nOpenAIServing alone, {n} requests, concurrency {c}, latency {args.latency} s "
          f"(ideal {c / args.latency:.0f} req/s)")  # fmt: skip
    print("| 429 rate | Retry-After | req/s | share of ideal | mean adaptive cap |")
    print("|---:|---:|---:|---:|---:|")
    for rate, after in ((0.0, 0.0), (args.fault_rate, 0.0), (args.fault_rate, args.retry_after)):
        with Server(args.latency, rate, after) as server:
            r = asyncio.run(_client_rate(server.url, n, c))
        print(f"| {rate:.0%} | {after:g} s | {r['rate']:.1f} | "
              f"{r['rate'] * args.latency / c:.2f} | {r['mean_cap']:.1f} |")  # fmt: skip


# ---- embedded model -----------------------------------------------------------------------------


def embedded(args: argparse.Namespace) -> None:
    lines = SHIPPED_SEEDS.read_text().splitlines()
    n = min(args.seeds or len(lines), len(lines))
    source = WORK / "embedded-seeds.jsonl"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("".join(line + "\n" for line in lines[:n]))
    run = WORK / "embedded"
    cmd = [*prepflow_cmd(source, run, None, args.set, fresh=True), "--max-failure-rate", "1"]
    if args.model:
        cmd += ["--model", args.model]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
        sys.exit(f"prepflow run exited {proc.returncode}")
    report = json.loads((run / "report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    out = [json.loads(x) for x in (run / "output.jsonl").read_text().splitlines() if x.strip()]
    checked = sum(1 for r in out if r.get("reference"))
    per_min = 60 / wall
    print(f"model {args.model or 'pipeline default'}; overrides {args.set}; {n} seeds; load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}; wall {wall:.1f} s (engine {report['seconds']:.1f} s)")  # fmt: skip
    print(f"llm: {json.dumps(report.get('llm', {}))}")
    print("| step | rows in | kept | dropped | failed |\n|---|---:|---:|---:|---:|")
    for s in report["steps"]:
        print(f"| {s['name']} | {s['rows_in']} | {s['kept']} | {s['dropped']} | {s['failed']} |")
    print(f"\nground_truth step kept {steps['ground_truth']['kept']} rows; exported "
          f"{len(out)} question-answer pairs ({len(out) * per_min:.2f}/min), of which {checked} "
          f"matched a reference answer ({checked * per_min:.2f}/min)")  # fmt: skip


# ---- solution prompts ---------------------------------------------------------------------------

_BRIEF = (
    "Solve the problem below. Keep the reasoning short: only the steps needed, without "
    "restating the problem. End with the final answer in \\boxed{}.\n\nProblem:\n{{ question }}"
)
_EXAMPLE = (
    "Solve the problem step by step, as briefly as in the example. Put the final answer, and "
    "only the final answer, in \\boxed{} at the end.\n\n"
    "Example problem: A box holds 12 eggs. How many eggs are in 5 boxes?\n"
    "Example solution: 5 boxes hold 5 \\times 12 = 60 eggs. The answer is \\boxed{60}.\n\n"
    "Problem:\n{{ question }}"
)


def solve_prompts(args: argparse.Namespace) -> None:
    import asyncio

    from prepflow.core.prompts import PromptTemplate
    from prepflow.operators.reasoning._answers import last_boxed
    from prepflow.operators.reasoning._verify import equivalent
    from prepflow.operators.reasoning.answers import SOLVE_PROMPT, SOLVE_SYSTEM, ReferenceAnswer
    from prepflow.serving import ServingConfig, open_serving
    from prepflow.serving.errors import TruncatedOutput

    variants = {
        "shipped": (SOLVE_SYSTEM, SOLVE_PROMPT),
        "brief": ("You are a precise mathematician.", _BRIEF),
        "example": (SOLVE_SYSTEM, _EXAMPLE),
    }
    seeds = [json.loads(x) for x in SHIPPED_SEEDS.read_text().splitlines()]
    refs = [ReferenceAnswer()._reference(s["answer"]) for s in seeds]
    config = ServingConfig(backend="llamacpp", model=args.model or TOKENIZER_GGUF, max_reasks=0)
    results: dict[str, list[tuple[bool, int]]] = defaultdict(list)

    async def solve(serving: Any, name: str, k: int, seed: int) -> None:
        system, user = variants[name]
        messages = PromptTemplate(user, system).messages(question=seeds[k]["question"])
        try:
            reply = await serving.chat(messages, temperature=0.7, max_tokens=768, seed=seed)
        except TruncatedOutput:  # counted as wrong, at the token limit
            results[name].append((False, 768))
            return
        boxed = last_boxed(reply.text)
        results[name].append(
            (boxed is not None and equivalent(refs[k], boxed), reply.completion_tokens)
        )

    async def run_all() -> None:
        async with open_serving(config, run_dir=WORK / "solve-prompts") as serving:
            await asyncio.gather(*(solve(serving, name, k, seed) for seed in range(args.samples)
                                   for k in range(len(seeds)) for name in variants))  # fmt: skip

    shutil.rmtree(WORK / "solve-prompts", ignore_errors=True)
    (WORK / "solve-prompts").mkdir(parents=True)
    start = time.perf_counter()
    asyncio.run(run_all())
    print(
        f"{len(seeds)} seeds x {args.samples} samples per prompt, {time.perf_counter() - start:.0f} s"
    )
    print("| prompt | correct | mean completion tokens |\n|---|---:|---:|")
    for name, rs in results.items():
        print(
            f"| {name} | {sum(ok for ok, _ in rs)} of {len(rs)} | {sum(t for _, t in rs) / len(rs):.0f} |"
        )


# ---- main ---------------------------------------------------------------------------------------


def _fmt_compare(label: str, r: dict[str, Any], base: float) -> str:
    """A table row. Rows lost: prepflow's failed + unaccounted rows; DataFlow's None answers."""
    srv = r["server"]
    lost = r["failed"] + r["unaccounted"] if "failed" in r else r["none_outputs"]
    inner = r["engine_s"] if "engine_s" in r else r["forward_s"]
    rate_limited = srv["faults"].get("rate_limit", 0)
    return (
        f"| {label} | {r['wall']:.1f} s | {inner:.1f} s | {r['wall'] / base:.2f} | "
        f"{srv['requests']:,} | {srv['requests'] - rate_limited:,} | {rate_limited} | "
        f"{srv['peak_in_flight']} | {r['rows_out']:,} | {lost} |"
    )


def compare(args: argparse.Namespace, seeds: list[dict[str, Any]]) -> None:
    pf_source = write_seeds(seeds, WORK / "seeds.jsonl", ("question", "answer"))
    df_source = write_seeds(seeds, WORK / "seeds_dataflow.jsonl", ("instruction", "golden_answer"))
    rows: list[tuple[str, dict[str, Any]]] = []
    with Server(args.latency, args.fault_rate, args.retry_after, len(seeds)) as server:
        for c in args.prepflow_concurrency:
            r = run_prepflow(server, pf_source, f"prepflow-c{c}", PREPFLOW_MATCHED, c or None)
            rows.append((f"prepflow, concurrency {c or f'{DEFAULT_CONCURRENCY} (default)'}", r))
            print(json.dumps(rows[-1]), flush=True)
        if not args.no_dataflow:
            python = ensure_dataflow()
            for w in args.dataflow_workers:
                r = run_dataflow(python, server, df_source, w)
                label = f"DataFlow, {r['workers']} workers" + (" (as shipped)" if w == 0 else "")
                rows.append((label, r))
                print(json.dumps(rows[-1]), flush=True)
    if not rows:
        return
    base = rows[0][1]["wall"]
    print(f"\n{len(seeds)} seeds; latency {args.latency} s, {args.fault_rate:.0%} 429s with "
          f"Retry-After {args.retry_after:g} s")  # fmt: skip
    print("| run | wall | engine / forward() | wall / first row's | requests | answered | 429s "
          "| peak in flight | rows out | rows lost |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(_fmt_compare(label, r, base))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, help="seed problems (default 200; --embedded: all 16)")
    ap.add_argument(
        "--quick", action="store_true", help="40 seeds, one setting per tool, 300 client requests"
    )
    ap.add_argument("--only", choices=["compare", "resume", "client"], help="one part only")
    ap.add_argument("--no-dataflow", action="store_true", help="skip the DataFlow side")
    ap.add_argument("--latency", type=float, default=0.3, help="server seconds per answer")
    ap.add_argument("--fault-rate", type=float, default=0.05, help="share of requests given 429")
    ap.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of a 429 (s)")
    ap.add_argument("--prepflow-concurrency", type=int, nargs="*", default=[0, 100, 256, 32],
                    help=f"prepflow serving.concurrency values (0: the default, {DEFAULT_CONCURRENCY})")  # fmt: skip
    ap.add_argument("--dataflow-workers", type=int, nargs="*", default=[0, 32, 10],
                    help="DataFlow max_workers values (0: as shipped, 100)")  # fmt: skip
    ap.add_argument("--kill-after", type=float, default=0.4,
                    help="resume part: kill after this share of the expected requests")  # fmt: skip
    ap.add_argument("--embedded", action="store_true", help="embedded llama.cpp measurement")
    ap.add_argument("--model", help="--embedded: catalog model (default: the pipeline's)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--embedded: an override passed on to prepflow run (repeatable)",
    )
    ap.add_argument("--solve-prompts", action="store_true", help="solution prompts compared")
    ap.add_argument("--samples", type=int, default=3, help="--solve-prompts: samples per seed")
    args = ap.parse_args()
    if args.solve_prompts:
        solve_prompts(args)
        return
    if args.embedded:
        embedded(args)
        return
    if args.quick:
        args.seeds = args.seeds or 40
        args.prepflow_concurrency, args.dataflow_workers = [0], [0]
    args.seeds = args.seeds or 200
    seeds = make_seeds(args.seeds)
    print(f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    if args.only in (None, "compare"):
        compare(args, seeds)
    if args.only in (None, "resume"):
        source = write_seeds(seeds, WORK / "seeds.jsonl", ("question", "answer"))
        res = kill_and_resume(args, source)
        print(f"\nkill and resume ({args.seeds} seeds, shipped pipeline):")
        print(json.dumps(res, indent=1))
    if args.only in (None, "client"):
        client_alone(args)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
