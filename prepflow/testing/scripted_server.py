"""A scripted OpenAI-compatible server on loopback, for tests and benchmarks of LLM steps.

Real HTTP/1.1 with keep-alive (asyncio in a background thread), so the client's whole path runs: connection
reuse, timeouts, retries, ``Retry-After``. What the server answers is a plain function of the
request (:class:`ChatRequest`), returning the reply text or a :class:`Reply`::

    def responder(req: ChatRequest) -> str | Reply: ...

    with ScriptedServer(responder, latency=0.01, fault_rate=0.3, seed=1) as server:
        result = run_operator(op.bind({"text": "body"}), table, server)
        assert server.count("What is 2+2?") == 1

Faults (:data:`FAULTS`) are injected by rate (decided from ``seed``, the conversation and its
attempt number, so a run is reproducible whatever the request order), by script
(``script={prompt: ["rate_limit", None, ...]}`` for the 1st, 2nd, ... request of that prompt's
conversation), or by the responder returning ``fault(kind, reply)`` itself. The server records
every request (:attr:`ScriptedServer.received`: prompt, attempt, arrival time, body, injected
fault), counts them by prompt, and tracks connections and requests in flight.
:func:`run_operator` runs an LLM operator over one batch against it, as the engine would.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from prepflow.core.operator import Operator, Result
from prepflow.serving.cache import ResponseCache
from prepflow.serving.client import OpenAIServing
from prepflow.testing.context import FakeContext

#: Injectable faults: 429 with Retry-After, 500, a reply that never comes in time, a reset
#: connection, a 200 whose body is not JSON, output cut at the token limit, JSON that breaks the
#: requested schema.
FAULTS = ("rate_limit", "server_error", "timeout", "reset", "malformed", "truncated", "invalid")


@dataclass(frozen=True)
class ChatRequest:
    """One request as the responder sees it."""

    path: str
    body: dict[str, Any]
    #: Content of the last user message ("" when none): what requests are counted by. A re-ask
    #: ends in a new user message, so it counts under its own text.
    prompt: str
    #: 1 for the first request with these exact messages, 2 for its first retry, ...
    attempt: int

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON schema sent as ``response_format``, if any."""
        rf = self.body.get("response_format") or {}
        return (rf.get("json_schema") or {}).get("schema") or rf.get("schema")


@dataclass(frozen=True)
class Reply:
    """What the server sends back. ``delay`` adds latency; ``reset`` aborts the connection;
    ``raw`` replaces the whole JSON body."""

    content: str = ""
    status: int = 200
    finish_reason: str = "stop"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    raw: bytes | None = None
    usage: Mapping[str, int] | None = None


Responder = Callable[[ChatRequest], "str | Reply"]


def echo(req: ChatRequest) -> str:
    """Default responder: the prompt back."""
    return req.prompt


def fault(
    kind: str, reply: Reply = Reply(), *, retry_after: float = 0.1, hang_s: float = 30.0
) -> Reply:
    """``reply`` turned into the fault ``kind`` (one of :data:`FAULTS`)."""
    error = lambda msg: orjson.dumps({"error": {"message": msg, "type": kind}})  # noqa: E731
    match kind:
        case "rate_limit":
            return Reply(
                status=429, headers={"Retry-After": f"{retry_after:g}"}, raw=error("rate limited")
            )
        case "server_error":
            return Reply(status=500, raw=error("internal error"))
        case "timeout":
            return replace(reply, delay=reply.delay + hang_s)
        case "reset":
            return Reply(reset=True)
        case "malformed":
            return Reply(raw=b'{"id": "x", "choices": [{"message": {"content": "')
        case "truncated":
            return replace(
                reply, content=reply.content[: len(reply.content) // 2], finish_reason="length"
            )
        case "invalid":
            return replace(reply, content='{"unexpected": "not the requested schema"}')
    raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(FAULTS)}")


@dataclass(frozen=True)
class Received:
    """A request as recorded by the server (``at`` is ``time.monotonic()`` on arrival)."""

    path: str
    prompt: str
    attempt: int
    at: float
    body: dict[str, Any]
    headers: Mapping[str, str]
    #: The fault injected into this request's reply, if any.
    fault: str | None = None
    #: The request's query string (what follows ``?``), e.g. credentials sent as parameters.
    query: str = ""


class ScriptedServer:
    """An OpenAI-compatible chat/embeddings server on 127.0.0.1 with scripted answers and faults.

    Use as a context manager; it stops by itself on exit (hanging requests are cancelled).
    ``latency`` is added to every reply. ``api_key``, when set, is required as a bearer token
    (401 otherwise). ``supports_response_format=False`` answers 400 to any request carrying
    ``response_format``, like servers without structured output.
    """

    def __init__(
        self,
        responder: Responder = echo,
        *,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        faults: Sequence[str] = FAULTS,
        script: Mapping[str, Sequence[str | None]] | None = None,
        seed: int = 0,
        retry_after: float = 0.1,
        hang_s: float = 30.0,
        api_key: str | None = None,
        supports_response_format: bool = True,
        model: str = "test-model",
        embed_dim: int = 8,
    ) -> None:
        for kind in (*faults, *(k for ks in (script or {}).values() for k in ks if k)):
            if kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(FAULTS)}")
        self.responder = responder
        self.latency, self.fault_rate, self.faults = latency, fault_rate, tuple(faults)
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.seed, self.retry_after, self.hang_s = seed, retry_after, hang_s
        self.api_key, self.supports_response_format = api_key, supports_response_format
        self.model, self.embed_dim = model, embed_dim
        self.received: list[Received] = []
        self.counts: Counter[str] = Counter()
        self._attempts: Counter[bytes] = Counter()
        self.injected: Counter[str] = Counter()
        #: Requests being answered now, the most at once, TCP connections accepted so far, and
        #: HTTP requests read (``received`` has one entry per chat request or embedded text).
        self.active = self.peak_active = self.connections = self.requests = 0
        self.paths: Counter[str] = Counter()  # HTTP requests by path
        self.responder_errors: list[Exception] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL in the OpenAI convention (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), daemon=True, name="scripted-openai-server"
        )
        self._thread.start()
        ready.wait(10)
        if not self.port:
            raise RuntimeError("scripted server did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def serve_forever(self) -> None:
        """Run in the foreground until interrupted (benchmarks start it in its own process)."""
        self.__enter__()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.__exit__()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def start() -> None:
            self._server = await asyncio.start_server(
                self._connection, "127.0.0.1", 0, backlog=1024
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()
        loop.close()

    def _shutdown(self) -> None:
        assert self._server is not None and self._loop is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        self._loop.call_later(0.05, self._loop.stop)

    # ---- accounting ------------------------------------------------------------------------

    def count(self, prompt: str | None = None) -> int:
        """Requests received carrying ``prompt``, or all chat/embedding requests."""
        return self.counts[prompt] if prompt is not None else len(self.received)

    def times(self, prompt: str) -> list[float]:
        """Arrival times of the requests carrying ``prompt``, in order."""
        return [r.at for r in self.received if r.prompt == prompt]

    def reset_counts(self) -> None:
        with self._lock:
            self.received.clear()
            self.counts.clear()
            self._attempts.clear()
            self.injected.clear()
            self.peak_active = self.connections = 0

    # ---- HTTP ------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while (request := await _read_request(reader)) is not None:
                self.active += 1
                self.requests += 1
                self.paths[request[0]] += 1
                self.peak_active = max(self.peak_active, self.active)
                try:
                    reply = await self._answer(*request)
                finally:
                    self.active -= 1
                if reply.reset:
                    writer.transport.abort()
                    return
                writer.write(_encode(reply))
                await writer.drain()
        except (
            ConnectionError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            return
        except asyncio.CancelledError:  # server shutting down: end quietly
            return
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(
        self, path: str, query: str, headers: dict[str, str], raw_body: bytes
    ) -> Reply:
        try:
            body = orjson.loads(raw_body) if raw_body else {}
        except orjson.JSONDecodeError:
            return _error(400, "request body is not JSON")
        authorized = (
            self.api_key is None or headers.get("authorization") == f"Bearer {self.api_key}"
        )
        if not authorized and not path.endswith("/chat/completions"):
            return _error(401, "invalid api key")
        if path.endswith("/models"):
            return Reply(
                raw=orjson.dumps(
                    {"object": "list", "data": [{"id": self.model, "object": "model"}]}
                )
            )
        if path.endswith("/embeddings"):
            return self._embeddings(path, query, body, headers)
        if not path.endswith("/chat/completions"):
            return _error(404, f"no route {path}")
        prompt = _last_user_text(body.get("messages", []))
        conversation = hashlib.blake2b(
            orjson.dumps(body.get("messages", [])), digest_size=16
        ).digest()
        with self._lock:
            self.counts[prompt] += 1
            self._attempts[conversation] += 1
            attempt = self._attempts[conversation]
            unsupported = "response_format" in body and not self.supports_response_format
            ok = authorized and not unsupported
            kind = self._fault_for(prompt, conversation, attempt) if ok else None
            if kind is not None:
                self.injected[kind] += 1
            self.received.append(
                Received(path, prompt, attempt, time.monotonic(), body, headers, kind, query)
            )
        if not authorized:  # after recording: a rejected request was still received
            return _error(401, "invalid api key")
        if unsupported:
            return _error(400, "response_format is not supported by this server")
        req = ChatRequest(path, body, prompt, attempt)
        try:
            out = self.responder(req)
        except Exception as e:  # a responder bug must show, not hang the client
            self.responder_errors.append(e)
            return _error(500, f"responder raised {type(e).__name__}: {e}")
        reply = Reply(content=out) if isinstance(out, str) else out
        if kind is not None:
            reply = fault(kind, reply, retry_after=self.retry_after, hang_s=self.hang_s)
        delay = self.latency + reply.delay
        if delay > 0:
            await asyncio.sleep(delay)
        if reply.raw is None and not reply.reset:
            reply = replace(reply, raw=self._completion(body, prompt, reply))
        return reply

    def _fault_for(self, prompt: str, conversation: bytes, attempt: int) -> str | None:
        steps = self.script.get(prompt)
        if steps is not None:
            return steps[attempt - 1] if attempt <= len(steps) else None
        if not self.fault_rate:
            return None
        digest = hashlib.blake2b(
            f"{self.seed}\0{conversation.hex()}\0{attempt}".encode(), digest_size=8
        ).digest()
        u = int.from_bytes(digest) / 2**64
        if u >= self.fault_rate:
            return None
        return self.faults[int(u / self.fault_rate * len(self.faults)) % len(self.faults)]

    def _completion(self, body: dict[str, Any], prompt: str, reply: Reply) -> bytes:
        usage = (
            dict(reply.usage)
            if reply.usage is not None
            else {
                "prompt_tokens": sum(
                    len(str(m.get("content", "")).split()) for m in body.get("messages", [])
                ),
                "completion_tokens": len(reply.content.split()),
            }
        )
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        return orjson.dumps(
            {
                "id": "chatcmpl-scripted",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": reply.finish_reason,
                        "message": {"role": "assistant", "content": reply.content},
                    }
                ],
                "usage": usage,
            }
        )

    def _embeddings(
        self, path: str, query: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> Reply:
        texts = body.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        with self._lock:
            for t in texts:
                self.counts[t] += 1
                self.received.append(
                    Received(path, t, self.counts[t], time.monotonic(), body, headers, None, query)
                )
        data = [
            {"object": "embedding", "index": i, "embedding": embed_text(t, self.embed_dim)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(t.split()) for t in texts)
        return Reply(
            raw=orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": self.model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        )


def embed_text(text: str, dim: int = 8) -> list[float]:
    """The test server's deterministic embedding of ``text`` (bytes of its hash, scaled to [0, 1))."""
    digest = hashlib.sha256(text.encode()).digest()
    return [digest[i % len(digest)] / 256 for i in range(dim)]


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """(path, query, lower-cased headers, body) of the next request; ``None`` at a clean end of
    stream.

    Only what OpenAI clients send is understood: HTTP/1.1 with a Content-Length body (a test
    server; h11 cost more per request than the client it is meant to measure).
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    target = request_line.split(" ")[1]
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ValueError("chunked request bodies are not supported by the scripted server")
    length = int(headers.get("content-length", 0))
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return path, query, headers, body


def _encode(reply: Reply) -> bytes:
    body = reply.raw if reply.raw is not None else b""
    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = ""
    extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
    head = (
        f"HTTP/1.1 {reply.status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode("latin-1") + body


def _error(status: int, message: str) -> Reply:
    return Reply(status=status, raw=orjson.dumps({"error": {"message": message, "code": status}}))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content", "")
            if isinstance(content, list):  # content parts
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


def run_operator(
    op: Operator,
    batch: pa.Table,
    server: ScriptedServer,
    *,
    cache_path: str | Path | None = None,
    **serving_options: Any,
) -> Result:
    """Run an LLM operator over one batch against ``server`` as the engine does (``setup`` with a
    context holding the serving, then ``arun_batch``), with a fresh client; for operator tests."""

    async def main() -> Result:
        cache = ResponseCache(cache_path) if cache_path is not None else None
        try:
            async with OpenAIServing(
                server.url, server.model, api_key=server.api_key, cache=cache, **serving_options
            ) as serving:
                op.setup(FakeContext(serving=serving))
                return await op.arun_batch(batch)
        finally:
            if cache is not None:
                cache.close()

    return asyncio.run(main())
