"""Response cache: content-addressed, persistent, survives SIGKILL; finished work is never paid twice."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from prepflow.serving.cache import ResponseCache, cache_key

from .test_client import ask, run


class Answer(BaseModel):
    answer: int


def test_key_ignores_dict_order_and_value_roundtrips(tmp_path):
    assert cache_key({"a": 1, "b": [1, {"x": 2, "y": 3}]}) == cache_key(
        {"b": [1, {"y": 3, "x": 2}], "a": 1}
    )
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    cache = ResponseCache(tmp_path / "sub" / "c.sqlite")
    cache.put(b"k", {"text": "hi", "usage": [1, 2]})
    cache.close()
    reopened = ResponseCache(tmp_path / "sub" / "c.sqlite")
    assert (reopened.get(b"k"), reopened.get(b"missing"), len(reopened)) == (
        {"text": "hi", "usage": [1, 2]},
        None,
        1,
    )
    reopened.close()


def test_rerun_sends_zero_requests_and_any_change_is_a_new_request(scripted, tmp_path):
    server = scripted(lambda req: '{"answer": 4}')
    path = tmp_path / "cache.sqlite"

    def batch(c, **gen):
        return asyncio.gather(*(c.chat(ask(f"q{i}"), **gen) for i in range(20)))

    def with_cache(fn, **options):
        cache = ResponseCache(path)
        try:
            return run(server, fn, cache=cache, **options)
        finally:
            cache.close()

    first, client = with_cache(batch)
    assert client.stats.requests == 20 and not any(r.cached for r in first)
    again, client = with_cache(batch)
    assert (client.stats.requests, client.stats.cache_hits) == (0, 20)
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
    assert len(server.received) == 20

    server.reset_counts()
    with_cache(lambda c: c.chat(ask("q0"), temperature=0.5))
    with_cache(lambda c: c.chat(ask("q0"), schema=Answer))
    with_cache(lambda c: c.chat([{"role": "system", "content": "Be brief."}, *ask("q0")]))
    with_cache(lambda c: c.chat(ask("q0")), generation={"max_tokens": 3})
    assert server.count("q0") == 4
    resp, client = with_cache(lambda c: c.chat(ask("q0"), schema=Answer))
    assert (resp.parsed, resp.cached, client.stats.requests) == (Answer(answer=4), True, 0)


def test_reasks_replay_from_cache(scripted, tmp_path):
    server = scripted(lambda req: '{"answer": 4}' if len(req.messages) > 1 else "four")
    cache = ResponseCache(tmp_path / "c.sqlite")
    first, _ = run(server, lambda c: c.chat(ask("2+2?"), schema=Answer), cache=cache)
    again, client = run(server, lambda c: c.chat(ask("2+2?"), schema=Answer), cache=cache)
    cache.close()
    assert (first.parsed, first.attempts, again.parsed, again.attempts) == (
        Answer(answer=4),
        2,
        Answer(answer=4),
        0,
    )
    assert (client.stats.requests, client.stats.reasks) == (0, 1)


CHILD = """
import asyncio, sys
from prepflow.serving.cache import ResponseCache
from prepflow.serving.client import OpenAIServing

async def main(url, path):
    async with OpenAIServing(url, "test-model", concurrency=4, cache=ResponseCache(path)) as c:
        await asyncio.gather(*(c.chat([{"role": "user", "content": f"row {i}"}]) for i in range(40)))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_killed_run_resumes_paying_only_for_unfinished_requests(scripted, tmp_path):
    server = scripted(lambda req: f"answer to {req.prompt}", latency=0.2)
    path = tmp_path / "cache.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CHILD, server.url, str(path)])
    deadline = time.monotonic() + 60
    while server.count() < 12 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    cache = ResponseCache(path)
    finished = len(cache)
    assert 8 <= finished < 40  # killed mid-run, with answers already committed

    server.reset_counts()
    prompts = [f"row {i}" for i in range(40)]
    replies, client = run(
        server, lambda c: asyncio.gather(*(c.chat(ask(p)) for p in prompts)), cache=cache
    )
    assert [r.text for r in replies] == [f"answer to {p}" for p in prompts]
    assert (server.count(), client.stats.cache_hits) == (40 - finished, finished)
    assert all(n == 1 for n in server.counts.values())

    server.reset_counts()
    _, client = run(
        server, lambda c: asyncio.gather(*(c.chat(ask(p)) for p in prompts)), cache=cache
    )
    cache.close()
    assert (server.count(), client.stats.requests) == (0, 0)


def test_embeddings_are_cached_per_text(scripted, tmp_path):
    server = scripted()
    cache = ResponseCache(Path(tmp_path) / "c.sqlite")
    first, _ = run(server, lambda c: c.embed(["a", "b"]), cache=cache)
    again, client = run(server, lambda c: c.embed(["b", "a", "c"]), cache=cache)
    cache.close()
    assert again == [first[1], first[0], again[2]]
    assert (server.count("a"), server.count("b"), server.count("c")) == (1, 1, 1)
    assert (client.stats.requests, client.stats.cache_hits) == (1, 2)


def _open_and_write(path: str, start: multiprocessing.synchronize.Barrier, worker: int) -> None:
    start.wait()
    cache = ResponseCache(path)
    cache.put(f"k{worker}".encode(), {"text": str(worker)})
    cache.close()


@pytest.mark.slow  # 320 forked processes (8 s on 2 cores): in the full run, out of the quick loop
def test_many_processes_can_open_a_new_cache_file_at_once(tmp_path):
    """Opening sets the journal mode, which SQLite refuses at once (no busy wait) while another
    process does the same; every opener must still get in (without the retry, 5 runs of this
    test in 6 failed)."""
    ctx = multiprocessing.get_context("fork")  # no re-import: the openers start together
    for attempt in range(20):
        path = str(tmp_path / f"cache{attempt}.sqlite")
        start = ctx.Barrier(16)
        workers = [ctx.Process(target=_open_and_write, args=(path, start, w)) for w in range(16)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert [w.exitcode for w in workers] == [0] * 16
        cache = ResponseCache(path)
        assert len(cache) == 16
        cache.close()
