"""``prepflow run --profile``: each step's time and its slowest functions, from real runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers import prepflow

PIPELINE = """\
name: profiled
steps:
  - {op: WhitespaceNormalizer}
  - {op: GopherQualityFilter}
  - {op: MinHashDedup, params: {threshold: 0.8, num_perm: 64}}
  - {op: WordCountFilter, params: {min_words: 3}}
"""


def _run(tmp_path: Path, corpus: Path, *extra: str):
    done = prepflow(
        "run", "p.yaml", "-i", corpus, "-o", "out.jsonl", "--run-dir", "run",
        "--shard-rows", "2000", *extra, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def _table(profile_md: str) -> dict[str, list[str]]:
    """Rows of profile.md's step table by step name."""
    rows = [line.split(" | ") for line in profile_md.splitlines() if re.match(r"\| \d+ \|", line)]
    return {cells[1]: cells for cells in rows}


def test_a_profiled_run_gives_each_steps_time_and_the_functions_inside_it(
    tmp_path: Path, shared_data: Path
):
    corpus = shared_data / "corpora" / "fortunes_en.jsonl"
    (tmp_path / "p.yaml").write_text(PIPELINE)
    plain = _run(tmp_path, corpus, "--run-dir", "plain", "-o", "plain.jsonl")
    assert not (tmp_path / "plain" / "profile").exists()
    assert "where the time went" not in plain.stdout

    done = _run(tmp_path, corpus, "--profile")
    # the same rows come out, profiled or not
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    assert "where the time went" in done.stdout and "profile.md" in done.stdout

    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["shards"] >= 2
    profile = (tmp_path / "run" / "profile.md").read_text()
    table = _table(profile)
    assert set(table) == {s["name"] for s in report["steps"]}
    for step in report["steps"]:
        cells = table[step["name"]]
        assert cells[3] == f"{step['rows_in']:,}"  # rows in, as the report counts them
        assert float(cells[5]) == round(1e6 * step["seconds"] / step["rows_in"], 1)
    assert f"units profiled: {len(report['steps']) * report['shards']};" in profile

    # every shard of every step left its statistics; the global step its three passes
    files = {p.relative_to(tmp_path / "run" / "profile").as_posix()
             for p in (tmp_path / "run" / "profile").rglob("*.pstats")}  # fmt: skip
    dirs = {s["op"]: s["dir"] for s in report["steps"]}
    for k in range(report["shards"]):
        for step_dir in dirs.values():
            assert f"{step_dir}/shard-{k:05d}-run.pstats" in files
        assert f"{dirs['MinHashDedup']}/shard-{k:05d}-summarize.pstats" in files
    assert f"{dirs['MinHashDedup']}/shard-00000-finalize.pstats" in files

    # a step's section names the operator's own code among its slowest functions
    sections = {s.split(" ")[0]: s for s in profile.split("\n## ")[1:]}
    names = {s["op"]: s["name"] for s in report["steps"]}
    gopher = sections[names["GopherQualityFilter"]]
    assert re.search(r"_stats\.py:\d+\(|_rules\.py:\d+\(", gopher), gopher
    minhash = sections[names["MinHashDedup"]]
    assert "minhash.py" in minhash or "dedup.py" in minhash, minhash


def test_a_profile_covers_its_own_session_and_leaves_foreign_files(
    tmp_path: Path, shared_data: Path
):
    corpus = shared_data / "corpora" / "fortunes_en.jsonl"
    (tmp_path / "p.yaml").write_text(PIPELINE)
    _run(tmp_path, corpus, "--profile")
    mine = tmp_path / "run" / "profile" / "notes.txt"
    mine.write_text("my notes")

    _run(tmp_path, corpus, "--profile")  # resumed: nothing computed, nothing profiled
    profile = (tmp_path / "run" / "profile.md").read_text()
    assert "units profiled: 0;" in profile
    assert "## " not in profile  # no step has a profile of this session
    assert not list((tmp_path / "run" / "profile").rglob("*.pstats"))
    assert mine.read_text() == "my notes"

    _run(tmp_path, corpus, "--profile", "--fresh")
    assert mine.read_text() == "my notes"
    assert len(list((tmp_path / "run" / "profile").rglob("*-run.pstats"))) > 0
