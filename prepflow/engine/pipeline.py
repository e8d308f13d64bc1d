"""The PyTorch-like Python front end.

Operators are attributes set in ``__init__``; ``forward()`` wires dataset columns by calling them::

    class Clean(Pipeline):
        def __init__(self):
            super().__init__(name="clean")
            self.strip = StripHTML()
            self.short = WordCountFilter(min_words=5)

        def forward(self):
            self.strip(text="body")   # declared column -> dataset column
            self.short(text="body")

``forward()`` is traced, not executed on data: each call records a step. The result is the same
:class:`PipelineSpec` a YAML file gives, so a Python pipeline exports to YAML (``to_yaml()``) and
runs through the same compiler and executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prepflow.core.errors import ConfigError
from prepflow.core.operator import Operator, tracing
from prepflow.engine.compiler import Plan, compile_pipeline
from prepflow.engine.report import RunReport
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import PipelineSpec, StepSpec, load_yaml, slug, unique_names


class Pipeline:
    """Base class for Python pipelines; also wraps a YAML spec (see :meth:`from_yaml`)."""

    def __init__(
        self,
        *,
        name: str | None = None,
        description: str = "",
        serving: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.name = name or slug(type(self).__name__)
        self.description = description or (type(self).__doc__ or "").strip().split("\n\n")[0]
        self.serving = serving
        self.settings = settings or {}
        self._spec: PipelineSpec | None = None

    def forward(self) -> None:
        raise NotImplementedError("define forward() and call your operators in order")

    # ---- front ends --------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, source: str | Path) -> Pipeline:
        """A pipeline from a YAML file, a shipped pipeline name or YAML text."""
        return cls.from_spec(load_yaml(source))

    @classmethod
    def from_spec(cls, spec: PipelineSpec) -> Pipeline:
        p = cls.__new__(cls)
        Pipeline.__init__(
            p,
            name=spec.name,
            description=spec.description,
            serving=spec.serving,
            settings=spec.settings,
        )
        p._spec = spec
        return p

    def spec(self) -> PipelineSpec:
        """The declarative form: traced from ``forward()`` or as loaded from YAML."""
        if self._spec is not None:
            return self._spec
        trace: list[tuple[Operator, dict[str, str]]] = []
        with tracing(lambda op, bindings: trace.append((op, bindings))):
            self.forward()
        if not trace:
            raise ConfigError(f"{type(self).__name__}.forward() called no operator")
        attr_of = {id(v): k for k, v in vars(self).items() if isinstance(v, Operator)}
        names = unique_names([attr_of.get(id(op), slug(op.name)) for op, _ in trace])
        steps = []
        for (op, bindings), name in zip(trace, names, strict=True):
            declared_in = {c.name for c in op.inputs}
            steps.append(
                StepSpec(
                    op=op.name,
                    name=name,
                    params=op.params.model_dump(mode="json", exclude_defaults=True),
                    inputs={k: v for k, v in bindings.items() if k in declared_in},
                    outputs={k: v for k, v in bindings.items() if k not in declared_in},
                    origin=f"{type(self).__name__}.forward",
                )
            )
        return PipelineSpec(
            name=self.name,
            description=self.description,
            steps=steps,
            serving=self.serving,
            settings=dict(self.settings),
        )

    def to_yaml(self) -> str:
        return self.spec().to_yaml()

    # ---- compile and run -----------------------------------------------------------------------

    def compile(self, input: str | Path | None = None, **kwargs: Any) -> Plan:
        """Check the whole pipeline against the input's schema; raises CompileError listing all problems."""
        return compile_pipeline(self.spec(), input=input, **kwargs)

    def run(
        self,
        input: str | Path,
        output: str | Path,
        *,
        run_dir: str | Path | None = None,
        **options: Any,
    ) -> RunReport:
        """Compile, then run (resuming from ``run_dir`` when it holds an earlier run)."""
        return run_pipeline(self.spec(), input=input, output=output, run_dir=run_dir, **options)
