"""The operator reference: rendered from the registry, and the committed pages are current."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from prepflow.cli import app
from prepflow.core.reference import GENERATED, render_pages, sync_pages
from prepflow.core.registry import registry
from prepflow.engine.spec import load_yaml
from prepflow.operators import builtin_index
from tests.docs.mdscan import DOCS

REFERENCE = DOCS / "reference" / "operators"


def test_committed_reference_is_current() -> None:
    res = CliRunner().invoke(app, ["ops", "reference", "--output", str(REFERENCE), "--check"])
    assert res.exit_code == 0, (
        f"{res.stdout}{res.stderr}\nregenerate: prepflow ops reference --output {REFERENCE}"
    )


def test_check_reports_a_stale_reference_and_writing_fixes_it(tmp_path: Path) -> None:
    out = tmp_path / "ops"
    res = CliRunner().invoke(app, ["ops", "reference", "-o", str(out), "--check"])
    assert res.exit_code == 1 and f"missing: {out}/index.md" in res.stdout
    assert not out.exists()  # --check writes nothing
    assert CliRunner().invoke(app, ["ops", "reference", "-o", str(out)]).exit_code == 0
    (out / "text.md").write_text((out / "text.md").read_text().replace("MinHash", "MaxHash"))
    res = CliRunner().invoke(app, ["ops", "reference", "-o", str(out), "--check"])
    assert res.exit_code == 1 and "out of date" in res.stdout and "text.md" in res.stdout


def test_every_builtin_operator_has_a_section_with_its_parameters() -> None:
    pages = render_pages(registry.info(n) for n in builtin_index())
    for name in builtin_index():
        info = registry.info(name)
        page = pages[f"{info['domain']}.md"]
        section = page.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for p in info["params"]:
            assert f"| `{p['name']}` |" in section, (name, p["name"])
        for c in info["inputs"]:
            assert f"| `{c['name']}` |" in section, (name, c["name"])
        assert f"[{name}]({info['domain']}.md#{name.lower()})" in pages["index.md"]


def test_every_example_step_loads_as_a_pipeline_step() -> None:
    pages = render_pages(registry.info(n) for n in builtin_index())
    steps = [
        block.split("```", 1)[0] for page in pages.values() for block in page.split("```yaml\n")[1:]
    ]
    assert len(steps) == len(builtin_index())
    for step in steps:
        spec = load_yaml(
            "name: example\nsteps:\n" + "".join(f"  {line}\n" for line in step.splitlines())
        )
        assert spec.steps[0].op in registry


INFO = {
    "name": "Widget",
    "domain": "demo",
    "kind": "filter",
    "version": "2",
    "summary": "Drops widgets.",
    "description": "Drops widgets.\n\nSee :class:`Gadget`; keeps ``a < b`` and drops a < b.",
    "inputs": [
        {"name": "text", "type": "string", "description": "a | b", "configurable": True,
         "optional": False},
        {"name": "id", "type": "int", "description": "", "configurable": False, "optional": True},
    ],
    "outputs": [],
    "params": [
        {"name": "words", "type": "list[str]", "default": None, "required": True,
         "description": "words"},
        {"name": "limit", "type": "int | None", "default": None, "required": False,
         "description": "at most"},
        {"name": "mode", "type": "Literal['a', 'b']", "default": "a", "required": False,
         "description": ""},
    ],
    "requires": {"llm": True, "embedding": False, "sandbox": False, "packages": ["rensa"],
                 "extra": "text"},
    "global": True,
    "module": "demo.ops:Widget",
}  # fmt: skip
GADGET = {**INFO, "name": "Gadget", "domain": "other", "description": "Gadgets.", "params": []}


def test_rendering_of_one_operator() -> None:
    pages = render_pages([INFO, GADGET])
    assert set(pages) == {"index.md", "demo.md", "other.md"}
    page = pages["demo.md"]
    assert page.startswith(GENERATED)
    assert "*filter, global* · domain `demo` · version 2 · `demo.ops:Widget`" in page
    assert "See [`Gadget`](other.md#gadget); keeps ``a < b`` and drops a &lt; b." in page
    assert "| `text` | `string` | a \\| b |" in page
    assert "| `id` | `int` | (optional, fixed name) |" in page
    assert "| `words` | `list[str]` | *required* | words |" in page
    assert "| `limit` | `int` or `None` | `null` | at most |" in page
    assert "| `mode` | `Literal['a', 'b']` | `\"a\"` |  |" in page
    assert "**Outputs:** none declared." in page
    assert (
        "an LLM (the pipeline's `serving:`); packages `rensa` (`pip install 'prepflow[text]'`)"
        in page
    )
    example = yaml.safe_load(page.split("```yaml\n")[1].split("```")[0])
    assert example == [
        {"op": "Widget", "name": "widget", "params": {"words": "<list[str]>"},
         "inputs": {"text": "text"}}
    ]  # fmt: skip
    assert (
        "| [Widget](demo.md#widget) | demo | filter, global | Drops widgets. |" in pages["index.md"]
    )


def test_sync_removes_only_generated_pages(tmp_path: Path) -> None:
    (tmp_path / "old.md").write_text(GENERATED + "\nold domain\n")
    (tmp_path / "notes.md").write_text("my own notes\n")
    pages = {"index.md": GENERATED + "\nnew\n"}
    assert sync_pages(pages, tmp_path, check=True) == [
        f"missing: {tmp_path}/index.md",
        f"not generated, left alone: {tmp_path}/notes.md",
        f"stale: {tmp_path}/old.md",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md", "old.md"]
    sync_pages(pages, tmp_path, check=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.md", "notes.md"]
    assert (tmp_path / "notes.md").read_text() == "my own notes\n"
    assert sync_pages(pages, tmp_path, check=True) == [
        f"not generated, left alone: {tmp_path}/notes.md"
    ]
