"""open_serving: backends, the run-directory cache, the launcher hand-off, config validation."""

from __future__ import annotations

import asyncio
import contextlib
import types
from pathlib import Path

import pytest
from pydantic import ValidationError

from prepflow.core.errors import ConfigError
from prepflow.serving import ServingConfig, client_concurrency, client_timeout, open_serving
from prepflow.serving.config import DEFAULT_CONCURRENCY
from prepflow.testing import ScriptedServer

from .test_client import ask


def shout(req) -> str:
    return req.prompt.upper()


def chat_once(config: ServingConfig, **kwargs) -> tuple[str, dict]:
    async def main():
        async with open_serving(config, **kwargs) as serving:
            resp = await serving.chat(ask("hello"))
            return resp.text, serving.stats.to_dict()

    return asyncio.run(main())


def test_openai_backend_caches_at_the_cache_path(scripted, tmp_path):
    server = scripted(shout)
    config = ServingConfig(
        backend="openai", base_url=server.url, model="m", generation={"temperature": 0}
    )
    cache = tmp_path / "llm_cache.sqlite"
    assert chat_once(config, cache_path=cache)[0] == "HELLO"
    assert server.received[0].body["temperature"] == 0
    assert cache.is_file()
    text, stats = chat_once(config, cache_path=cache)
    assert (text, stats["requests"], stats["cache_hits"]) == ("HELLO", 0, 1)


def test_no_cache_path_means_no_cache(scripted):
    server = scripted(shout)
    config = ServingConfig(backend="openai", base_url=server.url, model="m")
    chat_once(config)
    chat_once(config)
    assert server.count("hello") == 2


def test_openai_backend_needs_url_and_model():
    with pytest.raises(ConfigError, match=r"^serving: backend openai needs base_url and model$"):
        chat_once(ServingConfig(backend="openai"))


def test_there_is_no_test_backend_in_production_config():
    with pytest.raises(ValueError, match="backend"):
        ServingConfig(backend="test")


def test_local_backends_go_through_the_launcher(monkeypatch, tmp_path):
    calls = []

    @contextlib.contextmanager
    def launch(backend, model, *, log_dir, **options):
        calls.append((backend, model, log_dir, options))
        with ScriptedServer(shout, model="qwen-served") as server:
            yield types.SimpleNamespace(base_url=server.url, model=server.model)

    monkeypatch.setitem(
        __import__("sys").modules,
        "prepflow.serving.launchers",
        types.SimpleNamespace(launch=launch),
    )
    config = ServingConfig(backend="llamacpp", model="qwen2.5-0.5b-instruct", launch={"threads": 2})
    assert chat_once(config, log_dir=tmp_path)[0] == "HELLO"
    assert calls == [("llamacpp", "qwen2.5-0.5b-instruct", tmp_path, {"threads": 2})]


def test_config_validation():
    with pytest.raises(ValidationError, match="backend"):
        ServingConfig(backend="ollama")
    with pytest.raises(ValidationError, match="unknown price keys"):
        ServingConfig(prices={"input": 1.0})
    with pytest.raises(ValidationError, match="extra"):
        ServingConfig(api_key="sk-not-here")
    assert (
        ServingConfig().concurrency == DEFAULT_CONCURRENCY == 256
        and ServingConfig().backend == "llamacpp"
    )


def test_api_key_comes_from_the_named_or_default_environment_variable(monkeypatch):
    monkeypatch.delenv("PREPFLOW_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert ServingConfig().resolve_api_key() == "sk-openai"
    monkeypatch.setenv("PREPFLOW_API_KEY", "sk-prepflow")
    assert ServingConfig().resolve_api_key() == "sk-prepflow"
    monkeypatch.setenv("MY_KEY", "sk-mine")
    assert ServingConfig(api_key_env="MY_KEY").resolve_api_key() == "sk-mine"
    with pytest.raises(
        ConfigError, match=r"^serving.api_key_env: environment variable NOPE_KEY is not set$"
    ):
        ServingConfig(api_key_env="NOPE_KEY").resolve_api_key()


def test_import_prepflow_serving_is_light():
    import subprocess
    import sys

    code = (
        "import sys, prepflow.serving; "
        "print(sorted(m for m in ('aiohttp', 'httpx', 'h11', 'sqlite3') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


def test_launched_server_gets_as_many_requests_as_it_has_slots_unless_told():
    assert client_concurrency(ServingConfig(backend="llamacpp")) == 4  # the launcher's default
    assert client_concurrency(ServingConfig(backend="llamacpp", launch={"n_parallel": 2})) == 2
    assert client_concurrency(ServingConfig(backend="llamacpp", concurrency=9)) == 9
    assert client_concurrency(ServingConfig(backend="vllm")) == 256  # vLLM's own max-num-seqs
    assert client_concurrency(ServingConfig(backend="sglang", launch={"n_parallel": 64})) == 64
    assert client_concurrency(ServingConfig(backend="openai")) == DEFAULT_CONCURRENCY


def test_a_launched_server_is_waited_for_longer_unless_the_timeout_is_set() -> None:
    """A launched server gets no more requests than its slots: a slow answer there is the CPU's
    speed, not a queue, and resending it would only do the work twice."""
    assert client_timeout(ServingConfig(backend="llamacpp")) == 600
    assert client_timeout(ServingConfig(backend="vllm", timeout_s=30)) == 30
    assert client_timeout(ServingConfig(backend="openai")) == 120


def test_lazy_serving_pickles_unopened_with_absolute_paths(tmp_path, monkeypatch):
    """A cluster worker gets the run's serving unopened: same endpoint, cache file and budget,
    none of this process's callbacks, paths that mean the same from another directory."""
    import pickle

    from prepflow.serving import LazyServing, ServingConfig

    monkeypatch.chdir(tmp_path)
    config = ServingConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m")
    serving = LazyServing(config, cache_path=Path("run/llm_cache.sqlite"), max_requests=7)
    serving.on_status = lambda text: None
    twin = pickle.loads(pickle.dumps(serving))
    assert twin.client is None and twin.config == config
    assert twin._args["cache_path"] == tmp_path / "run" / "llm_cache.sqlite"
    assert twin._args["max_requests"] == 7
