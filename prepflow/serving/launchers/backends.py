"""Command lines for each local server backend, and the checks that must pass before starting one.

llama.cpp runs through the ``xllamacpp`` wheel (its C++ OpenAI-compatible server inside a small
Python process, see ``llamacpp_server.py``); vLLM and SGLang run their own OpenAI-compatible
entry points. Each builder returns the argv to supervise and the model name to send in requests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prepflow.core.errors import ConfigError
from prepflow.serving.config import server_slots
from prepflow.serving.launchers.process import LaunchError

LLAMACPP_SERVER = Path(__file__).with_name("llamacpp_server.py")


class LaunchOptions(BaseModel):
    """Server settings (a pipeline's ``serving.launch``); ``threads``/``gpu_layers``: llamacpp only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int | None = Field(None, ge=1, description="CPU threads; default: physical cores")
    ctx_size: int = Field(4096, ge=16, description="context tokens (prompt + output) per request")
    n_parallel: int | None = Field(
        None,
        ge=1,
        description="requests decoded together (server slots); default 4 (llamacpp), 256 (GPU)",
    )
    gpu_layers: int | None = Field(None, description="layers offloaded to a GPU (llamacpp)")
    embeddings: bool = Field(
        False,
        description="also serve /embeddings (last-token pooling; llamacpp); set by the engine "
        "when a step needs embeddings",
    )
    extra_args: tuple[str, ...] = Field(
        (),
        description="more server arguments: CLI flags (vllm, sglang), NAME=VALUE CommonParams "
        "fields (llamacpp)",
    )
    ready_timeout: float | None = Field(
        None, gt=0, description="seconds allowed for loading; default 300 (llamacpp), 900 (GPU)"
    )


@dataclass(frozen=True)
class ServerCommand:
    argv: list[str]
    model: str  # the name requests must carry
    ready_timeout: float  # seconds a healthy start may take
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment


#: How llama.cpp's OpenMP threads wait at each of their many barriers per token. Spinning without
#: end (libgomp's default) collapses generation when anything else wants the same cores, as
#: prepflow's own CPU steps do: 3 vs 30 tokens/s on 2 busy cores. Sleeping at once (PASSIVE) never
#: collapses but costs a quarter of the idle speed. A short spin, then sleep, keeps both: 4 slots,
#: qwen2.5-coder-0.5b, 2 cores: 36-39 tokens/s idle (PASSIVE 30) and 20 beside a busy process
#: (PASSIVE 21-22; 3,000 spins: 16; 10,000: 10). A user who sets either variable keeps their own.
OMP_DEFAULTS = {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "1000"}


#: llama.cpp's ``LLAMA_POOLING_TYPE_LAST``: a text's vector is its last token's hidden state, which
#: in a causal chat model has seen the whole text. On 8 paraphrase pairs against 14 unrelated
#: texts each, the paraphrase ranked closer 100% of the time with smollm2-135m (64% mean-pooled)
#: and 73% with qwen2.5-coder-0.5b (72% mean-pooled): good enough to spread a selection, not a
#: retrieval model (use ``serving.embedding_model`` on a hosted endpoint for that).
LLAMA_POOLING_LAST = 3


def default_threads() -> int:
    """Physical cores, capped by the CPUs this process may use (taskset, cgroup cpusets)."""
    import psutil

    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else physical
    return max(1, min(physical, allowed))


def llamacpp_command(model: str | None, port: int, opts: LaunchOptions) -> ServerCommand:
    """The embedded llama.cpp server on a catalog model (None: the default) or a local GGUF file.

    ``extra_args`` are ``NAME=VALUE`` assignments to xllamacpp ``CommonParams`` fields (dotted for
    nested ones, VALUE parsed as JSON when it is JSON), e.g. ``sampling.top_k=20``.
    """
    _require_package("xllamacpp", "llamacpp")
    from prepflow.serving.catalog import CATALOG, DEFAULT_MODEL, resolve_model

    path = resolve_model(model)
    name = model or DEFAULT_MODEL
    if name not in CATALOG:  # a local file: requests name it by its stem
        name = path.stem
    threads = opts.threads or default_threads()
    slots = server_slots("llamacpp", opts.n_parallel)
    params: dict[str, object] = {
        "model.path": str(path),
        "model_alias": [name],
        "hostnames": ["127.0.0.1"],
        "port": port,
        "n_parallel": slots,
        "n_ctx": opts.ctx_size * slots,  # split evenly between the slots
        "cpuparams.n_threads": threads,
        "cpuparams_batch.n_threads": threads,
    }
    if opts.gpu_layers is not None:
        params["n_gpu_layers"] = opts.gpu_layers
    if opts.embeddings:  # chat keeps working; /embeddings needs a pooling that gives one vector
        params["embedding"] = True
        params["pooling_type"] = LLAMA_POOLING_LAST
    params.update(_assignments(opts.extra_args))
    argv = [sys.executable, str(LLAMACPP_SERVER), json.dumps(params)]
    env = {} if any(k in os.environ for k in OMP_DEFAULTS) else dict(OMP_DEFAULTS)
    return ServerCommand(argv, name, opts.ready_timeout or 300.0, env)


@dataclass(frozen=True)
class _GpuServer:
    """How one GPU engine spells the same settings on its command line."""

    package: str
    module: str
    model_flag: str
    ctx_flag: str
    parallel_flag: str


_GPU_SERVERS = {
    "vllm": _GpuServer("vllm", "vllm.entrypoints.openai.api_server", "--model",
                       "--max-model-len", "--max-num-seqs"),
    "sglang": _GpuServer("sglang", "sglang.launch_server", "--model-path",
                         "--context-length", "--max-running-requests"),
}  # fmt: skip


def gpu_command(backend: str, model: str | None, port: int, opts: LaunchOptions) -> ServerCommand:
    """vLLM or SGLang serving a Hugging Face model id or local model directory on the GPU."""
    spec = _GPU_SERVERS[backend]
    if not model:
        raise ConfigError(
            f"the {backend} backend needs a model: a Hugging Face model id or a local model "
            "directory (e.g. Qwen/Qwen2.5-1.5B-Instruct); the GGUF catalog is for llamacpp"
        )
    for option in ("threads", "gpu_layers"):
        if getattr(opts, option) is not None:
            raise ConfigError(f"serving.launch.{option} applies to the llamacpp backend only")
    _require_package(spec.package, backend)
    _require_gpu(backend)
    argv = [sys.executable, "-m", spec.module, spec.model_flag, model,
            "--host", "127.0.0.1", "--port", str(port), "--served-model-name", model,
            spec.ctx_flag, str(opts.ctx_size),
            spec.parallel_flag, str(server_slots(backend, opts.n_parallel)),
            *opts.extra_args]  # fmt: skip
    return ServerCommand(argv, model, opts.ready_timeout or 900.0)


def _require_package(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LaunchError(
            f"the {extra} backend needs the {module!r} package, which is not installed in "
            f"{sys.prefix}: pip install 'prepflow[{extra}]'"
        )


def _require_gpu(backend: str) -> None:
    """An NVIDIA GPU must be visible: nvidia-smi lists one and CUDA_VISIBLE_DEVICES allows it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        raise LaunchError(f"the {backend} backend needs a GPU; CUDA_VISIBLE_DEVICES={visible!r}")
    smi = shutil.which("nvidia-smi")
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True) if smi else None
    if listed is None or listed.returncode != 0 or "GPU" not in listed.stdout:
        raise LaunchError(
            f"the {backend} backend needs an NVIDIA GPU and none is visible "
            f"({'nvidia-smi is not installed' if smi is None else 'nvidia-smi -L lists none'}); "
            "use the llamacpp backend on CPU"
        )


def _assignments(args: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for arg in args:
        key, sep, raw = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"serving.launch.extra_args: {arg!r} is not NAME=VALUE (llamacpp)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
