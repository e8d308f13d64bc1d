"""Where prepflow keeps what it can rebuild: one cache root for models and compiled code."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_root() -> Path:
    """``$PREPFLOW_CACHE_DIR`` when set, else the platform's user cache directory."""
    return Path(os.environ.get("PREPFLOW_CACHE_DIR") or user_cache_dir("prepflow"))
