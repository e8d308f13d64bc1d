"""Knowledge QA and multi-hop RAG on the embedded model: QA pairs per minute, the share of pairs
passing each check, and retrieval recall@5 of the multi-hop questions' evidence.

The inputs are the real test documents (tests/data/documents: English and Chinese PDF, HTML,
DOCX, EPUB, Markdown, text). Both shipped pipelines run as they ship on the embedded llama.cpp
server (``--model``, default the 1.5B), on a sample of the chunks so that a run takes minutes:

* knowledge-qa, keeping every ``--every``-th chunk of each document after chunking: pairs
  generated per minute of the QA step, and how many pass EvidenceSupportFilter and then
  ClosedBookFilter;
* rag-multihop with the same seeds, up to the single-chunk check, with ``RetrievalRecall`` (k=5)
  right after the question generator: does a BM25 search for each generated question find its
  evidence chunks.

    .venv/bin/python benchmarks/documents_qa.py [--every 5] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from prepflow.data import shardfile
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import StepSpec, load_yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "tests" / "data" / "documents"


def serving(model: str) -> dict:
    return {"backend": "llamacpp", "model": model, "generation": {"temperature": 0}}


def step_table(rep) -> dict[str, dict]:
    return {s["name"]: s for s in rep.steps}


def knowledge_qa(tmp: Path, model: str, every: int) -> None:
    spec = load_yaml("knowledge-qa")
    spec.serving = serving(model)
    at = next(i for i, s in enumerate(spec.steps) if s.name == "chunk") + 1
    keep = StepSpec("ExpressionFilter", "bench_sample", {"expr": f"chunk_index % {every} == 0"})
    spec.steps.insert(at, keep)
    rep = run_pipeline(
        spec,
        input=DOCS,
        output=tmp / "qa.jsonl",
        run_dir=tmp / "qa-run",
        progress=False,
        max_failure_rate=1.0,
    )
    s = step_table(rep)
    qa = s["qa"]
    pairs = qa["rows_out"]
    print(
        f"\nknowledge-qa on {model}: {s['bench_sample']['kept']} of {s['chunk']['rows_out']} chunks"
    )
    print(
        f"- QA step: {qa['kept']} chunks -> {pairs} pairs ({qa['failed']} chunks failed) in "
        f"{qa['seconds']:.0f} s = {pairs / qa['seconds'] * 60:.1f} pairs/min"
    )
    grounded, closed = s["grounded"], s["closed_book"]
    print(
        f"- EvidenceSupportFilter: {grounded['kept']}/{grounded['rows_in']} pass "
        f"({grounded['kept'] / max(1, grounded['rows_in']):.0%}); drops {grounded['drop_reasons']}"
    )
    print(
        f"- ClosedBookFilter: {closed['kept']}/{closed['rows_in']} pass "
        f"({closed['kept'] / max(1, closed['rows_in']):.0%}); drops {closed['drop_reasons']}; "
        f"{closed['failed']} failed"
    )
    print(f"- kept overall: {closed['kept']}/{pairs} ({closed['kept'] / max(1, pairs):.0%})")
    print(f"- LLM usage: {json.dumps(rep.llm)}")


def multihop_recall(tmp: Path, model: str, every: int) -> None:
    spec = load_yaml("rag-multihop")
    spec.serving = serving(model)
    spec.steps = spec.steps[: next(i for i, s in enumerate(spec.steps) if s.name == "trajectory")]
    at = next(i for i, s in enumerate(spec.steps) if s.name == "multihop") + 1
    recall = StepSpec("RetrievalRecall", "recall", {"index_dir": str(tmp / "index"), "k": 5})
    spec.steps.insert(at, recall)
    overrides = [f"{name}.index_dir={tmp / 'index'}" for name in ("index", "multihop")]
    overrides.append(f"seeds.expr=chunk_index % {every} == 0")
    rep = run_pipeline(
        spec,
        input=DOCS,
        output=tmp / "multihop.jsonl",
        run_dir=tmp / "mh-run",
        overrides=overrides,
        progress=False,
        max_failure_rate=1.0,
    )
    s = step_table(rep)
    shards = sorted((tmp / "mh-run" / "steps").glob("*-recall/*.arrow"))
    recalls = [v for f in shards for v in shardfile.read(f).column("recall_at_k").to_pylist()]
    recalls = [v for v in recalls if v is not None]
    mh = s["multihop"]
    print(f"\nrag-multihop on {model}: {s['seeds']['kept']} seed chunks of {s['index']['rows_in']}")
    print(
        f"- MultiHopQuestionGenerator: {mh['rows_out']} questions, {mh['failed']} failed, "
        f"{mh['seconds']:.0f} s"
    )
    print(
        f"- EvidenceSupportFilter: {s['grounded']['kept']}/{s['grounded']['rows_in']} pass; "
        f"SingleChunkFilter: {s['needs_hops']['kept']}/{s['needs_hops']['rows_in']} pass"
    )
    if recalls:
        full = sum(1 for r in recalls if r == 1.0)
        print(
            f"- recall@5 (BM25, question -> evidence chunks) over {len(recalls)} generated questions: "
            f"mean {sum(recalls) / len(recalls):.2f}, all evidence found for {full}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=5, help="use every n-th chunk of a document")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        knowledge_qa(Path(tmp), args.model, args.every)
        multihop_recall(Path(tmp), args.model, args.every)


if __name__ == "__main__":
    main()
