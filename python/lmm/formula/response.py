"""The response: a value expression such as ``Reaction`` or ``log(Reaction)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .checks import ColumnRef, check, check_known
from .errors import FormulaError, FormulaNotImplementedError, FormulaTypeError
from .evaluate import Columns, Env, as_numeric, describe, evaluate
from .functions import UNSUPPORTED_FUNCS
from .syntax import Call, Node, deparse, depth_guard, parse, strip_parens
from .values import Factor, Matrix

__all__ = ["Expression", "build_expression", "parse_expression", "evaluate_response"]


class Expression:
    """A checked value expression: its syntax tree, source text and column references.

    Attributes:
        node: the expression's syntax tree.
        text: the text the node's positions index (the whole formula for a response
            from :func:`~.parsed.parse_formula`), for error carets.
        refs: the column references, in source order.

    Example:
        >>> e = parse_expression("log(y / x)")
        >>> str(e), [r.node.name for r in e.refs]
        ('log(y/x)', ['y', 'x'])
    """

    __slots__ = ("node", "text", "refs")

    def __init__(self, node: Node, text: str, refs: tuple[ColumnRef, ...]) -> None:
        self.node = node
        self.text = text
        self.refs = refs

    def __str__(self) -> str:
        """The canonical R text of the expression."""
        return deparse(self.node)

    def __repr__(self) -> str:
        return f"Expression({str(self)!r})"


def build_expression(node: Node, text: str) -> Expression:
    """Check a response node (a value, not ``cbind()``) and collect its column references.

    Args:
        node: the response's node.
        text: the text it was parsed from, for error carets.

    Returns:
        The checked expression.

    Raises:
        FormulaNotImplementedError: a ``cbind()`` response.
        FormulaError: what R's rules forbid in a value.
    """
    inner = strip_parens(node)
    if isinstance(inner, Call) and inner.func == "cbind":
        raise FormulaNotImplementedError(UNSUPPORTED_FUNCS["cbind"], text, node.pos, node.end)
    refs: list[ColumnRef] = []
    check(node, "value", text, refs)
    return Expression(node, text, tuple(refs))


@depth_guard
def parse_expression(text: str) -> Expression:
    """Parse and check a response expression such as ``"log(Reaction)"``.

    Args:
        text: R expression.

    Returns:
        The checked expression.

    Raises:
        TypeError: ``text`` is not a str.
        FormulaError: malformed text.
    """
    if not isinstance(text, str):
        raise TypeError(f"expr must be a str, not {type(text).__name__}")
    return build_expression(parse(text), text)


@depth_guard
def evaluate_response(expr: str | Expression, data: pd.DataFrame | Columns) -> np.ndarray:
    """Evaluate a response expression such as ``"Reaction"`` or ``"log(Reaction)"``.

    Args:
        expr: R expression text, or an :class:`Expression` (``ParsedFormula.response_expr``,
            evaluated without parsing again).
        data: the data.

    Returns:
        float64 array of shape (n,); missing values are NaN.  Logical responses become 0/1.

    Raises:
        FormulaTypeError: (a :class:`FormulaError` and :class:`TypeError`) when the
            response is categorical, a string, or has several columns.
        FormulaError: unknown columns and syntax errors.

    Example:
        >>> evaluate_response("log(y)", pd.DataFrame({"y": [1.0, np.e]}))
        array([0., 1.])
    """
    parsed = expr if isinstance(expr, Expression) else parse_expression(expr)
    node, text = parsed.node, parsed.text
    env = Env(data, text)
    check_known(parsed.refs, text, list(env.lookup))
    value = evaluate(node, env)
    if isinstance(value, (Factor, str)):
        extra = ""
        if isinstance(value, Factor):
            extra = f" with levels {value.levels[:5]}{' ...' if len(value.levels) > 5 else ''}"
        raise FormulaTypeError(
            f"the response '{deparse(node)}' is {describe(value)}{extra}; lmm fits Gaussian "
            "linear mixed models and needs a numeric response", text, node.pos, node.end)
    if isinstance(value, Matrix) and value.values.shape[1] != 1:
        raise FormulaTypeError(f"the response '{deparse(node)}' has {value.values.shape[1]} columns; "
                               "it must be a single numeric column", text, node.pos, node.end)
    out = as_numeric(value, node, env)
    if isinstance(out, float):
        raise FormulaError(f"the response '{deparse(node)}' does not depend on the data", text, node.pos, node.end)
    return np.array(out, dtype=np.float64)  # a copy: never a view of the caller's frame
