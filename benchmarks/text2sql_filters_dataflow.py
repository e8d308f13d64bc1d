"""DataFlow's side of benchmarks/text2sql_filters.py (runs in its own virtualenv).

Runs DataFlow's ``SQLExecutabilityFilter`` then ``SQLExecutionFilter`` (open-dataflow 1.0.13,
unchanged) over the benchmark rows, with a ``DatabaseManager`` on the same SQLite files
(constructed with its real signature: the shipped CPU Text2SQL pipeline passes arguments this
version does not accept). Prints {"rows_in", "after_executability", "after_execution",
"seconds"} as JSON on the last line.

Usage: python text2sql_filters_dataflow.py INPUT.jsonl DB_ROOT WORK_DIR
"""

import json
import sys
import time

from dataflow.operators.text2sql import SQLExecutabilityFilter, SQLExecutionFilter
from dataflow.utils.storage import FileStorage
from dataflow.utils.text2sql.database_manager import DatabaseManager


def main(source: str, db_root: str, work: str) -> None:
    start = time.perf_counter()
    manager = DatabaseManager(db_type="sqlite", config={"root_path": db_root})
    storage = FileStorage(
        first_entry_file_name=source, cache_path=work, file_name_prefix="step", cache_type="jsonl"
    )
    SQLExecutabilityFilter(database_manager=manager).run(storage.step(), input_sql_key="SQL")
    SQLExecutionFilter(database_manager=manager).run(storage.step(), input_sql_key="SQL")
    seconds = time.perf_counter() - start
    counts = []
    for i in (1, 2):
        with open(f"{work}/step_step{i}.jsonl") as f:
            counts.append(sum(1 for _ in f))
    with open(source) as f:
        rows_in = sum(1 for _ in f)
    print(
        json.dumps(
            {
                "rows_in": rows_in,
                "after_executability": counts[0],
                "after_execution": counts[1],
                "seconds": round(seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
