"""Text-to-SQL operators that need no model, on chinook and the built test databases."""

from __future__ import annotations

import json
from pathlib import Path

from prepflow.operators.text2sql.cot import SQLCoTFilter
from prepflow.operators.text2sql.decontaminate import SQLDecontaminationFilter
from prepflow.operators.text2sql.execution import (
    SQLExecutabilityFilter,
    SQLExecutionFilter,
    SQLExecutionMatch,
    SQLResultMatchFilter,
)
from prepflow.operators.text2sql.prompting import SchemaPromptBuilder, ToText2SQLChat
from prepflow.operators.text2sql.sql import SQLComponentDifficulty, SQLNormalizer, SQLParseFilter

from .conftest import TEXT2SQL_DATA, run_cpu, table


def reasons(result) -> list[str]:
    return result.dropped.column("_reason").to_pylist() if result.dropped is not None else []


def test_parse_filter(tmp_path: Path) -> None:
    rows = [
        {"sql": "SELECT name FROM artist"},
        {"sql": "SELECT name FROM artist WHERE"},
        {"sql": "DELETE FROM artist"},
        {"sql": ""},
        {"sql": "WITH a AS (SELECT 1 AS x) SELECT x FROM a UNION SELECT 2"},
    ]
    r = run_cpu(SQLParseFilter(), rows, tmp_path)
    assert r.kept.column("sql").to_pylist() == [rows[0]["sql"], rows[4]["sql"]]
    why = reasons(r)
    assert why[0].startswith("sql does not parse; ") and "line 1" in why[0]
    assert why[1:] == ["not a query: Delete", "empty SQL"]


def test_normalizer_and_transpile(tmp_path: Path) -> None:
    r = run_cpu(SQLNormalizer(), [{"sql": "select  name from artist where id=1 -- x"}], tmp_path)
    assert r.kept.column("sql").to_pylist() == ["SELECT name FROM artist WHERE id = 1"]
    r = run_cpu(SQLNormalizer(write="tsql"), [{"sql": "SELECT name FROM artist LIMIT 5"}], tmp_path)
    assert r.kept.column("sql").to_pylist() == ["SELECT TOP 5 name FROM artist"]


def test_spider_hardness_on_the_papers_examples(tmp_path: Path) -> None:
    sqls = [
        "SELECT count(*) FROM cars_data WHERE cylinders > 4",
        "SELECT T2.name, count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id GROUP BY T1.stadium_id",
        "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)",
        "SELECT name, country, age FROM singer ORDER BY age DESC",
        "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.aid JOIN c AS T3 ON T2.id = T3.bid WHERE T3.x = 1",
        "SELECT AVG(life_expectancy) FROM country WHERE name NOT IN (SELECT T1.name FROM country AS T1 JOIN country_language AS T2 ON T1.code = T2.country_code WHERE T2.language = 'English' AND T2.is_official = 'T')",
        "SELECT name FROM a WHERE x LIKE '%a%' OR y = 2",
    ]
    r = run_cpu(SQLComponentDifficulty(), [{"sql": s} for s in sqls], tmp_path)
    assert r.kept.column("difficulty").to_pylist() == [
        "easy",
        "medium",
        "hard",
        "medium",
        "hard",
        "extra",
        "hard",
    ]
    assert r.kept.column("components").to_pylist()[5] == {
        "component1": 1,
        "component2": 1,
        "others": 1,
    }


def test_executability_filter(chinook: Path, tmp_path: Path) -> None:
    rows = [
        {"sql": "SELECT name FROM artist"},
        {"sql": "SELECT nme FROM artist"},
        {"sql": "DELETE FROM artist"},
        {"sql": "SELECT count(*) FROM track a, track b, track c"},  # prepared, never run
    ]
    r = run_cpu(SQLExecutabilityFilter(database=str(chinook)), rows, tmp_path)
    assert r.kept.column("sql").to_pylist() == [rows[0]["sql"], rows[3]["sql"]]
    assert reasons(r) == [
        "not executable: error: no such column: nme",
        "not executable: denied: DELETE artist",
    ]


def test_execution_filter_reasons_name_the_limits(chinook: Path, tmp_path: Path) -> None:
    rows = [
        {"sql": "SELECT name FROM artist WHERE id = 1"},
        {"sql": "SELECT name FROM artist WHERE id < 0"},
        {"sql": "SELECT count(*) FROM track a, track b, track c"},
        {"sql": "SELECT id FROM track"},
        {"sql": "SELECT nope FROM artist"},
    ]
    op = SQLExecutionFilter(database=str(chinook), timeout_s=0.3, max_rows=100)
    r = run_cpu(op, rows, tmp_path)
    assert r.kept.num_rows == 1
    assert reasons(r) == [
        "empty result (allow_empty=false)",
        "timeout: over timeout_s=0.3",
        "row-limit: more than max_rows=100 rows",
        "error: no such column: nope",
    ]
    kept = run_cpu(SQLExecutionFilter(database=str(chinook), allow_empty=True), rows[:2], tmp_path)
    assert kept.kept.num_rows == 2


def test_rows_pick_their_database(tmp_path: Path) -> None:
    rows = [
        {
            "database": str(TEXT2SQL_DATA),
            "db_id": "flights",
            "sql": "SELECT count(*) FROM airlines",
        },
        {
            "database": str(TEXT2SQL_DATA),
            "db_id": "penguins",
            "sql": "SELECT count(*) FROM airlines",
        },
    ]
    r = run_cpu(SQLExecutionFilter(), rows, tmp_path)
    assert r.kept.column("db_id").to_pylist() == ["flights"]
    assert reasons(r) == ["error: no such table: airlines"]


def test_result_match_filter_and_execution_match(chinook: Path, tmp_path: Path) -> None:
    rows = [
        {
            "gold_sql": "SELECT name FROM genre ORDER BY name",
            "sql": "SELECT name AS g FROM genre ORDER BY 1",
        },
        {
            "gold_sql": "SELECT name FROM genre ORDER BY name",
            "sql": "SELECT name FROM genre ORDER BY name DESC",
        },
        {"gold_sql": "SELECT count(*) FROM genre", "sql": "SELECT count(*) FROM artist"},
    ]
    r = run_cpu(SQLResultMatchFilter(database=str(chinook)), rows, tmp_path)
    assert r.kept.num_rows == 1
    assert reasons(r) == [
        "different order: same rows in another order than the gold ORDER BY",
        "different rows: no predicted column has the values of gold column 1",
    ]
    evald = run_cpu(
        SQLExecutionMatch(database=str(chinook)).bind({"pred_sql": "sql"}), rows, tmp_path
    ).kept
    assert evald.column("correct").to_pylist() == [True, False, False]
    assert evald.column("reason").to_pylist() == ["", "different order", "different rows"]


def test_schema_prompt_links_tables_of_a_large_schema(chinook: Path, tmp_path: Path) -> None:
    rows = [
        {"question": "Which artist has the most albums?", "sql": None},
        {
            "question": "How long is the longest track?",
            "sql": "SELECT max(milliseconds) FROM track",
        },
    ]
    r = run_cpu(SchemaPromptBuilder(database=str(chinook), max_tables=3), rows, tmp_path).kept
    shown = r.column("schema_tables").to_pylist()
    assert set(shown[0][:2]) == {"artist", "album"} and len(shown[0]) <= 3
    assert shown[1][0] == "track"
    text = r.column("schema").to_pylist()[0]
    assert "CREATE TABLE artist (" in text and "-- e.g. 'AC/DC'" in text and "invoice" not in text
    whole = run_cpu(SchemaPromptBuilder(database=str(chinook)), rows[:1], tmp_path).kept
    assert len(whole.column("schema_tables").to_pylist()[0]) == 11


def test_schema_prompt_declares_keys(tmp_path: Path) -> None:
    op = SchemaPromptBuilder(database=str(TEXT2SQL_DATA))
    r = run_cpu(op, [{"db_id": "baseball", "question": "q"}], tmp_path).kept
    text = r.column("schema").to_pylist()[0]
    assert "PRIMARY KEY (player_id, year, stint)" in text
    assert "FOREIGN KEY (year, team_id) REFERENCES teams (year, team_id)" in text
    assert "player_id TEXT PRIMARY KEY" in text


def test_chat_export(tmp_path: Path) -> None:
    rows = [
        {
            "schema": "CREATE TABLE t (x INT)",
            "question": "How many?",
            "sql": "SELECT count(*) FROM t",
            "cot": "Count rows.\n```sql\nSELECT count(*) FROM t\n```",
        },
        {
            "schema": "CREATE TABLE t (x INT)",
            "question": "Max?",
            "sql": "SELECT max(x) FROM t",
            "cot": "",
        },
    ]
    out = ToText2SQLChat().run_batch(table(rows)).kept.column("messages").to_pylist()
    assert [m["role"] for m in out[0]] == ["system", "user", "assistant"]
    assert (
        "CREATE TABLE t (x INT)" in out[0][1]["content"]
        and "Question: How many?" in out[0][1]["content"]
    )
    assert out[0][2]["content"].startswith("Count rows.")
    assert out[1][2]["content"] == "```sql\nSELECT max(x) FROM t\n```"


def test_decontamination(tmp_path: Path) -> None:
    bench = tmp_path / "dev.json"
    bench.write_text(
        json.dumps(
            [
                {
                    "question": "How many singers do we have?",
                    "query": "SELECT count(*) FROM singer",
                },
                {
                    "question": "What are the names of all the albums released by the artist called AC/DC in total?",
                    "query": "SELECT title FROM album WHERE artist = 1",
                },
            ]
        )
    )
    rows = [
        {"question": "Count them", "sql": "select COUNT(*) from Singer"},
        {
            "question": "Show the names of all the albums released by the artist called Accept",
            "sql": "SELECT 1",
        },
        {"question": "how many singers do we have", "sql": "SELECT 2"},
        {
            "question": "Which genre has the most tracks?",
            "sql": "SELECT genre FROM track GROUP BY genre ORDER BY count(*) DESC LIMIT 1",
        },
        {"question": "Titles by artist 7?", "sql": "SELECT title FROM album WHERE artist = 7"},
    ]
    r = run_cpu(SQLDecontaminationFilter(benchmark=str(bench)), rows, tmp_path)
    assert r.kept.column("question").to_pylist() == ["Which genre has the most tracks?"]
    assert reasons(r) == [
        "sql matches benchmark dev.json:1 (up to constants and case)",
        "question shares 8 tokens with benchmark dev.json:2",
        "question equals benchmark dev.json:1",
        "sql matches benchmark dev.json:2 (up to constants and case)",
    ]


def test_cot_filter() -> None:
    rows = [
        {"cot_verified": True, "cot_votes": 1.0, "cot_check": "matches gold (3/3 samples agree)"},
        {
            "cot_verified": False,
            "cot_votes": 0.67,
            "cot_check": "winning result (2/3) differs from gold: different rows: x",
        },
        {"cot_verified": True, "cot_votes": 0.34, "cot_check": "matches gold (1/3 samples agree)"},
    ]
    r = SQLCoTFilter(min_votes=0.5).run_batch(table(rows))
    assert r.kept.num_rows == 1
    assert reasons(r) == [
        "cot not verified: winning result (2/3) differs from gold: different rows: x",
        "cot_votes: 0.34 < min_votes=0.5",
    ]
