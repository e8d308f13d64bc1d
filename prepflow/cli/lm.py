"""`prepflow lm ...`: train the small n-gram models the perplexity operators load."""

from pathlib import Path
from typing import Annotated

import typer

lm_app = typer.Typer(
    help="Train n-gram language models for PerplexityScore/PerplexityFilter.", no_args_is_help=True
)


@lm_app.callback()
def _group() -> None:
    """Train n-gram language models for PerplexityScore/PerplexityFilter."""


@lm_app.command("train")
def train(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Reference corpus: files, directories or globs (JSONL, JSON, Parquet, CSV)."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="ARPA file to write.")],
    order: Annotated[int, typer.Option(min=2, help="N-gram order.")] = 3,
    field: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    max_docs: Annotated[
        int | None, typer.Option(min=1, help="Read at most this many documents.")
    ] = None,
) -> None:
    """Train an interpolated modified Kneser-Ney model and write it in ARPA format.

    Text is normalised exactly as the perplexity operators normalise it before scoring.
    """
    from prepflow.core.errors import InputError
    from prepflow.data.readers import open_input
    from prepflow.operators.text.language_model import lm_lines, train_arpa

    def sentences():
        seen = 0
        for path in inputs:
            for batch in open_input(path).iter_batches(1024):
                if field not in batch.column_names:
                    raise InputError(
                        f"no column {field!r} (columns: {', '.join(batch.column_names)})", path=path
                    )
                if max_docs is not None:
                    batch = batch.slice(0, max_docs - seen)
                seen += batch.num_rows
                yield from lm_lines(batch.column(field).combine_chunks())[0]
                if max_docs is not None and seen >= max_docs:
                    return

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            sizes = train_arpa(sentences(), order, out)
    except (InputError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    tmp.replace(output)
    typer.echo(f"wrote {output} ({', '.join(f'{v} {k}' for k, v in sizes.items())})")
