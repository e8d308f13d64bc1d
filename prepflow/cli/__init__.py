"""The `prepflow` command. Sub-command modules import only typer at the top, and the rest of
prepflow loads inside each command, so that `prepflow --help` starts fast. They leave out
``from __future__ import annotations``: typer reads every command's signature on each start,
and evaluating their annotations from strings made that 3x slower (35 ms against 10)."""

import gc
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from prepflow.cli._exit import run_then_end
from prepflow.cli._memory import tune_allocators
from prepflow.cli.eval import eval_app
from prepflow.cli.lm import lm_app
from prepflow.cli.models import models_app
from prepflow.cli.sandbox import sandbox_app
from prepflow.cli.ui import ui
from prepflow.cli.warm import warm_app

app = typer.Typer(
    name="prepflow",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback must never print an API key in a local
    help="Prepare LLM training data with LLMs in the loop.",
)
ops_app = typer.Typer(no_args_is_help=True, help="Browse the operator registry.")
app.add_typer(ops_app, name="ops")


def _collect_from_here() -> None:
    # The entry point (prepflow.__main__) paused the garbage collector for the imports; what
    # they built lives as long as the process, so it is frozen out of every later collection.
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


@app.callback()
def _before_a_command(ctx: typer.Context) -> None:
    # `run` imports the engine first (~0.25 s of imports, ~10 ms of collections over them)
    if ctx.invoked_subcommand != "run":
        _collect_from_here()


app.add_typer(models_app, name="models", help="List and pull local GGUF models.")
app.add_typer(lm_app, name="lm", help="Train n-gram language models for perplexity filters.")
app.add_typer(eval_app, name="eval", help="Evaluate models on benchmarks (HumanEval, Text-to-SQL).")
app.add_typer(sandbox_app, name="sandbox", help="Run untrusted code in isolation; check it.")
app.add_typer(warm_app, name="warm", help="Warm servers that start `prepflow run` fast.")
app.command(name="ui")(ui)

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


BackendOpt = Annotated[
    str | None, typer.Option(help="Serving backend override: llamacpp, openai, vllm, sglang.")
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(help="OpenAI-compatible endpoint (key from PREPFLOW_API_KEY or OPENAI_API_KEY)."),
]
ModelOpt = Annotated[str | None, typer.Option(help="Model name, catalog short name or GGUF path.")]
ProgressOpt = Annotated[
    bool | None, typer.Option(help="Live progress (default: on a terminal; plain lines elsewhere).")
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
    serving: dict[str, Any] | None, backend: str | None, base_url: str | None, model: str | None
) -> dict[str, Any] | None:
    """`--base-url/--model/--backend` replace a pipeline's serving without editing it."""
    if not (backend or base_url or model):
        return serving
    serving = dict(serving or {})
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
    return serving


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
            "a sixteenth of the input, 8 to 64; else 50,000, or an input smaller than that "
            "spread over a shard per worker, 4 at most, 1,000 rows at least)."
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
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    progress: ProgressOpt = None,
    executor: Annotated[
        str,
        typer.Option(
            help="Where the steps run: local (this machine, the default) or ray (a Ray cluster; "
            "needs the ray extra)."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --executor ray: the cluster to join (HOST:PORT of `ray start --head`, or "
            "auto); default: start a local one sized to this machine."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "--head",
            help="Try the first N rows only, in RUN_DIR-limitN; the full run reuses its answers.",
        ),
    ] = None,
    max_requests: Annotated[
        int | None,
        typer.Option(help="Stop (resumably) once this run has sent this many LLM requests."),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(help="Stop (resumably) once this run has spent this many USD (needs prices)."),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Write the output for fine-tuning: alpaca, sharegpt, chat, llamafactory or hf.",
        ),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            help="Profile each step (cProfile): time per 1,000 rows, and each step's slowest "
            "functions in RUN_DIR/profile.md. Slower; add --fresh to profile every step."
        ),
    ] = False,
) -> None:
    """Run a pipeline; re-running the same command resumes where it stopped."""
    from prepflow.core.errors import BudgetExceeded, PrepflowError
    from prepflow.engine.runner import RunInterrupted, run_pipeline

    _collect_from_here()
    if ray_address is not None and executor != "ray":
        _fail(f"error: --ray-address needs --executor ray (not {executor!r})")
    try:
        spec = _load(pipeline)
        spec.serving = _serving_overrides(spec.serving, backend, base_url, model)
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
            executor=executor,
            address=ray_address,
            limit=limit,
            max_requests=max_requests,
            max_cost=max_cost,
            export_format=format_,
            profile=profile,
        )
    except RunInterrupted as e:
        _fail(str(e), code=e.exit_code)
    except BudgetExceeded as e:
        _fail(f"stopped: {e}", code=3)
    except PrepflowError as e:
        _fail(f"error: {e}")
    _print_summary(report)
    if profile:
        _print_profile(report)
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
        plan = compile_pipeline(
            spec, input=input, estimated_rows=_estimate_rows(input), reach_serving=True
        )
    except PrepflowError as e:
        _fail(f"error: {e}")
    typer.echo(plan.render())


@app.command()
def plan(
    pipeline: PipelineArg,
    input: Annotated[
        str, typer.Option("--input", "-i", help="The input the pipeline would run on.")
    ],
    set_: SetOpt = None,
    measure: Annotated[
        int,
        typer.Option(
            help="Send N real requests (the first LLM step's prompts) to time the model; "
            "a local model is started for it."
        ),
    ] = 0,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
) -> None:
    """Estimate what a run would ask the model: requests, tokens, cost (priced) and time
    (measured), before spending anything."""
    from prepflow.core.errors import PrepflowError
    from prepflow.data.readers import open_input
    from prepflow.engine.compiler import compile_pipeline
    from prepflow.engine.estimate import estimate
    from prepflow.engine.estimate import measure as measure_serving
    from prepflow.serving.config import ServingConfig

    try:
        spec = _load(pipeline)
        spec.serving = _serving_overrides(spec.serving, backend, base_url, model)
        spec.apply_overrides(set_ or [])
        source = open_input(input)
        compiled = compile_pipeline(spec, input=input, reach_serving=True)
        rows = source.estimate_rows()
        sample = next(source.iter_batches(20)).to_pylist()
        serving = ServingConfig.model_validate(spec.serving or {}) if compiled.needs_llm else None
        timed = (
            measure_serving(compiled, sample, serving, measure)
            if measure and serving is not None
            else None
        )
        result = estimate(compiled, rows, sample, serving, timed)
    except PrepflowError as e:
        _fail(f"error: {e}")
    typer.echo(compiled.render())
    typer.echo(result.render())
    if timed is not None:
        typer.echo(
            f"  measured: {timed.requests} requests, {timed.seconds:.2f} s and "
            f"{timed.completion_tokens:.0f} completion tokens each"
        )


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
def retry(
    run_dir: Path,
    workers: int = 0,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Re-run only the rows that failed in a finished run (cached LLM answers are free)."""
    from prepflow.core.errors import PrepflowError
    from prepflow.engine.runner import RunInterrupted, failed_units, retry_run
    from prepflow.engine.spec import load_yaml

    try:
        if not failed_units(run_dir):
            typer.echo(f"{run_dir}: no failed rows: nothing to retry")
            return
        serving = _serving_overrides(
            load_yaml(run_dir / "pipeline.yaml").serving, backend, base_url, model
        )
        rep = retry_run(run_dir, workers=workers, serving=serving, progress=progress)
    except RunInterrupted as e:
        _fail(str(e), code=e.exit_code)
    except PrepflowError as e:
        _fail(f"error: {e}")
    _print_summary(rep)
    if not rep.ok:
        _fail("\n".join(rep.problems), code=1)


@app.command()
def export(
    run_dir: Path,
    format: Annotated[
        str, typer.Option("--format", "-f", help="alpaca, sharegpt, chat, llamafactory or hf.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File (alpaca, sharegpt, chat) or directory.")
    ],
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="FIELD=COLUMN (repeatable): instruction, input, output, system, messages, "
            "tools, system_prompt (a text).",
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="The dataset's name (llamafactory).")] = "prepflow",
    on_error: Annotated[
        str, typer.Option(help="'stop' at the first row that cannot map, or 'skip' and list it.")
    ] = "stop",
) -> None:
    """Export a finished run's output to a fine-tuning format (nothing is overwritten)."""
    from prepflow.core.errors import PrepflowError
    from prepflow.data.export import ColumnMap
    from prepflow.data.export import export as export_rows
    from prepflow.data.runstore import final_shards, read_shard

    try:
        mapping = dict(item.split("=", 1) for item in map_ or [] if "=" in item)
        if len(mapping) != len(map_ or []):
            raise _usage("--map takes FIELD=COLUMN")
        if on_error not in ("stop", "skip"):
            raise _usage(f"--on-error must be 'stop' or 'skip', not {on_error!r}")
        shards = final_shards(run_dir)
        tables = ((str(p.relative_to(run_dir)), read_shard(p)) for p in shards)
        report = export_rows(
            tables, format, output, columns=ColumnMap.parse(mapping), name=name,
            on_error=on_error,  # type: ignore[arg-type]
        )  # fmt: skip
    except PrepflowError as e:
        _fail(f"error: {e}")
    typer.echo(f"{report.rows:,} rows -> {', '.join(map(str, report.files))} ({format})")
    for skipped in report.skipped:
        typer.secho(f"skipped: {skipped}", fg=typer.colors.YELLOW, err=True)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument()] = Path("."),
    name: Annotated[str, typer.Option(help="Name of the pipeline and operator.")] = "my_pipeline",
) -> None:
    """Scaffold a pipeline YAML and a custom operator (with its test) in DIRECTORY."""
    from prepflow.core.errors import PrepflowError
    from prepflow.templates import scaffold

    try:
        written = scaffold(directory, name)
    except PrepflowError as e:
        _fail(f"error: {e}")
    for p in written:
        typer.echo(f"created {p}")
    where = "" if Path(directory) == Path(".") else f"cd {directory}\n  "
    typer.echo(
        "\nnext:\n"
        f"  {where}python -m pytest -q                     # the operator's test passes\n"
        "  prepflow compile pipeline.yaml --input sample.jsonl   # check it, see the plan\n"
        "  prepflow run pipeline.yaml --input sample.jsonl --output out.jsonl   # run it; see runs/"
    )


@ops_app.command("list")
def ops_list(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
) -> None:
    """List registered operators: name, domain, kind, columns read and written, summary."""
    from prepflow.core.registry import registry

    infos = registry.all_info()
    domains = sorted({i["domain"] for i in infos})
    if domain is not None and domain not in domains:
        _fail(f"error: no domain {domain!r}; domains: {', '.join(domains)}")
    infos = [i for i in infos if domain is None or i["domain"] == domain]
    if as_json:
        typer.echo(json.dumps(infos, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    table.add_column("name", no_wrap=True)
    for title in ("domain", "kind", "reads", "writes", "summary"):
        table.add_column(title)
    for i in infos:
        table.add_row(
            i["name"],
            i["domain"],
            i["kind"],
            ", ".join(c["name"] for c in i["inputs"]) or "-",
            ", ".join(c["name"] for c in i["outputs"]) or "-",
            i["summary"],
        )
    # On a terminal the table fits the window; in a pipe each operator stays on one line (grep).
    Console(width=None if sys.stdout.isatty() else 100_000).print(table)
    for name, err in registry.load_errors.items():
        typer.secho(f"plugin {name} failed to load: {err}", fg=typer.colors.YELLOW, err=True)


@ops_app.command("show")
def ops_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one operator: description, columns, parameters (a table), requirements."""
    from prepflow.core.errors import PrepflowError
    from prepflow.core.reference import plain_text
    from prepflow.core.registry import registry

    try:
        info = registry.info(name)
    except PrepflowError as e:
        _fail(f"error: {e}")
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    flags = f"{info['domain']} / {info['kind']}{', global' if info['global'] else ''}"
    console.print(f"[bold]{info['name']}[/bold]  ({flags})\n", highlight=False)
    console.print(plain_text(info["description"]), highlight=False, markup=False)
    for title, columns in (("reads", info["inputs"]), ("writes", info["outputs"])):
        table = Table("column", "type", "description", title=title, title_justify="left", box=None)
        for c in columns:
            optional = " (optional)" if c.get("optional") else ""
            table.add_row(c["name"], c["type"], plain_text(c["description"]) + optional)
        console.print()
        console.print(table if columns else f"{title}: nothing", highlight=False)
    params = Table("parameter", "type", "default", "description", title="parameters",
                   title_justify="left", box=None)  # fmt: skip
    for p in info["params"]:
        default = "required" if p["required"] else json.dumps(p["default"], default=str)
        params.add_row(p["name"], p["type"], default, plain_text(p["description"]))
    console.print()
    console.print(params if info["params"] else "parameters: none", highlight=False)
    req = {k: v for k, v in info["requires"].items() if v}
    console.print(f"requires: {req or 'nothing beyond the core install'}", highlight=False)


@ops_app.command("reference")
def ops_reference(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory of the generated Markdown pages.")
    ] = Path("docs/reference/operators"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a page is out of date.")
    ] = False,
) -> None:
    """Write the operator reference (one Markdown page per domain) from the registry."""
    from prepflow.core.reference import REGENERATE, render_pages, sync_pages
    from prepflow.core.registry import registry

    registry.load()
    names = sorted(
        name
        for name, cls in registry.registered().items()
        if cls.__module__.startswith("prepflow.operators.")
    )
    broken = {m: e for m, e in registry.load_errors.items() if m.startswith("prepflow.")}
    if broken:  # a missing extra would silently drop its operators from the reference
        lines = "\n".join(f"  {m}: {e}" for m, e in broken.items())
        _fail(f"error: operator modules failed to import (pip install -e '.[all]'):\n{lines}")
    problems = sync_pages(render_pages(registry.info(n) for n in names), output, check=check)
    for p in problems:
        typer.echo(p)
    if check and problems:
        _fail(f"the operator reference is out of date; regenerate it: {REGENERATE}", code=1)
    typer.echo(f"{output}: {'up to date' if not problems else f'{len(problems)} change(s)'}")


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


def _print_profile(report: Any) -> None:
    from prepflow.engine.report import step_times

    typer.echo("where the time went (under cProfile):")
    for t in sorted(step_times(report.steps), key=lambda t: -t["seconds"]):
        typer.echo(
            f"  {t['index']:>2}. {t['name']:<24} {t['seconds']:>8.3f} s  "
            f"{t['ms_per_1k']:>9.1f} ms / 1,000 rows  {t['share']:>4.0%}"
        )
    typer.echo(f"profile: {report.run_dir}/profile.md")


def main() -> None:
    tune_allocators()  # before pyarrow is first imported and before any thread starts
    run_then_end(app)


if __name__ == "__main__":
    main()
