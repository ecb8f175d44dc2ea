"""A whole lme4 formula ``response ~ fixed + (expr | group) + ...``, parsed once.

:func:`parse_formula` is the one place where formula text is parsed: the
:class:`ParsedFormula` it returns carries the response as an
:class:`~.response.Expression`, the fixed part as a :class:`~.terms.Terms`, each
random-effects term's :class:`~.terms.Terms` and the column references, all made of
nodes of that one parse, for every later stage.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import pandas as pd

from .bars import RandomTerm, flatten_sum, random_terms, structure_of
from .checks import ColumnRef, check, check_known
from .errors import FormulaError
from .response import Expression, build_expression
from .syntax import BinOp, Call, Node, Num, Unary, deparse, depth_guard, parse, strip_parens
from .terms import Terms, build_terms

__all__ = ["ParsedFormula", "parse_formula", "required_columns", "check_columns"]


@dataclass(frozen=True)
class _Parts:
    """The objects of one parse: response, fixed terms, column references."""

    response: Expression
    fixed: Terms
    refs: tuple[ColumnRef, ...]
    offsets: tuple[Expression, ...] = ()


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed lme4 formula.

    Attributes:
        text: the formula as given.
        response: response expression in R syntax, e.g. ``"Reaction"`` or ``"log(Reaction)"``.
        fixed: fixed-effects right-hand side with the random-effects terms removed, e.g.
            ``"Days"`` or ``"0 + x"``; ``"1"`` when nothing is left.
        random: random-effects terms in formula order after expansion of ``||`` and ``/``
            (lme4's order: ``(1 | a/b)`` gives ``b:a`` then ``a``).
        response_expr: the response as an :class:`~.response.Expression` (for
            :func:`~.response.evaluate_response`).
        fixed_terms: the fixed part as a :class:`~.terms.Terms` (for
            :func:`~.matrix.model_matrix`).
        refs: every column reference, in source order.
        offset_exprs: the arguments of the fixed part's ``offset()`` terms (summed, as R does).

    The last three come from :func:`parse_formula`'s one parse; a ParsedFormula built by
    hand parses ``text`` for them on first use.
    """

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    _parts: _Parts | None = field(default=None, compare=False, repr=False)

    def _get_parts(self) -> _Parts:
        if self._parts is None:
            object.__setattr__(self, "_parts", parse_formula(self.text)._get_parts())
        assert self._parts is not None
        return self._parts

    @property
    def response_expr(self) -> Expression:
        """The response as a checked expression."""
        return self._get_parts().response

    @property
    def fixed_terms(self) -> Terms:
        """The fixed-effects right-hand side as a terms object."""
        return self._get_parts().fixed

    @property
    def offset_exprs(self) -> tuple[Expression, ...]:
        """The expressions of the ``offset()`` terms (empty when there is none)."""
        return self._get_parts().offsets

    @property
    def refs(self) -> tuple[ColumnRef, ...]:
        """The column references of the whole formula, in source order."""
        return self._get_parts().refs


def _split_formula(text: str) -> tuple[Node, Node]:
    """Parse ``text`` and return (lhs, rhs); raises for a missing '~' or response."""
    node = parse(text)
    if isinstance(node, Unary) and node.op == "~":
        raise FormulaError("the formula has no response; write 'response ~ terms'", text, node.pos, node.pos + 1)
    if not (isinstance(node, BinOp) and node.op == "~"):
        raise FormulaError("a formula needs '~' between response and terms, "
                           "e.g. 'Reaction ~ Days + (Days | Subject)'", text, len(text.rstrip()))
    return node.left, node.right


def _fixed_node(summands: list[tuple[str, Node]], rhs: Node) -> Node:
    """The fixed summands joined again by their signs, left to right (``1`` when none)."""
    if not summands:
        return Num(1.0, rhs.pos, rhs.end)
    sign, node = summands[0]
    out = node if sign == "+" else Unary("-", node, node.pos)
    for sign, node in summands[1:]:
        out = BinOp(sign, out, node, node.pos)
    return out


def parse_formula(text: str, double_bar: str = "split") -> ParsedFormula:
    """Parse an lme4 formula into response, fixed part and random-effects terms.

    Args:
        text: an R formula as written for ``lme4::lmer``, e.g.
            ``"Reaction ~ Days + (Days | Subject)"``.
        double_bar: ``"split"`` (lme4's default: ``(x || g)`` is ``(1 | g) + (0 + x | g)``,
            so a factor-valued slope keeps an unstructured covariance of its columns) or
            ``"diag"`` (lme4's ``lme4.doublevert.default = "diag_special"``: ``(x || g)`` is
            ``diag(x | g)``, every column independent).

    Returns:
        The parsed formula: ``fixed`` is the right-hand side without the bars (``"1"`` if
        nothing is left); ``random`` lists the terms after lme4's expansions: ``(x || g)``
        becomes ``(1 | g) + (0 + x | g)`` and ``(1 | a/b)`` becomes ``(1 | b:a) + (1 | a)``.

    Raises:
        TypeError: ``text`` is not a str.
        FormulaError: malformed formulas (missing ``~``, unbalanced parentheses, an empty
            side of ``|``, ``|`` outside parentheses, unknown functions, trailing
            operators), with a caret under the position.
        FormulaNotImplementedError: ``cbind()`` responses, ``.``.

    Example:
        >>> p = parse_formula("strength ~ 1 + (1 | batch/cask)")
        >>> [(t.name, t.factors) for t in p.random]
        [('cask:batch', ('cask', 'batch')), ('batch', ('batch',))]
        >>> [t.expr for t in parse_formula("y ~ (1 + x || g)").random]
        ['1', '0 + x']
    """
    if not isinstance(text, str):
        raise TypeError(f"formula must be a str, not {type(text).__name__}")
    if double_bar not in ("split", "diag"):
        raise ValueError(f"double_bar must be 'split' or 'diag', not {double_bar!r}")
    return _parse_formula(text, double_bar)


# A ParsedFormula is immutable, so one parse serves every model of the same formula
# (refits, model comparisons, the many fits of a simulation study).
@functools.lru_cache(maxsize=256)
@depth_guard
def _parse_formula(text: str, double_bar: str) -> ParsedFormula:
    lhs, rhs = _split_formula(text)
    response = build_expression(lhs, text)
    refs: list[ColumnRef] = list(response.refs)
    fixed_refs: list[ColumnRef] = []
    summands: list[tuple[str, Node, bool]] = []
    bare = strip_parens(rhs)
    if isinstance(bare, BinOp) and bare.op in ("|", "||") and bare is rhs:
        # A bar at the top level: lme4 reads y ~ x | g as y ~ 1 + (x | g) ('|' binds last).
        summands.append(("+", bare, True))
    else:
        flatten_sum(rhs, "+", summands, text)
    fixed: list[tuple[str, Node]] = []
    random: list[RandomTerm] = []
    offsets: list[Expression] = []
    for sign, node, is_bar in summands:
        inner = strip_parens(node)
        if not is_bar and isinstance(inner, Call) and inner.func == "offset":
            if sign == "-" or len(inner.args) != 1 or inner.keywords[0] is not None:
                raise FormulaError("an offset is a term offset(expr) with one argument, added to the fixed part",
                                   text, inner.pos, inner.end)
            offsets.append(build_expression(inner.args[0], text))
            refs.extend(offsets[-1].refs)
            continue
        if is_bar:
            if isinstance(node, Call):
                structure, bar = structure_of(node, text)
                random.extend(random_terms(bar, text, refs, structure))
            elif isinstance(node, BinOp) and node.op == "||" and double_bar == "diag":
                random.extend(random_terms(BinOp("|", node.left, node.right, node.op_pos), text, refs, "diag"))
            else:
                assert isinstance(node, BinOp)
                random.extend(random_terms(node, text, refs))
        else:
            check(node, "term", text, fixed_refs)
            fixed.append((sign, node))
    refs.extend(fixed_refs)
    fixed_terms = build_terms(_fixed_node(fixed, rhs), text, fixed_refs)
    refs.sort(key=lambda ref: ref.node.pos)
    return ParsedFormula(text=text, response=deparse(lhs), fixed=str(fixed_terms), random=tuple(random),
                         _parts=_Parts(response, fixed_terms, tuple(refs), tuple(offsets)))


def required_columns(parsed: ParsedFormula) -> list[str]:
    """Data columns the formula uses, in order of first use, without duplicates.

    Covers the response, fixed effects, random-effects slopes and grouping factors.
    ``pi``, ``T`` and ``F`` inside expressions are R constants unless the data has such a
    column; they are not listed here (:func:`check_columns` handles them).  Drop
    incomplete rows as R's ``na.omit`` does before building the design:
    ``data = data.dropna(subset=required_columns(parsed))``.

    Args:
        parsed: the parsed formula.

    Returns:
        The column names.

    Example:
        >>> required_columns(parse_formula("log(Reaction) ~ Days + (Days | Subject)"))
        ['Reaction', 'Days', 'Subject']
    """
    out: list[str] = []
    for ref in parsed.refs:
        if not ref.soft and ref.node.name not in out:
            out.append(ref.node.name)
    return out


def check_columns(parsed: ParsedFormula, data: pd.DataFrame) -> None:
    """Raise :class:`FormulaError` (caret into the formula) for names that are not columns.

    Call this before any heavy work so that typos are reported against the formula the
    user wrote.  The message lists close matches.

    Args:
        parsed: the parsed formula.
        data: the data.

    Raises:
        FormulaError: some names are not columns of ``data``.

    Example:
        >>> df = pd.DataFrame({"Reaction": [1.0], "Days": [0], "Subject": ["a"]})
        >>> check_columns(parse_formula("Reaction ~ days + (1 | Subject)"), df)
        Traceback (most recent call last):
        ...
        lmm.formula.FormulaError: unknown column 'days' (did you mean 'Days'?)
            Reaction ~ days + (1 | Subject)
                       ^^^^
    """
    check_known(parsed.refs, parsed.text, [str(c) for c in data.columns])
