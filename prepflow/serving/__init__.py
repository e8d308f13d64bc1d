"""The LLM serving layer: one OpenAI-compatible client for every model, hosted or local.

``open_serving(config, run_dir=..., cache_path=...)`` is an *async* context manager used on the
engine's event loop::

    async with open_serving(config, run_dir=run_dir, cache_path=None) as serving:
        response = await serving.chat([{"role": "user", "content": "Hi"}])

It launches the local server the backend needs (llama.cpp, vLLM, SGLang, or the scripted test
server), opens the response cache (``cache_path``, else ``<run_dir>/llm_cache.sqlite``, else
none), and closes everything on exit. This module stays import-light: the HTTP client loads on
first use.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
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
    "ScriptedServer": "prepflow.serving.testing",
}


@contextlib.asynccontextmanager
async def open_serving(
    config: ServingConfig,
    *,
    run_dir: Path | None = None,
    cache_path: Path | None = None,
    embeddings: bool = False,
) -> AsyncIterator[OpenAIServing]:
    """The client of ``config``'s endpoint; ``embeddings``: a local server must also embed."""
    from prepflow.serving.cache import CACHE_FILE, ResponseCache
    from prepflow.serving.client import OpenAIServing

    path = cache_path or (Path(run_dir) / CACHE_FILE if run_dir is not None else None)
    with contextlib.ExitStack() as stack:
        cache = ResponseCache(path) if path is not None else None
        if cache is not None:
            stack.callback(cache.close)
        base_url, model = _endpoint(config, run_dir, stack, embeddings=embeddings)
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
    config: ServingConfig, run_dir: Path | None, stack: contextlib.ExitStack, *, embeddings: bool
) -> tuple[str, str]:
    """Base URL and model name to talk to, starting a local server on ``stack`` if needed."""
    if config.backend == "openai":
        missing = [k for k in ("base_url", "model") if not getattr(config, k)]
        if missing:
            raise ConfigError(f"serving: backend openai needs {' and '.join(missing)}")
        return str(config.base_url), str(config.model)
    if config.backend == "test":
        from prepflow.serving.testing import ScriptedServer

        options = dict(config.launch)
        if isinstance(options.get("responder"), str):
            options["responder"] = _import_object(options["responder"])
        try:
            server = ScriptedServer(**options, model=config.model or "test-model")
        except TypeError as e:
            raise ConfigError(f"serving.launch for backend test: {e}") from None
        stack.enter_context(server)
        return server.url, server.model
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
    server = stack.enter_context(launch(config.backend, config.model, run_dir=run_dir, **options))
    return server.base_url, server.model


def _import_object(spec: str) -> Any:
    module, sep, name = spec.partition(":")
    if not sep:
        raise ConfigError(f"serving.launch.responder must be 'module:function', got {spec!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"serving.launch.responder {spec!r}: {e}") from None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prepflow.serving' has no attribute {name!r}")


__all__ = [*_LAZY, "ServingConfig", "client_concurrency", "client_timeout", "open_serving"]
