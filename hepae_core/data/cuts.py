"""Jet selections: named presets and user cut expressions, parsed safely and applied vectorised.

A cut is a boolean expression over jet variables that a jet must pass to be kept, e.g.
``abs(EMFrac) < 5`` or ``not (abs(EMFrac) < 0.05 and abs(eta) >= 2)``. Expressions are
parsed with :mod:`ast` into a small whitelist and evaluated with numpy; nothing is ever
passed to :func:`eval`. Allowed:

* names (jet variables) and numbers (``5``, ``0.05``, ``1e3``, ``True``/``False``),
* comparisons ``< <= > >= == !=``, chained ones too (``-2 < eta < 2``),
* ``and``, ``or``, ``not`` and parentheses,
* arithmetic ``+ - * /`` and unary minus,
* the functions ``abs()``, ``log10()``, ``sqrt()``.

This module imports numpy only inside the evaluating functions, so configs can be validated
(:func:`check_cuts`) without the numerical stack. Values seen by cuts are in GeV (after the
unit conversion of ``data.units``).
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# The quality cuts of the 27-variable thesis study, in its order. The original script
# wrote the third one as np.logical_and(a, b, c, d), which numpy reads as (a and b) with
# c as output and d as mask; the preset applies the four conditions the study meant.
PRESETS: dict[str, tuple[str, ...]] = {
    "thesis_27d": (
        "abs(EMFrac) < 5",
        "not (abs(EMFrac) < 0.05 and abs(eta) >= 2)",
        "not (AverageLArQF > 0.8 and EMFrac > 0.95 and LArQuality > 0.8 and abs(eta) < 2.8)",
        "abs(NegativeE) < 300",
        "not (AverageLArQF > 0.8 and abs(HECQuality) > 0.5 and abs(HECFrac) > 0.5)",
        "OotFracClusters5 > -0.1",
        "OotFracClusters10 > -0.1",
        "abs(Width) < 5 and Width != -1",
        "abs(WidthPhi) < 5",
        "abs(Timing) < 125",
        "LArQuality < 4",
        "abs(HECQuality) < 2.5",
    ),
}

FUNCTIONS = ("abs", "log10", "sqrt")
_CMP = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_BIN = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class CutSyntaxError(ValueError):
    """A cut expression outside the whitelist; the message says what is not allowed."""


@dataclass(frozen=True)
class Cut:
    """One parsed cut: its text, its syntax tree and the variables it reads."""

    expr: str
    tree: ast.Expression
    names: tuple[str, ...]

    def mask(self, columns: dict[str, Any]) -> Any:
        """Boolean numpy array: True for the jets that pass. ``columns`` maps name -> array."""
        import numpy as np

        n = len(next(iter(columns.values()))) if columns else 0
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _eval(self.tree.body, columns, np)
        out = np.asarray(out)
        if out.dtype != bool:
            raise CutSyntaxError(f"'{self.expr}' is not a condition (it gives numbers)")
        return np.broadcast_to(out, (n,)) if out.ndim == 0 else out


def expressions(spec: str | Sequence[str] | None) -> list[str]:
    """The list of expressions a ``data.cuts`` value stands for (a preset is expanded)."""
    if not spec:
        return []
    if isinstance(spec, str):
        if spec not in PRESETS:
            close = difflib.get_close_matches(spec, list(PRESETS), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise CutSyntaxError(
                f"unknown cut preset '{spec}'{hint} (presets: {', '.join(PRESETS)}); "
                "or give a list of cut expressions"
            )
        return list(PRESETS[spec])
    return list(spec)


def parse(expr: str) -> Cut:
    """Parse one cut expression into a :class:`Cut`; raises :class:`CutSyntaxError`."""
    if not isinstance(expr, str) or not expr.strip():
        raise CutSyntaxError("a cut must be a non-empty expression string")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise CutSyntaxError(f"'{expr}' does not parse: {exc.msg}") from None
    names: list[str] = []
    _check(tree.body, expr, names)
    if not _is_condition(tree.body):
        raise CutSyntaxError(
            f"'{expr}' is not a condition; write comparisons joined by and/or/not, "
            "such as 'abs(eta) < 2.5'"
        )
    return Cut(expr, tree, tuple(dict.fromkeys(names)))


def _is_condition(node: ast.AST) -> bool:
    """True when a node gives booleans: a comparison, and/or/not of conditions, True/False."""
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.BoolOp):
        return all(_is_condition(v) for v in node.values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _is_condition(node.operand)
    return isinstance(node, ast.Constant) and isinstance(node.value, bool)


def _constant(node: ast.AST) -> float | None:
    """The value of a sub-expression made of numbers only (``1 - 1``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float)):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _constant(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _constant(node.left), _constant(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return None if right == 0 else left / right
    return None


def _check(node: ast.AST, expr: str, names: list[str]) -> None:
    """Walk the tree and refuse anything outside the whitelist."""
    if isinstance(node, ast.Name):
        names.append(node.id)
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, int, float)):
            return
        raise CutSyntaxError(f"'{expr}': only numbers are allowed as constants, not {node.value!r}")
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _CMP:
                raise CutSyntaxError(f"'{expr}': comparison '{type(op).__name__}' is not allowed")
        for sub in [node.left, *node.comparators]:
            _check(sub, expr, names)
        return
    if isinstance(node, ast.BoolOp):
        for sub in node.values:
            _check(sub, expr, names)
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
            raise CutSyntaxError(f"'{expr}': operator '{type(node.op).__name__}' is not allowed")
        _check(node.operand, expr, names)
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BIN:
            raise CutSyntaxError(
                f"'{expr}': operator '{type(node.op).__name__}' is not allowed (use + - * /)"
            )
        _check(node.left, expr, names)
        _check(node.right, expr, names)
        if isinstance(node.op, ast.Div) and _constant(node.right) == 0:
            raise CutSyntaxError(
                f"'{expr}': divides by zero (the denominator '{ast.unparse(node.right)}' is 0), "
                "so the cut would pass or fail every jet by accident; fix the denominator"
            )
        return
    if isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname not in FUNCTIONS or node.keywords or len(node.args) != 1:
            raise CutSyntaxError(
                f"'{expr}': only {', '.join(f + '(x)' for f in FUNCTIONS)} may be called"
            )
        _check(node.args[0], expr, names)
        return
    raise CutSyntaxError(f"'{expr}': '{type(node).__name__}' is not allowed in a cut")


def _eval(node: ast.AST, cols: dict[str, Any], np: Any) -> Any:
    if isinstance(node, ast.Name):
        return cols[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, cols, np)
        result = None
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, cols, np)
            sym = _CMP[type(op)]
            part = {
                "<": np.less,
                "<=": np.less_equal,
                ">": np.greater,
                ">=": np.greater_equal,
                "==": np.equal,
                "!=": np.not_equal,
            }[sym](left, right)
            result = part if result is None else np.logical_and(result, part)
            left = right
        return result
    if isinstance(node, ast.BoolOp):
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        vals = [_as_bool(_eval(v, cols, np), np) for v in node.values]
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out
    if isinstance(node, ast.UnaryOp):
        val = _eval(node.operand, cols, np)
        if isinstance(node.op, ast.Not):
            return np.logical_not(_as_bool(val, np))
        return np.negative(val) if isinstance(node.op, ast.USub) else val
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, cols, np), _eval(node.right, cols, np)
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}[
            _BIN[type(node.op)]
        ](a, b)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)  # _check admits only calls of FUNCTIONS
        arg = _eval(node.args[0], cols, np)
        return {"abs": np.abs, "log10": np.log10, "sqrt": np.sqrt}[node.func.id](arg)
    raise CutSyntaxError(f"cannot evaluate '{type(node).__name__}'")  # pragma: no cover


def _as_bool(v: Any, np: Any) -> Any:
    arr = np.asarray(v)
    if arr.dtype != bool:
        raise CutSyntaxError("'and', 'or' and 'not' need conditions on both sides, not numbers")
    return arr


def parse_all(spec: str | Sequence[str] | None) -> list[Cut]:
    """Parse every cut of a ``data.cuts`` value."""
    return [parse(e) for e in expressions(spec)]


def cut_variables(spec: str | Sequence[str] | None) -> list[str]:
    """The variables the cuts read, in first-use order."""
    out: dict[str, None] = {}
    for cut in parse_all(spec):
        out.update(dict.fromkeys(cut.names))
    return list(out)


def check_cuts(spec: Any, known: Iterable[str]) -> list[tuple[str, str]]:
    """Validate a ``data.cuts`` value without numpy.

    Returns a list of (key, message) problems, the first of which a config error reports;
    keys are ``data.cuts`` (a bad preset) or ``data.cuts[i]`` (one expression).
    """
    known = set(known)
    if isinstance(spec, str):
        try:
            exprs = expressions(spec)
        except CutSyntaxError as exc:
            return [("data.cuts", str(exc))]
        prefix = f"preset {spec}: "
    else:
        exprs = list(spec or [])
        prefix = ""
    problems = []
    for i, expr in enumerate(exprs):
        key = f"data.cuts[{i}]"
        try:
            cut = parse(expr)
        except CutSyntaxError as exc:
            problems.append((key, prefix + str(exc)))
            continue
        for name in cut.names:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                problems.append(
                    (
                        key,
                        f"{prefix}'{expr}' names an unknown variable '{name}'{hint} "
                        "(cuts may use jet variables, or names mapped in data.branches)",
                    )
                )
    return problems


class CutFlow:
    """Applies parsed cuts chunk by chunk and counts the jets each one removes, in order."""

    def __init__(self, spec: str | Sequence[str] | None) -> None:
        self.cuts = parse_all(spec)
        self.removed = [0] * len(self.cuts)

    def mask(self, columns: dict[str, Any]) -> Any:
        """Boolean keep-mask for one chunk; updates the per-cut counts."""
        import numpy as np

        n = len(next(iter(columns.values()))) if columns else 0
        keep = np.ones(n, dtype=bool)
        for i, cut in enumerate(self.cuts):
            passed = cut.mask(columns)
            self.removed[i] += int(np.count_nonzero(keep & ~passed))
            keep &= passed
        return keep

    def counts(self) -> dict[str, Any]:
        """``cut.<i>.expr`` and ``cut.<i>.removed`` (0-based, in order) for metrics.json."""
        out: dict[str, Any] = {}
        for i, (cut, n) in enumerate(zip(self.cuts, self.removed)):
            out[f"cut.{i}.expr"] = cut.expr
            out[f"cut.{i}.removed"] = n
        return out


def apply_cuts(
    values: Any, variables: Sequence[str], cuts: str | Sequence[str], source: str
) -> tuple[Any, dict[str, Any]]:
    """Apply cuts to a (n, v) array whose columns are ``variables``.

    Returns the kept rows and the counts (``cut.<i>.removed``, ``cut.<i>.expr``). Raises
    :class:`~hepae_core.errors.DataError` when a cut needs a column that is not there.
    """
    from hepae_core.errors import DataError

    try:
        flow = CutFlow(cuts)
    except CutSyntaxError as exc:
        raise DataError(source=source, message=str(exc), key="data.cuts") from None
    columns = {v: values[:, j] for j, v in enumerate(variables)}
    for i, cut in enumerate(flow.cuts):
        missing = [n for n in cut.names if n not in columns]
        if missing:
            raise DataError(
                source=source,
                message=f"'{cut.expr}' needs {', '.join(missing)}, not read",
                key=f"data.cuts[{i}]",
            )
    keep = flow.mask(columns)
    return values[keep], flow.counts()
