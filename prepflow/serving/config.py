"""The ``serving:`` section of a pipeline: which model to reach, how, and at what price."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prepflow.core.errors import ConfigError

#: Environment variables tried, in order, when ``api_key_env`` is not set.
DEFAULT_KEY_ENVS = ("PREPFLOW_API_KEY", "OPENAI_API_KEY")
PRICE_KEYS = frozenset({"input_per_1m", "output_per_1m"})


#: Requests a launched server decodes at once (``launch.n_parallel``) unless told. llama.cpp splits
#: its context and the CPU between its slots; vLLM and SGLang batch up to 256 sequences by default
#: (``--max-num-seqs``, ``--max-running-requests``), and a smaller batch leaves the GPU idle.
SERVER_SLOTS = {"llamacpp": 4, "vllm": 256, "sglang": 256}
#: Requests in flight by default for a server prepflow does not launch (``openai``). Async
#: requests cost the client little; the default fills a batching server's default batch (vLLM,
#: SGLang: 256), and the adaptive limiter halves the cap while a server pushes back (a hosted
#: API's rate limit) or lets requests time out (a small server queueing them).
DEFAULT_CONCURRENCY = 256
#: Seconds to wait for one answer from a server prepflow launches, unless ``timeout_s`` is set.
#: Such a server is sent no more requests than its slots, so an answer is slow only because the
#: machine is (a 768-token solution on 2 CPU cores beside other work can take minutes); the
#: timeout is there to catch a hung server, not to shed load.
LAUNCHED_TIMEOUT_S = 600.0


def server_slots(backend: str, n_parallel: int | None = None) -> int:
    """Requests a launched ``backend`` server decodes at once: ``n_parallel`` when given."""
    return int(n_parallel or SERVER_SLOTS[backend])


class ServingConfig(BaseModel):
    """Where LLM requests go. Local backends (``llamacpp``, ``vllm``, ``sglang``) are launched on
    loopback; ``openai`` reaches any OpenAI-compatible URL; ``test`` starts the scripted test server
    (``launch`` holds its options, e.g. ``{latency: 0.01, responder: "pkg.mod:function"}``).

    API keys are never part of the config: name the environment variable that holds one.
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["llamacpp", "openai", "vllm", "sglang", "test"] = "llamacpp"
    model: str | None = Field(
        None, description="catalog short name, GGUF path, or remote model name"
    )
    base_url: str | None = Field(
        None, description="OpenAI-style base URL (ending in /v1), backend openai"
    )
    api_key_env: str | None = Field(
        None,
        description="environment variable holding the API key; default PREPFLOW_API_KEY, "
        "then OPENAI_API_KEY",
    )
    embedding_model: str | None = Field(None, description="model for embeddings (default: model)")
    concurrency: int = Field(
        DEFAULT_CONCURRENCY,
        ge=1,
        description="most requests in flight at once; the client halves it while the server "
        "pushes back (429/503, timeouts) and grows it back after (a launched server, when not "
        "set: its slots, launch.n_parallel)",
    )
    timeout_s: float = Field(
        120,
        gt=0,
        description="seconds to wait for one answer (a launched server, when not set: 600)",
    )
    max_retries: int = Field(
        5, ge=0, description="retries of a request on 429, 5xx, timeouts, connection errors"
    )
    max_reasks: int = Field(2, ge=0, description="re-asks when an answer is invalid or truncated")
    structured_output: Literal["auto", "response_format", "prompt"] = Field(
        "auto",
        description="how a schema reaches the server: as response_format, as an "
        "instruction in the prompt, or response_format falling back to the prompt",
    )
    generation: dict[str, Any] = Field(
        default_factory=dict,
        description="default generation parameters (temperature, "
        "max_tokens, top_p, seed...), merged under each request's",
    )
    prices: dict[str, float] | None = Field(
        None, description="USD per million tokens: {input_per_1m: .., output_per_1m: ..}"
    )
    launch: dict[str, Any] = Field(
        default_factory=dict,
        description="options for the local launcher (threads, ctx_size, gpu...)",
    )

    @field_validator("prices")
    @classmethod
    def _known_price_keys(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and (unknown := set(v) - PRICE_KEYS):
            raise ValueError(f"unknown price keys {sorted(unknown)}; use {sorted(PRICE_KEYS)}")
        return v

    def resolve_api_key(self) -> str | None:
        """The key from the environment (``None`` when no variable is set and none was named)."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ConfigError(
                    f"serving.api_key_env: environment variable {self.api_key_env} is not set"
                )
            return key
        return next((os.environ[v] for v in DEFAULT_KEY_ENVS if os.environ.get(v)), None)
