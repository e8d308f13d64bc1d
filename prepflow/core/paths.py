"""Where prepflow keeps what it can rebuild: one cache root for models and compiled code."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path

from platformdirs import user_cache_dir


def cache_root() -> Path:
    """``$PREPFLOW_CACHE_DIR`` when set, else the platform's user cache directory."""
    return Path(os.environ.get("PREPFLOW_CACHE_DIR") or user_cache_dir("prepflow"))


def rebuildable(
    name: str, inputs: Iterable[bytes], build: Callable[[], bytes], suffix: str = ""
) -> bytes:
    """``build()``'s bytes, kept in ``<cache root>/<name>-<digest><suffix>`` between processes, the
    digest that of ``inputs`` (what the bytes depend on, e.g. the sources that make them), so a
    changed input is rebuilt and never read stale. Written whole, then renamed, so a reader
    never sees half a file; a cache that cannot be written is rebuilt next time."""
    digest = hashlib.sha256()
    for part in inputs:
        digest.update(part)
    path = cache_root() / f"{name}-{digest.hexdigest()[:16]}{suffix}"
    with suppress(OSError):
        return path.read_bytes()
    data = build()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            tmp.unlink()
    return data
