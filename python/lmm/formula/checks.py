"""Checks of a syntax tree against R's formula rules, before any data is read.

:func:`check` validates a subtree in its context (formula operators, values, grouping
factors) and collects the column references; :func:`check_known` compares them with a
data frame's columns and names close matches.
"""

from __future__ import annotations

import difflib
from typing import Sequence

from .errors import FormulaError, FormulaNotImplementedError
from .functions import GROUPING_SIGNATURES, SIGNATURES, UNSUPPORTED_FUNCS, bind
from .syntax import SOFT_CONSTANTS, BinOp, Call, Name, Node, Num, Paren, Str, Unary, strip_parens

__all__ = ["ColumnRef", "check", "check_known", "unknown_column_error"]


class ColumnRef:
    """A name in the formula that refers to a data column.

    Attributes:
        node: the name's node (its span points the caret).
        soft: True for ``pi``, ``T`` and ``F`` in an expression: R constants unless
            the data has such a column.
    """

    __slots__ = ("node", "soft")

    def __init__(self, node: Name, soft: bool) -> None:
        self.node, self.soft = node, soft


def check(node: Node, ctx: str, text: str, cols: list[ColumnRef]) -> None:
    """Validate a subtree in context ``"term"`` (formula operators), ``"value"`` or ``"group"``
    (``"group_part"``: an operand of ``:`` or ``/`` in a grouping factor).

    Args:
        node: the subtree.
        ctx: the context it stands in.
        text: the text it was parsed from, for error carets.
        cols: receives the column references, in source order.

    Raises:
        FormulaError: what R's formula rules forbid here (a number other than 0 or 1
            as a term, ``|`` outside parentheses, unknown functions, ...).
        FormulaNotImplementedError: valid R that lmm does not support (``.``; ``offset()`` other than as a fixed term).
    """
    if ctx in ("group", "group_part"):
        if isinstance(node, Name) and not node.literal:
            cols.append(ColumnRef(node, False))
        elif isinstance(node, Paren):
            check(node.inner, ctx, text, cols)
        elif isinstance(node, BinOp) and node.op in (":", "/"):
            check(node.left, "group_part", text, cols)
            check(node.right, "group_part", text, cols)
        elif (isinstance(node, Call) and node.func in ("factor", "as.factor") and len(node.args) == 1
              and isinstance(strip_parens(node.args[0]), Name)):
            check(node.args[0], ctx, text, cols)   # (1 | factor(g)) is the factor g, as in lme4
        elif isinstance(node, Call) and node.func in GROUPING_SIGNATURES:
            if ctx == "group_part":
                raise FormulaNotImplementedError(
                    f"{node.func}() inside a:b or a/b is not supported; write the whole grouping factor as "
                    f"one call, e.g. {node.func}(a, b, c)", text, node.pos, node.end)
            data, _params = bind(node, GROUPING_SIGNATURES[node.func], text)
            for arg in data:   # lme4 evaluates each argument and makes it a factor
                check(arg, "value", text, cols)
        else:
            raise FormulaError(
                "a grouping factor must be a column name, factor(column), an interaction a:b or "
                "interaction(a, b), or a nesting a/b",
                text, node.pos, node.end)
        return
    if isinstance(node, Name):
        if node.name == "." and not node.quoted:
            raise FormulaNotImplementedError("'.' (all other columns) is not supported; list the columns",
                                             text, node.pos, node.end)
        if node.literal:
            if ctx == "term":
                raise FormulaError(f"{node.name} is a constant, not a variable", text, node.pos, node.end)
            if node.name == "NULL":
                raise FormulaError("NULL is not allowed here", text, node.pos, node.end)
            return
        soft = ctx == "value" and not node.quoted and node.name in SOFT_CONSTANTS
        cols.append(ColumnRef(node, soft))
        return
    if isinstance(node, Num):
        if ctx == "term" and node.value not in (0.0, 1.0):
            raise FormulaError("a number in a formula must be 0 or 1 (the intercept); "
                               "wrap arithmetic in I(), e.g. I(2 * x)", text, node.pos, node.end)
        return
    if isinstance(node, Str):
        if ctx == "term":
            raise FormulaError("a string is not a variable; refer to columns by name (use `...` "
                               "for names with spaces)", text, node.pos, node.end)
        return
    if isinstance(node, Paren):
        check(node.inner, ctx, text, cols)
        return
    if isinstance(node, Unary):
        if node.op == "~":
            raise FormulaError("'~' may appear only once, between response and terms", text, node.pos, node.pos + 1)
        if ctx == "term" and node.op == "!":
            check(node.operand, "value", text, cols)
        else:
            check(node.operand, ctx, text, cols)
        return
    if isinstance(node, BinOp):
        op = node.op
        if op == "~":
            raise FormulaError("'~' may appear only once, between response and terms", text, node.op_pos,
                               node.op_pos + 1)
        if ctx == "term":
            if op in ("|", "||"):
                raise FormulaError(
                    f"a random-effects term must be in parentheses and added with '+': "
                    f"... + (expr {op} group)", text, node.op_pos, node.op_pos + len(op))
            if op in ("+", "-", "*", "/", ":", "%in%"):
                check(node.left, ctx, text, cols)
                check(node.right, ctx, text, cols)
                return
            if op == "^":
                check(node.left, ctx, text, cols)
                power = strip_parens(node.right)
                if not (isinstance(power, Num) and power.value.is_integer() and power.value >= 1):
                    raise FormulaError("the power in (a + b)^k must be a whole number; "
                                       "write I(x^2) for arithmetic", text, node.right.pos, node.right.end)
                return
        else:
            if op in ("||", "&&"):
                raise FormulaError(f"'{op}' is not elementwise; use '{op[0]}'", text, node.op_pos, node.op_pos + 2)
            if op == "%in%":
                raise FormulaNotImplementedError("%in% inside an expression is not supported", text,
                                                 node.op_pos, node.op_pos + 4)
        if op.startswith("%") and op not in ("%%", "%/%", "%in%"):
            raise FormulaError(f"unknown operator {op}", text, node.op_pos, node.op_pos + len(op))
        check(node.left, "value", text, cols)
        check(node.right, "value", text, cols)
        return
    if isinstance(node, Call):
        spec = SIGNATURES.get(node.func)
        if spec is None:
            if node.func in UNSUPPORTED_FUNCS:
                raise FormulaNotImplementedError(UNSUPPORTED_FUNCS[node.func], text, node.pos, node.func_end)
            hint = ""
            if node.func_end < len(text) and text[node.func_end].isspace():
                hint = f" (is a '+' missing between '{node.func}' and '('?)"
            close = difflib.get_close_matches(node.func, list(SIGNATURES), n=3)
            if close:
                hint += f"; did you mean {', '.join(close)}?"
            raise FormulaError(
                f"unknown function '{node.func}'{hint}\nsupported functions: {', '.join(sorted(SIGNATURES))}",
                text, node.pos, node.func_end)
        data, _params = bind(node, spec, text)
        for arg in data:
            check(arg, "value", text, cols)
        return
    raise AssertionError(node)


def _close_columns(name: str, columns: Sequence[str]) -> list[str]:
    lowered: dict[str, list[str]] = {}
    for c in columns:
        lowered.setdefault(c.lower(), []).append(c)
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    return [c for key in close for c in lowered[key] if c != name][:3]


def unknown_column_error(nodes: Sequence[Name], text: str, columns: Sequence[str],
                          what: str = "column") -> FormulaError:
    """One error for all unknown names, caret under the first, close matches for each."""
    parts = []
    for node in nodes:
        close = _close_columns(node.name, columns)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        parts.append(f"'{node.name}'{hint}")
    names = list(dict.fromkeys(parts))
    msg = f"unknown {what}{'s' if len(names) > 1 else ''} {', '.join(names)}"
    if all(not _close_columns(node.name, columns) for node in nodes):
        if not columns:
            msg += "; the data has no columns"
        elif len(columns) <= 20:
            msg += f"; the data has {', '.join(repr(c) for c in columns)}"
    first = nodes[0]
    return FormulaError(msg, text, first.pos, first.end)


def check_known(refs: Sequence[ColumnRef], text: str, columns: Sequence[str]) -> None:
    """Raise one FormulaError for all references that are not among ``columns``.

    Args:
        refs: column references from :func:`check`.
        text: the text they index, for the caret (under the first unknown name).
        columns: the data's column names.

    Raises:
        FormulaError: some names are not columns; close matches are suggested.
    """
    present = set(columns)
    unknown = [ref.node for ref in refs if ref.node.name not in present and not ref.soft]
    if unknown:
        raise unknown_column_error(unknown, text, columns)
