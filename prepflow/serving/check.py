"""Is the serving a pipeline names usable, before anything is spent? Problems, one line each.

Checks the ``serving:`` section against its model (``ServingConfig``), that the backend's package
is installed (with the install command), that a local model is a catalog name or an existing GGUF
file, and, for an OpenAI-compatible URL when ``reach`` is set, that the server answers and serves
the model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prepflow.serving.catalog import CATALOG
from prepflow.serving.config import ServingConfig, redact_url

REACH_TIMEOUT_S = 5.0
_BACKEND_PACKAGES = {"llamacpp": ("xllamacpp", "llamacpp"), "vllm": ("vllm", "vllm"),
                     "sglang": ("sglang", "sglang")}  # fmt: skip


def serving_problems(serving: dict[str, Any] | None, *, reach: bool = False) -> list[str]:
    try:
        config = ServingConfig.model_validate(serving or {})
    except ValidationError as e:
        return [f"serving.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
    problems: list[str] = []
    if config.backend in _BACKEND_PACKAGES:
        module, extra = _BACKEND_PACKAGES[config.backend]
        if importlib.util.find_spec(module) is None:
            problems.append(
                f"serving.backend {config.backend}: needs the {module} package: "
                f"pip install 'prepflow[{extra}]'"
            )
    if config.backend == "llamacpp" and config.model and config.model not in CATALOG:
        path = Path(config.model).expanduser()
        if not path.is_file():
            problems.append(
                f"serving.model {config.model!r} is neither a catalog model "
                f"({', '.join(CATALOG)}) nor an existing .gguf file"
            )
    if config.backend == "openai":
        missing = [k for k in ("base_url", "model") if not getattr(config, k)]
        if missing:
            problems.append(f"serving: backend openai needs {' and '.join(missing)}")
        elif reach:
            problems += _reach(config)
    return problems


def _reach(config: ServingConfig) -> list[str]:
    """GET /models once: is the server there, does it take the key, does it serve the model?"""
    import httpx

    url = f"{str(config.base_url).rstrip('/')}/models"
    creds = config.url_credentials
    headers = {}
    try:
        key = config.resolve_api_key()
    except Exception as e:  # a named key variable that is not set
        return [str(e)]
    if key and not (creds.user or creds.password):
        headers["Authorization"] = f"Bearer {key}"
    auth = (creds.user or "", creds.password or "") if creds.user or creds.password else None
    shown = redact_url(str(config.base_url))
    try:
        with httpx.Client(timeout=REACH_TIMEOUT_S, trust_env=False) as client:
            r = client.get(url, params=creds.query or None, headers=headers, auth=auth)
    except httpx.HTTPError as e:
        return [f"serving.base_url {shown}: cannot reach the server ({type(e).__name__})"]
    if r.status_code in (401, 403):
        return [f"serving.base_url {shown}: the server refused the API key (HTTP {r.status_code})"]
    if r.status_code != 200:
        return []  # not every server lists models; requests will tell
    try:
        served = [m["id"] for m in r.json().get("data", [])]
    except (ValueError, AttributeError, KeyError, TypeError):
        return []
    if served and config.model not in served:
        return [
            f"serving.model {config.model!r} is not served by {shown} "
            f"(it serves: {', '.join(served[:8])})"
        ]
    return []
