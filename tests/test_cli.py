"""The `prepflow` command: ops, compile, run, report (through typer's runner, in-process)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from prepflow.cli import app

runner = CliRunner()
TESTOPS = Path(__file__).parent / "engine" / "testops.py"


def _pipeline(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(f"name: cli\nimports: ['{TESTOPS}']\nsteps:\n{body}")
    return p


def test_ops_list_json_and_show() -> None:
    res = runner.invoke(app, ["ops", "list", "--json"])
    assert res.exit_code == 0
    names = {i["name"] for i in json.loads(res.stdout)}
    assert {"ExpressionFilter", "SelectColumns"} <= names
    res = runner.invoke(app, ["ops", "show", "ExpressionFilter"])
    assert res.exit_code == 0 and "expr" in res.stdout and "filter" in res.stdout
    res = runner.invoke(app, ["ops", "show", "ExpresionFilter"])
    assert res.exit_code == 2 and "did you mean ExpressionFilter" in res.stderr


def test_compile_lists_all_problems_and_exits_nonzero(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a b c"}\n')
    bad = _pipeline(tmp_path, "  - {op: TLength, inputs: {text: body}}\n  - {op: Nope}\n")
    res = runner.invoke(app, ["compile", str(bad), "--input", str(src)])
    assert res.exit_code == 2
    assert (
        "2 problem(s)" in res.stderr and "'body' not found" in res.stderr and "'Nope'" in res.stderr
    )
    good = _pipeline(tmp_path, "  - {op: TLength}\n  - {op: TMinLength, params: {min: 2}}\n")
    res = runner.invoke(app, ["compile", str(good), "--input", str(src)])
    assert res.exit_code == 0, res.stderr
    assert "TLength" in res.stdout and "+[length]" in res.stdout


def test_run_then_report(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": "x" * i}) + "\n" for i in range(10)))
    p = _pipeline(
        tmp_path, "  - {op: TLength}\n  - {op: TMinLength, name: keep, params: {min: 4}}\n"
    )
    out, run = tmp_path / "out.csv", tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "run",
            str(p),
            "-i",
            str(src),
            "-o",
            str(out),
            "--run-dir",
            str(run),
            "--set",
            "keep.min=8",
        ],
    )
    assert res.exit_code == 0, res.stderr
    with out.open(newline="") as f:
        assert list(csv.reader(f)) == [["text", "length"], ["xxxxxxxx", "8"], ["xxxxxxxxx", "9"]]
    res = runner.invoke(app, ["report", str(run), "--json"])
    assert json.loads(res.stdout)["output_rows"] == 2
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no report" in res.stderr


def test_unknown_pipeline_names_the_shipped_ones(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "no-such-pipeline", "-i", "x.jsonl", "-o", "y.jsonl"])
    assert res.exit_code == 2 and "no shipped pipeline of that name" in res.stderr


def test_command_entry_point_collects_garbage_again_once_a_command_runs() -> None:
    import subprocess
    import sys

    code = (
        "import gc, sys\n"
        "import prepflow.cli\n"
        "seen = []\n"
        "prepflow.cli.app.command('gc-state')(lambda: seen.append((gc.isenabled(), gc.get_freeze_count() > 0)))\n"
        "sys.argv = ['prepflow', 'gc-state']\n"
        "from prepflow.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[(True, True)]", out.stderr


_EXIT_SCRIPT = """\
import atexit, sys
from pathlib import Path
import typer
import prepflow.cli

{before}
def big_output():
    atexit.register(lambda: Path("handler").write_text("ran"))  # a step's own exit handler
    print("x" * 100_000)  # more than a pipe's buffer: all of it must reach the reader,
    print("end")  # and this last line, still in stdout's buffer when the command returns
    raise typer.Exit(3)

prepflow.cli.app.command("big-output")(big_output)
sys.argv = ["prepflow", "big-output"]
from prepflow.__main__ import main
main()
"""


def _run_exit_script(tmp_path: Path, before: str = "") -> subprocess.CompletedProcess[str]:
    script = _EXIT_SCRIPT.format(before=before)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffers
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_ends_the_process_without_teardown_after_every_exit_handler(
    tmp_path: Path,
) -> None:
    """The interpreter's teardown (15-25 ms of freeing objects one by one) is skipped: the
    status, the whole output and the exit handlers registered by the command remain."""
    done = _run_exit_script(tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "x" * 100_000 + "\nend\n"
    assert (tmp_path / "handler").read_text() == "ran"


def test_an_exit_handler_registered_before_the_command_keeps_the_teardown(
    tmp_path: Path,
) -> None:
    """A tool that started first (coverage writes its data at exit) keeps its handler: the
    process then ends the interpreter's usual way."""
    done = _run_exit_script(
        tmp_path, before='atexit.register(lambda: Path("first").write_text("ran"))'
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "x" * 100_000 + "\nend\n"
    assert (tmp_path / "handler").read_text() == "ran"
    assert (tmp_path / "first").read_text() == "ran"


def test_a_run_of_arrow_steps_never_imports_pandas(tmp_path: Path) -> None:
    """pandas costs 0.3 s to import and a text run needs none of it (``pa.array`` would import it
    whenever it is installed, as it is here)."""
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "row  {i}"}}\n' for i in range(50)))
    (tmp_path / "p.yaml").write_text("name: one\nsteps:\n  - op: WhitespaceNormalizer\n")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "prepflow.cli", "run", "p.yaml", "--input",
         "in.jsonl", "--output", "o.jsonl", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "pyarrow" in imported and "pandas" not in imported
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 50


def test_the_cli_tunes_the_allocators_unless_told_otherwise() -> None:
    """jemalloc (Arrow's default) keeps freed pages and each thread's glibc arenas keep theirs:
    the CLI picks Arrow's system allocator and two glibc arenas for its process and the workers
    it spawns, and a user's own choice stands."""
    code = (
        "import os, prepflow.cli as cli; "
        "cli.app = lambda: print(__import__('pyarrow').default_memory_pool().backend_name, "
        "os.environ['MALLOC_ARENA_MAX']); "
        "cli.main()"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_ARENA_MAX")
    }
    for chosen, expected in (
        ({}, "system 2"),
        ({"ARROW_DEFAULT_MEMORY_POOL": "jemalloc", "MALLOC_ARENA_MAX": "8"}, "jemalloc 8"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, **chosen}, capture_output=True, text=True
        )
        assert out.stdout.strip() == expected, out.stderr
