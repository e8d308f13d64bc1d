"""Compile a filter expression (a safe subset of Python) into a vectorised Arrow evaluator.

The text is parsed with :mod:`ast` and walked against a whitelist; it is never handed to
``eval``, ``exec`` or ``compile``. Each allowed node becomes a small closure over
:mod:`pyarrow.compute`, so a batch is evaluated a whole column at a time.

Besides rejecting everything outside the whitelist, the compiler infers what each sub-expression
produces (string, number, bool) so it can reject ``'a' < 3`` up front and tell the pipeline compiler
which type every referenced column must have (``lang == 'en'`` needs ``lang`` to be a string).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.columns import to_arrow
from prepflow.core.errors import ConfigError

#: evaluates a sub-expression over a batch: a pa.Array, pa.ChunkedArray or pa.Scalar
Evaluator = Callable[[pa.Table], Any]

# What a sub-expression is known to produce before any data is seen.
STRING, NUMBER, BOOL, NULL, ANY = "string", "number", "bool", "null", "any"
#: the declared column type a kind asks of a column used in its place
_COLUMN_TYPE = {STRING: "string", NUMBER: "float", BOOL: "bool"}
# Function argument that must be a string literal (a pattern), not a column.
_LITERAL = "literal"

_WORD = r"[^\s\p{Z}]+"  # a run of non-whitespace; \p{Z} adds Unicode spaces such as U+3000


def _length(value: Any) -> Any:
    t = value.type
    if pa.types.is_null(t):
        return value.cast(pa.int64())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pc.list_value_length(value)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.binary_length(value)
    return pc.utf8_length(value)


@dataclass(frozen=True)
class _Function:
    args: tuple[str, ...]  # kind wanted at each position (variadic: the last one repeats)
    result: str
    impl: Callable[..., Any]  # called with the value arguments, then the literal ones
    variadic: bool = False


#: The whitelist of functions (documented in ExpressionFilter's docstring). ``col('name')`` is
#: handled apart: it is a column reference, not a function of values.
FUNCTIONS: dict[str, _Function] = {
    "len": _Function((ANY,), NUMBER, _length),
    "words": _Function((STRING,), NUMBER, lambda x: pc.count_substring_regex(x, _WORD)),
    "lower": _Function((STRING,), STRING, pc.utf8_lower),
    "upper": _Function((STRING,), STRING, pc.utf8_upper),
    "strip": _Function((STRING,), STRING, pc.utf8_trim_whitespace),
    "startswith": _Function((STRING, _LITERAL), BOOL, pc.starts_with),
    "endswith": _Function((STRING, _LITERAL), BOOL, pc.ends_with),
    "contains": _Function((STRING, _LITERAL), BOOL, pc.match_substring),
    "matches": _Function((STRING, _LITERAL), BOOL, pc.match_substring_regex),
    "abs": _Function((NUMBER,), NUMBER, pc.abs_checked),
    "coalesce": _Function((ANY, ANY), ANY, pc.coalesce, variadic=True),
}

_BINARY = {
    ast.Add: ("+", pc.add_checked),
    ast.Sub: ("-", pc.subtract_checked),
    ast.Mult: ("*", pc.multiply_checked),
    ast.Div: (
        "/",
        lambda a, b: pc.divide(pc.cast(a, pa.float64()), _nonzero(pc.cast(b, pa.float64()))),
    ),
    ast.Mod: ("%", lambda a, b: pc.modulo(a, _nonzero(b))),
}
_OTHER_BINARY = {
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
}
_ORDER = {
    ast.Lt: ("<", pc.less),
    ast.LtE: ("<=", pc.less_equal),
    ast.Gt: (">", pc.greater),
    ast.GtE: (">=", pc.greater_equal),
}
_COMPARE = {**_ORDER, ast.Eq: ("==", pc.equal), ast.NotEq: ("!=", pc.not_equal)}
_REJECTED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.Dict: "dict literal",
    ast.IfExp: "conditional expression",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "assignment expression",
    ast.Starred: "starred argument",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.List: "list outside 'in'",
    ast.Tuple: "tuple outside 'in'",
    ast.Set: "set outside 'in'",
}


def _nonzero(divisor: Any) -> Any:
    """The divisor with zeros replaced by null, so x / 0 and x % 0 give null instead of failing."""
    return pc.if_else(pc.equal(divisor, 0), pa.scalar(None, divisor.type), divisor)


@dataclass(frozen=True)
class CompiledExpression:
    """A checked expression: the columns it reads (with the type each must have) and its evaluator."""

    text: str
    #: referenced column -> declared type it must have ("any" when the expression does not say)
    columns: dict[str, str]
    evaluate: Evaluator

    def mask(self, batch: pa.Table) -> pa.Array | pa.ChunkedArray:
        """Evaluate over a batch: a boolean array (nulls are left for the caller to treat)."""
        try:
            value = self.evaluate(batch)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise ConfigError(
                f"expression {self.text!r} cannot be evaluated on this data: {e}"
            ) from None
        if isinstance(value, pa.Scalar):
            value = pa.repeat(value, batch.num_rows)
        if pa.types.is_null(value.type):
            value = value.cast(pa.bool_())
        if not pa.types.is_boolean(value.type):
            raise ConfigError(f"expression {self.text!r} gives {value.type} values, not true/false")
        return value


def compile_expression(text: str) -> CompiledExpression:
    """Parse and check ``text``; raises ConfigError naming the offending token and its column."""
    compiler = _Compiler(text.strip())
    try:
        tree = ast.parse(compiler.wrapped, mode="eval")
        evaluate, _ = compiler.operand(tree.body, BOOL, "the expression")
    except SyntaxError as e:
        line, column = (e.lineno or 2) - 1, e.offset or 1
        if line > len(compiler.lines):  # the parser gave up at the wrapper's closing parenthesis
            line, column = len(compiler.lines), len(compiler.lines[-1]) + 1
        elif line < 1:
            line, column = 1, 1
        raise compiler.error_at(line, column, f"syntax error: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"expression {compiler.text[:80]!r}... is nested too deeply") from None
    return CompiledExpression(compiler.text, dict(compiler.columns), evaluate)


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text
        # Parsed inside parentheses so an expression may span lines (YAML block scalars); the
        # wrapper adds one line above, so node line N is line N - 1 of the text.
        self.wrapped = f"(\n{text}\n)"
        self.lines = text.splitlines() or [""]
        self.columns: dict[str, str] = {}

    def line(self, lineno: int) -> str:
        """The text's line for a line number of the parsed (wrapped) source."""
        return self.lines[lineno - 2] if 2 <= lineno <= len(self.lines) + 1 else ""

    # ---- errors -----------------------------------------------------------------------------

    def error_at(self, line: int, column: int, message: str) -> ConfigError:
        """An error pointing at 1-based ``line``/``column`` (characters, not bytes)."""
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        where = f"line {line}, column {column}" if len(self.lines) > 1 else f"column {column}"
        return ConfigError(f"{message} at {where}\n  {src}\n  {' ' * (column - 1)}^")

    def error(self, node: ast.AST, message: str) -> ConfigError:
        lineno = max(getattr(node, "lineno", 2), 2)
        # ast offsets count UTF-8 bytes; report characters so CJK text points at the right place
        src = self.line(lineno).encode()[: getattr(node, "col_offset", 0)]
        return self.error_at(lineno - 1, len(src.decode(errors="ignore")) + 1, message)

    def source(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.wrapped, node) or type(node).__name__
        return segment.removeprefix("(\n").removesuffix("\n)")

    # ---- typing -----------------------------------------------------------------------------

    def column_of(self, node: ast.AST) -> str | None:
        """The column a node refers to directly (a name or ``col('...')``), else None."""
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "col":
            return node.args[0].value
        return None

    def constrain(self, node: ast.AST, kind: str, context: str) -> None:
        """Record that the column ``node`` refers to must hold ``kind`` values."""
        name = self.column_of(node)
        if name is None or kind not in _COLUMN_TYPE:
            return
        wanted, prior = _COLUMN_TYPE[kind], self.columns.get(name, "any")
        if prior not in ("any", wanted):
            raise self.error(
                node, f"column {name!r} is used as {prior} and as {wanted} ({context})"
            )
        self.columns[name] = wanted

    def operand(self, node: ast.AST, want: str, context: str) -> tuple[Evaluator, str]:
        """Compile ``node`` where a ``want`` value is needed (ANY accepts anything)."""
        evaluate, kind = self.compile(node)
        if want != ANY and kind not in (want, ANY):
            raise self.error(
                node, f"{context} needs a {want}, but {self.source(node)!r} is a {kind}"
            )
        if kind == ANY:
            self.constrain(node, want, context)
        return evaluate, want if kind == ANY and want != ANY else kind

    def unify(self, nodes: list[ast.AST], kinds: list[str], context: str) -> str:
        """The one kind several operands share (columns adopt it); error when they disagree."""
        concrete = {k for k in kinds if k != ANY}
        if len(concrete) > 1:
            shown = " and ".join(
                f"{self.source(n)!r} ({k})" for n, k in zip(nodes, kinds, strict=True)
            )
            raise self.error(nodes[0], f"{context} mixes types: {shown}")
        kind = concrete.pop() if concrete else ANY
        for n in nodes:
            self.constrain(n, kind, context)
        return kind

    # ---- nodes ------------------------------------------------------------------------------

    def compile(self, node: ast.AST) -> tuple[Evaluator, str]:
        handler = getattr(self, f"visit_{type(node).__name__}", None)
        if handler is None:
            what = _REJECTED.get(type(node), type(node).__name__)
            hint = ""
            if isinstance(node, ast.Attribute) and node.attr in FUNCTIONS:
                more = ", ..." if len(FUNCTIONS[node.attr].args) > 1 else ""
                hint = f"; write {node.attr}({self.source(node.value)}{more}) instead"
            raise self.error(node, f"{what} {self.source(node)!r} is not allowed{hint}")
        return handler(node)

    def visit_Name(self, node: ast.Name) -> tuple[Evaluator, str]:
        if node.id.startswith("__"):
            raise self.error(node, f"name {node.id!r} is not allowed")
        return self.column(node.id), ANY

    def column(self, name: str) -> Evaluator:
        self.columns.setdefault(name, "any")

        def get(batch: pa.Table) -> Any:
            if name not in batch.column_names:
                raise ConfigError(
                    f"expression {self.text!r}: no column {name!r} "
                    f"(columns: {', '.join(batch.column_names)})"
                )
            values = batch.column(name)
            declared = to_arrow(self.columns[name])
            if pa.types.is_null(values.type) and declared is not None:
                values = values.cast(declared)  # an all-null batch column has no type yet
            return values

        return get

    def visit_Constant(self, node: ast.Constant) -> tuple[Evaluator, str]:
        value, kind = self.literal(node)
        scalar = pa.scalar(value)
        return (lambda _batch: scalar), kind

    def literal(self, node: ast.AST) -> tuple[Any, str]:
        """A literal value and its kind: str, int, float, bool, None, or a negated number."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value, kind = self.literal(node.operand)
            if kind != NUMBER:
                raise self.error(node, f"sign on a non-number {self.source(node)!r}")
            return (-value if isinstance(node.op, ast.USub) else value), kind
        if not isinstance(node, ast.Constant):
            raise self.error(
                node,
                f"{self.source(node)!r} is not a literal (a string, number, true/false or None)",
            )
        value = node.value
        if isinstance(value, bool):
            return value, BOOL
        if isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise self.error(node, f"integer {value} does not fit in 64 bits")
            return value, NUMBER
        if isinstance(value, float):
            return value, NUMBER
        if isinstance(value, str):
            return value, STRING
        if value is None:
            return None, NULL
        raise self.error(node, f"literal {self.source(node)!r} is not allowed")

    def visit_BoolOp(self, node: ast.BoolOp) -> tuple[Evaluator, str]:
        word = "and" if isinstance(node.op, ast.And) else "or"
        parts = [self.operand(v, BOOL, f"'{word}'")[0] for v in node.values]
        combine = pc.and_kleene if word == "and" else pc.or_kleene
        return (lambda batch: functools.reduce(combine, (p(batch) for p in parts))), BOOL

    def visit_UnaryOp(self, node: ast.UnaryOp) -> tuple[Evaluator, str]:
        if isinstance(node.op, ast.Not):
            inner, _ = self.operand(node.operand, BOOL, "'not'")
            return (lambda batch: pc.invert(inner(batch))), BOOL
        if isinstance(node.op, ast.USub | ast.UAdd):
            inner, _ = self.operand(node.operand, NUMBER, "a sign")
            if isinstance(node.op, ast.UAdd):
                return inner, NUMBER
            return (lambda batch: pc.negate_checked(inner(batch))), NUMBER
        raise self.error(node, f"operator '~' in {self.source(node)!r} is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> tuple[Evaluator, str]:
        if type(node.op) not in _BINARY:
            symbol = _OTHER_BINARY[type(node.op)]
            raise self.error(node, f"operator {symbol!r} is not allowed (allowed: + - * / %)")
        symbol, fn = _BINARY[type(node.op)]
        left, _ = self.operand(node.left, NUMBER, f"'{symbol}'")
        right, _ = self.operand(node.right, NUMBER, f"'{symbol}'")
        return (lambda batch: fn(left(batch), right(batch))), NUMBER

    def visit_Compare(self, node: ast.Compare) -> tuple[Evaluator, str]:
        operands = [node.left, *node.comparators]
        parts = [
            self.comparison(a, op, b)
            for a, op, b in zip(operands, node.ops, operands[1:], strict=False)
        ]
        if len(parts) == 1:
            return parts[0], BOOL
        return (lambda batch: functools.reduce(pc.and_kleene, (p(batch) for p in parts))), BOOL

    def comparison(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> Evaluator:
        if isinstance(op, ast.Is | ast.IsNot):
            word = "is" if isinstance(op, ast.Is) else "is not"
            if not (isinstance(right, ast.Constant) and right.value is None):
                raise self.error(
                    right, f"'{word}' only compares with None, not {self.source(right)!r}"
                )
            value, _ = self.compile(left)
            test = pc.is_null if isinstance(op, ast.Is) else pc.is_valid
            return lambda batch: test(value(batch))
        if isinstance(op, ast.In | ast.NotIn):
            return self.membership(left, right, negate=isinstance(op, ast.NotIn))
        symbol, fn = _COMPARE[type(op)]
        for side in (left, right):
            if isinstance(side, ast.Constant) and side.value is None:
                word = "is None" if symbol == "==" else "is not None"
                raise self.error(side, f"use '{word}' instead of '{symbol} None'")
        (a, ka), (b, kb) = self.compile(left), self.compile(right)
        kind = self.unify([left, right], [ka, kb], f"'{symbol}'")
        if type(op) in _ORDER and kind == BOOL:
            raise self.error(left, f"'{symbol}' cannot order true/false values")
        return lambda batch: fn(a(batch), b(batch))

    def membership(self, left: ast.AST, right: ast.AST, negate: bool) -> Evaluator:
        word = "not in" if negate else "in"
        if isinstance(right, ast.List | ast.Tuple | ast.Set):
            items = [self.literal(e) for e in right.elts]
            kinds = {k for _, k in items if k != NULL}
            if len(kinds) > 1:
                raise self.error(right, f"the values in {self.source(right)!r} mix types")
            value, kind = self.compile(left)
            self.unify([left, right], [kind, kinds.pop() if kinds else ANY], f"'{word}'")
            if not items:
                return lambda batch: pa.repeat(pa.scalar(negate), batch.num_rows)
            test = functools.partial(pc.is_in, value_set=pa.array([v for v, _ in items]))
            if negate:
                return lambda batch: pc.invert(test(value(batch)))
            return lambda batch: test(value(batch))
        if isinstance(left, ast.Constant) and isinstance(left.value, str):
            haystack, _ = self.operand(right, STRING, f"'{word}'")
            needle = left.value
            if negate:
                return lambda batch: pc.invert(pc.match_substring(haystack(batch), needle))
            return lambda batch: pc.match_substring(haystack(batch), needle)
        raise self.error(
            right,
            f"'{word}' needs a list of literals on the right "
            f"(x in ['a', 'b']) or a string literal on the left ('a' in text), "
            f"not {self.source(right)!r}",
        )

    def visit_Call(self, node: ast.Call) -> tuple[Evaluator, str]:
        if not isinstance(node.func, ast.Name):
            self.compile(node.func)  # names what is wrong (attribute, lambda, subscript, ...)
            raise self.error(node, f"calling {self.source(node.func)!r} is not allowed")
        name = node.func.id
        if name == "col":
            return self.column_call(node), ANY
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise self.error(
                node,
                f"function {name!r} is not allowed "
                f"(allowed: {', '.join(sorted([*FUNCTIONS, 'col']))})",
            )
        if node.keywords:
            raise self.error(node.keywords[0], f"keyword arguments are not allowed in {name}()")
        n = len(node.args)
        if n < len(fn.args) or (n > len(fn.args) and not fn.variadic):
            wanted = f"at least {len(fn.args)}" if fn.variadic else str(len(fn.args))
            raise self.error(node, f"{name}() takes {wanted} argument(s), got {n}")
        wants = [fn.args[min(i, len(fn.args) - 1)] for i in range(n)]
        literals = [
            self.pattern(a, name) for a, w in zip(node.args, wants, strict=True) if w == _LITERAL
        ]
        if name == "matches":
            self.check_regex(node.args[1], literals[0])
        values = [(a, w) for a, w in zip(node.args, wants, strict=True) if w != _LITERAL]
        result = fn.result
        if fn.variadic:  # coalesce: every argument has the one kind they agree on
            compiled = [self.compile(a) for a, _ in values]
            result = self.unify([a for a, _ in values], [k for _, k in compiled], f"{name}()")
            args = [e for e, _ in compiled]
        else:
            args = [self.operand(a, w, f"{name}()")[0] for a, w in values]
        impl = fn.impl
        return (lambda batch: impl(*(a(batch) for a in args), *literals)), result

    def column_call(self, node: ast.Call) -> Evaluator:
        """``col('name')``: a column whose name is not a Python identifier."""
        if len(node.args) != 1 or node.keywords:
            raise self.error(node, "col() takes exactly one argument, a column name")
        name = self.pattern(node.args[0], "col")
        if name.startswith("__"):
            raise self.error(node.args[0], f"name {name!r} is not allowed")
        return self.column(name)

    def pattern(self, node: ast.AST, fn: str) -> str:
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            raise self.error(node, f"{fn}() needs a string literal here, not {self.source(node)!r}")
        return node.value

    def check_regex(self, node: ast.AST, regex: str) -> None:
        try:
            pc.match_substring_regex(pa.array([""]), regex)
        except pa.ArrowInvalid as e:
            raise self.error(node, f"invalid regular expression {regex!r}: {e}") from None
