"""Embedded model: generated tokens/s through prepflow's client vs the same server driven directly.

One llama.cpp server is started by ``prepflow.serving.launchers.launch`` (the embedded default
path). Each round sends the same batch of chat requests (every answer exactly ``--max-tokens``
long via ``ignore_eos``; ``cache_prompt: false``, so the side that goes second gains nothing) once
with plain ``httpx`` and once with ``prepflow.serving.client.OpenAIServing`` (no response cache),
alternating who goes first, with concurrency = server slots. Generated tokens come from the
server's own ``/metrics`` counter, so both sides are counted the same way. On a machine shared
with other jobs single rounds vary by 2x: the summary is the geometric mean of the per-round
ratios (use an even number of rounds, so that who-goes-first cancels out).

    .venv/bin/python benchmarks/serving_embedded.py --model qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from prepflow.serving.catalog import DEFAULT_MODEL
from prepflow.serving.launchers import LaunchedServer, launch

TOPICS = ["rivers", "compilers", "bread", "glaciers", "chess", "bees", "trains", "volcanoes",
          "violins", "tides", "maps", "ferns", "comets", "looms", "owls", "deserts"]  # fmt: skip

Send = Callable[[list[dict[str, str]]], Awaitable[None]]


def prompts(tag: str, n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"[{tag}-{i}] In two sentences, what are "
                                         f"{TOPICS[i % len(TOPICS)]}?"}] for i in range(n)]  # fmt: skip


async def drive(send: Send, batch: list[list[dict[str, str]]], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(messages: list[dict[str, str]]) -> None:
        async with gate:
            await send(messages)

    await asyncio.gather(*(one(m) for m in batch))


def predicted_tokens(server: LaunchedServer) -> float:
    metrics = httpx.get(server.base_url.removesuffix("/v1") + "/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith("llamacpp:tokens_predicted_total"))
    return float(line.split()[1])


async def measure(server: LaunchedServer, send: Send, batch: list[list[dict[str, str]]],
                  concurrency: int) -> float:  # fmt: skip
    before, start = predicted_tokens(server), time.perf_counter()
    await drive(send, batch, concurrency)
    elapsed = time.perf_counter() - start
    return (predicted_tokens(server) - before) / elapsed


async def run(server: LaunchedServer, args: argparse.Namespace) -> dict[str, list[float]]:
    from prepflow.serving.client import OpenAIServing  # the client under test
    from prepflow.serving.errors import TruncatedOutput

    # Every answer is exactly max_tokens long (ignore_eos), so both sides do the same work. The
    # client reports such answers as TruncatedOutput (after max_reasks=0 re-asks): expected here.
    gen = {"max_tokens": args.max_tokens, "temperature": 0.0, "cache_prompt": False,
           "ignore_eos": True}  # fmt: skip
    async with (
        OpenAIServing(
            server.base_url, server.model, concurrency=args.parallel, max_reasks=0
        ) as client,
        httpx.AsyncClient(base_url=server.base_url, timeout=600) as http,
    ):

        async def direct(messages: list[dict[str, str]]) -> None:
            r = await http.post("/chat/completions",
                                json={"model": server.model, "messages": messages, **gen})  # fmt: skip
            r.raise_for_status()

        async def prepflow(messages: list[dict[str, str]]) -> None:
            with contextlib.suppress(TruncatedOutput):
                await client.chat(messages, **gen)

        await measure(server, direct, prompts("warmup", 2), args.parallel)
        rates: dict[str, list[float]] = {"direct": [], "prepflow": []}
        for r in range(args.rounds):  # same prompts for both sides; alternate who goes first
            batch = prompts(f"round{r}", args.requests)
            order = [("direct", direct), ("prepflow", prepflow)][:: 1 if r % 2 == 0 else -1]
            for name, send in order:
                rates[name].append(await measure(server, send, batch, args.parallel))
                print(f"round {r} {name:8s} {rates[name][-1]:7.2f} tok/s", flush=True)
        print(f"prepflow client stats: {client.stats.to_dict()}")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalog name or GGUF path")
    parser.add_argument("--requests", type=int, default=8, help="requests per pass")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per answer")
    parser.add_argument("--parallel", type=int, default=4, help="server slots = concurrency")
    parser.add_argument("--rounds", type=int, default=6, help="passes per side (alternating)")
    args = parser.parse_args()
    with launch("llamacpp", args.model, run_dir=None, n_parallel=args.parallel,
                ctx_size=512, extra_args=["endpoint_metrics=true"]) as server:  # fmt: skip
        rates = asyncio.run(run(server, args))
    direct, prepflow = rates["direct"], rates["prepflow"]
    paired = statistics.geometric_mean(p / d for p, d in zip(prepflow, direct, strict=True))
    print(
        f"model {server.model}, {args.rounds} rounds of {args.requests} x {args.max_tokens} "
        f"tokens, {args.parallel} slots"
    )
    for name, values in rates.items():
        print(f"  {name:8s} median {statistics.median(values):6.2f} tok/s, best {max(values):6.2f}")
    print(
        f"  prepflow/direct: geometric mean of per-round ratios {paired:.3f}, "
        f"best vs best {max(prepflow) / max(direct):.3f}"
    )


if __name__ == "__main__":
    main()
