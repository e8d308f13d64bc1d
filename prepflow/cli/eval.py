"""`prepflow eval ...`: evaluate predictions on benchmarks.

Mounted by the main CLI; only typer is imported here, the evaluators (``prepflow.evals``) load
inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Evaluate model outputs on benchmarks.", no_args_is_help=True)


@eval_app.command("text2sql")
def text2sql(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="A SQLite file, a directory or Spider/BIRD layout (rows give db_id), or a postgresql:// URL.",
        ),
    ],
    input: Annotated[
        Path, typer.Option("--input", help="JSONL rows with gold_sql, pred_sql (question, db_id).")
    ],
    output: Annotated[
        Path, typer.Option("--output", help="JSONL verdicts, one per input row, in input order.")
    ],
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Time limit of each query.")
    ] = 30.0,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Most rows a query may return.")
    ] = 100_000,
    workers: Annotated[int, typer.Option("--workers", help="Queries run at once.")] = 2,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output file.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Execution accuracy of predicted SQL: overall and by Spider difficulty, with the reason of
    every miss (gold error, pred error, timeout, limit, different rows, different order)."""
    import json

    from prepflow.core.errors import PrepflowError
    from prepflow.evals.text2sql import evaluate_file

    try:
        summary = evaluate_file(
            db,
            input,
            output,
            overwrite=overwrite,
            timeout_s=timeout_s,
            max_rows=max_rows,
            workers=workers,
        )
    except PrepflowError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    result = summary.to_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"execution accuracy: {result['execution_accuracy']:.1%} ({summary.correct}/{summary.total})"
    )
    for col in ("difficulty", "correct", "total", "accuracy"):
        table.add_column(col, justify="left" if col == "difficulty" else "right")
    for name, cell in result["by_difficulty"].items():
        table.add_row(
            name, str(cell["correct"]), str(cell["total"]), f"{cell['execution_accuracy']:.1%}"
        )
    table.add_row(
        "all", str(summary.correct), str(summary.total), f"{summary.accuracy:.1%}", style="bold"
    )
    console = Console()
    console.print(table)
    if result["reasons"]:
        console.print("misses: " + ", ".join(f"{k} {v}" for k, v in result["reasons"].items()))
    console.print(f"verdicts: {output}")
