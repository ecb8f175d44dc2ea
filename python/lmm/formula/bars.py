"""Random-effects terms: bars ``(expr | g)``, lme4's ``||`` and nested groups ``a/b``.

:func:`flatten_sum` separates a formula's right-hand side into fixed summands and bar
terms; :func:`random_terms` expands one bar term as lme4's ``expandDoubleVerts`` and
``expandSlash`` do, into :class:`RandomTerm` objects that carry their nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .checks import ColumnRef, check
from .errors import FormulaError
from .syntax import BinOp, Name, Node, Num, Paren, deparse, strip_parens
from .terms import Terms, build_terms, parse_rhs

__all__ = ["RandomTerm", "flatten_sum", "random_terms"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after lme4's expansions.

    Attributes:
        expr: R text of the right-hand side of the term's model matrix: ``"Days"``
            (intercept implied, as in R), ``"1"``, ``"0 + Days"``, ``"0 + Machine"``.
        factors: data columns whose interaction is the grouping factor, in the order of
            ``name``: ``("Subject",)``, ``("cask", "batch")``.
        name: lme4's name of the group: ``"Subject"``, ``"cask:batch"``, ``"c:(b:a)"``.
        double_bar: True when the term came from splitting a ``||`` term.
        terms: the term's :class:`~.terms.Terms` (its syntax tree in the formula, for
            :func:`~.matrix.model_matrix`); made by :func:`~.parsed.parse_formula`, or
            parsed from ``expr`` on first use for a term built by hand.

    Example:
        >>> term = RandomTerm("0 + x", ("g",), "g", True)
        >>> [term.terms.label(k) for k in term.terms.terms], term.terms.intercept
        (['x'], False)
    """

    expr: str
    factors: tuple[str, ...]
    name: str
    double_bar: bool
    _terms: Terms | None = field(default=None, compare=False, repr=False)

    @property
    def terms(self) -> Terms:
        """The term's model-matrix right-hand side as a terms object."""
        if self._terms is None:
            object.__setattr__(self, "_terms", parse_rhs(self.expr))
        assert self._terms is not None
        return self._terms


def flatten_sum(node: Node, sign: str, out: list[tuple[str, Node, bool]], text: str) -> None:
    """Flatten the top-level +/- chain; entries are (sign, node, is_bar)."""
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        flatten_sum(node.left, sign, out, text)
        right_sign = sign if node.op == "+" else ("-" if sign == "+" else "+")
        flatten_sum(node.right, right_sign, out, text)
        return
    if isinstance(node, BinOp) and node.op in ("|", "||"):
        raise FormulaError(
            f"a random-effects term must be in parentheses: (expr {node.op} group)",
            text, node.op_pos, node.op_pos + len(node.op))
    if isinstance(node, Paren):
        inner = strip_parens(node)
        is_bar = isinstance(inner, BinOp) and inner.op in ("|", "||")
        has_bar = is_bar or (isinstance(inner, BinOp) and inner.op in ("+", "-") and _contains_bar(inner))
        if has_bar:
            if sign == "-":
                raise FormulaError("a random-effects term cannot be subtracted", text, node.pos, node.end)
            if is_bar:
                out.append((sign, inner, True))
            else:
                flatten_sum(inner, sign, out, text)
            return
    out.append((sign, node, False))


def _contains_bar(node: Node) -> bool:
    if isinstance(node, BinOp):
        if node.op in ("|", "||"):
            return True
        if node.op in ("+", "-"):
            return _contains_bar(node.left) or _contains_bar(node.right)
    if isinstance(node, Paren):
        return _contains_bar(node.inner)
    return False


def group_expansion(grp: Node, text: str) -> list[Node]:
    """lme4's expandSlash for one grouping expression: ``a/b`` -> [b:a, a]."""

    def slash_terms(n: Node) -> Any:
        inner = strip_parens(n)
        if isinstance(inner, BinOp) and inner.op == "/":
            right = slash_terms(inner.right)
            if isinstance(right, list):
                raise FormulaError("a nesting a/b must not have a parenthesized nesting on its right; "
                                   "write a/b/c", text, inner.right.pos, inner.right.end)
            return [slash_terms(inner.left), right]
        if _has_slash(n):
            raise FormulaError("unparseable grouping factor; write nestings as a/b or a/b/c",
                               text, n.pos, n.end)
        return n

    def make_interaction(x: Any) -> Any:
        if not isinstance(x, list):
            return x
        trm1 = make_interaction(x[0])
        trm11 = trm1[0] if isinstance(trm1, list) else trm1
        bar = Paren(trm11, trm11.pos, trm11.end) if isinstance(trm11, BinOp) else trm11
        return [BinOp(":", x[1], bar, x[1].end), trm1]

    def flat(x: Any) -> list[Node]:
        if isinstance(x, list):
            return [n for item in x for n in flat(item)]
        return [x]

    return flat(make_interaction(slash_terms(grp)))


def _has_slash(node: Node) -> bool:
    if isinstance(node, BinOp):
        return node.op == "/" or _has_slash(node.left) or _has_slash(node.right)
    if isinstance(node, Paren):
        return _has_slash(node.inner)
    return False


def group_factors(node: Node) -> tuple[str, ...]:
    out: list[str] = []

    def walk(n: Node) -> None:
        if isinstance(n, Name):
            if n.name not in out:
                out.append(n.name)
        elif isinstance(n, Paren):
            walk(n.inner)
        elif isinstance(n, BinOp):
            walk(n.left)
            walk(n.right)

    walk(node)
    return tuple(out)


def random_terms(bar: BinOp, text: str, refs: list[ColumnRef]) -> list[RandomTerm]:
    """The random-effects terms of one bar term ``(expr | g)`` or ``(expr || g)``.

    ``(x || g)`` becomes ``(1 | g) + (0 + x | g)`` (lme4's ``expandDoubleVerts``) and
    ``(1 | a/b)`` becomes ``(1 | b:a) + (1 | a)`` (``expandSlash``), in lme4's order.

    Args:
        bar: the ``|`` or ``||`` node.
        text: the formula text, for error carets.
        refs: receives the column references of both sides, in source order.

    Returns:
        The terms, each with its :class:`~.terms.Terms` built from nodes of the formula.

    Raises:
        FormulaError: a side that R's rules forbid, or a term without columns.
    """
    left_refs: list[ColumnRef] = []
    check(bar.left, "term", text, left_refs)
    refs.extend(left_refs)
    check(bar.right, "group", text, refs)
    terms = build_terms(bar.left, text, left_refs)
    if not terms.terms and not terms.intercept:
        raise FormulaError("this random-effects term has no columns: no intercept and no variables left of the bar",
                           text, bar.pos, bar.end)
    pieces: list[tuple[str, Terms]]
    if bar.op == "||":
        pos, end = bar.left.pos, bar.left.end
        pieces = [("1", build_terms(Num(1.0, pos, end), text))] if terms.intercept else []
        for t in terms.terms:
            node = BinOp("+", Num(0.0, pos, pos), terms.term_node(t), pos)
            pieces.append(("0 + " + terms.label(t), build_terms(node, text)))
    else:
        pieces = [(deparse(bar.left), terms)]
    groups = group_expansion(bar.right, text)
    return [RandomTerm(expr, group_factors(grp), deparse(grp), bar.op == "||", piece_terms)
            for expr, piece_terms in pieces for grp in groups]
