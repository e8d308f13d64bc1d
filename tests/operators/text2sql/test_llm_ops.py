"""Text-to-SQL LLM operators against the scripted OpenAI-compatible server, on real databases."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prepflow.operators.text2sql.cot import SQLCoTGenerator, SQLModelDifficulty
from prepflow.operators.text2sql.generation import (
    QuestionGenerator,
    QuestionSQLJudge,
    SQLGenerator,
    SQLPredictor,
    SQLVariationGenerator,
)
from prepflow.testing import ChatRequest, Reply, ScriptedServer

from .conftest import TEXT2SQL_DATA, run_llm


def block(sql: str) -> str:
    return f"Here it is.\n```sql\n{sql}\n```"


def test_sql_generator_fans_out_by_difficulty(chinook: Path, tmp_path: Path) -> None:
    seen: list[str] = []

    def responder(req: ChatRequest) -> str:
        seen.append(req.prompt)
        level = re.search(r"Write one (\w+) SQL query", req.prompt).group(1)
        return block(f"SELECT '{level}', {req.body.get('seed', 0)}")

    op = SQLGenerator(database=str(chinook), n=2, difficulties=["easy", "hard"])
    with ScriptedServer(responder) as server:
        r = run_llm(op, [{"db_id": None}], server, tmp_path)
    assert r.kept.column("target_difficulty").to_pylist() == ["easy", "easy", "hard", "hard"]
    assert r.kept.column("sql").to_pylist() == [
        "SELECT 'easy', 0",
        "SELECT 'easy', 1",
        "SELECT 'hard', 0",
        "SELECT 'hard', 1",
    ]
    assert "CREATE TABLE album (" in seen[0] and "(sqlite)" in seen[0]
    assert "one table, at most one condition" in seen[0]


def test_reply_without_sql_is_kept_for_the_parse_filter(chinook: Path, tmp_path: Path) -> None:
    op = SQLGenerator(database=str(chinook), n=1, difficulties=["easy"])
    with ScriptedServer(lambda req: "I cannot do that.") as server:
        r = run_llm(op, [{"db_id": None}], server, tmp_path)
    assert r.kept.column("sql").to_pylist() == [""]


def test_variations_keep_the_seed(tmp_path: Path) -> None:
    def responder(req: ChatRequest) -> str:
        assert "CREATE TABLE penguins" in req.prompt
        return block("SELECT species FROM penguins WHERE island = 'Dream'")

    op = SQLVariationGenerator(database=str(TEXT2SQL_DATA), n=2, variations=["values", "harder"])
    seed = {
        "db_id": "penguins",
        "sql": "SELECT species FROM penguins WHERE island = 'Biscoe'",
        "question": "Which species live on Biscoe?",
    }
    with ScriptedServer(responder) as server:
        r = run_llm(op, [seed], server, tmp_path).kept.to_pylist()
    assert [x["variation"] for x in r] == ["seed", "values", "harder"]
    assert r[0]["sql"] == seed["sql"] and r[0]["question"] == seed["question"]
    assert all(x["seed_sql"] == seed["sql"] for x in r)
    assert [x["question"] for x in r[1:]] == ["", ""]


def test_question_generator_styles_and_existing_questions(chinook: Path, tmp_path: Path) -> None:
    def responder(req: ChatRequest) -> str:
        if "SELECT 42" in req.prompt:
            return "SELECT 42"
        style = "multi" if "conversation" in req.prompt else "other"
        return f"How many artists are there? ({style})"

    rows = [
        {"sql": "SELECT count(*) FROM artist", "question": None},
        {"sql": "SELECT count(*) FROM album", "question": "How many albums?"},
        {"sql": "SELECT 42", "question": None},
    ]
    op = QuestionGenerator(database=str(chinook), n=2, styles=["formal", "multi-turn"])
    with ScriptedServer(responder) as server:
        r = run_llm(op, rows, server, tmp_path)
    kept = r.kept.to_pylist()
    assert [(x["sql"], x["question_style"]) for x in kept] == [
        ("SELECT count(*) FROM artist", "formal"),
        ("SELECT count(*) FROM artist", "multi-turn"),
        ("SELECT count(*) FROM album", "original"),
    ] or [(x["sql"], x["question_style"]) for x in kept] == [
        ("SELECT count(*) FROM artist", "multi-turn"),
        ("SELECT count(*) FROM artist", "formal"),
        ("SELECT count(*) FROM album", "original"),
    ]
    assert kept[2]["question"] == "How many albums?"
    assert (
        r.failed.num_rows == 1
        and "is SQL, not a question" in r.failed.column("_error").to_pylist()[0]
    )
    again = QuestionGenerator(database=str(chinook), existing="keep_and_add", styles=["formal"])
    with ScriptedServer(responder) as server:
        r2 = run_llm(again, rows[1:2], server, tmp_path).kept.to_pylist()
    assert [x["question_style"] for x in r2] == ["original", "formal"]


def test_correspondence_judge(chinook: Path, tmp_path: Path) -> None:
    def responder(req: ChatRequest) -> str:
        ok = "count(*) FROM artist" in req.prompt
        return json.dumps(
            {"reason": "fine" if ok else "asks for albums, counts tracks", "matches": ok}
        )

    rows = [
        {"question": "How many artists?", "sql": "SELECT count(*) FROM artist"},
        {"question": "How many albums?", "sql": "SELECT count(*) FROM track"},
    ]
    with ScriptedServer(responder) as server:
        r = run_llm(QuestionSQLJudge(database=str(chinook)), rows, server, tmp_path)
    assert r.kept.num_rows == 1
    assert r.dropped.column("_reason").to_pylist() == [
        "question and SQL differ: asks for albums, counts tracks"
    ]


def test_predictor(tmp_path: Path) -> None:
    def responder(req: ChatRequest) -> str:
        return block("SELECT count(*) FROM flights") if "flights" in req.prompt else "no idea"

    rows = [
        {"db_id": "flights", "question": "How many flights?"},
        {"db_id": "penguins", "question": "How many?"},
    ]
    with ScriptedServer(responder) as server:
        r = run_llm(SQLPredictor(database=str(TEXT2SQL_DATA)), rows, server, tmp_path)
    assert r.kept.column("pred_sql").to_pylist() == ["SELECT count(*) FROM flights", ""]


GOLD = "SELECT count(*) FROM artist"


def cot_responder(req: ChatRequest) -> str:
    """Question A: two samples right (different SQL, same result), one wrong. Question B: the
    majority agrees on a wrong answer. Question C: nothing runs."""
    seed = req.body.get("seed", 0)
    if "Question: A" in req.prompt:
        sql = ["SELECT count(*) FROM artist", "SELECT count(id) AS n FROM artist", "SELECT 1"][seed]
    elif "Question: B" in req.prompt:
        sql = ["SELECT 7", "SELECT 7", "SELECT count(*) FROM artist"][seed]
    else:
        sql = "SELECT nope FROM nowhere"
    return f"Step {seed}: reasoning.\n```sql\n{sql}\n```"


def test_cot_voting_is_checked_against_gold(chinook: Path, tmp_path: Path) -> None:
    rows = [{"question": q, "sql": GOLD} for q in ("A", "B", "C")]
    op = SQLCoTGenerator(database=str(chinook), samples=3)
    with ScriptedServer(cot_responder) as server:
        r = run_llm(op, rows, server, tmp_path).kept.to_pylist()
    a, b, c = r
    assert a["cot_verified"] and a["cot_votes"] == 2 / 3 and a["cot"].startswith("Step 0")
    assert a["cot_check"] == "matches gold (2/3 samples agree)"
    assert not b["cot_verified"] and b["cot_sql"] == "SELECT 7"
    assert b["cot_check"].startswith("winning result (2/3) differs from gold: different rows")
    assert not c["cot_verified"] and c["cot_check"] == "no sample ran (0/3)"


def test_model_difficulty(chinook: Path, tmp_path: Path) -> None:
    def responder(req: ChatRequest) -> str:
        seed = req.body.get("seed", 0)
        if "Question: half" in req.prompt:
            return block(GOLD if seed % 2 == 0 else "SELECT 0")
        return block(GOLD)

    rows = [
        {"question": "half", "sql": GOLD},
        {"question": "all", "sql": GOLD},
        {"question": "bad gold", "sql": "SELECT nope"},
    ]
    op = SQLModelDifficulty(database=str(chinook), attempts=4)
    with ScriptedServer(responder) as server:
        r = run_llm(op, rows, server, tmp_path)
    assert r.kept.column("success_rate").to_pylist() == [0.5, 1.0]
    assert r.kept.column("model_difficulty").to_pylist() == ["medium", "easy"]
    assert "gold SQL does not run" in r.failed.column("_error").to_pylist()[0]


def test_a_cut_off_answer_does_not_sink_its_siblings(chinook: Path, tmp_path: Path) -> None:
    """Small models explain after the query until the token limit: the complete ```sql block
    is used; an answer cut before any complete block gives '' (the parse filter drops it)."""

    def responder(req: ChatRequest) -> Reply:
        asked = next(m["content"] for m in req.messages if m["role"] == "user")  # re-asks too
        if "Write one easy" in asked:
            return Reply(
                "```sql\nSELECT count(*) FROM genre\n```\nThis query counts", finish_reason="length"
            )
        if "Write one medium" in asked:
            return Reply("```sql\nSELECT name FROM", finish_reason="length")
        return Reply(block("SELECT 1"))

    op = SQLGenerator(database=str(chinook), n=1, difficulties=["easy", "medium", "hard"])
    with ScriptedServer(responder) as server:
        r = run_llm(op, [{"db_id": None}], server, tmp_path)
    assert r.failed is None or r.failed.num_rows == 0
    assert r.kept.column("sql").to_pylist() == ["SELECT count(*) FROM genre", "", "SELECT 1"]


def test_cot_samples_that_were_cut_off_do_not_vote(chinook: Path, tmp_path: Path) -> None:
    def responder(req: ChatRequest) -> Reply:
        if req.body.get("seed", 0) == 0:
            return Reply("Thinking about artists and", finish_reason="length")
        return Reply(f"Count them.\n```sql\n{GOLD}\n```")

    op = SQLCoTGenerator(database=str(chinook), samples=3)
    with ScriptedServer(responder) as server:
        (row,) = run_llm(op, [{"question": "A?", "sql": GOLD}], server, tmp_path).kept.to_pylist()
    assert row["cot_verified"] and row["cot_votes"] == 2 / 3 and row["cot"].startswith("Count them")
