"""What each page shows, as plain data for its template: runs, a run's funnel and LLM usage,
a step's drop reasons with their what-ifs, failures, a row's lineage, a comparison of two runs.
Summaries come from the journal; only a step page, a row or a search reads shard files."""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from prepflow.core.columns import schema_of
from prepflow.core.errors import PrepflowError
from prepflow.core.operator import StepStats
from prepflow.core.registry import registry
from prepflow.data.runstore import INPUT_STEP, read_invocation, shard_files
from prepflow.engine.drops import drop_groups, failure_groups
from prepflow.engine.spec import PipelineSpec, StepSpec
from prepflow.serving.config import REDACTED
from prepflow.ui import files, lineage, whatif
from prepflow.ui import pipeline as pipeline_view
from prepflow.ui.present import display, duration, masked, money, num, when
from prepflow.ui.runs import RunJournal, RunsDir
from prepflow.ui.usage import step_usage

BAR_WIDTH = 320  # px of the widest funnel bar


class BadRequest(ValueError):
    """A request the pages cannot answer (an unknown step or rule, a threshold that is not a
    number)."""


# ---- runs ---------------------------------------------------------------------------------------


def run_summary(runs: RunsDir, name: str) -> dict[str, Any]:
    """One line of the runs list (and the head of a run page)."""
    j = runs.journal(name)
    steps = j.step_stats()
    n = j.n_shards()
    given = j.started
    inp = j.input_stats()
    last = steps[-1] if steps else None
    done = sum(d for _, _, d in steps)
    llm = j.llm
    return {
        "name": name,
        "pipeline": given.get("pipeline") or name,
        "status": j.status(),
        "input": masked(given.get("input", "")),
        "output": masked(given.get("output", "")),
        "started": j.sessions[0].started if j.sessions else None,
        "updated": j.last_event,
        "seconds": j.seconds(),
        "sessions": len(j.sessions),
        "rows_in": inp.rows_in,
        "quarantined": inp.quarantined,
        "rows_out": last[1].rows_out if last else None,
        "progress": f"{done}/{n * len(steps)}" if steps else "0/0",
        "requests": llm.get("requests"),
        "cache_hits": llm.get("cache_hits"),
        "tokens": (llm.get("prompt_tokens", 0) + llm.get("completion_tokens", 0)) if llm else None,
        "cost_usd": llm.get("cost_usd") if llm and _prices(runs.path(name)) else None,
        "error": j.sessions[-1].error if j.sessions else None,
    }


def runs_list(runs: RunsDir) -> list[dict[str, Any]]:
    return sorted(
        (run_summary(runs, n) for n in runs.names()),
        key=lambda r: -(r["updated"] or 0),
    )


def runs_live(runs: RunsDir) -> list[dict[str, Any]]:
    """The runs list's cells as text, for the page to refresh in place."""
    return [
        {
            "name": r["name"],
            "fields": {
                "status": r["status"],
                "rows_in": num(r["rows_in"]),
                "rows_out": num(r["rows_out"]),
                "progress": r["progress"],
                "seconds": duration(r["seconds"]),
                "requests": num(r["requests"]),
                "tokens": num(r["tokens"]),
                "cost_usd": money(r["cost_usd"]),
                "updated": when(r["updated"]),
            },
        }
        for r in runs_list(runs)
    ]


def run_page(runs: RunsDir, name: str) -> dict[str, Any]:
    """The run's head, every step's funnel, time and LLM usage, and the session totals."""
    j = runs.journal(name)
    run_dir = runs.path(name)
    n = j.n_shards()
    prices = _prices(run_dir)
    stats = j.step_stats()
    report = _report(run_dir) if j.reported() else None
    planned = {e["index"]: e for e in ((report or {}).get("estimate") or {}).get("steps", [])}
    widest = max([s.rows_in for _, s, _ in stats] + [j.input_stats().rows_in, 1])
    steps = []
    for step, s, done in stats:
        steps.append(
            {
                **step,
                **s.to_dict(),
                "shards_done": done,
                "bars": _bars(s, widest),
                "llm": step_usage(run_dir, step["dir"], n, prices),
                "planned": planned.get(step["index"]),
            }
        )
    return {
        "run": run_summary(runs, name),
        "n_shards": n,
        "steps": steps,
        "llm": j.llm,
        "priced": bool(prices),
        "estimate": (report or {}).get("estimate"),
        "problems": (report or {}).get("problems", []),
        "sessions": j.sessions,
        "retry": retry_command(run_dir) if any(s["failed"] for s in steps) else None,
    }


def live_values(runs: RunsDir, name: str) -> dict[str, Any]:
    """What a live page refreshes: {element id: text} and the status."""
    page = run_page(runs, name)
    run = page["run"]
    values = {
        "run-status": run["status"],
        "run-rows-in": num(run["rows_in"]),
        "run-rows-out": num(run["rows_out"]),
        "run-seconds": duration(run["seconds"]),
        "run-progress": run["progress"],
    }
    for s in page["steps"]:
        for key in ("rows_in", "kept", "dropped", "failed", "rows_out", "shards_done"):
            values[f"step-{s['index']}-{key}"] = num(s[key])
    return {"status": run["status"], "values": values}


def _bars(s: StepStats, widest: int) -> list[dict[str, Any]]:
    """The funnel bar of a step: kept, dropped and failed widths, to scale with the widest."""
    x, out = 0.0, []
    for kind, rows in (("kept", s.kept), ("dropped", s.dropped), ("failed", s.failed)):
        width = BAR_WIDTH * rows / widest
        out.append({"kind": kind, "x": round(x, 1), "width": round(width, 1), "rows": rows})
        x += width
    return out


def retry_command(run_dir: Path) -> str:
    """The exact command that re-runs the run's failed rows; a base URL whose credentials were
    not stored must be given again."""
    command = f"prepflow retry {shlex.quote(str(run_dir))}"
    serving = _pipeline_dict(run_dir).get("serving") or {}
    if REDACTED in str(serving.get("base_url", "")):
        command += " --base-url URL  # the URL with its credentials: they were not stored"
    return command


def _report(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "report.json"
    try:
        return _json_file(str(path), path.stat().st_mtime_ns)
    except (FileNotFoundError, ValueError):
        return None


@functools.lru_cache(maxsize=32)
def _json_file(path: str, mtime_ns: int) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _pipeline_dict(run_dir: Path) -> dict[str, Any]:
    """The run's pipeline.yaml as plain data ({} when unreadable)."""
    path = run_dir / "pipeline.yaml"
    try:
        return _yaml_file(str(path), path.stat().st_mtime_ns)
    except (OSError, yaml.YAMLError):
        return {}


@functools.lru_cache(maxsize=256)
def _yaml_file(path: str, mtime_ns: int) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _prices(run_dir: Path) -> dict[str, float] | None:
    serving = _pipeline_dict(run_dir).get("serving") or {}
    prices = serving.get("prices") if isinstance(serving, dict) else None
    return prices if isinstance(prices, dict) else None


# ---- a step: drop reasons and their what-ifs, failures ------------------------------------------


def _step(j: RunJournal, index: int) -> tuple[dict[str, Any], StepStats]:
    for step, stats, _ in j.step_stats():
        if step["index"] == index:
            return step, stats
    raise BadRequest(f"no step {index}")


def step_page(runs: RunsDir, name: str, index: int) -> dict[str, Any]:
    """A step's drop reasons (count, values, examples, and a what-if for measured thresholds)
    and its failures by kind."""
    j = runs.journal(name)
    run_dir = runs.path(name)
    step, stats = _step(j, index)
    detail = _details(runs, name, j, step, stats)
    groups = []
    for g in detail["dropped"]:
        rule = whatif.Rule.parse(g["key"])
        curve = _curve(run_dir, j, step, stats, rule) if rule else None
        groups.append({**g, "rule": rule, "curve": curve_info(curve) if curve else None})
    return {
        "run": run_summary(runs, name),
        "step": {**step, **stats.to_dict()},
        "dropped": groups,
        "failed": detail["failed"],
        "retry": retry_command(run_dir) if stats.failed else None,
    }


def failures_page(runs: RunsDir, name: str) -> dict[str, Any]:
    j = runs.journal(name)
    out = []
    for step, stats, _ in j.step_stats():
        if stats.failed:
            detail = _details(runs, name, j, step, stats)
            out.append({**step, **stats.to_dict(), "groups": detail["failed"]})
    return {
        "run": run_summary(runs, name),
        "steps": out,
        "retry": retry_command(runs.path(name)) if out else None,
    }


def _details(
    runs: RunsDir, name: str, j: RunJournal, step: dict[str, Any], stats: StepStats
) -> dict[str, list[dict[str, Any]]]:
    """The step's drop and failure groups (engine.drops): from the report of a run that ended,
    else read from the side files now."""
    run_dir = runs.path(name)
    report = _report(run_dir) if j.reported() else None
    if report is not None:
        detail = report.get("details", {}).get(str(step["index"]))
        if detail is not None or not (stats.dropped or stats.failed):
            return {"dropped": [], "failed": [], **(detail or {})}
    reader = _SideFiles(run_dir)
    shape = _StepShape(step["dir"], _schema_in(run_dir, j.steps, step["index"]))
    return {
        "dropped": drop_groups(reader, shape) if stats.dropped else [],  # type: ignore[arg-type]
        "failed": failure_groups(reader, shape) if stats.failed else [],  # type: ignore[arg-type]
    }


class _SideFiles:
    """The two reads :mod:`prepflow.engine.drops` makes of a run store, made without taking the
    run's lock (the dashboard never opens a RunStore: that would lock the run)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir

    def side_files(self, kind: str, step_dir: str) -> list[Path]:
        return shard_files(self.dir, kind, step_dir)

    def read_columns(
        self, path: Path, columns: tuple[str, ...], *, missing_ok: bool = False
    ) -> Any:
        table = files.columns(path, columns)
        if table is None or (not missing_ok and table.num_columns < len(columns)):
            raise FileNotFoundError(path)
        return table


class _StepShape:
    """What :mod:`prepflow.engine.drops` reads of a compiled step: its folder and the columns
    it saw."""

    def __init__(self, dirname: str, schema_in: dict[str, str]) -> None:
        self.dirname, self.schema_in = dirname, schema_in


def _schema_in(run_dir: Path, steps: list[dict[str, Any]], index: int) -> dict[str, str]:
    source = files.input_dir(steps, index)
    for path in shard_files(run_dir, "steps", source)[:1]:
        found = files.schema(path)
        if found is not None:
            return schema_of(found)
    return {}


def _curve(
    run_dir: Path, j: RunJournal, step: dict[str, Any], stats: StepStats, rule: whatif.Rule
) -> whatif.Curve | None:
    n = j.n_shards()
    commits = [j.records[(step["index"], k)].t for k in range(n) if (step["index"], k) in j.records]
    version = (len(commits), max(commits, default=0.0))
    others = len([k for k in stats.drop_reasons if k != rule.key]) > 0
    return _cached_curve(run_dir, step["dir"], n, rule, stats.kept, others, version)


@functools.lru_cache(maxsize=16)
def _cached_curve(
    run_dir: Path,
    step_dir: str,
    n: int,
    rule: whatif.Rule,
    kept: int,
    others: bool,
    version: tuple[int, float],
) -> whatif.Curve | None:
    """``whatif.curve``, kept while the step's shards are unchanged (``version``)."""
    return whatif.curve(run_dir, step_dir, n, rule, kept=kept, other_groups=others, version=version)


def curve_info(curve: whatif.Curve) -> dict[str, Any]:
    return {
        "source": curve.source,
        "exact": curve.exact,
        "stricter": curve.stricter,
        "threshold": curve.rule.threshold,
        "threshold_text": whatif.format_threshold(curve.rule.threshold, curve.integral),
        "bound": "min" if curve.rule.keeps_high else "max",
        **curve.scale(),
    }


def what_if(runs: RunsDir, name: str, index: int, key: str, t: float) -> dict[str, Any]:
    """Kept rows at threshold ``t`` for one rule, examples each side of the line, and the YAML
    change that sets it."""
    j = runs.journal(name)
    run_dir = runs.path(name)
    step, stats = _step(j, index)
    rule = whatif.Rule.parse(key)
    if rule is None or key not in stats.drop_reasons:
        raise BadRequest(f"step {index} has no measured rule {key!r}")
    curve = _curve(run_dir, j, step, stats, rule)
    if curve is None:
        raise BadRequest(f"no recorded values for {key!r}")
    if not curve.allowed(t):
        raise BadRequest(
            f"only a looser threshold can be told for {key!r}: the values of the rows it "
            "kept were not recorded"
        )
    at = curve.at(t)
    picked = [int(i) for i in (*at["kept_examples"], *at["dropped_examples"])]
    texts = files.example_texts(
        run_dir,
        files.input_dir(j.steps, index),
        [(int(curve.ids[i]), int(curve.shards[i])) for i in picked],
    )

    def example(i: int) -> dict[str, Any]:
        row_id = int(curve.ids[i])
        value = float(curve.values[i])
        kept_now = curve.passing(rule.threshold)[0] <= i < curve.passing(rule.threshold)[1]
        return {"id": row_id, "value": whatif.format_threshold(value, curve.integral and value.is_integer()),
                "now": "kept" if kept_now else "dropped", **texts.get(row_id, {})}  # fmt: skip

    value = whatif.format_threshold(t, curve.integral)
    return {
        **{k: v for k, v in at.items() if not k.endswith("_examples")},
        "threshold_text": value,
        "kept_examples": [example(i) for i in at["kept_examples"]],
        "dropped_examples": [example(i) for i in at["dropped_examples"]],
        "exact": curve.exact,
        "change": yaml_change(run_dir, step, rule, value),
    }


def yaml_change(
    run_dir: Path, step: dict[str, Any], rule: whatif.Rule, value: str
) -> dict[str, str] | None:
    """The edit that sets ``rule``'s threshold to ``value``: a YAML fragment of the step and
    the ``--set`` option (None: the rule names no parameter)."""
    if not rule.rule:
        return None
    name, key = rule.rule, None
    if rule.rule.endswith("]") and "[" in rule.rule:  # an entry of a mapping parameter
        name, key = rule.rule[:-1].split("[", 1)
    spec = _spec_or_none(run_dir)
    steps = spec.steps if spec is not None else []
    params = next((s.params for s in steps if s.name == step["name"]), {})
    new: Any = yaml.safe_load(value)
    if key is not None:
        current = params.get(name, _default(step["op"], name)) or {}
        new = {**{str(k): v for k, v in dict(current).items()}, key: new}
        new = {_as_key(k): v for k, v in new.items()}
    flow = yaml.safe_dump(new, default_flow_style=True).strip() if key is not None else value
    fragment = "\n".join(
        [
            f"  - op: {step['op']}",
            f"    name: {step['name']}",
            "    params:",
            f"      {name}: {flow}",
        ]
    )
    option = f"{step['name']}.{name}={flow}"
    return {"yaml": fragment, "set": f"--set {shlex.quote(option)}", "param": name}


def _default(op: str, param: str) -> Any:
    try:
        return registry.get(op).Params.model_fields[param].default
    except (PrepflowError, KeyError):
        return None


def _as_key(k: str) -> Any:
    try:
        return int(k)
    except ValueError:
        return k


# ---- rows -----------------------------------------------------------------------------------------


def search_page(runs: RunsDir, name: str, q: str, where: str) -> dict[str, Any]:
    j = runs.journal(name)
    run_dir = runs.path(name)
    n = j.n_shards()
    dirs = [s["dir"] for s in j.steps]
    scope = {"input": [INPUT_STEP], "output": dirs[-1:], "all": [INPUT_STEP, *dirs]}
    if where not in scope:
        raise BadRequest(f"search in input, output or all, not {where!r}")
    results: list[dict[str, Any]] = []
    q = q.strip()
    if q.isdigit() and lineage.shard_of(run_dir, int(q), _shard_rows(run_dir), n) is not None:
        results.append({"id": int(q), "step": INPUT_STEP, "column": "_id", "before": "",
                        "match": q, "after": ""})  # fmt: skip
    if q:
        results += [r for r in lineage.search(run_dir, scope[where], n, q) if str(r["id"]) != q]
    return {"run": run_summary(runs, name), "q_text": q, "where": where, "results": results}


def row_page(runs: RunsDir, name: str, row_id: int) -> dict[str, Any]:
    j = runs.journal(name)
    run_dir = runs.path(name)
    shard = lineage.shard_of(run_dir, row_id, _shard_rows(run_dir), j.n_shards())
    if shard is None:
        raise BadRequest(f"no row with _id {row_id}")
    return {
        "run": run_summary(runs, name),
        "id": row_id,
        "shard": shard,
        "stages": lineage.lineage(run_dir, j.steps, shard, row_id),
    }


def _shard_rows(run_dir: Path) -> int | None:
    try:
        return int(read_invocation(run_dir)["shard_rows"])
    except (PrepflowError, KeyError, TypeError, ValueError):
        return None


# ---- compare ------------------------------------------------------------------------------------


def compare_page(runs: RunsDir, a: str, b: str) -> dict[str, Any]:
    """Two runs side by side: per step (by name) the counts of each and the parameters that
    differ (a parameter left out of a pipeline shows its default), and the head of each run."""
    sides = []
    for name in (a, b):
        j = runs.journal(name)
        spec = _spec_or_none(runs.path(name))
        steps = {s.name: s for s in spec.steps} if spec else {}
        stats = {st["name"]: (st, s) for st, s, _ in j.step_stats()}
        sides.append((run_summary(runs, name), stats, steps, spec))
    names = list(dict.fromkeys([*sides[0][1], *sides[1][1]]))
    rows = []
    for step in names:
        (sa, step_a), (sb, step_b) = ((side[1].get(step), side[2].get(step)) for side in sides)
        both = step_a is not None and step_b is not None
        keys = sorted(set(step_a.params) | set(step_b.params)) if both else []
        shown = [(k, _param(step_a, k), _param(step_b, k)) for k in keys]
        rows.append(
            {
                "name": step,
                "a": {**sa[0], **sa[1].to_dict()} if sa else None,
                "b": {**sb[0], **sb[1].to_dict()} if sb else None,
                "differ": [{"param": k, "a": va, "b": vb} for k, va, vb in shown if va != vb],
            }
        )
    serving = [masked(json.dumps(s[3].serving, sort_keys=True)) if s[3] else "" for s in sides]
    return {"a": sides[0][0], "b": sides[1][0], "steps": rows, "serving": serving}


def _param(step: StepSpec, key: str) -> str:
    if key in step.params:
        return masked(display(step.params[key]))
    return f"{masked(display(_default(step.op, key)))} (default)"


def _spec_or_none(run_dir: Path) -> PipelineSpec | None:
    try:
        return pipeline_view.spec(run_dir)
    except (PrepflowError, OSError):
        return None
