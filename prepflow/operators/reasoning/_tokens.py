"""Offline token counts from bpe-openai's Rust tokenizer.

``import bpe_openai`` decodes three 100k-token vocabularies in Python for its tiktoken-compatible
wrapper: 0.7 s of CPU in every process that counts tokens. The Rust extension beneath it embeds
the same encodings and is ready in 30 ms, so it is loaded on its own. (The wrapper's other
encodings, gpt2 and p50k, download their vocabularies, which prepflow never does.)
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

_BINDINGS = "bpe_openai._bindings"


def _rust_bindings() -> ModuleType:
    if _BINDINGS in sys.modules:
        return sys.modules[_BINDINGS]
    package = importlib.util.find_spec("bpe_openai")
    if package is None:
        raise ModuleNotFoundError("bpe-openai is not installed: pip install 'prepflow[math]'")
    for folder in package.submodule_search_locations or ():
        for path in sorted(Path(folder).glob("_bindings*.so")):
            spec = importlib.util.spec_from_file_location(_BINDINGS, path)
            if spec and spec.loader:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[_BINDINGS] = module  # the extension initialises once per process
                return module
    raise ModuleNotFoundError(f"{_BINDINGS}: no Rust extension in {package.origin}")


@cache
def token_counter(encoding: str) -> Callable[[str], int]:
    """A function giving the number of tokens of a text in ``encoding``: ``cl100k_base``,
    ``o200k_base`` or ``voyage3_base``. Raises ValueError for any other name."""
    bindings = _rust_bindings()
    offline = bindings.supported_encodings()
    if encoding not in offline:
        raise ValueError(f"unknown encoding {encoding!r}; offline encodings: {', '.join(offline)}")
    return bindings.tokenizer_for_encoding(encoding).count
