"""DataFlow's side of benchmarks/reasoning_math.py (runs in DataFlow's own virtualenv).

Runs DataFlow's shipped ``ReasoningMath_APIPipeline`` (statics/pipelines/api_pipelines/
reasoning_math_pipeline.py, open-dataflow 1.0.13): its own ``__init__`` and ``forward``, all
eleven steps, with three things pointed elsewhere by replacing the names that module looks up:
its storage reads INPUT (fields ``instruction``, ``golden_answer``), its
``APILLMServing_request`` reaches URL (``max_workers`` as shipped, 100, unless ``--workers``),
and its token-length filter loads the Qwen2.5 tokenizer from TOKENIZER_DIR instead of the hub.
The ``dataflow.serving`` package ``__init__`` (every serving backend) is bypassed; the pipeline
module and the client class are DataFlow's own, unmodified.
``random`` is seeded, so the synthesis prompts it draws are the same on every run.

The serving's ``generate_from_input`` is wrapped to count the answers that came back ``None``
or empty (DataFlow's client returns ``None`` when a request fails after its retries; the
question filter then drops the row, other steps keep a row without the output or crash).

Prints one JSON line: timings (import, pipeline set-up, forward), rows per step, None answers.

Usage: python reasoning_math_dataflow.py INPUT.jsonl WORK_DIR URL TOKENIZER_DIR [--workers N]
"""

import argparse
import json
import os
import random
import time
from pathlib import Path

t0 = time.perf_counter()
os.environ.setdefault("DF_API_KEY", "unused")  # the client refuses to start without a key


def _serving_package() -> None:
    """``dataflow.serving`` holding only ``APILLMServing_request``: the package ``__init__``
    imports every backend (vLLM, audio, Vertex AI...), whose dependencies are not installed."""
    import importlib
    import importlib.util
    import sys
    import types

    root = Path(importlib.util.find_spec("dataflow").submodule_search_locations[0])
    pkg = types.ModuleType("dataflow.serving")
    pkg.__path__ = [str(root / "serving")]
    sys.modules["dataflow.serving"] = pkg
    module = importlib.import_module("dataflow.serving.api_llm_serving_request")
    pkg.APILLMServing_request = module.APILLMServing_request


_serving_package()
import dataflow.statics.pipelines.api_pipelines.reasoning_math_pipeline as shipped  # noqa: E402
from dataflow.operators.reasoning import ReasoningAnswerTokenLengthFilter  # noqa: E402
from dataflow.serving import APILLMServing_request  # noqa: E402
from dataflow.utils.storage import FileStorage  # noqa: E402

IMPORT_S = time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("input", "work", "url", "tokenizer_dir"):
        ap.add_argument(name)
    ap.add_argument("--workers", type=int, default=0, help="max_workers (0: as shipped)")
    args = ap.parse_args()
    counts = {"calls": 0, "answers": 0, "none_outputs": 0}
    servings = []

    def serving(**kw):
        kw.update(api_url=args.url + "/chat/completions", model_name="test-model")
        if args.workers:
            kw["max_workers"] = args.workers
        s = APILLMServing_request(**kw)
        generate = s.generate_from_input

        def counted(*a, **k):
            out = generate(*a, **k)
            counts["calls"] += 1
            counts["answers"] += len(out)
            counts["none_outputs"] += sum(o is None or not str(o).strip() for o in out)
            return out

        s.generate_from_input = counted
        servings.append(s)
        return s

    def storage(**kw):
        return FileStorage(
            first_entry_file_name=args.input,
            cache_path=args.work,
            file_name_prefix="step",
            cache_type="jsonl",
        )

    def length_filter(**kw):
        return ReasoningAnswerTokenLengthFilter(**{**kw, "tokenizer_dir": args.tokenizer_dir})

    shipped.APILLMServing_request = serving
    shipped.FileStorage = storage
    shipped.ReasoningAnswerTokenLengthFilter = length_filter
    random.seed(0)

    t1 = time.perf_counter()
    pipeline = shipped.ReasoningMath_APIPipeline()
    t2 = time.perf_counter()
    error = None
    try:
        pipeline.forward()
    except Exception as e:  # a None answer can crash a step: report it with what was done
        error = f"{type(e).__name__}: {e}"
    t3 = time.perf_counter()

    def lines(path: Path) -> int:
        return sum(1 for line in path.open() if line.strip())

    steps = sorted(Path(args.work).glob("step_step*.jsonl"), key=lambda p: int(p.stem[9:]))
    per_step = [lines(p) for p in steps]
    print(
        json.dumps(
            {
                "import_s": IMPORT_S,
                "init_s": t2 - t1,
                "forward_s": t3 - t2,
                "workers": servings[0].max_workers,
                "rows_in": lines(Path(args.input)),
                "rows_per_step": per_step,
                "rows_out": per_step[-1] if per_step and error is None else 0,
                **counts,
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    main()
