"""The dashboard on a big run: how long its pages take to open, from a fresh `prepflow ui`.

Makes a synthetic run of N rows with the real engine (a CPU pipeline: a refiner, two threshold
filters that record their measures, one of 2 rules and Gopher's of 10, an expression filter and a
global exact dedup), starts the
real server on 127.0.0.1 in a child process, and times each page over HTTP: the first request
after start (cold: the journal is read) and the best of the next ones (warm).

    .venv/bin/python benchmarks/ui.py --rows 1000000
    .venv/bin/python benchmarks/ui.py --screenshots benchmarks/screenshots   # the README's images

``--screenshots DIR`` instead makes small demo runs (text-pretrain-clean on the shared corpora,
text-sft-synth against the scripted server) and saves PNGs of the pages in headless chromium.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PIPELINE = """
name: big
steps:
  - {op: WhitespaceNormalizer, name: normalize}
  - {op: WordCountFilter, name: words, params: {min_words: 6, max_words: 40}}
  - {op: GopherQualityFilter, name: gopher, params: {min_doc_words: 8}}
  - {op: ExpressionFilter, name: english, params: {expr: "lang == 'en'"}}
  - {op: ExactDedup, name: dedup, params: {columns: [text]}}
"""
WORDS = ["data", "pipeline", "token", "model", "train", "clean", "filter", "dedup", "shard", "stream", "arrow", "batch", "the", "of", "and", "a", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "by", "this", "are"]  # fmt: skip


def make_input(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(2, 50)))
            lang = "en" if rng.random() < 0.95 else "fr"
            f.write(json.dumps({"id": i, "text": text, "lang": lang}) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prepflow.cli", "ui", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    raise SystemExit("prepflow ui did not start")


def timed(client: httpx.Client, url: str, **params: str) -> float:
    t0 = time.perf_counter()
    response = client.get(url, params=params)
    seconds = time.perf_counter() - t0
    if response.status_code != 200:
        raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")
    return seconds


def bench(rows: int, repeat: int, workdir: Path) -> None:
    from prepflow.data import shardfile
    from prepflow.engine.runner import run_pipeline
    from prepflow.engine.spec import load_yaml

    src = workdir / "in.jsonl"
    t0 = time.perf_counter()
    make_input(src, rows)
    print(
        f"input: {rows:,} rows, {src.stat().st_size / 2**20:.0f} MiB ({time.perf_counter() - t0:.1f} s)"
    )
    root = workdir / "runs"
    t0 = time.perf_counter()
    report = run_pipeline(load_yaml(PIPELINE), input=src, output=workdir / "out.parquet",
                          run_dir=root / "big", progress=False)  # fmt: skip
    print(f"run: {report.input_rows:,} -> {report.output_rows:,} rows in {time.perf_counter() - t0:.1f} s, "
          f"{report.shards} shards")  # fmt: skip
    sizes = {
        kind: sum(f.stat().st_size for f in (root / "big" / kind).rglob("*.arrow")) / 2**20
        for kind in ("steps", "dropped", "measures")
    }
    print("run directory: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in sizes.items()))
    journal = (root / "big" / "journal.jsonl").stat().st_size
    print(f"journal: {journal / 1024:.1f} KiB")

    dropped = next((root / "big" / "dropped" / "02-words").glob("*.arrow"))
    row_id = shardfile.read(dropped)["_id"][0].as_py()
    rule = "min_words: word_count < 6"
    pages = [  # the run page first: its cold figure is a fresh server's very first request
        ("run page", "/runs/big", {}),
        ("runs list", "/", {}),
        ("live counts (JSON)", "/api/runs/big", {}),
        ("step page: drop reasons + what-if (2 rules)", "/runs/big/steps/2", {}),
        ("step page: drop reasons + what-ifs (Gopher, 10 rules)", "/runs/big/steps/3", {}),
        ("what-if at another threshold", "/api/runs/big/steps/2/whatif", {"rule": rule, "t": "10"}),
        ("row lineage", f"/runs/big/rows/{row_id}", {}),
        ("pipeline page (compile)", "/runs/big/pipeline", {}),
    ]
    proc, url = start_ui(root)
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            print(f"\n| page | cold (first request) | warm (best of {repeat}) |\n|---|---:|---:|")
            for label, path, params in pages:
                cold = timed(client, path, **params)
                warm = min(timed(client, path, **params) for _ in range(repeat))
                print(f"| {label} | {cold * 1000:,.0f} ms | {warm * 1000:,.0f} ms |")
    finally:
        proc.terminate()
        proc.wait()


# ---- screenshots --------------------------------------------------------------------------------


def screenshots(out: Path) -> None:
    """Demo runs and PNGs of the pages (palette PNGs when Pillow is installed)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from prepflow.engine.runner import run_pipeline
    from prepflow.engine.spec import load_yaml
    from prepflow.testing import ScriptedServer
    from tests.conftest import shared_data_dir
    from tests.operators.sft.test_sft_pipeline import SEEDS, responder

    work = Path(tempfile.mkdtemp(prefix="prepflow-ui-shots-"))
    root = work / "runs"
    corpora = shared_data_dir() / "corpora"
    texts = [json.loads(line) for line in (corpora / "fortunes_en.jsonl").open()][:3000]
    texts += [json.loads(line) for line in (corpora / "jargon_en_entries.jsonl").open()][:1500]
    random.Random(1).shuffle(texts)
    src = work / "corpus.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in texts))
    run_pipeline(load_yaml("text-pretrain-clean"), input=src, output=work / "clean.jsonl",
                 run_dir=root / "clean", progress=False)  # fmt: skip
    with ScriptedServer(responder) as server:
        spec = load_yaml("text-sft-synth")
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        run_pipeline(spec, input=SEEDS, output=work / "sft.jsonl", run_dir=root / "sft",
                     progress=False)  # fmt: skip

    proc, url = start_ui(root)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={work / 'profile'}", "--window-size=1200,1000",
                 "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    out.mkdir(parents=True, exist_ok=True)
    try:
        shots = [
            ("ui-run.png", "/runs/clean", None),
            ("ui-whatif.png", "/runs/clean/steps/6", ".whatif"),
            ("ui-lineage.png", "/runs/sft/rows/1", None),
        ]
        for name, path, element in shots:
            browser.get(url + path)
            time.sleep(1)
            target = out / name
            if element:
                box = browser.find_element(By.CSS_SELECTOR, element)
                box.find_element(By.CSS_SELECTOR, ".slider").send_keys(*[Keys.ARROW_LEFT] * 20)
                time.sleep(1)  # the what-if at the new threshold
                browser.execute_script("arguments[0].scrollIntoView()", box)
                box.screenshot(str(target))
            else:
                browser.save_screenshot(str(target))
            _shrink(target)
            print(f"{target} ({target.stat().st_size / 1024:.0f} KiB)")
    finally:
        browser.quit()
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def _shrink(path: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=64)
        small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: a temp dir)")
    parser.add_argument("--screenshots", type=Path, help="save the README's PNGs here instead")
    args = parser.parse_args()
    if args.screenshots:
        screenshots(args.screenshots)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="prepflow-ui-bench-"))
    try:
        bench(args.rows, args.repeat, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
