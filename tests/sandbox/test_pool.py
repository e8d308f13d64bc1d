"""The pool: pre-started workers, concurrent executions, bad arguments, results, the CLI."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from prepflow.core.context import ExecStatus, Limits
from prepflow.sandbox import SandboxError, open_sandbox


def test_concurrent_executions_each_get_their_own_answer(sandbox):
    code = "import sys, time\nn = int(sys.stdin.read())\ntime.sleep(0.05)\nprint(n * n)\n"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: sandbox.run_python(code, stdin=str(n)), range(24)))
    assert [r.stdout for r in results] == [f"{n * n}\n" for n in range(24)]
    assert all(r.ok and r.exit_code == 0 for r in results)


def test_files_stdin_env_and_exit_codes(sandbox):
    result = sandbox.run_python(
        "import json, sys\nfrom helper import add\ndata = json.load(open('data/in.json'))\n"
        "print(add(*data), sys.stdin.read(), open('blob.bin', 'rb').read())\nsys.exit(7)\n",
        files={
            "helper.py": "def add(a, b):\n    return a + b\n",
            "data/in.json": "[2, 3]",
            "blob.bin": b"\x00\x01",
        },
        stdin="from stdin",
    )
    assert result.status is ExecStatus.ERROR and result.exit_code == 7
    assert result.stdout == "5 from stdin b'\\x00\\x01'\n"
    result = sandbox.run_command(["sh", "-c", "echo $GREETING; exit 3"], env={"GREETING": "hi"})
    assert (result.stdout, result.exit_code, result.status) == ("hi\n", 3, ExecStatus.ERROR)
    assert sandbox.run_command(["no-such-program"]).exit_code == 127


def test_python_semantics_of_main(sandbox):
    code = (
        "import sys, threading, time\n"
        "if __name__ == '__main__':\n"
        "    print(sys.argv, __file__, flush=True)\n"
        "    threading.Thread(target=lambda: (time.sleep(0.1), print('thread done'))).start()\n"
        "    raise SystemExit('bye')\n"
    )
    result = sandbox.run_python(code)
    assert result.stdout == "['main.py'] /scratch/main.py\nthread done\n"
    assert result.stderr == "bye\n" and result.exit_code == 1
    syntax = sandbox.run_python("def f(:\n")
    assert syntax.status is ExecStatus.ERROR and "SyntaxError" in syntax.stderr
    assert 'File "/scratch/main.py"' in syntax.stderr and "zygote" not in syntax.stderr


def test_bad_arguments_are_refused_before_running(sandbox):
    for files in ({"../escape.py": "x"}, {"/etc/x": "x"}, {"main.py": "x"}):
        with pytest.raises(ValueError, match="files"):
            sandbox.run_python("pass", files=files)
    with pytest.raises(ValueError, match=r"Limits\.wall_s"):
        sandbox.run_python("pass", limits=Limits(wall_s=0))
    with pytest.raises(ValueError, match="env"):
        sandbox.run_python("pass", env={"A=B": "c"})
    with pytest.raises(ValueError, match="argv"):
        sandbox.run_command([])


def test_a_closed_sandbox_stops_its_workers():
    sb = open_sandbox(workers=2)
    pids = sb.worker_pids()
    assert len(pids) == 2
    sb.close()
    import psutil

    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    with pytest.raises(SandboxError, match="closed"):
        sb.run_python("pass")


def test_a_dead_worker_is_replaced(single):
    (pid,) = single.worker_pids()
    import os
    import signal

    os.killpg(pid, signal.SIGKILL)
    threading.Event().wait(0.1)
    with pytest.raises(SandboxError):
        single.run_python("print(1)")
    assert single.run_python("print(1)").stdout == "1\n"
    assert single.worker_pids() != [pid]


def _cli(*args: str):
    from typer.testing import CliRunner

    from prepflow.cli import app

    return CliRunner().invoke(app, ["sandbox", *args])


def test_cli_run_prints_json(tmp_path, sandbox):
    script = tmp_path / "prog.py"
    script.write_text("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(2)\n")
    proc = _cli("run", str(script), "--json", "--time-limit", "5", "--memory-mb", "256")
    assert proc.exit_code == 2
    out = json.loads(proc.stdout)
    assert out["status"] == "error" and out["exit_code"] == 2
    assert out["stdout"] == "out\n" and out["stderr"] == "err\n" and out["duration_s"] > 0
    loop = tmp_path / "loop.py"
    loop.write_text("while True:\n    pass\n")
    proc = _cli("run", str(loop), "--time-limit", "1")
    assert proc.exit_code == 1 and "[sandbox] timeout" in proc.stderr
    assert _cli("run", str(tmp_path / "missing.py")).exit_code == 2


def test_cli_check_lists_every_protection(sandbox):
    proc = _cli("check", "--json")
    assert proc.exit_code == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["missing"] == [] and out["mode"].startswith("namespaces")
    assert {f["protection"] for f in out["findings"] if f["active"]} >= {"net", "pid", "mount"}
