"""The ``serving:`` section of a pipeline: which model to reach, how, and at what price."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

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


#: Query parameters that carry credentials (``?api-key=...``): sent, never stored or shown.
SECRET_QUERY_KEYS = frozenset(
    {"api-key", "api_key", "apikey", "key", "token", "access_token", "auth", "password",
     "secret", "sig", "signature", "code"}
)  # fmt: skip
REDACTED = "***"


@dataclass(frozen=True)
class UrlCredentials:
    """What a base URL carried besides its address: sent the way the server expects (the user
    and password as HTTP Basic auth, secret query parameters as query parameters)."""

    user: str | None = None
    password: str | None = None
    query: dict[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """The secret values, for scrubbing them from any text."""
        return [v for v in (self.password, *self.query.values()) if v]


def split_url_credentials(url: str) -> tuple[str, UrlCredentials]:
    """``url`` without its user:password and secret query parameters, and those apart."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    secret = {k: v for k, v in pairs if k.lower() in SECRET_QUERY_KEYS}
    kept = [(k, v) for k, v in pairs if k.lower() not in SECRET_QUERY_KEYS]
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, urllib.parse.urlencode(kept), parts.fragment)
    )
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return clean, UrlCredentials(user, password, secret)


def redact_url(url: str) -> str:
    """``url`` safe to store or print: user:password and secret query values replaced."""
    clean, creds = split_url_credentials(url)
    if not (creds.user or creds.password or creds.query):
        return url
    parts = urllib.parse.urlsplit(clean)
    netloc = f"{REDACTED}@{parts.netloc}" if creds.user or creds.password else parts.netloc
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, REDACTED) for k in creds.query]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, urllib.parse.urlencode(query, safe="*"), parts.fragment)
    )


def redacted_serving(serving: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pipeline's ``serving:`` section safe to store (``base_url`` credentials redacted)."""
    if not serving or not isinstance(serving.get("base_url"), str):
        return serving
    return {**serving, "base_url": redact_url(serving["base_url"])}


def server_slots(backend: str, n_parallel: int | None = None) -> int:
    """Requests a launched ``backend`` server decodes at once: ``n_parallel`` when given."""
    return int(n_parallel or SERVER_SLOTS[backend])


class ServingConfig(BaseModel):
    """Where LLM requests go. Local backends (``llamacpp``, ``vllm``, ``sglang``) are launched on
    loopback; ``openai`` reaches any OpenAI-compatible URL.

    API keys are never part of the config: name the environment variable that holds one.
    Credentials inside ``base_url`` (``https://user:key@host/v1``, ``?api-key=...``) are taken
    out of it when the config is read: ``base_url`` is then the bare address, safe to store and
    show, and :attr:`url_credentials` go to the server with each request.
    """

    model_config = ConfigDict(extra="forbid")
    _url_credentials: UrlCredentials = PrivateAttr(default_factory=UrlCredentials)

    backend: Literal["llamacpp", "openai", "vllm", "sglang"] = "llamacpp"
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

    @model_validator(mode="after")
    def _take_credentials_out_of_the_url(self) -> ServingConfig:
        if self.base_url:
            if REDACTED in self.base_url:
                raise ValueError(
                    f"base_url {self.base_url!r} had credentials, which prepflow never stores: "
                    "pass the full URL again (--base-url)"
                )
            self.base_url, self._url_credentials = split_url_credentials(self.base_url)
        return self

    @property
    def url_credentials(self) -> UrlCredentials:
        return self._url_credentials

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
