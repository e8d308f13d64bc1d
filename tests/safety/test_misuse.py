"""Ordinary mistakes never destroy a user's data: two runs on one directory, --fresh on the wrong
folder, an output over the input or over a directory, a user's folder as run directory."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from prepflow.data import shardfile

from .conftest import cli, commits, slow_pipeline, start, tree_digest, wait_for, write_rows


@pytest.mark.slow
def test_a_second_run_on_a_busy_run_directory_stops_at_once_naming_the_holder(work: Path):
    src = write_rows(work / "in.jsonl", 2000)
    pipeline = slow_pipeline(work / "p.yaml", sleep_s=0.15)
    args = ["run", pipeline, "--input", src, "--shard-rows", "100", "--workers", "1"]
    first = start(*args, "--output", "a.jsonl", "--run-dir", "runs/x", cwd=work)
    wait_for(lambda: (work / "runs/x/lock").exists() and commits(work / "runs/x"), what="lock")
    for extra in (["--output", "b.jsonl"], ["--output", "b.jsonl", "--fresh"]):
        second = cli(*args, *extra, "--run-dir", "runs/x", cwd=work)
        assert second.returncode == 2
        assert f"PID {first.pid}" in second.stderr and "started 20" in second.stderr
        assert "in use by another prepflow process" in second.stderr
    retry = cli("retry", "runs/x", cwd=work)  # no run.json yet or nothing to retry: never a mix
    assert retry.returncode != 0 or "nothing to retry" in retry.stdout
    assert first.wait(120) == 0, first.stderr
    assert not (work / "b.jsonl").exists()
    rows = [json.loads(line) for line in (work / "a.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == [f"ROW {i}" for i in range(2000)]


@pytest.mark.slow
def test_the_lock_dies_with_a_killed_run(work: Path):
    src = write_rows(work / "in.jsonl", 1000)
    pipeline = slow_pipeline(work / "p.yaml", sleep_s=0.2)
    args = ["run", pipeline, "--input", src, "--output", "o.jsonl", "--shard-rows", "100"]
    first = start(*args, cwd=work)
    wait_for(lambda: commits(work / "runs/slow"), what="a commit")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done = cli(*args, cwd=work)  # SIGKILL left nothing stale: the run resumes
    assert done.returncode == 0, done.stderr
    assert len((work / "o.jsonl").read_text().splitlines()) == 1000


def test_fresh_refuses_a_folder_prepflow_did_not_make(work: Path):
    project = work / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('my work')\n")
    (project / "pipeline.yaml").write_text("my own notes\n")
    before = tree_digest(project)
    src = write_rows(work / "in.jsonl", 10)
    done = cli(
        "run", slow_pipeline(work / "p.yaml", 0), "--input", src, "--output", "o.jsonl",
        "--run-dir", project, "--fresh", cwd=work,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refusing to use it as a run directory" in done.stderr and ".prepflow-run" in done.stderr
    assert tree_digest(project) == before
    assert not (work / "o.jsonl").exists()


def test_fresh_deletes_only_what_prepflow_wrote(work: Path):
    src = write_rows(work / "in.jsonl", 300)
    pipeline = slow_pipeline(work / "p.yaml", 0)
    args = ["run", pipeline, "--input", src, "--output", "o.jsonl", "--run-dir", "r"]
    assert cli(*args, cwd=work).returncode == 0
    (work / "r/notes.md").write_text("my notes\n")
    (work / "r/steps/01-tupper/mine.txt").write_text("mine\n")
    assert cli(*args, "--fresh", cwd=work).returncode == 0
    assert (work / "r/notes.md").read_text() == "my notes\n"
    assert (work / "r/steps/01-tupper/mine.txt").read_text() == "mine\n"
    assert len({e.session for e in commits(work / "r")}) == 1  # the journal started over


def test_a_run_directory_with_parquet_shards_of_an_earlier_version_recomputes(work: Path):
    src = write_rows(work / "in.jsonl", 300)
    pipeline = slow_pipeline(work / "p.yaml", 0)
    args = ["run", pipeline, "--input", src, "--output", "o.jsonl", "--run-dir", "r"]
    assert cli(*args, cwd=work).returncode == 0
    expected = (work / "o.jsonl").read_text()
    shards = sorted((work / "r").glob(f"*/*/shard-*{shardfile.SUFFIX}"))
    assert shards
    for path in shards:  # what an earlier prepflow left: the same rows, as Parquet
        pq.write_table(shardfile.read(path), path.with_suffix(".parquet"))
        path.unlink()
    (work / "o.jsonl").unlink()
    assert cli(*args, cwd=work).returncode == 0
    assert (work / "o.jsonl").read_text() == expected
    assert all(path.exists() for path in shards)  # recomputed, not read from the old files
    assert cli(*args, "--fresh", cwd=work).returncode == 0
    assert not list((work / "r").glob("*/*/shard-*.parquet"))  # prepflow's own: cleaned up


@pytest.mark.parametrize(
    "where",
    ["same", "symlink", "glob", "inside-dir", "run-dir-inside", "url-input", "url-output"],
)
def test_an_output_over_the_input_is_refused_before_reading(work: Path, where: str):
    data = work / "data"
    data.mkdir()
    src = write_rows(data / "in.jsonl", 50)
    before = tree_digest(data)
    pipeline = slow_pipeline(work / "p.yaml", 0)
    input_arg, output, run_dir = str(src), str(work / "o.jsonl"), str(work / "r")
    if where == "same":
        output = str(src)
    elif where == "symlink":
        (work / "link.jsonl").symlink_to(src)
        output = str(work / "link.jsonl")
    elif where == "glob":
        input_arg, output = str(data / "*.jsonl"), str(data / "out.jsonl")
    elif where == "url-input":  # the same file, named by a file:// URL (read through fsspec)
        input_arg, output = f"file://{src}", str(src)
    elif where == "url-output":
        output = f"file://{src}"
    elif where == "inside-dir":
        input_arg, output = str(data), str(data / "out.jsonl")
    else:
        input_arg, run_dir = str(data), str(data / "runs")
    done = cli(
        "run", pipeline, "--input", input_arg, "--output", output, "--run-dir", run_dir, cwd=work
    )
    assert done.returncode == 2, done.stdout
    assert "input" in done.stderr and "error:" in done.stderr
    assert tree_digest(data) == before  # nothing written into or over the input
    assert not (work / "r").exists()


@pytest.mark.slow
def test_an_output_over_a_directory_is_refused_and_a_trailing_slash_means_datasets(work: Path):
    src = write_rows(work / "in.jsonl", 20)
    pipeline = slow_pipeline(work / "p.yaml", 0)
    mine = work / "out.jsonl"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine\n")
    done = cli("run", pipeline, "--input", src, "--output", mine, cwd=work)
    assert done.returncode == 2 and "is an existing directory" in done.stderr
    assert (mine / "keep.txt").read_text() == "mine\n"
    for _ in range(2):  # the second run replaces the datasets directory it wrote
        done = cli("run", pipeline, "--input", src, "--output", "ds/", "--run-dir", "r2", cwd=work)
        assert done.returncode == 0, done.stderr
        assert datasets.load_from_disk(str(work / "ds"))["text"][:2] == ["ROW 0", "ROW 1"]
    (work / "ds" / "notes.txt").write_text("mine\n")
    done = cli(
        "run", pipeline, "--input", src, "--output", "ds/", "--run-dir", "r2", "--fresh", cwd=work
    )
    assert done.returncode == 2 and "notes.txt" in done.stderr
    assert (work / "ds" / "notes.txt").exists()


def test_a_users_folder_is_not_taken_as_a_run_directory(work: Path):
    folder = work / "mine"
    folder.mkdir()
    (folder / "pipeline.yaml").write_text("steps: my own\n")
    (folder / "run.json").write_text("{not json")
    before = tree_digest(folder)
    done = cli(
        "run", slow_pipeline(work / "p.yaml", 0), "--input", write_rows(work / "i.jsonl", 5),
        "--output", "o.jsonl", "--run-dir", folder, cwd=work,
    )  # fmt: skip
    assert done.returncode == 2 and "refusing to use it as a run directory" in done.stderr
    assert "Traceback" not in done.stderr
    assert tree_digest(folder) == before


def test_stale_temporary_files_are_removed_and_never_read_as_data(work: Path):
    src = write_rows(work / "in.jsonl", 30)
    stale = work / ".o.jsonl.0123456789ab.tmp"  # what a kill during the output write leaves
    stale.write_text('{"text": "half a row')
    other = work / ".o.jsonl.notprepflow.tmp"
    other.write_text("not ours\n")
    done = cli(
        "run", slow_pipeline(work / "p.yaml", 0), "--input", src, "--output", "o.jsonl", cwd=work
    )
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and other.exists()
    assert len((work / "o.jsonl").read_text().splitlines()) == 30
