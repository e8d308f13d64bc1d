"""Every shipped pipeline on real inputs, with the digest of what it writes.

The digests in ``golden.json`` were recorded with the code before a refactoring; the tests run the
same cases now (with every executor) and compare, so "the same outputs" is checked, not assumed.
Regenerate after an intended change of outputs with ``python -m tests.engine.shipped``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO, shared_data_dir

GOLDEN = Path(__file__).with_name("golden.json")
CORPORA = (
    "fortunes_en",
    "fortunes_zh",
    "jargon_en_entries",
    "kjv_bible_chapters_en",
    "manpages_zh_CN",
    "python_docs_en_paragraphs",
    "debian_reference_en",
    "debian_reference_zh_cn",
)


@dataclass(frozen=True)
class Case:
    pipeline: str
    input: Path
    #: "module:function" of a ChatRequest -> reply responder for the scripted server, if any
    responder: str | None = None

    @property
    def key(self) -> str:
        return f"{self.pipeline}@{self.input.name}"


def cases() -> list[Case]:
    corpora = shared_data_dir() / "corpora"
    return [
        *(Case("text-pretrain-clean", corpora / f"{c}.jsonl") for c in CORPORA),
        Case(
            "text-sft-synth",
            REPO / "examples" / "sft_seeds.jsonl",
            "tests.operators.sft.test_sft_pipeline:responder",
        ),
        Case(
            "text-pretrain-synth",
            REPO / "examples" / "pretrain_docs.jsonl",
            "tests.operators.text.test_synth_pipeline:responder",
        ),
        Case(
            "reasoning-math",
            REPO / "examples" / "math_seeds.jsonl",
            "tests.operators.reasoning.test_pipeline:responder",
        ),
    ]


def digest(path: Path) -> str:
    """sha256 of the output's lines, sorted (row order may differ between executors)."""
    lines = sorted(path.read_bytes().splitlines())
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


def _responder(spec: str) -> Callable[..., Any]:
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run_case(case: Case, workdir: Path, run: Callable[..., Any]) -> str:
    """Run ``case`` with ``run(spec, input=, output=, run_dir=)`` and return the output digest."""
    from prepflow.engine.spec import load_yaml
    from prepflow.testing import ScriptedServer

    out = workdir / f"{case.key}.jsonl"
    spec = load_yaml(case.pipeline)
    kwargs = {"input": case.input, "output": out, "run_dir": workdir / case.key}
    if case.responder is None:
        run(spec, **kwargs)
        return digest(out)
    with ScriptedServer(_responder(case.responder)) as server:
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        run(spec, **kwargs)
    return digest(out)


def main() -> None:
    import tempfile

    from prepflow.engine.runner import run_pipeline

    def run(spec: Any, **kwargs: Any) -> Any:
        return run_pipeline(spec, progress=False, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        golden = {c.key: run_case(c, Path(tmp), run) for c in cases()}
    GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(golden)} digests to {GOLDEN}")


if __name__ == "__main__":
    main()
