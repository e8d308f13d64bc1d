"""End-to-end runs of the local executor: resume, recompute, accounting, failures, retry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from prepflow.core.errors import CompileError, InputError
from prepflow.data import journal, shardfile
from prepflow.engine.runner import retry_run, run_pipeline
from prepflow.engine.spec import load_yaml

TESTOPS = Path(__file__).with_name("testops.py")


def pipeline_yaml(sleep_s: float = 0.0, min_len: int = 10, flaky: bool = False) -> str:
    flaky_step = "  - {op: TFlaky, params: {bad: BOOM}}\n" if flaky else ""
    return f"""
name: t
imports: ["{TESTOPS}"]
steps:
  - {{op: TUpper}}
{flaky_step}  - {{op: TLength, params: {{sleep_s: {sleep_s}}}}}
  - {{op: TMinLength, name: min_len, params: {{min: {min_len}}}}}
"""


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def small_input(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "in.jsonl", [{"text": "x" * (i % 23), "n": i} for i in range(1000)]
    )


def test_run_produces_expected_rows_and_report(tmp_path: Path, small_input: Path) -> None:
    out = tmp_path / "out.jsonl"
    rep = run_pipeline(
        load_yaml(pipeline_yaml()),
        input=small_input,
        output=out,
        run_dir=tmp_path / "run",
        shard_rows=128,
        progress=False,
    )
    rows = read_jsonl(out)
    expected = [
        {"text": "X" * (i % 23), "n": i, "length": i % 23} for i in range(1000) if i % 23 >= 10
    ]
    assert rows == expected
    assert rep.ok and rep.input_rows == 1000 and rep.output_rows == len(expected)
    last = rep.steps[-1]
    assert last["dropped"] == 1000 - len(expected)
    assert last["drop_reasons"] == {"length < 10": 1000 - len(expected)}
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| 3 | min_len | TMinLength | 1,000 |" in md


def test_rerun_of_finished_run_does_no_work(tmp_path: Path, small_input: Path) -> None:
    out = tmp_path / "out.jsonl"
    kw = dict(
        input=small_input, output=out, run_dir=tmp_path / "run", shard_rows=128, progress=False
    )
    run_pipeline(load_yaml(pipeline_yaml()), **kw)
    mtime = out.stat().st_mtime_ns
    rep = run_pipeline(load_yaml(pipeline_yaml()), **kw)
    assert rep.computed_shards == 0
    assert rep.resumed_shards == 8 * 3
    assert out.stat().st_mtime_ns == mtime  # output not rewritten


def test_changed_parameter_recomputes_exactly_that_step_and_later(
    tmp_path: Path, small_input: Path
) -> None:
    out = tmp_path / "out.jsonl"
    kw = dict(
        input=small_input, output=out, run_dir=tmp_path / "run", shard_rows=128, progress=False
    )
    run_pipeline(load_yaml(pipeline_yaml()), **kw)
    first = {e["session"] for e in _journal_steps(tmp_path / "run")}
    rep = run_pipeline(load_yaml(pipeline_yaml()), overrides=["min_len.min=20"], **kw)
    new = [e for e in _journal_steps(tmp_path / "run") if e["session"] not in first]
    assert {e["step"] for e in new} == {3}  # only the changed step, for every shard
    assert sorted(e["shard"] for e in new) == list(range(8))
    assert rep.computed_shards == 8
    assert read_jsonl(out) == [
        {"text": "X" * (i % 23), "n": i, "length": i % 23} for i in range(1000) if i % 23 >= 20
    ]
    # a change upstream recomputes that step and everything after it
    spec = load_yaml(pipeline_yaml(sleep_s=0.001))
    rep = run_pipeline(spec, **kw)
    assert rep.computed_shards == 8 * 2


def test_rows_accounted_on_real_corpora(tmp_path: Path, shared_data: Path) -> None:
    """rows_in == kept + dropped + failed at every step, checked against the files on disk."""
    src = shared_data / "corpora" / "fortunes_en.jsonl"
    run = tmp_path / "run"
    rep = run_pipeline(
        load_yaml(pipeline_yaml(min_len=120, flaky=True)),
        input=src,
        output=tmp_path / "out.parquet",
        run_dir=run,
        shard_rows=2000,
        progress=False,
    )
    n_lines = sum(1 for _ in src.open("rb"))
    assert rep.input_rows == n_lines
    report = json.loads((run / "report.json").read_text())
    prev_out = n_lines
    for s in report["steps"]:
        on_disk = {
            kind: sum(shardfile.read(p).num_rows for p in (run / kind / s["dir"]).glob("*.arrow"))
            for kind in ("steps", "dropped", "failures")
            if (run / kind / s["dir"]).exists()
        }
        assert s["rows_in"] == prev_out
        assert s["rows_in"] == s["kept"] + s["dropped"] + s["failed"]
        assert on_disk.get("steps", 0) == s["rows_out"] == s["kept"]
        assert on_disk.get("dropped", 0) == s["dropped"]
        assert on_disk.get("failures", 0) == s["failed"]
        prev_out = s["rows_out"]
    assert prev_out == pq.read_metadata(tmp_path / "out.parquet").num_rows == rep.output_rows
    assert report["steps"][1]["failed"] > 0  # fortunes do shout BOOM now and then
    assert report["steps"][-1]["dropped"] > 0


def test_failing_rows_are_isolated_and_retry_reruns_only_them(tmp_path: Path) -> None:
    rows = [
        {"text": f"row {i} " + ("BOOM" if i in (7, 300) else "fine text here")} for i in range(400)
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    run = tmp_path / "run"
    rep = run_pipeline(
        load_yaml(pipeline_yaml(flaky=True, min_len=0)),
        input=src,
        output=tmp_path / "out.jsonl",
        run_dir=run,
        shard_rows=100,
        progress=False,
    )
    assert rep.steps[1]["failed"] == 2 and rep.steps[1]["errors"] == {"ValueError": 2}
    assert rep.ok  # 0.5% failures < 10% threshold
    failed = shardfile.read(run / "failures" / "02-tflaky" / "shard-00000.arrow").to_pylist()
    assert [r["_id"] for r in failed] == [7]
    assert failed[0]["_error"] == "row contains 'BOOM'"
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 398
    rep = retry_run(run)
    # only the two shards holding failures were recomputed, at the failing step and after it
    assert rep.computed_shards == 2 * 3
    assert rep.steps[1]["failed"] == 2  # the rows still fail: the operator is deterministic


def test_failure_rate_threshold_sets_status(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "BOOM"}] * 5 + [{"text": "fine"}] * 5)
    rep = run_pipeline(
        load_yaml(pipeline_yaml(flaky=True, min_len=0)),
        input=src,
        output=tmp_path / "o.jsonl",
        run_dir=tmp_path / "r",
        progress=False,
    )
    assert rep.status == "failed-threshold"
    assert "5 of 10 rows failed" in rep.problems[0]


def test_compile_reports_all_problems_together(tmp_path: Path, small_input: Path) -> None:
    spec = load_yaml(f"""
name: broken
imports: ["{TESTOPS}"]
steps:
  - {{op: TLength, inputs: {{text: body}}}}
  - {{op: NoSuchOp}}
  - {{op: TMinLength, params: {{min: "ten"}}}}
  - {{op: TMinLength, params: {{mni: 3}}}}
""")
    with pytest.raises(CompileError) as e:
        run_pipeline(spec, input=small_input, output=tmp_path / "o.jsonl", run_dir=tmp_path / "r")
    problems = e.value.problems
    assert len(problems) == 4, problems
    assert "input column 'body' not found" in problems[0] and "available: text, n" in problems[0]
    assert "unknown operator 'NoSuchOp'" in problems[1]
    assert "parameter 'min'" in problems[2] and "'ten'" in problems[2]
    assert "parameter 'mni'" in problems[3]
    assert all("<yaml>:" in p for p in problems)  # each names where the step is
    assert not (tmp_path / "r").exists()  # nothing ran


def test_malformed_input_stops_or_quarantines(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(
        b'{"text": "good one here"}\n{"text": "trunc\n[1, 2]\n{"text": "\xff\xfe"}\n'
        b'{"text": "another good"}\n'
    )
    spec = pipeline_yaml(min_len=0)
    with pytest.raises(InputError) as e:
        run_pipeline(
            load_yaml(spec), input=src, output=tmp_path / "o.jsonl", run_dir=tmp_path / "r1"
        )
    assert f"{src}:2" in str(e.value)
    rep = run_pipeline(
        load_yaml(spec),
        input=src,
        output=tmp_path / "o.jsonl",
        run_dir=tmp_path / "r2",
        on_bad_input="quarantine",
        progress=False,
    )
    assert rep.input_rows == 2 and rep.quarantined == 3
    bad = [
        json.loads(x)
        for x in (tmp_path / "r2" / "quarantine" / "shard-00000.jsonl").read_text().splitlines()
    ]
    assert [b["line"] for b in bad] == [2, 3, 4]
    assert [r["text"] for r in read_jsonl(tmp_path / "o.jsonl")] == [
        "GOOD ONE HERE",
        "ANOTHER GOOD",
    ]


def _journal_steps(run: Path) -> list[dict]:
    """The shard commits of a run's journal, oldest first."""
    return [
        {"step": e.step, "shard": e.shard, "session": e.session, "fp": e.fp}
        for e in journal.read(run / "journal.jsonl")
        if isinstance(e, journal.ShardCommitted)
    ]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    rows = [{"text": f"document number {i} " + "word " * (i % 17)} for i in range(3000)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text(pipeline_yaml(sleep_s=0.05, min_len=30))
    base = [
        sys.executable,
        "-m",
        "prepflow.cli",
        "run",
        str(yaml_path),
        "--input",
        str(src),
        "--shard-rows",
        "50",
        "--workers",
        "2",
        "--no-progress",
    ]
    ref = tmp_path / "ref.jsonl"
    subprocess.run(
        [*base, "--output", str(ref), "--run-dir", str(tmp_path / "ref")],
        check=True,
        capture_output=True,
    )

    run, out = tmp_path / "run", tmp_path / "out.jsonl"
    cmd = [*base, "--output", str(out), "--run-dir", str(run)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    journal = run / "journal.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        done = [e for e in _journal_steps(run) if e.get("step") == 3] if journal.exists() else []
        if len(done) >= 15:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _journal_steps(run)
    done_before = {(e["step"], e["shard"]) for e in before}
    assert 15 <= len([k for k in done_before if k[0] == 3]) < 60, "kill landed mid-run"
    assert not out.exists()

    subprocess.run(cmd, check=True, capture_output=True)
    after = _journal_steps(run)[len(before) :]
    recomputed = {(e["step"], e["shard"]) for e in after if e["step"] > 0} & done_before
    assert recomputed == set(), f"completed shards recomputed: {sorted(recomputed)[:5]}"
    assert read_jsonl(out) == read_jsonl(ref)
    # and a third run does nothing at all
    subprocess.run(cmd, check=True, capture_output=True)
    assert [e for e in _journal_steps(run)[len(before) + len(after) :] if e["step"] > 0] == []


def test_input_with_reserved_id_column_is_a_clear_error(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"_id": "abc", "text": "hello world"}])
    with pytest.raises(InputError, match="column named '_id'"):
        run_pipeline(
            load_yaml(pipeline_yaml(min_len=0)),
            input=src,
            output=tmp_path / "o.jsonl",
            run_dir=tmp_path / "r",
            progress=False,
        )


def test_default_shards_spread_a_small_input_and_cap_a_large_one(tmp_path: Path) -> None:
    from prepflow.engine.runner import default_shard_rows

    assert default_shard_rows(300, False, 4) == 1_000  # one shard: too small to split
    assert default_shard_rows(5_953, False, 4) == 1_489  # a shard per worker (4 at most)
    assert default_shard_rows(5_953, False, 2) == 2_977
    assert default_shard_rows(10_000_000, False, 2) == 50_000
    assert default_shard_rows(5_953, True, 2) == 64  # LLM rows resume at a fine grain
    assert default_shard_rows(200, True, 2) == 13  # 16 shards: barriers overlap
    assert default_shard_rows(50, True, 2) == 8
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"row {i}"} for i in range(6_000)])

    def run(workers: int, fresh: bool = False) -> int:
        return run_pipeline(
            load_yaml(pipeline_yaml(min_len=0)),
            input=src,
            output=tmp_path / "out.jsonl",
            run_dir=tmp_path / "run",
            progress=False,
            workers=workers,
            fresh=fresh,
        ).shards

    assert run(workers=8) == 4
    assert [r["text"] for r in read_jsonl(tmp_path / "out.jsonl")] == [
        f"ROW {i}" for i in range(6_000)
    ]
    first = _journal_steps(tmp_path / "run")
    # resumed with fewer workers (another machine), the run keeps its shards: nothing is redone
    assert run(workers=2) == 4
    assert _journal_steps(tmp_path / "run") == first
    assert run(workers=2, fresh=True) == 2  # a new run spreads over its own workers


def test_global_step_summarizes_shards_at_once_and_merges_them_all(
    tmp_path: Path,
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"row {i}"} for i in range(40)])
    spec = load_yaml(f'name: g\nimports: ["{TESTOPS}"]\nsteps:\n  - {{op: TTracedGlobal}}\n')
    rep = run_pipeline(
        spec,
        input=src,
        output=tmp_path / "out.jsonl",
        run_dir=tmp_path / "run",
        shard_rows=10,
        workers=2,
        progress=False,
    )
    trace = json.loads(
        (tmp_path / "run" / "scratch" / "01-ttracedglobal" / "global_trace.json").read_text()
    )
    assert trace["merged"] == [0, 10, 20, 30]  # every shard, though shard 0 finished last
    assert trace["most"] == 2  # two summaries at a time with two workers, never more
    assert rep.output_rows == 40


def test_a_fresh_run_sets_up_every_operator_before_any_step_computes(tmp_path: Path) -> None:
    # the last step, after a global one, cannot load its model: a fresh run says so before the
    # steps ahead of it spend anything (set-ups run while the input is read); a resumed run
    # sets up only the steps that still have work
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"row {i}"} for i in range(40)])
    model = tmp_path / "model.bin"
    spec = f"""
name: s
imports: ["{TESTOPS}"]
steps:
  - {{op: TLength}}
  - {{op: TTracedGlobal, params: {{sleep_s: 0}}}}
  - {{op: TNeedsModel, params: {{model: "{model}"}}}}
"""
    kw = dict(input=src, output=tmp_path / "out.jsonl", run_dir=tmp_path / "run", shard_rows=10)
    with pytest.raises(FileNotFoundError, match=r"model\.bin"):
        run_pipeline(load_yaml(spec), progress=False, **kw)
    assert [e for e in _journal_steps(tmp_path / "run") if e["step"] > 0] == []  # none computed
    model.write_bytes(b"weights")
    rep = run_pipeline(load_yaml(spec), progress=False, **kw)
    assert rep.ok and rep.output_rows == 40 and rep.computed_shards == 4 * 3
    model.unlink()  # done steps are not set up again: the finished run resumes without it
    assert run_pipeline(load_yaml(spec), progress=False, **kw).computed_shards == 0


def test_retry_finds_imports_relative_to_the_pipeline_file(tmp_path: Path) -> None:
    """The run directory's pipeline.yaml, which retry loads, names the same operator files."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "ops.py").write_text(
        "from prepflow.core import RefineOperator\n\n"
        "class TRelativeImport(RefineOperator):\n"
        "    def process(self, batch):\n        return batch\n"
    )
    (project / "p.yaml").write_text(
        "name: rel\nimports: [ops.py]\nsteps: [{op: TRelativeImport}]\n"
    )
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "abc"}])
    run = tmp_path / "run"
    kw = dict(input=src, output=tmp_path / "out.jsonl", run_dir=run, progress=False)
    run_pipeline(load_yaml(project / "p.yaml"), **kw)
    assert load_yaml(run / "pipeline.yaml").imports == [str((project / "ops.py").resolve())]
    assert retry_run(run).ok


def test_a_run_without_llm_or_code_steps_loads_no_serving_sandbox_or_profiler(
    tmp_path: Path, small_input: Path
) -> None:
    """Start-up time: those modules load only for the steps (or the flag, the Parquet input or
    output, the URL or compressed file) that use them."""
    (tmp_path / "p.yaml").write_text(pipeline_yaml())
    code = (
        "import sys\n"
        "from prepflow.engine.runner import run_pipeline\n"
        "from prepflow.engine.spec import load_yaml\n"
        f"run_pipeline(load_yaml({str(tmp_path / 'p.yaml')!r}), input={str(small_input)!r}, "
        f"output={str(tmp_path / 'o.jsonl')!r}, run_dir={str(tmp_path / 'run')!r}, "
        "progress=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('prepflow.serving', "
        "'prepflow.sandbox', 'sqlite3', 'cProfile', 'pstats', 'pyarrow.parquet', "
        "'fsspec'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    kept = sum(1 for i in range(1000) if i % 23 >= 10)  # TMinLength's 10 characters
    assert len(read_jsonl(tmp_path / "o.jsonl")) == kept  # the run did its work


def test_serving_credentials_are_redacted_in_a_run_without_llm_steps(
    tmp_path: Path, small_input: Path
) -> None:
    spec = load_yaml(pipeline_yaml())
    spec.serving = {"backend": "openai", "base_url": "http://alice:pw-5Kd9@127.0.0.1:9/v1"}
    run_pipeline(
        spec, input=small_input, output=tmp_path / "o.jsonl", run_dir=tmp_path / "run",
        progress=False,
    )  # fmt: skip
    shown = (tmp_path / "run" / "pipeline.yaml").read_text()
    assert "pw-5Kd9" not in shown and "***@127.0.0.1" in shown
