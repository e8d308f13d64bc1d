"""The LLM serving layer: one OpenAI-compatible client for every model, hosted or local.

``open_serving(config, cache_path=..., log_dir=...)`` is an *async* context manager used on the
engine's event loop::

    async with open_serving(config, cache_path=None) as serving:
        response = await serving.chat([{"role": "user", "content": "Hi"}])

It launches the local server the backend needs (llama.cpp, vLLM, SGLang; its log goes to
``log_dir``), opens the response cache at ``cache_path`` (none without one), and closes
everything on exit. :class:`LazyServing` does the same at the first request, so a run with
nothing left to ask starts no server. This module stays import-light: the HTTP client loads on
first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prepflow.core.errors import ConfigError
from prepflow.serving.config import LAUNCHED_TIMEOUT_S, SERVER_SLOTS, ServingConfig, server_slots

if TYPE_CHECKING:
    from prepflow.serving.client import OpenAIServing

_LAZY = {
    "OpenAIServing": "prepflow.serving.client",
    "ChatResponse": "prepflow.serving.client",
    "ServingStats": "prepflow.serving.client",
    "ResponseCache": "prepflow.serving.cache",
}


@contextlib.asynccontextmanager
async def open_serving(
    config: ServingConfig,
    *,
    cache_path: Path | None = None,
    log_dir: Path | None = None,
    embeddings: bool = False,
    max_requests: int | None = None,
    max_cost_usd: float | None = None,
) -> AsyncIterator[OpenAIServing]:
    """The client of ``config``'s endpoint; ``embeddings``: a local server must also embed;
    ``max_requests``/``max_cost_usd``: a budget for this client, past which a new request raises
    :class:`~prepflow.core.errors.BudgetExceeded`."""
    from prepflow.serving.cache import ResponseCache
    from prepflow.serving.client import OpenAIServing

    with contextlib.ExitStack() as stack:
        cache = ResponseCache(cache_path) if cache_path is not None else None
        if cache is not None:
            stack.callback(cache.close)
        base_url, model = _endpoint(config, log_dir, stack, embeddings=embeddings)
        async with OpenAIServing(
            base_url,
            model,
            api_key=config.resolve_api_key(),
            concurrency=client_concurrency(config),
            timeout_s=client_timeout(config),
            max_retries=config.max_retries,
            max_reasks=config.max_reasks,
            cache=cache,
            prices=config.prices,
            generation=config.generation,
            structured_output=config.structured_output,
            embedding_model=config.embedding_model,
            url_credentials=config.url_credentials,
            max_requests=max_requests,
            max_cost_usd=max_cost_usd,
        ) as serving:
            yield serving


def client_concurrency(config: ServingConfig) -> int:
    """Requests kept in flight: ``concurrency`` when set; for a server prepflow launches, by
    default its slots (``launch.n_parallel``), since requests beyond them wait in the server's
    queue, run into the client's timeout and are sent again (measured: 23 timeouts in a
    10-minute run at 32 against llama.cpp's 4 slots)."""
    if config.backend in SERVER_SLOTS and "concurrency" not in config.model_fields_set:
        return server_slots(config.backend, config.launch.get("n_parallel"))
    return config.concurrency


def client_timeout(config: ServingConfig) -> float:
    """Seconds to wait for one answer: ``timeout_s`` when set; for a server prepflow launches,
    by default :data:`~prepflow.serving.config.LAUNCHED_TIMEOUT_S`."""
    if config.backend in SERVER_SLOTS and "timeout_s" not in config.model_fields_set:
        return LAUNCHED_TIMEOUT_S
    return config.timeout_s


def _endpoint(
    config: ServingConfig, log_dir: Path | None, stack: contextlib.ExitStack, *, embeddings: bool
) -> tuple[str, str]:
    """Base URL and model name to talk to, starting a local server on ``stack`` if needed."""
    if config.backend == "openai":
        missing = [k for k in ("base_url", "model") if not getattr(config, k)]
        if missing:
            raise ConfigError(f"serving: backend openai needs {' and '.join(missing)}")
        return str(config.base_url), str(config.model)
    try:
        from prepflow.serving.launchers import launch
    except ImportError as e:
        raise ConfigError(
            f"serving backend {config.backend!r} needs prepflow.serving.launchers, "
            f"which could not be imported ({e})"
        ) from None
    options = dict(config.launch)
    if embeddings and config.backend == "llamacpp":
        options.setdefault("embeddings", True)
    server = stack.enter_context(launch(config.backend, config.model, log_dir=log_dir, **options))
    return server.base_url, server.model


class LazyServing:
    """The serving of ``config``, opened (server launched, cache opened) at the first request
    and closed by :meth:`aclose`: a run whose LLM steps are all resumed starts nothing.
    Satisfies :class:`prepflow.core.context.Serving`."""

    def __init__(
        self,
        config: ServingConfig,
        *,
        cache_path: Path | None = None,
        log_dir: Path | None = None,
        embeddings: bool = False,
        max_requests: int | None = None,
        max_cost_usd: float | None = None,
        on_open: Callable[[OpenAIServing], None] | None = None,
    ) -> None:
        self.config = config
        self.generation = dict(config.generation)
        self._args = {
            "cache_path": cache_path,
            "log_dir": log_dir,
            "embeddings": embeddings,
            "max_requests": max_requests,
            "max_cost_usd": max_cost_usd,
        }
        self._on_open = on_open
        #: told what is happening while a local server starts ("starting ...", "ready in 9 s")
        self.on_status: Callable[[str], None] = lambda text: None
        self._stack = contextlib.AsyncExitStack()
        self._client: OpenAIServing | None = None
        self._opening: asyncio.Lock | None = None
        self._siblings: dict[str, LazyServing] = {}
        #: the serving this one is a sibling of (``for_model``), else itself
        self.root: LazyServing = self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled unopened, without its callbacks: another process (a cluster worker) opens
        its own client on the same configuration, cache file and budget. Paths are made
        absolute: that process's working directory may differ."""
        args = {
            k: Path(v).absolute() if k in ("cache_path", "log_dir") and v is not None else v
            for k, v in self._args.items()
        }
        return (_unopened, (self.config, args))

    @property
    def client(self) -> OpenAIServing | None:
        """The open client, or None while nothing has been asked."""
        return self._client

    async def open(self) -> OpenAIServing:
        if self._client is None:
            self._opening = self._opening or asyncio.Lock()
            async with self._opening:
                if self._client is None:
                    launched = self.config.backend in SERVER_SLOTS
                    t0 = time.monotonic()
                    if launched:
                        name = self.config.model or "the default model"
                        self.on_status(f"starting {self.config.backend} with {name} ...")
                    client = await self._stack.enter_async_context(
                        open_serving(self.config, **self._args)
                    )
                    if launched:
                        self.on_status(
                            f"{self.config.backend} ready in {time.monotonic() - t0:.0f} s"
                        )
                    if self._on_open is not None:
                        self._on_open(client)
                    self._client = client
        return self._client

    def for_model(self, model: str | None) -> LazyServing:
        """The serving for a step that prefers the embedded catalog ``model`` (a judge: see
        ``LLMOperator.preferred_embedded_model``): this one, unless this one launches the
        embedded default (backend ``llamacpp``, no ``model`` named by the pipeline or
        ``--model``); then a sibling that launches ``model`` on its first request, with the same
        cache and launch options, logging to ``log_dir/<model>/``, closed with this one. A
        budget (``max_requests``) applies to each server on its own."""
        if model is None or self.config.backend != "llamacpp" or self.config.model is not None:
            return self
        if model not in self._siblings:
            args = dict(self._args)
            if args["log_dir"] is not None:
                args["log_dir"] = Path(args["log_dir"]) / model
            sibling = LazyServing(self.config.model_copy(update={"model": model}), **args)
            sibling.on_status = lambda text: self.on_status(text)
            sibling.root = self
            self._siblings[model] = sibling
        return self._siblings[model]

    @property
    def clients(self) -> list[OpenAIServing]:
        """The open clients: this one's and its siblings' (for their usage)."""
        servings = [self, *self._siblings.values()]
        return [s.client for s in servings if s.client is not None]

    async def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        return await (await self.open()).chat(messages, **kwargs)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await (await self.open()).embed(texts)

    def forget(self, response: Any) -> None:
        if self._client is not None:
            self._client.forget(response)

    async def aclose(self) -> None:
        for sibling in self._siblings.values():
            await sibling.aclose()
        await self._stack.aclose()


def _unopened(config: ServingConfig, args: dict[str, Any]) -> LazyServing:
    return LazyServing(config, **args)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prepflow.serving' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "LazyServing",
    "ServingConfig",
    "client_concurrency",
    "client_timeout",
    "open_serving",
]
