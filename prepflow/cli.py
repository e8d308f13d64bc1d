"""The `prepflow` command. Imports stay inside commands so `prepflow --help` starts fast."""

from __future__ import annotations

import atexit
import gc
import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="prepflow",
    no_args_is_help=True,
    add_completion=False,
    help="Prepare LLM training data with LLMs in the loop.",
)
ops_app = typer.Typer(no_args_is_help=True, help="Browse the operator registry.")
app.add_typer(ops_app, name="ops")


@app.callback()
def _collect_from_here() -> None:
    # The entry point (prepflow.__main__) paused the garbage collector for the imports; what
    # they built lives as long as the process, so it is frozen out of every later collection.
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _mount_subcommands() -> None:
    """Sub-apps of other layers; their modules import only typer at the top, so this stays fast."""
    from prepflow.evals.cli import eval_app
    from prepflow.operators.text.cli import lm_app
    from prepflow.sandbox.cli import sandbox_app
    from prepflow.serving.cli import models_app

    app.add_typer(models_app, name="models", help="List and pull local GGUF models.")
    app.add_typer(lm_app, name="lm", help="Train n-gram language models for perplexity filters.")
    app.add_typer(sandbox_app, name="sandbox", help="Run untrusted code in isolation; check it.")
    app.add_typer(eval_app, name="eval", help="Evaluate a model on benchmarks (HumanEval...).")


_mount_subcommands()

PipelineArg = Annotated[
    str,
    typer.Argument(
        help="A pipeline YAML file, a shipped pipeline name, or FILE.py:Class for a Python pipeline."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a parameter: STEP.PARAM=VALUE (repeatable; serving.KEY=VALUE too)."
    ),
]


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _load(pipeline: str) -> Any:
    """PipelineSpec from a YAML file/shipped name, or a Python pipeline class `file.py:Class`."""
    from prepflow.engine.spec import load_yaml

    if ":" in pipeline and pipeline.split(":", 1)[0].endswith(".py"):
        from prepflow.engine.compiler import import_user_modules
        from prepflow.engine.pipeline import Pipeline

        path, cls_name = pipeline.split(":", 1)
        (module,) = import_user_modules([str(Path(path).resolve())], None)
        cls = getattr(module, cls_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Pipeline)):
            raise _usage(f"{path}: no Pipeline subclass named {cls_name!r}")
        spec = cls().spec()
        spec.imports = [str(Path(path).resolve()), *spec.imports]
        return spec
    return load_yaml(pipeline)


def _usage(msg: str) -> Exception:
    from prepflow.core.errors import ConfigError

    return ConfigError(msg)


def _serving_overrides(
    spec: Any, backend: str | None, base_url: str | None, model: str | None
) -> None:
    """`--base-url/--model/--backend` replace the pipeline's serving without editing it."""
    if not (backend or base_url or model):
        return
    serving = dict(spec.serving or {})
    if base_url:
        serving = {
            "backend": "openai",
            "base_url": base_url,
            **{k: v for k, v in serving.items() if k in ("generation", "concurrency", "timeout_s")},
        }
    if backend:
        serving["backend"] = backend
    if model:
        serving["model"] = model
    spec.serving = serving


@app.command()
def run(
    pipeline: PipelineArg,
    input: Annotated[
        str, typer.Option("--input", "-i", help="File, directory, glob or fsspec URL.")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output file (format from extension).")
    ],
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Run directory (default runs/<pipeline>); resumed if it exists."),
    ] = None,
    set_: SetOpt = None,
    shard_rows: Annotated[
        int | None,
        typer.Option(
            help="Rows per shard, the unit of resume and parallelism (default with LLM steps: "
            "a sixteenth of the input, 8 to 64; else 50,000, or a quarter of an input smaller "
            "than that, 1,000 at least)."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Parallel shards (0: one per core); CPU-heavy steps use worker processes "
            "once the input holds 50,000 rows or more, threads below that."
        ),
    ] = 0,
    on_bad_input: Annotated[
        str, typer.Option(help="'stop' at the first malformed record, or 'quarantine' it.")
    ] = "stop",
    fresh: Annotated[bool, typer.Option(help="Discard the run directory and start over.")] = False,
    max_failure_rate: Annotated[
        float, typer.Option(help="Exit non-zero when a step fails more rows than this.")
    ] = 0.1,
    backend: Annotated[
        str | None, typer.Option(help="Serving backend override: llamacpp, openai, vllm, sglang.")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible endpoint (key from PREPFLOW_API_KEY or OPENAI_API_KEY)."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name, catalog short name or GGUF path.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option(help="Live progress bars (default: on a terminal).")
    ] = None,
) -> None:
    """Run a pipeline; re-running the same command resumes where it stopped."""
    from prepflow.core.errors import PrepflowError
    from prepflow.engine.runner import run_pipeline

    try:
        spec = _load(pipeline)
        _serving_overrides(spec, backend, base_url, model)
        report = run_pipeline(
            spec,
            input=input,
            output=output,
            run_dir=run_dir,
            overrides=set_ or [],
            shard_rows=shard_rows,
            workers=workers,
            on_bad_input=on_bad_input,
            fresh=fresh,
            max_failure_rate=max_failure_rate,
            progress=progress,
        )
    except PrepflowError as e:
        _fail(f"error: {e}")
    _print_summary(report)
    if not report.ok:
        _fail("\n".join(report.problems), code=1)


@app.command(name="compile")
def compile_(
    pipeline: PipelineArg,
    input: Annotated[
        str,
        typer.Option("--input", "-i", help="Input whose schema the pipeline is checked against."),
    ],
    set_: SetOpt = None,
) -> None:
    """Check a pipeline against an input without running it; lists every problem, exits non-zero."""
    from prepflow.core.errors import PrepflowError
    from prepflow.engine.compiler import compile_pipeline

    try:
        spec = _load(pipeline)
        spec.apply_overrides(set_ or [])
        plan = compile_pipeline(spec, input=input, estimated_rows=_estimate_rows(input))
    except PrepflowError as e:
        _fail(f"error: {e}")
    typer.echo(plan.render())


def _estimate_rows(input: str) -> int | None:
    from prepflow.data.readers import open_input

    try:
        return open_input(input).estimate_rows()
    except Exception:
        return None


@app.command()
def report(
    run_dir: Path,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json.")] = False,
) -> None:
    """Show the report of a run directory."""
    path = run_dir / ("report.json" if as_json else "report.md")
    if not path.exists():
        _fail(f"error: {run_dir}: no report (is it a prepflow run directory that finished?)")
    typer.echo(path.read_text(encoding="utf-8"))


@app.command()
def retry(run_dir: Path, workers: int = 0) -> None:
    """Re-run only the rows that failed in a finished run (cached LLM answers are free)."""
    from prepflow.core.errors import PrepflowError
    from prepflow.engine.runner import retry_run

    try:
        rep = retry_run(run_dir, workers=workers)
    except PrepflowError as e:
        _fail(f"error: {e}")
    _print_summary(rep)
    if not rep.ok:
        _fail("\n".join(rep.problems), code=1)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument()] = Path("."),
    name: Annotated[str, typer.Option(help="Name of the pipeline and operator.")] = "my_pipeline",
) -> None:
    """Scaffold a pipeline YAML and a custom operator (with its test) in DIRECTORY."""
    from prepflow.core.errors import PrepflowError
    from prepflow.templates import scaffold

    try:
        for p in scaffold(directory, name):
            typer.echo(f"created {p}")
    except PrepflowError as e:
        _fail(f"error: {e}")


@ops_app.command("list")
def ops_list(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
) -> None:
    """List registered operators."""
    from prepflow.core.registry import registry

    infos = [i for i in registry.all_info() if domain is None or i["domain"] == domain]
    if as_json:
        typer.echo(json.dumps(infos, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "domain", "kind", "summary", box=None)
    for i in infos:
        table.add_row(i["name"], i["domain"], i["kind"], i["summary"])
    Console().print(table)
    for name, err in registry.load_errors.items():
        typer.secho(f"plugin {name} failed to load: {err}", fg=typer.colors.YELLOW, err=True)


@ops_app.command("show")
def ops_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one operator: description, columns, parameters, requirements."""
    from prepflow.core.errors import PrepflowError
    from prepflow.core.registry import registry

    try:
        info = registry.info(name)
    except PrepflowError as e:
        _fail(f"error: {e}")
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    out = [
        f"{info['name']}  ({info['domain']} / {info['kind']}{', global' if info['global'] else ''})",
        "",
        info["description"],
        "",
        "inputs:",
    ]
    out += [f"  {c['name']}: {c['type']}  {c['description']}" for c in info["inputs"]] or [
        "  (none)"
    ]
    out += ["outputs:"] + (
        [f"  {c['name']}: {c['type']}  {c['description']}" for c in info["outputs"]] or ["  (none)"]
    )
    out += ["params:"] + (
        [
            f"  {p['name']}: {p['type']} = {p['default']!r}  {p['description']}"
            for p in info["params"]
        ]
        or ["  (none)"]
    )
    req = {k: v for k, v in info["requires"].items() if v}
    out += [f"requires: {req or 'nothing beyond the core install'}"]
    typer.echo("\n".join(out))


def _print_summary(report: Any) -> None:
    typer.echo(
        f"{report.pipeline}: {report.input_rows:,} rows in -> {report.output_rows:,} rows out "
        f"in {report.seconds:.1f}s ({report.computed_shards} units computed, "
        f"{report.resumed_shards} resumed)"
        + (f"; {report.quarantined:,} quarantined" if report.quarantined else "")
    )
    for s in report.steps:
        typer.echo(
            f"  {s['index']:>2}. {s['name']:<24} in {s['rows_in']:>10,}  kept {s['kept']:>10,}  "
            f"dropped {s['dropped']:>9,}  failed {s['failed']:>7,}"
        )
    typer.echo(f"report: {report.run_dir}/report.md; output: {report.output}")


def main() -> None:
    # Last at exit: hide every object from the garbage collector, so the interpreter's final
    # collections skip what pyarrow, pydantic and loaded models allocated (~0.15 s per
    # command, for memory the process gives back anyway). Other exit handlers run before it.
    atexit.register(gc.freeze)
    app()


if __name__ == "__main__":
    main()
