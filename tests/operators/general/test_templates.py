"""`prepflow init` scaffolding: the files it writes, refusal to overwrite, and that the scaffolded
operator registers and filters, its own test passes, and the pipeline runs on the sample."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from prepflow.core import registry
from prepflow.core.errors import ConfigError
from prepflow.engine.compiler import import_user_modules
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.templates import scaffold

OP = "MyCorpusBlocklistFilter"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "proj"
    yield target
    registry.unregister(OP)


def test_writes_the_starter_files(project: Path) -> None:
    written = scaffold(project, "my-corpus")
    assert [p.name for p in written] == [
        "pipeline.yaml",
        "my_corpus_ops.py",
        "test_my_corpus_ops.py",
        "sample.jsonl",
    ]
    assert all(p.parent == project and p.is_file() for p in written)
    spec = load_yaml(project / "pipeline.yaml")
    assert spec.name == "my-corpus"
    assert spec.imports == ["my_corpus_ops.py"]
    assert [s.op for s in spec.steps] == ["ExpressionFilter", OP, "ExactDedup", "SelectColumns"]


def test_scaffolded_operator_registers_and_filters(project: Path) -> None:
    scaffold(project, "my-corpus")
    import_user_modules(["my_corpus_ops.py"], project)
    cls = registry.get(OP)
    assert Path(inspect.getfile(cls)) == project / "my_corpus_ops.py"
    assert registry.info(OP)["summary"] == (
        "Drop rows whose text contains a blocked word or phrase (case-insensitive)."
    )
    batch = pa.Table.from_batches(
        pa.table(
            {
                "_id": pa.array([0, 1, 2, 3, 4], pa.int64()),
                "body": ["Buy CHEAP pills", "fine text", None, "这是广告", "cheap and 广告"],
            }
        ).to_batches(max_chunksize=2)
    )
    result = cls(words=["cheap", "广告"]).bind({"text": "body"}).run_batch(batch)
    assert result.kept["_id"].to_pylist() == [1, 2]
    assert result.dropped.select(["_id", "_reason"]).to_pylist() == [
        {"_id": 0, "_reason": "contains 'cheap'"},
        {"_id": 3, "_reason": "contains '广告'"},
        {"_id": 4, "_reason": "contains 'cheap'"},
    ]
    with pytest.raises(ConfigError, match="words"):
        cls(words=[])


def test_scaffolded_test_passes(project: Path) -> None:
    scaffold(project, "my-corpus")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_scaffolded_pipeline_runs_on_the_sample(project: Path) -> None:
    scaffold(project, "my-corpus")
    out = project / "out.jsonl"
    report = run_pipeline(
        load_yaml(project / "pipeline.yaml"),
        input=project / "sample.jsonl",
        output=out,
        run_dir=project / "run",
        progress=False,
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"text": "The quick brown fox jumps over the lazy dog.", "lang": "en"},
        {"text": "今天天气很好，我们去公园散步吧。", "lang": "zh"},  # noqa: RUF001
        {"text": "Data preparation decides what a model learns.", "lang": "en"},
    ]
    assert [(s["dropped"], s["drop_reasons"]) for s in report.steps] == [
        (2, {"expr false: len(strip(text)) >= 10": 2}),  # grouped by rule, threshold kept
        (2, {"contains 'cheap pills'": 1, "contains '广告'": 1}),
        (1, {"duplicate of _id N": 1}),
        (0, {}),
    ]


def test_refuses_to_overwrite_and_writes_nothing(project: Path) -> None:
    project.mkdir()
    (project / "sample.jsonl").write_text("mine\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"refusing to overwrite existing file\(s\): .*sample.jsonl"
    ):
        scaffold(project, "my-corpus")
    assert sorted(p.name for p in project.iterdir()) == ["sample.jsonl"]
    assert (project / "sample.jsonl").read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize("name", ["", "1abc", "my corpus", "a/b", "名字"])
def test_rejects_names_that_cannot_become_modules(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="project name"):
        scaffold(tmp_path, name)
    assert list(tmp_path.iterdir()) == []
