"""The Ray executor on a real two-node cluster started here (ray.cluster_utils, both nodes on
127.0.0.1, one CPU each, no dashboard): every shipped pipeline gives the recorded outputs,
dedup decisions equal the local executor's, work lands on both nodes, a killed worker is
retried with the output unchanged, and a SIGKILLed driver resumes without redoing committed
shards. Ray starts once for the module (~10 s), so every test here is slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind Ray to 127.0.0.1
ray = pytest.importorskip("ray")

from prepflow.data import journal  # noqa: E402
from prepflow.data.runstore import read_shard  # noqa: E402
from prepflow.engine.runner import run_pipeline  # noqa: E402
from prepflow.engine.spec import StepSpec, load_yaml  # noqa: E402
from prepflow.serving.cache import ResponseCache  # noqa: E402
from tests.engine.shipped import GOLDEN, Case, cases, digest, run_case  # noqa: E402

pytestmark = pytest.mark.slow
GOLDEN_DIGESTS = json.loads(GOLDEN.read_text())
RAYOPS = Path(__file__).with_name("rayops.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _on(executor: str, **options):
    def run(spec, **kwargs):
        return run_pipeline(spec, progress=False, executor=executor, **options, **kwargs)

    return run


def _commits(run_dir: Path) -> list[journal.ShardCommitted]:
    return [
        e for e in journal.read(run_dir / "journal.jsonl") if isinstance(e, journal.ShardCommitted)
    ]


def _rows(files: list[Path]) -> list[str]:
    """Every row of some shard files, as sorted JSON lines (row order may differ)."""
    return sorted(
        json.dumps(r, sort_keys=True, default=str) for f in files for r in read_shard(f).to_pylist()
    )


# ---- every shipped pipeline --------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.key) for c in cases() if c.responder is None]
)
def test_cpu_pipelines_give_the_recorded_outputs_on_ray(
    case: Case, cluster, tmp_path: Path, shared_data: Path
):
    assert run_case(case, tmp_path, _on("ray")) == GOLDEN_DIGESTS[case.key]


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.key) for c in cases() if c.responder is not None]
)
def test_llm_pipelines_give_the_recorded_outputs_on_ray(case: Case, cluster, tmp_path: Path):
    assert run_case(case, tmp_path, _on("ray")) == GOLDEN_DIGESTS[case.key]


def test_llm_requests_are_paid_once_and_counted_in_the_report(cluster, tmp_path: Path):
    """The actor asks the scripted server exactly what the local executor asks, the report
    counts it, and a second run is answered from the shared cache (nothing asked)."""
    from prepflow.testing import ScriptedServer
    from tests.operators.reasoning.test_pipeline import responder

    seeds = REPO / "examples" / "math_seeds.jsonl"
    counts, reports = {}, {}
    for executor in ("local", "ray", "ray-again"):
        with ScriptedServer(responder) as server:
            spec = load_yaml("reasoning-math")
            spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
            run_dir = tmp_path / ("ray" if executor == "ray-again" else executor)
            reports[executor] = run_pipeline(
                spec,
                input=seeds,
                output=tmp_path / f"{executor}.jsonl",
                run_dir=run_dir,
                progress=False,
                executor=executor.removesuffix("-again"),
                retry_failed=executor == "ray-again",  # recompute: every answer is cached
            )
            counts[executor] = server.count()
    assert counts["ray"] == counts["local"] > 0
    assert reports["ray"].llm["requests"] == counts["ray"]
    assert counts["ray-again"] == 0


# ---- dedup decisions equal the local executor's ------------------------------------------------

DEDUP = """
name: dedup-only
steps:
  - {op: TextExactDedup, name: exact_dedup}
  - op: MinHashDedup
    name: minhash_dedup
    params: {threshold: 0.8, num_perm: 128, verify: VERIFY}
"""


def _planted(corpus: Path, out: Path, n: int = 600) -> Path:
    """Real documents plus planted copies: exact, case-changed, and with one word in a hundred
    replaced (near duplicates), spread over the input."""
    texts = [json.loads(line)["text"] for line in corpus.open() if line.strip()][:n]
    rows = []
    for i, t in enumerate(texts):
        rows.append(t)
        words = t.split()
        if i % 7 == 0:
            rows.append(t.upper())
        if i % 3 == 0:
            rows.append(" ".join("CHANGED" if j % 100 == 3 else w for j, w in enumerate(words)))
        if i % 11 == 0:
            rows.insert(len(rows) // 2, t)
    out.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    return out


@pytest.mark.parametrize("verify", ["true", "false"])
def test_distributed_dedup_decides_as_the_local_executor(
    verify: str, cluster, tmp_path: Path, shared_data: Path
):
    src = _planted(shared_data / "corpora" / "kjv_bible_chapters_en.jsonl", tmp_path / "in.jsonl")
    dropped = {}
    for executor in ("local", "ray"):
        spec = load_yaml(DEDUP.replace("VERIFY", verify))
        run_dir = tmp_path / executor
        run_pipeline(
            spec,
            input=src,
            output=tmp_path / f"{executor}.jsonl",
            run_dir=run_dir,
            shard_rows=100,  # 9 shards: several shuffle partitions and owner groups
            progress=False,
            executor=executor,
        )
        dropped[executor] = {
            step: _rows(sorted((run_dir / "dropped" / step).glob("*.arrow")))
            for step in ("01-exact_dedup", "02-minhash_dedup")
        }
    assert digest(tmp_path / "local.jsonl") == digest(tmp_path / "ray.jsonl")
    assert dropped["ray"] == dropped["local"]
    assert len(dropped["ray"]["01-exact_dedup"]) > 100
    assert len(dropped["ray"]["02-minhash_dedup"]) > 150
    assert any("est. jaccard" in r for r in dropped["ray"]["02-minhash_dedup"])


# ---- two nodes, a killed worker ----------------------------------------------------------------


def _traced_clean(kill_marker: Path) -> object:
    """text-pretrain-clean with a pass-through step that notes its node and kills its worker
    once (its output is text-pretrain-clean's)."""
    spec = load_yaml("text-pretrain-clean")
    spec.imports.append(str(RAYOPS))
    spec.steps.insert(
        2, StepSpec(op="RayNodeTrace", name="trace", params={"kill_once": str(kill_marker)})
    )
    return spec


def test_two_nodes_share_the_work_and_a_killed_worker_is_retried(
    cluster, tmp_path: Path, shared_data: Path
):
    corpus = shared_data / "corpora" / "fortunes_en.jsonl"
    marker = tmp_path / "killed"
    run_dir = tmp_path / "run"
    run_pipeline(
        _traced_clean(marker),
        input=corpus,
        output=tmp_path / "out.jsonl",
        run_dir=run_dir,
        shard_rows=2000,
        progress=False,
        executor="ray",
    )
    assert marker.exists()  # a worker was SIGKILLed mid-shard ...
    assert digest(tmp_path / "out.jsonl") == GOLDEN_DIGESTS["text-pretrain-clean@fortunes_en.jsonl"]
    commits = [(e.step, e.shard) for e in _commits(run_dir)]
    assert len(commits) == len(set(commits))  # ... and its shard committed once, after the retry
    nodes = {p.name for p in (run_dir / "scratch").rglob("node-*")}
    assert len(nodes) == 2 == len(ray.nodes())


# ---- a killed driver ---------------------------------------------------------------------------


def test_a_killed_driver_resumes_without_redoing_committed_shards(
    cluster, tmp_path: Path, shared_data: Path
):
    corpus = shared_data / "corpora" / "kjv_bible_chapters_en.jsonl"
    run_dir, out = tmp_path / "run", tmp_path / "out.jsonl"
    command = [
        sys.executable, "-m", "prepflow", "run", "text-pretrain-clean",
        "-i", str(corpus), "-o", str(out), "--run-dir", str(run_dir),
        "--shard-rows", "40", "--executor", "ray", "--ray-address", cluster.address,
        "--no-progress",
    ]  # fmt: skip
    first = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if (run_dir / "journal.jsonl").exists() and any(e.step > 0 for e in _commits(run_dir)):
            break
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read().decode()[-2000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = {(e.step, e.shard) for e in _commits(run_dir) if e.step > 0}
    assert before
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert digest(out) == GOLDEN_DIGESTS["text-pretrain-clean@kjv_bible_chapters_en.jsonl"]
    sessions = [e.session for e in _commits(run_dir)]
    redone = {
        (e.step, e.shard)
        for e in _commits(run_dir)
        if e.session == sessions[-1] and e.step <= 12  # the steps before the global ones
    }
    assert before.isdisjoint(redone)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "ok"


# ---- the response cache under concurrent writers -----------------------------------------------


def _hammer(path: str, worker: int, keys: int) -> int:
    """Write and read back overlapping keys of one cache file from a worker process."""
    cache = ResponseCache(path)
    try:
        for i in range(keys):
            key = f"k{(i * 7 + worker) % keys}".encode()
            if cache.get(key) is None:
                cache.put(key, {"text": f"answer {(i * 7 + worker) % keys}"})
            assert cache.get(key) == {"text": f"answer {(i * 7 + worker) % keys}"}
        return len(cache)
    finally:
        cache.close()


def test_the_response_cache_is_safe_under_concurrent_writers(cluster, tmp_path: Path):
    path = str(tmp_path / "llm_cache.sqlite")
    hammer = ray.remote(_hammer)
    assert ray.get([hammer.remote(path, w, 400) for w in range(4)])
    cache = ResponseCache(path)
    assert len(cache) == 400
    assert all(cache.get(f"k{i}".encode()) == {"text": f"answer {i}"} for i in range(400))
    cache.close()
