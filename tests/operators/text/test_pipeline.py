"""The shipped `text-pretrain-clean` pipeline: it loads, names real operators, and runs."""

import json
import subprocess
import sys
from itertools import islice

from prepflow.core.registry import registry
from prepflow.engine.spec import load_yaml


def test_every_step_is_a_registered_operator_with_valid_params():
    spec = load_yaml("text-pretrain-clean")
    assert spec.serving is None  # CPU only, no LLM
    for step in spec.steps:
        op = registry.get(step.op)(**step.params).bind(step.bindings)
        assert op.check() == [], step.name
        assert not op.requires.llm
    names = [s.op for s in spec.steps]
    assert names.index("LanguageId") + 1 == names.index("LanguageFilter")
    assert names[-3:] == ["TextExactDedup", "MinHashDedup", "PiiRedactor"]


def test_the_shipped_lsh_bands_are_the_derived_optimum():
    """The pipeline spells out bands/rows to skip the search; they must be what it would find."""
    from prepflow.operators.common.minhash import optimal_bands

    step = next(s for s in load_yaml("text-pretrain-clean").steps if s.op == "MinHashDedup")
    p = registry.get("MinHashDedup")(**step.params).params
    derived = optimal_bands(p.threshold, p.num_perm, p.false_negative_weight)
    assert (p.bands, p.rows) == derived


def test_runs_on_real_corpora_and_accounts_for_every_row(shared_data, tmp_path):
    """The CLI run, in a process of its own: it also never imports pandas (0.25 s and 30 MB that
    ``pa.array``, ``pa.scalar`` and ``to_numpy`` would spend on every run)."""
    rows = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            rows += [json.loads(line) for line in islice(f, 40)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "prepflow.cli", "run", "text-pretrain-clean",
         "-i", str(src), "-o", str(out), "--run-dir", str(tmp_path / "run"), "--workers", "1",
         "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "pyarrow.compute" in imported and "pandas" not in imported
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    steps = report["steps"]
    assert steps[0]["rows_in"] == len(rows)
    for step in steps:
        assert step["rows_in"] == step["kept"] + step["dropped"] + step["failed"], step
        assert step["failed"] == 0, step
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(kept) == steps[-1]["kept"] > 0
    assert {r["lang"] for r in kept} <= {"en", "zh"}
    assert all("pii_counts" in r for r in kept)
