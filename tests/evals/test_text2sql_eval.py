"""`prepflow eval text2sql` on the labelled comparator pairs: chinook (a file) and the Spider
layout of the built databases (rows with db_id)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAIRS = REPO / "tests" / "operators" / "text2sql" / "comparator_pairs.jsonl"
SPIDER = REPO / "tests" / "data" / "text2sql"
CHINOOK = REPO.parent / "shared" / "data" / "sql" / "chinook.sqlite"


def labelled(db: str) -> list[dict]:
    rows = [json.loads(line) for line in PAIRS.open()]
    return [r for r in rows if (r["db"] == "chinook") == (db == "chinook")]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prepflow", "eval", "text2sql", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_spider_layout_with_db_ids(tmp_path: Path) -> None:
    pairs = labelled("spider")
    rows = [
        {"db_id": p["db"], "question": p["covers"], "gold_sql": p["gold"], "pred_sql": p["pred"]}
        for p in pairs
    ]
    out = tmp_path / "verdicts.jsonl"
    proc = cli(
        "--db",
        str(SPIDER),
        "--input",
        str(write(tmp_path / "in.jsonl", rows)),
        "--output",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["question"] for v in verdicts] == [r["question"] for r in rows]  # input order
    assert [(v["correct"], v["reason"] or None) for v in verdicts] == [
        (p["correct"], p["reason"]) for p in pairs
    ]
    summary = json.loads(proc.stdout)
    assert summary["total"] == len(rows)
    assert summary["correct"] == sum(p["correct"] for p in pairs)
    assert sum(c["total"] for c in summary["by_difficulty"].values()) == len(rows)


@pytest.mark.slow
def test_single_file_prints_accuracy_by_difficulty(tmp_path: Path) -> None:
    if not CHINOOK.is_file():
        pytest.skip("chinook not found")
    pairs = labelled("chinook")
    rows = [{"question": p["covers"], "gold_sql": p["gold"], "pred_sql": p["pred"]} for p in pairs]
    src = write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "verdicts.jsonl"
    proc = cli(
        "--db",
        str(CHINOOK),
        "--input",
        str(src),
        "--output",
        str(out),
        "--timeout-s",
        "3",  # the cross join never finishes; every other query must, even on a loaded machine
        "--max-rows",
        "5000",
    )
    assert proc.returncode == 0, proc.stderr
    correct = sum(p["correct"] for p in pairs)
    assert f"execution accuracy: {correct / len(pairs):.1%} ({correct}/{len(pairs)})" in proc.stdout
    assert "easy" in proc.stdout and "timeout 1" in proc.stdout
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["correct"] for v in verdicts] == [p["correct"] for p in pairs]
    # an existing output is never overwritten unless asked
    again = cli("--db", str(CHINOOK), "--input", str(src), "--output", str(out))
    assert again.returncode == 2 and "exists" in again.stderr
    assert len(out.read_text().splitlines()) == len(pairs)


def test_bad_input_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"gold_sql": "SELECT 1", "pred_sql": "SELECT 1"}\n{"gold_sql": "SELECT 1"}\n')
    proc = cli(
        "--db",
        str(SPIDER / "database" / "penguins" / "penguins.sqlite"),
        "--input",
        str(src),
        "--output",
        str(tmp_path / "o.jsonl"),
    )
    assert proc.returncode == 2
    assert f"{src}:2: field 'pred_sql' is missing" in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_unknown_db_id(tmp_path: Path) -> None:
    src = write(
        tmp_path / "in.jsonl", [{"db_id": "nope", "gold_sql": "SELECT 1", "pred_sql": "SELECT 1"}]
    )
    proc = cli("--db", str(SPIDER), "--input", str(src), "--output", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2 and "no database 'nope'" in proc.stderr
