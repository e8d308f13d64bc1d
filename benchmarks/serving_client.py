"""Client overhead and throughput of OpenAIServing against the scripted server, beside DataFlow.

    .venv/bin/python benchmarks/serving_client.py [--quick] [--no-dataflow]

Measures, with the client pinned to CPU 0 and the scripted server in its own process on CPU 1:
1. requests/s at zero latency, concurrency 64 (client overhead; target >= 1,000/s);
2. cached requests/s: the same requests again, all answered by the SQLite cache (target >= 20,000/s);
3. at 200 ms latency and concurrency 64, achieved throughput as a fraction of the ideal 320 req/s
   (target >= 0.9), beside DataFlow's ``APILLMServing_request`` (PyPI ``open-dataflow``) at its
   default 10 workers and at 64 workers.

DataFlow runs in its own virtualenv under ``.bench/dataflow-serving`` (created on first use):
``open-dataflow`` is installed without its dependency set (torch, gradio, transformers... which
``APILLMServing_request`` does not use) plus the three packages that module imports (requests,
tqdm, colorlog). Its package ``__init__`` (which imports every operator) is bypassed; the class
itself runs unmodified.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATAFLOW_VENV = ROOT / ".bench" / "dataflow-serving"
DATAFLOW_PACKAGES = ["open-dataflow==1.0.13", "requests", "tqdm", "colorlog"]


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _serve(latency: float, conn) -> None:
    from prepflow.testing import ScriptedServer

    _pin(1)
    server = ScriptedServer(lambda req: "ok", latency=latency)
    server.__enter__()
    conn.send(server.url)
    conn.recv()  # any message stops the server
    server.__exit__()


class Server:
    """The scripted server in a child process (so it does not share the client's core)."""

    def __init__(self, latency: float) -> None:
        self.parent, child = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(
            target=_serve, args=(latency, child), daemon=True
        )

    def __enter__(self) -> str:
        self.proc.start()
        return self.parent.recv()

    def __exit__(self, *exc) -> None:
        self.parent.send("stop")
        self.proc.join(10)


def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Say ok to request {i}."}]


async def _run_prepflow(
    url: str, n: int, concurrency: int, cache_path: Path | None
) -> tuple[float, float, dict]:
    """(requests per wall second, requests per client CPU second, client stats)."""
    from prepflow.serving.cache import ResponseCache
    from prepflow.serving.client import OpenAIServing

    cache = ResponseCache(cache_path) if cache_path else None
    async with OpenAIServing(url, "test-model", concurrency=concurrency, cache=cache) as serving:
        await asyncio.gather(*(serving.chat(_messages(-i - 1)) for i in range(min(200, n))))  # warm
        start, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(serving.chat(_messages(i)) for i in range(n)))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert all(r.text == "ok" for r in results)
        stats = serving.stats.to_dict()
    if cache:
        cache.close()
    return n / seconds, n / cpu, stats


def prepflow_rates(
    latency: float, n: int, concurrency: int, cache_path: Path | None = None
) -> list[tuple[float, float]]:
    """[(wall rate, CPU rate)] of a first pass and, with a cache, of a second all-cached pass."""
    _pin(0)
    out = []
    with Server(latency) as url:
        for _ in range(2 if cache_path else 1):
            wall, cpu, stats = asyncio.run(_run_prepflow(url, n, concurrency, cache_path))
            out.append((wall, cpu))
        assert not cache_path or stats["requests"] == 0, stats
    return out


DATAFLOW_RUNNER = r"""
import importlib.util, json, os, sys, time, types
from pathlib import Path
root = Path(importlib.util.find_spec("dataflow").submodule_search_locations[0])
pkg = types.ModuleType("dataflow"); pkg.__path__ = [str(root)]; sys.modules["dataflow"] = pkg
sub = types.ModuleType("dataflow.serving"); sub.__path__ = [str(root / "serving")]
sys.modules["dataflow.serving"] = sub
from dataflow.serving.api_llm_serving_request import APILLMServing_request
import logging; logging.disable(logging.WARNING)
os.sched_setaffinity(0, {0})
url, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.environ["DF_API_KEY"] = "unused"
kw = {} if workers <= 0 else {"max_workers": workers}
serving = APILLMServing_request(api_url=url + "/chat/completions", model_name="test-model", **kw)
serving.generate_from_input([f"warm {i}" for i in range(50)])
start, cpu = time.perf_counter(), time.process_time()
out = serving.generate_from_input([f"Say ok to request {i}." for i in range(n)])
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"rate": n / seconds, "cpu_rate": n / cpu, "ok": sum(o == "ok" for o in out),
                  "workers": serving.max_workers}))
"""


def ensure_dataflow() -> Path:
    python = DATAFLOW_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DATAFLOW_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", DATAFLOW_PACKAGES[0]],
            check=True,
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *DATAFLOW_PACKAGES[1:]], check=True
        )
    return python


def dataflow_rate(python: Path, latency: float, n: int, workers: int) -> dict:
    with Server(latency) as url:
        out = subprocess.run(
            [str(python), "-c", DATAFLOW_RUNNER, url, str(n), str(workers)],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests and one repeat")
    ap.add_argument("--no-dataflow", action="store_true", help="skip the DataFlow comparison")
    args = ap.parse_args()
    repeats = 1 if args.quick else 3
    n_fast = 3000 if args.quick else 10000
    n_slow = 640 if args.quick else 1920  # 2 s / 6 s of ideal time at 320 req/s
    ideal = 64 / 0.2
    load = os.getloadavg()[0]
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        runs = [prepflow_rates(0.0, n_fast, 64, Path(tmp) / f"c{r}.sqlite") for r in range(repeats)]
    first, cached = [r[0] for r in runs], [r[1] for r in runs]
    rows.append(
        (
            "prepflow, zero latency, c=64",
            _median([w for w, _ in first]) + " req/s",
            _median([c for _, c in first]) + " req/s",
            ">= 1,000",
        )
    )
    rows.append(
        (
            "prepflow, all cached",
            _median([w for w, _ in cached]) + " req/s",
            _median([c for _, c in cached]) + " req/s",
            ">= 20,000",
        )
    )
    slow = [prepflow_rates(0.2, n_slow, 64)[0] for _ in range(repeats)]
    wall = statistics.median(w for w, _ in slow)
    rows.append(
        (
            "prepflow, 200 ms, c=64",
            f"{wall:,.0f} req/s = {wall / ideal:.2f} of ideal",
            _median([c for _, c in slow]) + " req/s",
            ">= 0.90 of 320",
        )
    )

    if not args.no_dataflow:
        python = ensure_dataflow()
        for workers in (0, 64):
            res = [dataflow_rate(python, 0.2, n_slow, workers) for _ in range(repeats)]
            label = f"{res[0]['workers']} workers" + (" (default)" if workers == 0 else "")
            wall = statistics.median(r["rate"] for r in res)
            rows.append(
                (
                    f"DataFlow APILLMServing_request, 200 ms, {label}",
                    f"{wall:,.0f} req/s = {wall / ideal:.2f} of ideal",
                    _median([r["cpu_rate"] for r in res]) + " req/s",
                    "",
                )
            )
            fast = [dataflow_rate(python, 0.0, n_fast // 2, workers) for _ in range(repeats)]
            rows.append(
                (
                    f"DataFlow APILLMServing_request, zero latency, {label}",
                    _median([r["rate"] for r in fast]) + " req/s",
                    _median([r["cpu_rate"] for r in fast]) + " req/s",
                    "",
                )
            )

    print(
        f"load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f}; median of {repeats}\n"
    )
    print("| measurement | throughput (wall clock) | per client CPU second | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
