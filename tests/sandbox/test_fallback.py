"""Without namespaces: the rlimit-only fallback is loud, refused in strict mode, and still
enforces time, output and process-group limits."""

from __future__ import annotations

import logging
import os
import time

import pytest

from prepflow.core.context import ExecStatus, Limits
from prepflow.sandbox import ProcessSandbox, SandboxUnavailable
from prepflow.sandbox.isolation import ALL_PROTECTIONS
from tests.sandbox.conftest import with_marker


def test_strict_mode_refuses_the_fallback():
    with pytest.raises(SandboxUnavailable, match=r"strict mode refuses.*net"):
        ProcessSandbox(strict=True, namespaces=False)


def test_fallback_is_reported_loudly_and_in_every_result(caplog):
    with caplog.at_level(logging.WARNING, logger="prepflow.sandbox"):
        sb = ProcessSandbox(workers=1, namespaces=False)
    with sb:
        assert "SANDBOX IS WEAKER THAN REQUESTED" in caplog.text
        assert not sb.namespaces
        assert {"net", "pid", "mount", "user"} <= set(sb.missing)
        result = sb.run_python("print('hi')")
        assert result.ok and result.stdout == "hi\n"
        assert "net" not in result.protections and "rlimits" in result.protections
        scratch_root = sb._plan.scratch_root
        assert os.path.isdir(scratch_root) and not os.listdir(scratch_root)  # scratch removed
    assert not os.path.exists(scratch_root)


def test_fallback_still_kills_at_the_limits():
    marker = f"{time.time():.6f}"[-9:]
    with ProcessSandbox(workers=1, namespaces=False) as sb:
        code = f"import os\nif os.fork() == 0:\n    os.execvp('sleep', ['sleep', '{marker}'])\nwhile True:\n    pass\n"
        result = sb.run_python(code, limits=Limits(wall_s=0.5, cpu_s=30))
        assert result.status is ExecStatus.TIMEOUT
        time.sleep(0.2)
        assert not with_marker(marker)  # its process group was killed
        result = sb.run_python("print('x' * 5000)", limits=Limits(output_bytes=100))
        assert result.status is ExecStatus.OUTPUT_LIMIT and len(result.stdout) == 100
        assert sb.run_python("import os; print(sorted(os.environ))").stdout.count("KEY") == 0


def test_namespaced_sandbox_has_every_protection(sandbox):
    assert sandbox.namespaces and sandbox.missing == {}
    assert set(sandbox.protections) == set(ALL_PROTECTIONS)
    assert set(sandbox.run_python("pass").protections) == set(ALL_PROTECTIONS)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="uids are dropped only by root")
def test_fallback_workers_have_uids_of_their_own():
    """One execution's cleanup kills every process of its uid: never another's program."""
    import threading

    with ProcessSandbox(workers=2, namespaces=False, python="/usr/bin/python3") as sb:
        assert "uid" in sb.protections
        slow = {}
        t = threading.Thread(
            target=lambda: slow.update(r=sb.run_python("import time\ntime.sleep(1)\nprint('done')"))
        )
        t.start()
        time.sleep(0.3)
        for _ in range(3):
            assert sb.run_python("print('quick')").ok
        t.join()
        assert slow["r"].ok and slow["r"].stdout == "done\n"
