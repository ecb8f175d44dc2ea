"""Random-effects terms: bars ``(expr | g)``, lme4's ``||``, nested groups ``a/b`` and
lme4 2.x's covariance structures ``us()``, ``diag()``, ``cs()``, ``ar1()`` (and ``toep()``).

:func:`flatten_sum` separates a formula's right-hand side into fixed summands and bar
terms; :func:`random_terms` expands one bar term as lme4's ``expandDoubleVerts`` and
``expandSlash`` do, into :class:`RandomTerm` objects that carry their nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .checks import ColumnRef, check
from .errors import FormulaError
from .functions import GROUPING_SIGNATURES, bind
from .syntax import BinOp, Call, Name, Node, Num, Paren, deparse, parse, strip_parens
from .terms import Terms, build_terms, parse_rhs

__all__ = ["RandomTerm", "STRUCTURE_CALLS", "flatten_sum", "random_terms", "structure_of"]

#: lme4 2.x's covariance structures (and glmmTMB's ``toep``) wrapping a bar, with the
#: core's structure name for ``hom = FALSE`` and ``hom = TRUE`` (the default first).
STRUCTURE_CALLS: dict[str, tuple[bool, str, str]] = {
    "us": (False, "us", ""),
    "diag": (False, "diag", "diag_hom"),
    "cs": (False, "cs", "cs_hom"),
    "ar1": (True, "ar1_het", "ar1"),
    "toep": (False, "toep", "toep_hom"),
}


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
        structure: the core's covariance structure (``lmm._core.STRUCTURES``): ``"us"``
            for ``(x | g)`` and ``us(x | g)``, ``"cs"`` for ``cs(x | g)``, ``"cs_hom"`` for
            ``cs(x | g, hom = TRUE)``, ``"ar1"``, ``"ar1_het"``, ``"diag"``, ``"diag_hom"``,
            ``"toep"``, ``"toep_hom"``.
        terms: the term's :class:`~.terms.Terms` (its syntax tree in the formula, for
            :func:`~.matrix.model_matrix`); made by :func:`~.parsed.parse_formula`, or
            parsed from ``expr`` on first use for a term built by hand.
        group_call: the grouping factor when it is a call such as ``interaction(a, b)``,
            and the text its positions index (for :func:`~.grouping.grouping_codes`); from
            :func:`~.parsed.parse_formula`'s syntax tree, or parsed from ``name`` for a term
            built by hand.

    Example:
        >>> term = RandomTerm("0 + x", ("g",), "g", True)
        >>> [term.terms.label(k) for k in term.terms.terms], term.terms.intercept
        (['x'], False)
    """

    expr: str
    factors: tuple[str, ...]
    name: str
    double_bar: bool
    structure: str = "us"
    _terms: Terms | None = field(default=None, compare=False, repr=False)
    _group: tuple[Node, str] | None = field(default=None, compare=False, repr=False)

    @property
    def terms(self) -> Terms:
        """The term's model-matrix right-hand side as a terms object."""
        if self._terms is None:
            object.__setattr__(self, "_terms", parse_rhs(self.expr))
        assert self._terms is not None
        return self._terms

    @property
    def group_call(self) -> tuple[Call, str] | None:
        """The grouping factor when it is a call such as ``interaction(a, b)`` (one of
        :data:`~.functions.GROUPING_SIGNATURES`), with the text its positions index; None
        for column names, ``factor(g)``, ``a:b`` and nestings."""
        if self._group is None:
            # A term built by hand: lme4's name of such a group is the deparsed call, so
            # only a name that starts like one needs parsing.
            if not self.name.startswith(tuple(f + "(" for f in GROUPING_SIGNATURES)):
                return None
            node = parse(self.name)
            check(node, "group", self.name, [])
            object.__setattr__(self, "_group", (node, self.name))
        assert self._group is not None
        node, text = self._group
        call = strip_parens(node)
        return (call, text) if isinstance(call, Call) and call.func in GROUPING_SIGNATURES else None


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
    if isinstance(node, Call) and node.func in STRUCTURE_CALLS and node.args and _is_bar(node.args[0]):
        if sign == "-":
            raise FormulaError("a random-effects term cannot be subtracted", text, node.pos, node.end)
        out.append((sign, node, True))
        return
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


def _is_bar(node: Node) -> bool:
    inner = strip_parens(node)
    return isinstance(inner, BinOp) and inner.op in ("|", "||")


def structure_of(call: Call, text: str) -> tuple[str, BinOp]:
    """The structure and the bar of ``cs(x | g, hom = TRUE)`` and its kin.

    Raises:
        FormulaError: an argument other than the bar and ``hom = TRUE/FALSE``, a
            ``||`` inside (its meaning is a diagonal structure: write ``diag(x | g)``),
            or ``hom`` for ``us()``.
    """
    default, het, hom_name = STRUCTURE_CALLS[call.func]
    bar = strip_parens(call.args[0])
    assert isinstance(bar, BinOp)
    if bar.op == "||":
        raise FormulaError(f"'||' inside {call.func}() has no meaning; write {call.func}(x | g) (or diag(x | g) "
                           "for independent effects)", text, bar.op_pos, bar.op_pos + 2)
    if call.keywords[0] is not None:
        raise FormulaError(f"the first argument of {call.func}() is the term (x | g), not a named argument",
                           text, call.args[0].pos, call.args[0].end)
    hom = default
    for arg, key in zip(call.args[1:], call.keywords[1:]):
        value = strip_parens(arg)
        if key != "hom" or not (isinstance(value, Name) and value.name in ("TRUE", "FALSE", "T", "F")):
            raise FormulaError(f"{call.func}() takes the term and hom = TRUE or FALSE", text, arg.pos, arg.end)
        if not hom_name:
            raise FormulaError("us() has no homogeneous variant; use diag(x | g, hom = TRUE) or "
                               "cs(x | g, hom = TRUE)", text, arg.pos, arg.end)
        hom = value.name in ("TRUE", "T")
    return (hom_name if hom else het), bar


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


def group_factors(node: Node, text: str) -> tuple[str, ...]:
    """The data columns a checked grouping factor uses, in order of first appearance."""
    inner = strip_parens(node)
    if isinstance(inner, Call) and inner.func in GROUPING_SIGNATURES:
        # interaction(a, b, sep = "_"): the columns of its data arguments (any expressions)
        refs: list[ColumnRef] = []
        for arg in bind(inner, GROUPING_SIGNATURES[inner.func], text)[0]:
            check(arg, "value", text, refs)
        return tuple(dict.fromkeys(ref.node.name for ref in refs))
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
        elif isinstance(n, Call):   # factor(g)
            for arg in n.args:
                walk(arg)

    walk(node)
    return tuple(out)


def random_terms(bar: BinOp, text: str, refs: list[ColumnRef], structure: str = "us") -> list[RandomTerm]:
    """The random-effects terms of one bar term ``(expr | g)`` or ``(expr || g)``.

    ``(x || g)`` becomes ``(1 | g) + (0 + x | g)`` (lme4's ``expandDoubleVerts``) and
    ``(1 | a/b)`` becomes ``(1 | b:a) + (1 | a)`` (``expandSlash``), in lme4's order.

    Args:
        bar: the ``|`` or ``||`` node.
        text: the formula text, for error carets.
        refs: receives the column references of both sides, in source order.
        structure: the term's covariance structure (:func:`structure_of`).

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
    return [RandomTerm(expr, group_factors(grp, text), deparse(grp), bar.op == "||", structure, piece_terms,
                       (grp, text))
            for expr, piece_terms in pieces for grp in groups]
