"""Start a local OpenAI-compatible model server for the length of a run.

    with launch("llamacpp", "smollm2-135m-instruct", log_dir=log_dir) as server:
        client = OpenAIServing(server.base_url, server.model)

``llamacpp`` (the embedded default: CPU, the ``xllamacpp`` wheel, GGUF models from the catalog or a
local path), ``vllm`` and ``sglang`` (GPU, Hugging Face models) all bind 127.0.0.1 on a free port,
log to ``log_dir/<backend>.log``, are waited for until they answer, and are stopped with their
whole process group when the block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationError

from prepflow.core.errors import ConfigError
from prepflow.serving.launchers.backends import LaunchOptions, gpu_command, llamacpp_command
from prepflow.serving.launchers.process import LaunchError, free_port, supervised

Backend = Literal["llamacpp", "vllm", "sglang"]
BACKENDS: tuple[str, ...] = get_args(Backend)
#: The backend used when a pipeline configures no serving at all.
DEFAULT_BACKEND: Backend = "llamacpp"


@dataclass(frozen=True)
class LaunchedServer:
    backend: str
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the model name to send in requests
    log_path: Path
    pid: int


@contextlib.contextmanager
def launch(
    backend: Backend = DEFAULT_BACKEND,
    model: str | None = None,
    *,
    log_dir: Path | None = None,
    **options: Any,
) -> Iterator[LaunchedServer]:
    """Run a local server until the block exits.

    ``model`` None means the catalog default (llamacpp only). ``options`` are the fields of
    :class:`LaunchOptions` (threads, ctx_size, n_parallel, gpu_layers, extra_args, ready_timeout);
    anything else, or a bad value, is a :class:`ConfigError` naming the option.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown serving backend {backend!r}; choose from {', '.join(BACKENDS)}")
    opts = _options(options)
    port = free_port()
    if backend == "llamacpp":
        cmd = llamacpp_command(model, port, opts)
    else:
        cmd = gpu_command(backend, model, port, opts)
    base_url = f"http://127.0.0.1:{port}/v1"
    with contextlib.ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="prepflow-")))
        log_path = Path(log_dir) / f"{backend}.log"
        server = supervised(cmd.argv, log_path=log_path, ready_url=f"{base_url}/models",
                            ready_timeout=cmd.ready_timeout, env=cmd.env)  # fmt: skip
        proc = stack.enter_context(server)
        yield LaunchedServer(backend, base_url, cmd.model, log_path, proc.pid)


def _options(options: dict[str, Any]) -> LaunchOptions:
    try:
        return LaunchOptions(**options)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
        )
        fields = ", ".join(LaunchOptions.model_fields)
        raise ConfigError(f"serving.launch: {problems} (options: {fields})") from None


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "LaunchError",
    "LaunchOptions",
    "LaunchedServer",
    "launch",
]
