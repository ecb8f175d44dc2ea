"""R's ``terms()``: a right-hand side expanded into intercept, variables and terms.

A :class:`Terms` object is what the later stages receive for a right-hand side (the
fixed effects, each random-effects term's model matrix): its syntax tree, the text the
tree's positions index, the column references and the expansion, all computed once.
"""

from __future__ import annotations

from typing import Sequence

from .checks import ColumnRef, check
from .errors import FormulaError
from .syntax import BinOp, Node, Num, Paren, Unary, deparse, depth_guard, parse, strip_parens

__all__ = ["Terms", "bits", "build_terms", "parse_rhs"]


class Terms:
    """R's terms object of a right-hand side.

    Attributes:
        node: the right-hand side's syntax tree (no ``~``, no random-effects terms).
        text: the text the node's positions index (the whole formula, for the terms of
            :func:`~.parsed.parse_formula`), for error carets.
        refs: the column references, in source order.
        intercept: whether the model matrix has an intercept column.
        variables: R's label of each variable (``"x"``, ``"poly(x, 2)"``), in order of
            first appearance.
        var_nodes: each variable's node.
        terms: each term as a bit mask over ``variables`` (bit i is variable i), sorted
            by degree and then by appearance, as R orders them.

    Example:
        >>> t = parse_rhs("x * f - 1")
        >>> str(t), t.intercept, t.variables, [t.label(k) for k in t.terms]
        ('x * f - 1', False, ['x', 'f'], ['x', 'f', 'x:f'])
    """

    __slots__ = ("node", "text", "refs", "intercept", "variables", "var_nodes", "terms")

    def __init__(self, node: Node, text: str, refs: tuple[ColumnRef, ...]) -> None:
        self.node = node
        self.text = text
        self.refs = refs
        self.intercept = True
        self.variables: list[str] = []
        self.var_nodes: list[Node] = []
        self.terms: list[int] = []

    def label(self, term: int) -> str:
        """R's label of a term: its variables' labels joined by ``:`` (``"x:f"``)."""
        return ":".join(self.variables[i] for i in bits(term))

    def term_node(self, term: int) -> Node:
        """The node of a term: its variables' nodes joined by ``:``."""
        nodes = [self.var_nodes[i] for i in bits(term)]
        out = nodes[0]
        for n in nodes[1:]:
            out = BinOp(":", out, n, n.pos)
        return out

    def __str__(self) -> str:
        """The canonical R text of the right-hand side (what a recorded state is keyed by)."""
        return deparse(self.node)

    def __repr__(self) -> str:
        return f"Terms({str(self)!r})"


def bits(term: int) -> list[int]:
    """The variable indices of a term's bit mask, increasing: ``bits(0b101) == [0, 2]``."""
    out, i = [], 0
    while term:
        if term & 1:
            out.append(i)
        term >>= 1
        i += 1
    return out


def _trim(terms: list[int]) -> list[int]:
    seen, out = set(), []
    for t in terms:
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def build_terms(node: Node, text: str, refs: Sequence[ColumnRef] | None = None) -> Terms:
    """R's ``terms()`` of a right-hand side node: the expansion of ``EncodeVars`` in R's model.c.

    ``+``, ``-`` (``-1``, ``- a:b``), ``*``, ``:``, ``/`` (``a/b`` is ``a + a:b``), ``%in%``
    (``b %in% a`` is ``b:a``), ``^`` (``(a + b)^2`` is ``a + b + a:b``), ``0`` and ``1``.

    Args:
        node: the right-hand side, without ``~`` and without random-effects terms.
        text: the text its positions index, for error carets.
        refs: its column references when already checked (by :func:`~.checks.check` in
            context ``"term"``); None checks it here.

    Returns:
        The terms object.

    Raises:
        FormulaError: what R's formula rules forbid (see :func:`~.checks.check`).

    Example:
        >>> t = build_terms(parse("(a + b)^2 - a:b + x %in% a"), "(a + b)^2 - a:b + x %in% a")
        >>> t.intercept, [t.label(k) for k in t.terms]
        (True, ['a', 'b', 'a:x'])
    """
    if refs is None:
        found: list[ColumnRef] = []
        check(node, "term", text, found)
        refs = found
    res = Terms(node, text, tuple(refs))
    index: dict[str, int] = {}
    state = {"parity": True}

    def var(n: Node) -> list[int]:
        key = deparse(n)
        if key not in index:
            index[key] = len(res.variables)
            res.variables.append(key)
            res.var_nodes.append(n)
        return [1 << index[key]]

    def enc(n: Node) -> list[int]:
        if isinstance(n, Num):
            if n.value == 1.0:
                res.intercept = state["parity"]
            elif n.value == 0.0:
                res.intercept = not state["parity"]
            else:
                raise FormulaError("a number in a formula must be 0 or 1", text, n.pos, n.end)
            return []
        if isinstance(n, Paren):
            return enc(n.inner)
        if isinstance(n, Unary) and n.op in "+-":
            if n.op == "+":
                return enc(n.operand)
            state["parity"] = not state["parity"]
            enc(n.operand)
            state["parity"] = not state["parity"]
            return []
        if isinstance(n, BinOp):
            op = n.op
            if op == "+":
                return _trim(enc(n.left) + enc(n.right))
            if op == "-":
                left = enc(n.left)
                state["parity"] = not state["parity"]
                dropped = set(enc(n.right))
                state["parity"] = not state["parity"]
                return [t for t in left if t not in dropped]
            if op == "*":
                left, right = enc(n.left), enc(n.right)
                return _trim(left + right + [a | b for a in left for b in right])
            if op == ":":
                left, right = enc(n.left), enc(n.right)
                return _trim([a | b for a in left for b in right])
            if op == "/":
                left, right = enc(n.left), enc(n.right)
                whole = 0
                for t in left:
                    whole |= t
                return _trim(left + [whole | b for b in right])
            if op == "%in%":
                left, right = enc(n.left), enc(n.right)
                whole = 0
                for t in right:
                    whole |= t
                return _trim([a | whole for a in left])
            if op == "^":
                left = enc(n.left)
                power = int(strip_parens(n.right).value)  # type: ignore[attr-defined]
                cur = left
                for _ in range(power - 1):
                    cur = _trim([a | b for a in left for b in cur])
                return cur
        return var(n)

    terms = enc(node)
    res.terms = sorted(terms, key=lambda t: bin(t).count("1"))
    return res


@depth_guard
def parse_rhs(text: str) -> Terms:
    """Parse and check a right-hand side such as ``"1 + Days"`` (a leading ``~`` is accepted).

    Args:
        text: R formula right-hand side without random-effects terms.

    Returns:
        Its terms object.

    Raises:
        TypeError: ``text`` is not a str.
        FormulaError: malformed text, a whole formula ``y ~ x``, or what R's formula
            rules forbid.

    Example:
        >>> [parse_rhs("~ a/b").label(k) for k in parse_rhs("a/b").terms]
        ['a', 'a:b']
    """
    if not isinstance(text, str):
        raise TypeError(f"rhs must be a str, not {type(text).__name__}")
    node = parse(text)
    if isinstance(node, Unary) and node.op == "~":
        node = node.operand
    elif isinstance(node, BinOp) and node.op == "~":
        raise FormulaError("model_matrix() takes a right-hand side such as '1 + x', not a whole formula",
                           text, node.op_pos, node.op_pos + 1)
    return build_terms(node, text)
