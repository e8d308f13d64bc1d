"""Prompt templates: versioned Jinja2 text kept next to the operator that uses it.

A :class:`PromptTemplate` is a user message and an optional system message. Any operator's prompt
can be replaced from YAML (``params: {prompt: "...", system_prompt: "..."}``) without subclassing;
the template text is part of the step fingerprint, so editing a prompt recomputes the step.
Templates render in a sandbox with strict undefined variables: a typo in a column name is an
error naming the variable, never an empty string in the prompt.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from prepflow.core.errors import ConfigError

if TYPE_CHECKING:
    import jinja2


class PromptError(ValueError):
    """A template could not be rendered for a row (e.g. a variable the row does not have)."""


@dataclass(frozen=True)
class PromptTemplate:
    user: str
    system: str | None = None
    #: Bump when the wording changes meaningfully; recorded with the step.
    version: str = "1"

    def check(self) -> None:
        """Compile both parts now; raises :class:`ConfigError` naming the part and line."""
        for part, text in (("prompt", self.user), ("system_prompt", self.system)):
            if text is not None:
                _compile(text, part)

    def override(self, user: str | None = None, system: str | None = None) -> PromptTemplate:
        """This template with the given parts replaced (``None`` keeps the current part)."""
        if user is None and system is None:
            return self
        return replace(
            self,
            user=self.user if user is None else user,
            system=self.system if system is None else system,
        )

    def messages(self, **context: Any) -> list[dict[str, str]]:
        """Chat messages for one row; raises :class:`PromptError` if a variable is missing."""
        out = []
        if self.system is not None:
            out.append(
                {"role": "system", "content": _render(self.system, "system_prompt", context)}
            )
        out.append({"role": "user", "content": _render(self.user, "prompt", context)})
        return out

    def variables(self) -> set[str]:
        """Names the template reads from its context (columns, parameters)."""
        from jinja2 import meta

        texts = [t for t in (self.user, self.system) if t is not None]
        return set().union(*(meta.find_undeclared_variables(_env().parse(t)) for t in texts))

    def fingerprint(self) -> str:
        return f"v{self.version}\x00{self.system or ''}\x00{self.user}"


@functools.cache
def _env() -> jinja2.Environment:
    """The sandboxed environment (jinja2 loads on first use, not at import)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False
    )


@functools.lru_cache(maxsize=512)
def _compile(text: str, part: str) -> jinja2.Template:
    import jinja2

    try:
        return _env().from_string(text)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(
            f"{part}: template syntax error on line {e.lineno}: {e.message}"
        ) from None


def _render(text: str, part: str, context: dict[str, Any]) -> str:
    import jinja2

    try:
        return _compile(text, part).render(context)
    except jinja2.UndefinedError as e:
        raise PromptError(f"{part}: {e.message} (null or missing in this row)") from None
    except jinja2.TemplateError as e:
        raise PromptError(f"{part}: {e}") from None
