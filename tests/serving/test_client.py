"""OpenAIServing against the scripted server: answers, retries, backoff, limits, accounting."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from prepflow.serving.client import OpenAIServing, retry_after_s
from prepflow.serving.errors import RequestRejected, ServerError
from prepflow.testing import Reply, ScriptedServer, embed_text


def ask(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def run(server: ScriptedServer, fn: Callable[[OpenAIServing], Awaitable[Any]], **options: Any):
    """``fn(client)`` on a fresh client; returns (its result, the client)."""
    options = {"backoff_s": 0.01, "api_key": server.api_key, **options}

    async def main() -> tuple[Any, OpenAIServing]:
        async with OpenAIServing(server.url, server.model, **options) as client:
            return await fn(client), client

    return asyncio.run(main())


def test_chat_returns_text_usage_and_sends_model_and_messages(scripted):
    server = scripted(lambda req: f"echo: {req.prompt}")
    resp, client = run(server, lambda c: c.chat(ask("two words")))
    assert (resp.text, resp.finish_reason, resp.cached, resp.attempts) == (
        "echo: two words",
        "stop",
        False,
        1,
    )
    assert (resp.prompt_tokens, resp.completion_tokens) == (2, 3)
    assert server.received[0].body == {"model": "test-model", "messages": ask("two words")}
    assert client.stats.to_dict() == {
        "requests": 1,
        "cache_hits": 0,
        "retries": 0,
        "reasks": 0,
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "cost_usd": 0.0,
        "errors": {},
        "failures": {},
    }


def test_generation_defaults_are_merged_under_request_parameters(scripted):
    server = scripted()
    run(
        server,
        lambda c: c.chat(ask("p"), max_tokens=9, seed=None),
        generation={"temperature": 0, "max_tokens": 5},
    )
    body = server.received[0].body
    assert (body["temperature"], body["max_tokens"], "seed" in body) == (0, 9, False)


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ("rate_limit", "RateLimited"),
        ("server_error", "ServerError"),
        ("reset", "ConnectionFailed"),
        ("malformed", "MalformedResponse"),
        ("timeout", "RequestTimeout"),
    ],
)
def test_transient_faults_are_retried(scripted, fault, error_type):
    server = scripted(script={"p": [fault, fault]}, retry_after=0.01, hang_s=5)
    resp, client = run(server, lambda c: c.chat(ask("p")), timeout_s=0.5)
    assert (resp.text, resp.attempts) == ("p", 3)
    assert server.count("p") == 3
    assert (client.stats.retries, dict(client.stats.errors)) == (2, {error_type: 2})


def test_retry_after_is_honoured_and_pauses_other_requests(scripted):
    server = scripted(script={"p": ["rate_limit"]}, retry_after=0.4)

    async def both(c: OpenAIServing):
        first = asyncio.create_task(c.chat(ask("p")))
        while server.count("p") == 0:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the 429 has arrived: new requests must wait too
        return await asyncio.gather(first, c.chat(ask("q")))

    (p, q), _ = run(server, both)
    assert (p.text, q.text) == ("p", "q")
    first_p, retry_p = server.times("p")
    assert retry_p - first_p >= 0.4
    assert server.times("q")[0] - first_p >= 0.4


@pytest.mark.parametrize("status", [400, 401, 404, 422, 501])
def test_other_client_errors_are_not_retried(scripted, status):
    server = scripted(lambda req: Reply(status=status, raw=b'{"error": {"message": "nope"}}'))
    with pytest.raises(RequestRejected, match=f"^HTTP {status}: nope$") as e:
        run(server, lambda c: c.chat(ask("p")))
    assert (e.value.attempts, e.value.status, server.count("p")) == (1, status, 1)


def test_gives_up_after_max_retries_with_the_last_error(scripted):
    server = scripted(script={"p": ["server_error"] * 10})
    with pytest.raises(
        ServerError, match=r"HTTP 500: internal error \(gave up after 4 attempts\)"
    ) as e:
        run(server, lambda c: c.chat(ask("p")), max_retries=3)
    assert (e.value.attempts, server.count("p")) == (4, 4)


def test_concurrency_is_bounded_and_connections_reused(scripted):
    server = scripted(latency=0.02)
    replies, _ = run(
        server, lambda c: asyncio.gather(*(c.chat(ask(f"p{i}")) for i in range(60))), concurrency=5
    )
    assert [r.text for r in replies] == [f"p{i}" for i in range(60)]
    assert server.peak_active == 5
    assert server.connections <= 5


def test_concurrency_backs_off_on_429_and_recovers(scripted):
    server = scripted(script={f"w{i}": ["rate_limit"] for i in range(8)}, retry_after=0.01)

    async def waves(c: OpenAIServing):
        await asyncio.gather(*(c.chat(ask(f"w{i}")) for i in range(8)))
        after_pushback = c.current_concurrency
        await asyncio.gather(*(c.chat(ask(f"ok{i}")) for i in range(100)))
        return after_pushback, c.current_concurrency

    (after_pushback, recovered), _ = run(server, waves, concurrency=8)
    assert 4 <= after_pushback < 8  # halved once for the whole wave of 429s, then growing back
    assert recovered == 8


def test_timeouts_count_as_pushback(scripted):
    """A server that queues requests past the timeout gets fewer of them at once."""
    server = scripted(script={f"t{i}": ["timeout"] for i in range(8)}, hang_s=5)

    async def wave(c: OpenAIServing):
        await asyncio.gather(*(c.chat(ask(f"t{i}")) for i in range(8)))
        return c.current_concurrency

    after, client = run(server, wave, concurrency=8, timeout_s=0.2)
    assert 4 <= after < 8 and client.stats.errors["RequestTimeout"] == 8


def test_identical_requests_in_flight_are_sent_once(scripted):
    server = scripted(latency=0.1)
    replies, _ = run(server, lambda c: asyncio.gather(*(c.chat(ask("same")) for _ in range(5))))
    assert server.count("same") == 1
    assert [r.text for r in replies] == ["same"] * 5
    assert sorted(r.cached for r in replies) == [False] + [True] * 4


def test_tokens_and_cost_are_accounted_per_model_prices(scripted):
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    server = scripted(lambda req: Reply(content="x", usage=usage))
    _, client = run(
        server,
        lambda c: asyncio.gather(*(c.chat(ask(f"p{i}")) for i in range(3))),
        prices={"input_per_1m": 2.0, "output_per_1m": 10.0},
    )
    stats = client.stats.to_dict()
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (3000, 1500)
    assert stats["cost_usd"] == pytest.approx((3000 * 2.0 + 1500 * 10.0) / 1e6)


def test_embeddings_in_order_deduplicated_and_batched(scripted):
    server = scripted()
    vectors, client = run(server, lambda c: c.embed(["a", "b", "a", "c"]), embed_batch=2)
    assert vectors == [embed_text("a"), embed_text("b"), embed_text("a"), embed_text("c")]
    assert [server.count(t) for t in "abc"] == [1, 1, 1]
    assert client.stats.requests == 2


def test_models_lists_the_served_model(scripted):
    models, _ = run(scripted(), lambda c: c.models())
    assert models == ["test-model"]


def test_api_key_is_sent_as_bearer_and_not_shown(scripted):
    server = scripted(api_key="sk-test-SECRET-123")
    resp, client = run(server, lambda c: c.chat(ask("p")))
    assert resp.text == "p"
    assert "SECRET" not in repr(client)
    with pytest.raises(RequestRejected, match=r"^HTTP 401: invalid api key$") as e:
        run(server, lambda c: c.chat(ask("q")), api_key="sk-wrong")
    assert "sk-wrong" not in str(e.value) and server.count("q") == 1


def test_retry_after_header_forms():
    assert retry_after_s("2") == 2.0
    assert retry_after_s("0.25") == 0.25
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    assert retry_after_s(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    in_30s = retry_after_s(email.utils.formatdate(time.time() + 30, usegmt=True))
    assert in_30s is not None and 28 <= in_30s <= 30
