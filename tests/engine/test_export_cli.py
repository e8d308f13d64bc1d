"""Exports through the CLI: `prepflow export` of a finished run, and `run --format`."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from tests.helpers import prepflow

PIPELINE = "name: qa\nsteps:\n  - {op: ExpressionFilter, params: {expr: \"answer != ''\"}}\n"


def setup(tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(8)]
    rows.append({"question": "unanswered", "answer": ""})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


@pytest.mark.slow
def test_export_of_a_finished_run_in_every_format(tmp_path: Path):
    work = setup(tmp_path)
    assert (
        prepflow("run", "p.yaml", "--input", "in.jsonl", "--output", "o.jsonl", cwd=work).returncode
        == 0
    )
    done = prepflow("export", "runs/qa", "--format", "alpaca", "--output", "a.jsonl", cwd=work)
    assert done.returncode == 0, done.stderr
    first = json.loads((work / "a.jsonl").read_text().splitlines()[0])
    assert first == {"instruction": "What is 0 + 0?", "input": "", "output": "0"}
    assert prepflow("export", "runs/qa", "-f", "hf", "-o", "ds", cwd=work).returncode == 0
    assert datasets.load_from_disk(str(work / "ds"))[0]["messages"][1]["content"] == "0"
    again = prepflow("export", "runs/qa", "--format", "alpaca", "--output", "a.jsonl", cwd=work)
    assert again.returncode == 2 and "exports never overwrite" in again.stderr
    mapped = prepflow(
        "export", "runs/qa", "-f", "chat", "-o", "c.jsonl", "--map", "output=question", cwd=work
    )
    assert mapped.returncode == 0, mapped.stderr


@pytest.mark.slow
def test_run_with_a_fine_tuning_format_replaces_only_its_own_output(tmp_path: Path):
    work = setup(tmp_path)
    args = ["run", "p.yaml", "--input", "in.jsonl", "--output", "lf", "--format", "llamafactory"]
    for _ in range(2):  # the second run replaces the directory it wrote
        done = prepflow(*args, cwd=work)
        assert done.returncode == 0, done.stderr
    info = json.loads((work / "lf" / "dataset_info.json").read_text())
    assert info["qa"]["file_name"] == "qa.json"
    assert len(json.loads((work / "lf" / "qa.json").read_text())) == 8
    (work / "theirs.jsonl").write_text("not prepflow's\n")
    done = prepflow("run", "p.yaml", "--input", "in.jsonl", "--output", "theirs.jsonl",
                    "--format", "alpaca", "--run-dir", "r2", cwd=work)  # fmt: skip
    assert done.returncode == 2 and (work / "theirs.jsonl").read_text() == "not prepflow's\n"
