"""Broken files and full disks: one clear line, a non-zero exit, and a run that resumes after the
fix without redoing finished shards. Quarantine is idempotent; non-finite numbers survive."""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import cli, commits, slow_pipeline, write_rows

ROOT = os.geteuid() == 0


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_deep_nesting_is_quarantined_like_any_malformed_line(work: Path):
    deep: dict = {"leaf": 1}
    for _ in range(60):
        deep = {"x": deep}
    lines = [{"text": "fine"}, {"text": "deep", "n": deep}, {"text": "also fine"}]
    (work / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    args = ["run", slow_pipeline(work / "p.yaml", 0), "--input", "in.jsonl", "--output", "o.jsonl"]
    stopped = cli(*args, cwd=work)
    assert stopped.returncode == 2 and "in.jsonl:2: nested 61 levels deep" in stopped.stderr
    done = cli(*args, "--on-bad-input", "quarantine", cwd=work)
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["text"] for x in (work / "o.jsonl").read_text().splitlines()] == [
        "FINE",
        "ALSO FINE",
    ]
    (bad,) = [json.loads(x) for x in (work / "runs/slow/quarantine/shard-00000.jsonl").open()]
    assert bad["line"] == 2 and "nested 61 levels deep" in bad["reason"]


@pytest.mark.slow
def test_a_truncated_gzip_is_one_line_and_the_fixed_file_resumes(work: Path):
    rows = "".join(json.dumps({"text": f"row {i} of many"}) + "\n" for i in range(400_000))
    whole = gzip.compress(rows.encode(), compresslevel=1)
    (work / "in.jsonl.gz").write_bytes(whole[: len(whole) * 3 // 4])  # past the first read blocks
    args = ["run", slow_pipeline(work / "p.yaml", 0), "--input", "in.jsonl.gz", "--output", "o.jsonl",
            "--shard-rows", "20000"]  # fmt: skip
    broken = cli(*args, cwd=work)
    assert broken.returncode == 2
    assert "in.jsonl.gz: cannot read the file: it ends early" in one_error_line(broken.stderr)
    finished = {(e.step, e.shard) for e in commits(work / "runs/slow") if e.step > 0}
    assert finished, "shards read before the truncation were processed"
    (work / "in.jsonl.gz").write_bytes(whole)  # the fix: the whole file
    done = cli(*args, cwd=work)
    assert done.returncode == 0, done.stderr
    last = commits(work / "runs/slow")[-1].session
    redone = {(e.step, e.shard) for e in commits(work / "runs/slow") if e.session == last}
    assert redone and not (redone & finished), "finished shards were redone"
    assert len((work / "o.jsonl").read_text().splitlines()) == 400_000


def test_a_truncated_parquet_file_is_one_line(work: Path):
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(5000)]}), work / "full.parquet")
    data = (work / "full.parquet").read_bytes()
    (work / "in.parquet").write_bytes(data[: len(data) // 2])
    done = cli(
        "run",
        slow_pipeline(work / "p.yaml", 0),
        "--input",
        "in.parquet",
        "--output",
        "o.jsonl",
        cwd=work,
    )
    assert done.returncode == 2
    assert "in.parquet: cannot read the file:" in one_error_line(done.stderr)


@contextlib.contextmanager
def tiny_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_line_and_the_run_resumes_after_space_is_freed(work: Path):
    src = write_rows(work / "in.jsonl", 20_000, text="a fairly long row of text " * 4)
    with tiny_disk(work / "disk", "1m") as disk:
        args = ["run", slow_pipeline(work / "p.yaml", 0), "--input", src, "--output", "o.jsonl",
                "--run-dir", disk / "run", "--shard-rows", "1000"]  # fmt: skip
        full = cli(*args, cwd=work)
        assert full.returncode == 2
        assert "no space left on the device" in one_error_line(full.stderr)
        before = {(e.step, e.shard) for e in commits(disk / "run")}
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        done = cli(*args, cwd=work)
        assert done.returncode == 0, done.stderr
        session = commits(disk / "run")[-1].session
        redone = {(e.step, e.shard) for e in commits(disk / "run") if e.session == session}
        assert not (redone & before), "shards finished before the disk filled were redone"
    assert len((work / "o.jsonl").read_text().splitlines()) == 20_000


def as_nobody(work: Path, *args: str | Path) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "prepflow.cli", *map(str, args)],
        cwd=work, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HOME": str(work)},
    )  # fmt: skip


@pytest.mark.skipif(not ROOT or not shutil.which("setpriv"), reason="needs root to drop to nobody")
def test_permission_denied_on_input_and_run_directory_is_one_line(tmp_path: Path):
    work = Path(tempfile.mkdtemp(prefix="prepflow-perm-", dir="/tmp"))  # reachable by nobody
    work.chmod(0o777)
    src = write_rows(work / "in.jsonl", 10)
    pipeline = slow_pipeline(work / "p.yaml", 0)
    src.chmod(0o600)  # root's: nobody cannot read it
    denied = as_nobody(work, "run", pipeline, "--input", src, "--output", work / "o.jsonl",
                       "--run-dir", work / "r")  # fmt: skip
    assert denied.returncode == 2, denied.stderr
    assert "in.jsonl: cannot read the file: permission denied" in one_error_line(denied.stderr)
    src.chmod(0o644)
    (work / "locked").mkdir(mode=0o755)  # root's: nobody cannot write in it
    denied = as_nobody(work, "run", pipeline, "--input", src, "--output", work / "o.jsonl",
                       "--run-dir", work / "locked" / "run")  # fmt: skip
    assert denied.returncode == 2
    assert "cannot write the run directory (Permission denied)" in one_error_line(denied.stderr)
    (work / "p.yaml").chmod(0o600)
    denied = as_nobody(work, "run", pipeline, "--input", src, "--output", work / "o.jsonl")
    assert "p.yaml: cannot read the pipeline (Permission denied)" in one_error_line(denied.stderr)
    shutil.rmtree(work)


@pytest.mark.slow
def test_quarantine_is_idempotent_across_reruns_resumes_and_retries(work: Path):
    lines = []
    for i in range(900):
        lines.append(json.dumps({"text": f"row {i}"}) if i % 7 else "{broken json")
    lines += ["not json at the end", "{also broken"]  # after the last good row
    (work / "in.jsonl").write_text("\n".join(lines) + "\n")
    bad = sum(1 for line in lines if not line.startswith('{"'))
    args = ["run", slow_pipeline(work / "p.yaml", 0), "--input", "in.jsonl", "--output", "o.jsonl",
            "--on-bad-input", "quarantine", "--shard-rows", "100"]  # fmt: skip

    def quarantined() -> list[int]:
        q = sorted((work / "runs/slow/quarantine").glob("*.jsonl"))
        return sorted(json.loads(x)["line"] for f in q for x in f.read_text().splitlines())

    expected = [n for n, line in enumerate(lines, 1) if not line.startswith('{"')]
    for _ in range(3):
        done = cli(*args, cwd=work)
        assert done.returncode == 0, done.stderr
        assert quarantined() == expected and f"{bad:,} quarantined" in done.stdout
    shutil.rmtree(work / "runs/slow/steps/01-tupper")  # as if a kill lost a step's shards
    assert cli(*args, cwd=work).returncode == 0
    assert cli("retry", "runs/slow", cwd=work).returncode == 0
    assert quarantined() == expected


def test_non_finite_numbers_are_kept_in_parquet_and_written_as_null_to_jsonl(work: Path):
    (work / "in.jsonl").write_text(
        '{"text": "a", "v": NaN}\n{"text": "b", "v": Infinity}\nbroken\n{"text": "c", "v": -Infinity}\n'
    )
    pipeline = slow_pipeline(work / "p.yaml", 0)
    common = ["--input", "in.jsonl", "--on-bad-input", "quarantine"]
    assert (
        cli(
            "run", pipeline, *common, "--output", "o.parquet", "--run-dir", "a", cwd=work
        ).returncode
        == 0
    )
    values = pq.read_table(work / "o.parquet")["v"].to_pylist()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]
    assert (
        cli("run", pipeline, *common, "--output", "o.jsonl", "--run-dir", "b", cwd=work).returncode
        == 0
    )
    assert [json.loads(x)["v"] for x in (work / "o.jsonl").read_text().splitlines()] == [None] * 3
