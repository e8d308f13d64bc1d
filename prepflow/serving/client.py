"""The one path to every model: an async client for OpenAI-compatible chat and embeddings.

:class:`OpenAIServing` keeps up to ``concurrency`` requests in flight over reused connections
(aiohttp), retries 429/5xx/timeouts/connection errors/malformed bodies with exponential backoff
and jitter (waiting at least what ``Retry-After`` asks, and pausing all new requests meanwhile),
halves its concurrency when the server pushes back and grows it back after, caches every answer
(:mod:`prepflow.serving.cache`), asks identical in-flight requests only once, validates and
re-asks structured output (:mod:`prepflow.serving.structured`) and counts requests, tokens and
cost. Anything that yields no usable answer raises a :class:`~prepflow.serving.errors.ServingError`
carrying the attempts made and the raw answer, for the caller's failure record.

One instance belongs to one event loop (its connections are opened on first use).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from prepflow.core.errors import BudgetExceeded
from prepflow.serving.cache import ResponseCache, cache_key
from prepflow.serving.config import DEFAULT_CONCURRENCY, REDACTED, UrlCredentials
from prepflow.serving.errors import (
    ConnectionFailed,
    InvalidOutput,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    RequestTimeout,
    ServerError,
    ServingError,
    TruncatedOutput,
)
from prepflow.serving.limiter import AdaptiveLimiter
from prepflow.serving.structured import InvalidJSON, OutputSchema, reask, with_instruction

if TYPE_CHECKING:
    import aiohttp
    from pydantic import BaseModel

log = logging.getLogger("prepflow.serving")
T = TypeVar("T")
Messages = list[dict[str, Any]]


@dataclass(slots=True)
class ChatResponse:
    """One answer. ``attempts`` counts the HTTP requests it took (0 when served from the cache);
    ``parsed`` is the validated value when a schema was given; ``cache_keys`` are the cache
    entries behind it (the question and any re-asks), for :meth:`OpenAIServing.forget`."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False
    attempts: int = 1
    parsed: Any = None
    cache_keys: tuple[bytes, ...] = ()


@dataclass
class ServingStats:
    """Counters for the run report and progress bars."""

    requests: int = 0  # HTTP requests sent, retries and re-asks included
    cache_hits: int = 0
    retries: int = 0
    reasks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)  # failed HTTP attempts by type
    failures: Counter[str] = field(default_factory=Counter)  # calls that gave up, by type

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "reasks": self.reasks,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "errors": dict(self.errors),
            "failures": dict(self.failures),
        }


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


class OpenAIServing:
    """Client of one OpenAI-compatible endpoint and model (see the module docstring).

    ``generation`` holds default generation parameters merged under each request's;
    ``structured_output`` says how a schema reaches the server (``auto``: as ``response_format``,
    falling back to an instruction in the prompt if the server rejects it); ``prices`` are USD
    per million tokens (``input_per_1m``, ``output_per_1m``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = 120,
        max_retries: int = 5,
        max_reasks: int = 2,
        cache: ResponseCache | None = None,
        prices: Mapping[str, float] | None = None,
        generation: Mapping[str, Any] | None = None,
        structured_output: str = "auto",
        embedding_model: str | None = None,
        embed_batch: int = 64,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        url_credentials: UrlCredentials | None = None,
        max_requests: int | None = None,
        max_cost_usd: float | None = None,
    ) -> None:
        if structured_output not in ("auto", "response_format", "prompt"):
            raise ValueError(
                f"structured_output must be auto, response_format or prompt, "
                f"not {structured_output!r}"
            )
        self.base_url, self.model = base_url.rstrip("/"), model
        self.embedding_model = embedding_model or model
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.max_reasks = max_retries, max_reasks
        self.cache = cache
        self.prices = Prices(**prices) if prices else None
        self.generation = dict(generation or {})
        self.structured_output = structured_output
        self._response_format = structured_output != "prompt"
        self.embed_batch, self.backoff_s, self.max_backoff_s = embed_batch, backoff_s, max_backoff_s
        self.stats = ServingStats()
        self.max_requests, self.max_cost_usd = max_requests, max_cost_usd
        self._limiter = AdaptiveLimiter(concurrency)
        self._headers = {"Content-Type": "application/json"}
        creds = url_credentials or UrlCredentials()
        self._basic = (
            (creds.user or "", creds.password or "") if creds.user or creds.password else None
        )
        self._params = dict(creds.query)
        self._secrets = [v for v in (*creds.secrets, api_key) if v]
        if api_key and self._basic is None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        elif api_key:
            log.warning("the base URL carries a user and password: sending those, not the API key")
        self._http: aiohttp.ClientSession | None = None
        self._pending: dict[bytes, asyncio.Future[Any]] = {}

    def __repr__(self) -> str:
        return f"OpenAIServing({self.base_url!r}, {self.model!r})"

    @property
    def in_flight(self) -> int:
        return self._limiter.in_flight

    @property
    def current_concurrency(self) -> int:
        """The adaptive cap on requests in flight (drops under push-back, recovers after)."""
        return self._limiter.cap

    # ---- public API ------------------------------------------------------------------------

    async def chat(
        self,
        messages: Messages,
        *,
        schema: type[BaseModel] | Mapping[str, Any] | None = None,
        **generation: Any,
    ) -> ChatResponse:
        """Answer ``messages``; with ``schema``, a validated JSON answer (``parsed``).

        An answer that is invalid for the schema or cut at the token limit is re-asked up to
        ``max_reasks`` times with the problem stated; then :class:`InvalidOutput` /
        :class:`TruncatedOutput` is raised with the raw text.
        """
        out = OutputSchema.of(schema) if schema is not None else None
        params = {**self.generation, **{k: v for k, v in generation.items() if v is not None}}
        attempts, keys = 0, ()
        for ask in range(self.max_reasks + 1):
            response = await self._complete(messages, params, out)
            attempts += response.attempts
            keys += response.cache_keys
            response.attempts, response.cache_keys = attempts, keys
            try:
                if response.finish_reason == "length":
                    raise TruncatedOutput(
                        "the answer was cut off at the token limit "
                        "(raise max_tokens or ask for less)"
                    )
                if out is not None:
                    response.parsed = out.parse(response.text)
                return response
            except (InvalidJSON, TruncatedOutput) as e:
                problem = e
            if ask < self.max_reasks:
                self.stats.reasks += 1
                messages = reask(messages, response.text, f"Your answer was not usable: {problem}")
        error_cls = TruncatedOutput if isinstance(problem, TruncatedOutput) else InvalidOutput
        self.stats.failures[error_cls.__name__] += 1
        self.forget(response)
        raise error_cls(
            f"{problem} (after {self.max_reasks} re-asks)", attempts=attempts, raw=response.text
        )

    def forget(self, response: ChatResponse) -> None:
        """Drop the cached answers behind ``response`` because they were unusable, so that a
        retry asks the model again instead of replaying them (a failed row is journaled, so a
        plain resume does not ask again either way)."""
        if self.cache is not None:
            for key in response.cache_keys:
                self.cache.delete(key)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; cached per (model, text)."""
        keys = {
            t: cache_key({"kind": "embedding", "model": self.embedding_model, "input": t})
            for t in texts
        }
        vectors: dict[str, list[float]] = {}
        if self.cache is not None:
            for text, key in keys.items():
                if (hit := self.cache.get(key)) is not None:
                    vectors[text] = hit
                    self.stats.cache_hits += 1
        missing = [t for t in keys if t not in vectors]
        chunks = [
            tuple(missing[i : i + self.embed_batch])
            for i in range(0, len(missing), self.embed_batch)
        ]
        for chunk, result in zip(
            chunks, await asyncio.gather(*map(self._embed_chunk, chunks)), strict=True
        ):
            vectors.update(zip(chunk, result, strict=True))
            if self.cache is not None:
                for text in chunk:
                    self.cache.put(keys[text], vectors[text])
        return [vectors[t] for t in texts]

    async def models(self) -> list[str]:
        """Model ids the server lists (a cheap reachability check)."""
        models, _ = await self._request(
            "GET", "/models", None, lambda d: [m["id"] for m in d["data"]]
        )
        return models

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> OpenAIServing:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ---- one completion: cache, in-flight dedup, structured-output transport ----------------

    async def _complete(
        self, messages: Messages, params: dict[str, Any], out: OutputSchema | None
    ) -> ChatResponse:
        key = cache_key(
            {
                "kind": "chat",
                "model": self.model,
                "messages": messages,
                "params": params,
                "schema": out.json_schema if out else None,
            }
        )
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return _response(hit, key, cached=True, attempts=0)
        if (pending := self._pending.get(key)) is not None:
            return _response(await asyncio.shield(pending), key, cached=True, attempts=0)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value, attempts = await self._send_chat(messages, params, out)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: there may be no waiter
            raise
        finally:
            del self._pending[key]
        future.set_result(value)
        self._account(*value["usage"])
        if self.cache is not None:
            self.cache.put(key, value)
        return _response(value, key, cached=False, attempts=attempts)

    async def _send_chat(
        self, messages: Messages, params: dict[str, Any], out: OutputSchema | None
    ) -> tuple[dict[str, Any], int]:
        body: dict[str, Any] = {**params, "model": self.model, "messages": messages}
        if out is None:
            return await self._request("POST", "/chat/completions", body, _decode_chat)
        rejected: RequestRejected | None = None
        if self._response_format:
            try:
                return await self._request(
                    "POST",
                    "/chat/completions",
                    {**body, "response_format": out.response_format()},
                    _decode_chat,
                )
            except RequestRejected as e:
                if self.structured_output != "auto" or e.status != 400:
                    raise
                rejected = e
        body["messages"] = with_instruction(messages, out.instruction())
        value, attempts = await self._request("POST", "/chat/completions", body, _decode_chat)
        if rejected is not None:  # the prompt form worked where response_format was refused
            log.info(
                "server rejected response_format (%s); asking for JSON in the prompt", rejected
            )
            self._response_format = False
            attempts += rejected.attempts
        return value, attempts

    async def _embed_chunk(self, chunk: tuple[str, ...]) -> list[list[float]]:
        def decode(data: Any) -> list[list[float]]:
            rows = sorted(data["data"], key=lambda d: d["index"])
            if len(rows) != len(chunk):
                raise ValueError(f"{len(rows)} embeddings for {len(chunk)} inputs")
            self._account(int((data.get("usage") or {}).get("prompt_tokens") or 0), 0)
            return [r["embedding"] for r in rows]

        vectors, _ = await self._request(
            "POST", "/embeddings", {"model": self.embedding_model, "input": list(chunk)}, decode
        )
        return vectors

    # ---- HTTP with retries -----------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            import aiohttp

            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout_s, sock_connect=min(10.0, self.timeout_s)
                ),
                headers=self._headers,
                auth=aiohttp.BasicAuth(*self._basic) if self._basic else None,
            )
        return self._http

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, decode: Callable[[Any], T]
    ) -> tuple[T, int]:
        """``decode(json)`` of the first good answer, and the attempts it took."""
        url, data = self.base_url + path, orjson.dumps(body) if body is not None else None
        for attempt in range(1, self.max_retries + 2):
            try:
                return await self._attempt(method, url, data, decode, retry=attempt > 1), attempt
            except ServingError as e:
                error = e
            error.attempts = attempt
            self.stats.errors[error.error_type] += 1
            if not error.retryable or attempt > self.max_retries:
                self.stats.failures[error.error_type] += 1
                if error.retryable:
                    error.args = (f"{error} (gave up after {attempt} attempts)",)
                raise error
            self.stats.retries += 1
            backoff = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
            delay = max(random.uniform(backoff / 2, backoff), error.retry_after or 0.0)
            log.debug("retrying %s in %.2fs after %s: %s", path, delay, error.error_type, error)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _attempt(
        self,
        method: str,
        url: str,
        data: bytes | None,
        decode: Callable[[Any], T],
        *,
        retry: bool = False,
    ) -> T:
        """One request's decoded answer; raises a :class:`ServingError` (with the server's
        ``Retry-After`` when it gave one)."""
        import aiohttp

        round_ = await self._limiter.acquire(retry=retry)
        try:
            self._check_budget()
        except BudgetExceeded:
            self._limiter.release(round_, ok=True, pushback=False, retry_after=None)
            raise
        ok = pushback = False
        wait = None
        self.stats.requests += 1
        try:
            async with self._session().request(
                method, url, data=data, params=self._params or None
            ) as r:
                raw, status = await r.read(), r.status
                if status in (429, 503):
                    pushback, wait = True, retry_after_s(r.headers.get("Retry-After"))
            ok = status < 500 and status not in (408, 429)
        except TimeoutError:
            pushback = True  # a server that queues more than it decodes answers too late
            raise RequestTimeout(f"no answer within {self.timeout_s:g}s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ConnectionFailed(self._scrub(f"{type(e).__name__}: {e}")) from None
        finally:
            self._limiter.release(round_, ok=ok, pushback=pushback, retry_after=wait)
        if status != 200:
            raise _http_error(status, self._scrub(raw.decode(errors="replace")), retry_after=wait)
        try:
            return decode(orjson.loads(raw))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as e:
            raise MalformedResponse(
                f"unusable response body ({type(e).__name__}: {e})",
                raw=raw[:2000].decode(errors="replace"),
            ) from None

    def _check_budget(self) -> None:
        """Refuse a new HTTP request once this client has spent its budget (cached answers are
        free and always served)."""
        if self.max_requests is not None and self.stats.requests >= self.max_requests:
            raise BudgetExceeded(f"the request budget is spent ({self.stats.requests:,} requests)")
        if self.max_cost_usd is not None and self.stats.cost_usd >= self.max_cost_usd:
            raise BudgetExceeded(f"the cost budget is spent (${self.stats.cost_usd:,.4f})")

    def _scrub(self, text: str) -> str:
        """``text`` (an error from the HTTP stack or the server) without any credential."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED).replace(urllib.parse.quote(secret), REDACTED)
        return text

    # ---- accounting ------------------------------------------------------------------------

    def _account(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        if self.prices is not None:
            self.stats.cost_usd += self.prices.cost(prompt_tokens, completion_tokens)


def _decode_chat(data: Any) -> dict[str, Any]:
    choice = data["choices"][0]
    text = choice["message"]["content"]
    if not isinstance(text, str):
        raise TypeError(f"message content is {type(text).__name__}, not text")
    usage = data.get("usage") or {}
    return {
        "text": text,
        "finish_reason": choice.get("finish_reason"),
        "usage": [int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)],
    }


def _response(value: dict[str, Any], key: bytes, *, cached: bool, attempts: int) -> ChatResponse:
    prompt_tokens, completion_tokens = value["usage"]
    return ChatResponse(
        value["text"],
        value["finish_reason"],
        prompt_tokens,
        completion_tokens,
        cached=cached,
        attempts=attempts,
        cache_keys=(key,),
    )


def _http_error(status: int, raw: str, *, retry_after: float | None) -> ServingError:
    try:
        detail = orjson.loads(raw)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        detail = raw[:300]
    message = f"HTTP {status}: {detail}"
    cls = {429: RateLimited, 408: RequestTimeout, 501: RequestRejected, 505: RequestRejected}.get(
        status
    ) or (ServerError if status >= 500 else RequestRejected)
    return cls(message, status=status, retry_after=retry_after)


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
