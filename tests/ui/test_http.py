"""The dashboard over HTTP, against the real server and real runs (tests/ui/conftest.py): every
figure it shows is checked against the run's own files, and the safety promises (paths, escaping,
secrets, hosts) are tried as an attacker would."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import httpx
import numpy as np
import pytest

from prepflow.core.operator import ID, MEASURED_RULES, REASON
from prepflow.data import shardfile
from prepflow.operators.text.heuristics import GopherRepetitionFilter
from tests.helpers import prepflow
from tests.safety.conftest import slow_pipeline, start, wait_for, write_rows

from .conftest import API_KEY, FAIL_MARK, PASSWORD, Runs, judge_or_refuse, rows, start_ui

GOPHER = "06-gopher_quality"
MIN_WORDS = "min_doc_words: word_count < 50"


def get(ui: str, path: str, **params: str) -> httpx.Response:
    response = httpx.get(ui + path, params=params, timeout=30)
    return response


def count(run: Path, kind: str, step_dir: str) -> int:
    return sum(shardfile.read(f).num_rows for f in (run / kind / step_dir).glob("shard-*.arrow"))


def step_dirs(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "steps").iterdir() if p.name != "00-input")


# ---- runs and funnels -------------------------------------------------------------------------


def test_the_runs_list_shows_each_runs_status_and_rows_from_its_files(runs: Runs, ui: str):
    listed = {r["name"]: r["fields"] for r in get(ui, "/api/runs").json()["runs"]}
    assert {"clean", "clean-min30", "sft", "secret"} <= set(listed)
    assert "not-a-run" not in listed and "elsewhere" not in listed
    assert listed["clean"]["status"] == "finished"
    assert listed["sft"]["status"] == "failed"  # more than 5% of the judge's rows failed
    for name in ("clean", "sft"):
        run = runs.run(name)
        assert listed[name]["rows_in"] == f"{count(run, 'steps', '00-input'):,}"
        assert listed[name]["rows_out"] == f"{count(run, 'steps', step_dirs(run)[-1]):,}"
    page = get(ui, "/").text
    assert 'href="/runs/clean-min30"' in page and "not-a-run" not in page
    assert listed["new"]["status"] == "new" and listed["new"]["rows_in"] == "0"
    assert get(ui, "/runs/new").status_code == 200


@pytest.mark.parametrize("name", ["clean", "sft"])
def test_every_steps_funnel_is_what_its_files_hold(runs: Runs, ui: str, name: str):
    shown = get(ui, f"/api/runs/{name}").json()["values"]
    run, upstream = runs.run(name), "00-input"
    for step_dir in step_dirs(run):
        k = int(step_dir.split("-")[0])
        kept, dropped, failed = (count(run, kind, step_dir) for kind in ("steps", "dropped", "failures"))  # fmt: skip
        assert shown[f"step-{k}-rows_in"] == f"{count(run, 'steps', upstream):,}", step_dir
        assert shown[f"step-{k}-rows_out"] == f"{kept:,}", step_dir
        assert shown[f"step-{k}-dropped"] == f"{dropped:,}", step_dir
        assert shown[f"step-{k}-failed"] == f"{failed:,}", step_dir
        upstream = step_dir


def test_llm_usage_per_step_is_summed_from_the_calls(runs: Runs, ui: str):
    page = get(ui, "/runs/sft").text
    calls = rows(runs.run("sft"), "llm_calls", "04-judge")
    cached = sum(c["cached"] for c in calls)
    assert calls and f"LLM: {len(calls):,} calls, {sum(c['attempts'] for c in calls):,} requests, {cached:,} cache hits" in page  # fmt: skip
    assert "InvalidOutput" in page  # the judge's calls that gave up, by kind


# ---- what-if ----------------------------------------------------------------------------------


def replay(run: Path, param: str, threshold: float) -> int:
    """Rows the gopher step would keep with ``param`` at ``threshold``, from its measures."""
    measured = rows(run, "measures", GOPHER)
    first = next((run / "measures" / GOPHER).glob("*.arrow"))
    rules = json.loads(shardfile.schema(first).metadata[MEASURED_RULES])
    kept = 0
    for row in measured:
        ok = True
        for r in rules:
            t = threshold if r["param"] == param else r["threshold"]
            v = row[r["column"]]
            if not np.isnan(v) and (v < t if r["bound"] == "min" else v > t):
                ok = False
        kept += ok
    return kept


def test_the_threshold_what_if_is_what_a_rerun_keeps(runs: Runs, ui: str):
    path = "/api/runs/clean/steps/6/whatif"
    now = get(ui, path, rule=MIN_WORDS, t="50").json()
    assert now["kept"] == now["kept_now"] == count(runs.run("clean"), "steps", GOPHER)
    looser = get(ui, path, rule=MIN_WORDS, t="30").json()
    # the run made with min_doc_words=30 kept exactly what the what-if says it would
    assert looser["kept"] == count(runs.run("clean-min30"), "steps", GOPHER)
    assert looser["newly_kept"] == looser["kept"] - now["kept"] > 0
    for t in (30, 80, 200):
        shown = get(ui, path, rule=MIN_WORDS, t=str(t)).json()
        assert shown["kept"] == replay(runs.run("clean"), "min_doc_words", t)
        assert all(int(e["value"]) >= t for e in shown["kept_examples"])
        assert all(int(e["value"]) < t for e in shown["dropped_examples"])
        assert all(e["text"] for e in shown["kept_examples"] + shown["dropped_examples"])
    assert looser["change"]["set"] == "--set gopher_quality.min_doc_words=30"
    assert "    name: gopher_quality\n    params:\n      min_doc_words: 30" in looser["change"]["yaml"]  # fmt: skip


def test_a_mapping_parameters_what_if_sets_the_whole_mapping(runs: Runs, ui: str):
    step = get(ui, "/runs/clean/steps/9").text
    rule = re.search(r'data-rule="((top|dup)_ngram_char_frac\[(\d+)\][^"]*)"', step)
    assert rule, "the repetition step's rules keyed by n-gram size have a what-if"
    shown = get(ui, "/api/runs/clean/steps/9/whatif", rule=html.unescape(rule[1]), t="0.5").json()
    param = f"{rule[2]}_ngram_char_frac"
    entries = {**getattr(GopherRepetitionFilter().params, param), int(rule[3]): 0.5}
    flow = ", ".join(f"{k}: {v}" for k, v in entries.items())
    assert shown["change"]["set"] == f"--set 'gopher_repetition.{param}={{{flow}}}'"


def test_a_judges_threshold_what_if_reads_its_score_column(runs: Runs, ui: str):
    run = runs.run("sft")
    scores = [r["score"] for kind in ("steps", "dropped") for r in rows(run, kind, "07-quality")]
    for t in (4, 2, 5):
        shown = get(
            ui, "/api/runs/sft/steps/7/whatif", rule="min_score: score < 4", t=str(t)
        ).json()
        assert shown["kept"] == sum(s >= t for s in scores)
        assert shown["change"]["set"] == f"--set quality.min_score={t}"


def test_without_recorded_measures_only_a_looser_threshold_is_told(runs: Runs, ui: str):
    path = "/api/runs/clean-unmeasured/steps/6/whatif"
    looser = get(ui, path, rule=MIN_WORDS, t="30").json()
    values = [
        int(re.search(r"=(\d+)", r[REASON])[1])
        for r in rows(runs.run("clean"), "dropped", GOPHER)
        if r[REASON].startswith("min_doc_words:")
    ]
    assert looser["kept"] == count(runs.run("clean"), "steps", GOPHER) + sum(
        v >= 30 for v in values
    )
    stricter = get(ui, path, rule=MIN_WORDS, t="80")
    assert stricter.status_code == 400 and "only a looser threshold" in stricter.json()["error"]
    assert "only a looser threshold is shown" in get(ui, "/runs/clean-unmeasured/steps/6").text


def test_what_if_refuses_what_it_cannot_tell(ui: str):
    path = "/api/runs/clean/steps/6/whatif"
    assert get(ui, path, rule=MIN_WORDS, t="nan").status_code == 400
    assert get(ui, path, rule=MIN_WORDS, t="many").status_code == 400
    assert get(ui, path, rule="no such rule: x < 1", t="1").status_code == 400
    assert get(ui, "/api/runs/clean/steps/99/whatif", rule=MIN_WORDS, t="1").status_code == 400


# ---- rows -------------------------------------------------------------------------------------


def test_a_dropped_row_leads_to_the_step_and_reason_that_dropped_it(runs: Runs, ui: str):
    dropped = rows(runs.run("clean"), "dropped", GOPHER)[5]
    page = get(ui, f"/runs/clean/rows/{dropped[ID]}").text
    stage = page.split('id="step-6"')[1].split('id="step-7"')[0]
    assert "dropped" in stage and html.escape(dropped[REASON], quote=False) in stage
    assert "word_count" in stage and "failed</td>" in stage  # the measured values, rule by rule
    assert page.split('id="step-7"')[1].count("not reached") == 9  # the steps after it


def test_an_llm_rows_lineage_shows_each_prompt_and_reply(runs: Runs, ui: str):
    call = next(c for c in rows(runs.run("sft"), "llm_calls", "03-respond") if "pwned" in c["messages"])  # fmt: skip
    page = get(ui, f"/runs/sft/rows/{call[ID]}").text
    respond = page.split('id="step-3"')[1].split('id="step-4"')[0]
    for message in json.loads(call["messages"]):
        assert html.escape(message["content"], quote=False) in respond
    assert html.escape(call["reply"], quote=False) in respond


def test_rows_are_found_by_id_and_by_text(ui: str):
    by_text = get(ui, "/runs/clean/rows", q="window.pwned = 3", **{"in": "input"}).text
    assert by_text.count('class="rowid"') == 1 and "<mark>window.pwned = 3</mark>" in by_text
    assert 'href="/runs/clean/rows/0"' in get(ui, "/runs/clean/rows", q="0").text
    assert "No row found" in get(ui, "/runs/clean/rows", q="zzz-no-such-text").text
    assert get(ui, "/runs/clean/rows/999999").status_code == 400


# ---- failures ---------------------------------------------------------------------------------


def retry_command(ui: str, name: str) -> str:
    page = get(ui, f"/runs/{name}/failures").text
    return html.unescape(re.search(r'<pre class="cmd">(.*?)</pre>', page, re.S)[1])


def test_failures_are_grouped_by_kind_with_the_retry_command(runs: Runs, ui: str):
    failed = rows(runs.run("sft"), "failures", "04-judge")
    assert failed and all(FAIL_MARK in r["instruction"] for r in failed)
    page = get(ui, "/runs/sft/failures").text
    assert f'<span class="count">{len(failed)}</span> InvalidOutput' in page
    lineage = get(ui, f"/runs/sft/rows/{failed[0][ID]}").text.split('id="step-4"')[1]
    assert html.escape(failed[0]["_raw"], quote=False) in lineage  # what the model said
    assert retry_command(ui, "sft") == f"prepflow retry {shlex.quote(str(runs.run('sft')))}"
    assert "No row failed" in get(ui, "/runs/clean/failures").text


@pytest.mark.slow
def test_the_retry_command_shown_re_runs_the_failed_rows(runs: Runs, ui: str):
    command = retry_command(ui, "sft-retry")
    judge_or_refuse.fixed = True  # the model answers this time
    try:
        done = subprocess.run([sys.executable, "-m", "prepflow.cli", *shlex.split(command)[1:]],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        judge_or_refuse.fixed = False
    assert done.returncode == 0, done.stderr
    assert rows(runs.run("sft-retry"), "failures", "04-judge") == []
    assert "No row failed" in get(ui, "/runs/sft-retry/failures").text
    assert get(ui, "/api/runs/sft-retry").json()["status"] == "finished"


# ---- compare and pipeline ---------------------------------------------------------------------


def test_two_runs_compared_step_by_step(runs: Runs, ui: str):
    page = get(ui, "/compare", a="clean", b="clean-min30").text
    row = page.split("<td>gopher_quality</td>")[1].split("</tr>")[0]
    cells = re.findall(r'<td class="n">([\d,]+)</td>', row)
    a, b = (count(runs.run(n), "steps", GOPHER) for n in ("clean", "clean-min30"))
    assert cells[1] == f"{a:,}" and cells[6] == f"{b:,}"
    assert "<code>min_doc_words</code>: <code>50 (default)</code> → <code>30</code>" in row


def compile_yaml(ui: str, text: str, **headers: str) -> httpx.Response:
    return httpx.post(ui + "/api/runs/clean/compile", json={"yaml": text}, headers=headers)


def test_the_yaml_editor_compiles_as_the_cli_does(runs: Runs, ui: str, tmp_path: Path):
    page = get(ui, "/runs/clean/pipeline").text
    assert page.count("<tr>\n    <td>") == 15 and "compiles: 15 steps" in page
    yaml_text = html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S)[1])
    same = compile_yaml(ui, yaml_text).json()
    assert same["problems"] == [] and [s["name"] for s in same["steps"]][5] == "gopher_quality"
    broken = yaml_text.replace("op: GopherQualityFilter", "op: GopherQualityFiltr").replace(
        "min_score: 0.65", "min_scor: 0.65"
    )
    problems = compile_yaml(ui, broken).json()["problems"]
    (tmp_path / "p.yaml").write_text(broken)
    cli = prepflow("compile", tmp_path / "p.yaml", "--input", runs.input, cwd=tmp_path)
    assert cli.returncode != 0 and len(problems) == 2
    for problem in problems:  # the CLI names the file; the rest of each line is the same
        assert problem.replace("<yaml>", str(tmp_path / "p.yaml")) in cli.stderr
    assert "did you mean GopherQualityFilter" in problems[0]
    syntax = compile_yaml(ui, "name: x\nsteps: [\n").json()["problems"]
    assert len(syntax) == 1 and "invalid YAML" in syntax[0] and "line 3" in syntax[0]


def test_the_editor_imports_nothing_the_run_did_not(ui: str, tmp_path: Path):
    marker = tmp_path / "ran.txt"
    module = tmp_path / "evil.py"
    module.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    text = f"name: x\nimports: [{module}]\nsteps:\n  - {{op: UnicodeFixer}}\n"
    problems = compile_yaml(ui, text).json()["problems"]
    assert "is not imported by the dashboard" in problems[0] and not marker.exists()


def test_the_compile_endpoint_answers_only_json_from_its_own_origin(ui: str):
    form = httpx.post(ui + "/api/runs/clean/compile", data={"yaml": "x"})
    assert form.status_code == 415
    other = compile_yaml(ui, "name: x", Origin="http://evil.example")
    assert other.status_code == 403
    assert httpx.get(ui + "/api/runs/clean/compile").status_code == 405


# ---- safety -----------------------------------------------------------------------------------


def raw_get(ui: str, path: str) -> tuple[int, str]:
    """A request line sent exactly as written (no client normalises the dots away)."""
    host, port = urllib.parse.urlsplit(ui).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    conn.close()
    return response.status, body


@pytest.mark.parametrize(
    "path",
    [
        "/runs/..%2f..%2f..%2fetc%2fpasswd",
        "/runs/%2e%2e/failures",
        "/runs/../../etc/passwd",
        "/runs/..%5c..%5cetc",
        "/runs/elsewhere",  # a link inside the folder to a run outside it
        "/runs/elsewhere/pipeline",
        "/runs/not-a-run",  # a folder prepflow did not make
        "/runs/%00/rows/1",
        "/static/../app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e/%2e%2e/templates/base.html",
        "/api/runs/..%2f..%2fui",
    ],
)
def test_nothing_outside_the_runs_folder_is_served(ui: str, path: str):
    status, body = raw_get(ui, path)
    assert status in (400, 404), (path, status)
    assert "root:" not in body and PASSWORD not in body and "import" not in body


def test_only_the_hosts_it_listens_on_are_answered(ui: str):
    assert httpx.get(ui + "/", headers={"Host": "evil.example"}).status_code == 400
    assert httpx.get(ui + "/", headers={"Host": "localhost"}).status_code == 200


@pytest.mark.slow
def test_listening_beyond_loopback_warns(runs: Runs):
    proc, url = start_ui(runs.root, "--host", "0.0.0.0")
    try:
        assert httpx.get(url + "/api/runs").status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "warning: listening on 0.0.0.0" in err and "no login" in err


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def pages(ui: str, name: str, step_count: int) -> list[str]:
    ids = sorted({int(i) for i in re.findall(r'/rows/(\d+)"', get(ui, f"/runs/{name}/rows", q="pwned", **{"in": "all"}).text)})  # fmt: skip
    return [
        "/",
        f"/runs/{name}",
        f"/runs/{name}/failures",
        f"/runs/{name}/pipeline",
        f"/runs/{name}/rows?q=pwned&in=all",
        *(f"/runs/{name}/steps/{k}" for k in range(1, step_count + 1)),
        *(f"/runs/{name}/rows/{i}" for i in ids),
        f"/compare?a={name}&b=secret",
    ]


PAYLOADS_SHOWN = {
    "clean": ["<script>window.pwned = 1</script>", '"><img src=x onerror="window.pwned = 2">',
              "**markdown payload** [click](javascript:window.pwned=4)"],
    "sft": ["<script>window.pwned = 7</script>", "<b>beginner</b>"],
}  # fmt: skip


@pytest.mark.parametrize(("name", "steps"), [("clean", 15), ("sft", 12)])
def test_every_value_from_data_is_rendered_as_text(ui: str, name: str, steps: int):
    shown = ""
    for path in pages(ui, name, steps):
        response = get(ui, path)
        assert response.status_code == 200, path
        parser = Tags()
        parser.feed(response.text)
        scripts = [a.get("src") for t, a in parser.tags if t == "script"]
        assert scripts == ["/static/app.js"], path
        assert not [t for t, _ in parser.tags if t in ("img", "iframe", "object")], path
        handlers = [(t, k) for t, a in parser.tags for k in a if k.startswith("on")]
        assert not handlers, path
        links = [a.get("href", "") for t, a in parser.tags if t == "a"]
        assert not [h for h in links if h and not h.startswith("/")], path
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        shown += "".join(parser.text)
    for payload in PAYLOADS_SHOWN[name]:  # there, as text
        assert payload in shown


@pytest.mark.parametrize(("name", "steps"), [("secret", 1), ("sft", 12)])
def test_no_secret_is_shown(ui: str, name: str, steps: int):
    for path in [*pages(ui, name, steps), f"/api/runs/{name}", "/api/runs"]:
        body = get(ui, path).text
        assert PASSWORD not in body and API_KEY not in body, path
    if name == "secret":
        assert "https://***@example.com/data" in get(ui, "/runs/secret/pipeline").text


# ---- live -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_is_live_while_it_runs_and_resumable_once_killed(runs: Runs, ui: str, tmp_path: Path):
    pipeline = slow_pipeline(tmp_path / "slow.yaml", sleep_s=0.3)
    src = write_rows(tmp_path / "in.jsonl", 8_000)
    proc = start("run", pipeline, "--input", src, "--output", "o.jsonl", "--run-dir",
                 runs.root / "live", "--shard-rows", "500", "--workers", "1", cwd=tmp_path)  # fmt: skip

    def shown() -> dict:
        return next((r["fields"] for r in get(ui, "/api/runs").json()["runs"] if r["name"] == "live"), {})  # fmt: skip

    wait_for(lambda: shown().get("status") == "running" and shown()["progress"] != "0/0", what="live")  # fmt: skip
    first = int(shown()["progress"].split("/")[0])
    wait_for(lambda: int(shown()["progress"].split("/")[0]) > first, what="progress")
    assert get(ui, "/api/runs/live").json()["status"] == "running"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert shown()["status"] == "resumable"
    assert "status-resumable" in get(ui, "/runs/live").text
