"""Prompt templates: rendering, variables, overrides, strict and sandboxed evaluation."""

from __future__ import annotations

import pytest

from prepflow.core.errors import ConfigError
from prepflow.core.prompts import PromptError, PromptTemplate


def test_renders_system_and_user_messages():
    t = PromptTemplate("Translate to {{ lang }}: {{ text }}", "You translate.")
    assert t.messages(lang="French", text="cat") == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Translate to French: cat"},
    ]
    assert PromptTemplate("{{ x }}").messages(x=1) == [{"role": "user", "content": "1"}]


def test_variables_are_the_undeclared_names():
    t = PromptTemplate("{% for q in items %}{{ q }} {{ sep }}{% endfor %}", "{{ persona }}")
    assert t.variables() == {"items", "sep", "persona"}


def test_override_replaces_only_the_given_parts_and_changes_the_fingerprint():
    t = PromptTemplate("A {{ x }}", "S", version="2")
    assert t.override() is t
    assert t.override(system="T") == PromptTemplate("A {{ x }}", "T", version="2")
    assert t.override(user="B") == PromptTemplate("B", "S", version="2")
    assert (
        len(
            {
                t.fingerprint(),
                t.override(user="B").fingerprint(),
                PromptTemplate("A {{ x }}", "S", version="3").fingerprint(),
            }
        )
        == 3
    )


def test_syntax_errors_name_the_part_and_line():
    with pytest.raises(ConfigError, match=r"^system_prompt: template syntax error on line 2"):
        PromptTemplate("ok", "line one\n{% if %}").check()


def test_missing_variables_fail_instead_of_rendering_empty():
    with pytest.raises(PromptError, match=r"^prompt: 'text' is undefined \(null or missing"):
        PromptTemplate("Say {{ text }}").messages(other=1)


def test_templates_from_yaml_run_sandboxed():
    with pytest.raises(PromptError, match="unsafe"):
        PromptTemplate("{{ x.__class__.__mro__ }}").messages(x="s")
