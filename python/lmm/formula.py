"""lme4 model formulas with R's meaning.

Users paste formulas written for R's ``lme4::lmer``.  This module parses them and
builds the fixed-effects model matrices exactly as R's ``model.matrix`` does:

* :func:`parse_formula` splits ``response ~ fixed + (expr | group) + ...`` into the
  response expression, the fixed-effects right-hand side and the random-effects terms,
  expanding ``||`` (lme4's ``expandDoubleVerts``) and nested groups ``a/b`` (lme4's
  ``expandSlash``) with lme4's names and order.
* :func:`model_matrix` evaluates a right-hand side such as ``"1 + Days"`` or
  ``"0 + Machine"`` on a :class:`pandas.DataFrame` and returns a dense Fortran-ordered
  float64 matrix with R's columns, column order and column names (treatment contrasts,
  R's rules for when a factor gets contrasts and when indicator columns).
* :func:`evaluate_response`, :func:`required_columns`, :func:`check_columns`,
  :func:`grouping_codes` and :func:`grouping_factor` serve the design step.

The formula language is R's, parsed by this module (no ``eval`` of user text):
operators ``+ - * / : ^ %in%``, ``0``/``1``/``-1``, parentheses, and inside function
calls R arithmetic (``+ - * / ^ %% %/%``), comparisons and ``& | !``.  Supported
functions: ``I``, ``log`` (with ``base``), ``exp``, ``sqrt``, ``abs`` and other
elementwise maths, ``scale``, ``poly`` (orthogonal like R's, or ``raw = TRUE``),
``factor``, ``as.factor``, ``ordered``, ``relevel``, ``C`` (treatment, sum, helmert and
poly contrasts), ``pmin``, ``pmax``.

Data types follow R: numeric columns (integer too) are numeric; pandas ``Categorical``
columns are factors with their category order (ordered categoricals get R's polynomial
contrasts, as ordered factors do in R); string/object columns are factors with sorted
levels; bool columns are R logicals (levels ``FALSE``, ``TRUE``; column ``xTRUE``).
As in lme4's model frame, unused levels of factors are dropped.

Known differences from R (all deliberate or documented edge cases):

* R sorts character levels with the locale's collation (ICU on most systems).  This
  module approximates ICU's root collation for ASCII text (punctuation < digits <
  letters, case-insensitive first, lower case before upper case on ties); non-ASCII
  letters are sorted after ``z`` by code point.
* ``y ~ (1 | g) - 1`` (every fixed term removed, ``-1`` last) keeps an intercept in lme4
  because of a quirk of its ``nobars``; here ``-1`` removes the intercept, as R's
  formula rules say.
* ``(1 | a:b/c)``: lme4 mangles the group name; here the groups are ``c:(a:b)`` and
  ``a:b``.  Groups may only be column names combined with ``:`` and ``/`` (lme4 also
  evaluates arbitrary expressions such as ``(1 | factor(g))``).
* ``poly()`` and ``scale()`` use the data passed in, unless a recorded
  :class:`ModelFrameState` is given: then new data are evaluated with the fitting data's
  coefficients and factor levels, as R's ``predict(fit, newdata)``.
* Missing values are not removed: they give NaN in the affected columns.  Drop
  incomplete rows first (``data.dropna(subset=required_columns(parsed))``) to reproduce
  R's ``na.omit``; ``poly()`` refuses missing values as R does.
* Not supported: ``offset()``, ``cbind()`` responses, ``.``, ``%in%`` as a value
  operator, splines and other functions not listed above.

Example
-------
>>> p = parse_formula("Reaction ~ Days + (Days | Subject)")
>>> p.response, p.fixed, p.random[0].name
('Reaction', 'Days', 'Subject')
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ._util import row_blocks, same_values

__all__ = [
    "FormulaError",
    "FormulaTypeError",
    "FormulaNotImplementedError",
    "RandomTerm",
    "ParsedFormula",
    "parse_formula",
    "required_columns",
    "check_columns",
    "model_matrix",
    "evaluate_response",
    "grouping_factor",
    "grouping_codes",
    "GroupLevels",
    "ModelFrameState",
]


# --------------------------------------------------------------------------- errors


class FormulaError(ValueError):
    """A malformed formula, or one that does not fit the data.

    The message quotes the formula and points at the offending position with a caret
    line.  The parts are also available as attributes: ``reason`` (the first line),
    ``formula`` (the text) and ``pos`` (0-based offset into ``formula``, or None).

    Example
    -------
    >>> try:
    ...     parse_formula("y ~ x + (1 | )")
    ... except FormulaError as e:
    ...     print(e)
    the random-effects term has no grouping factor right of '|'; write (1 | g)
        y ~ x + (1 | )
                     ^
    """

    def __init__(
        self,
        reason: str,
        formula: Optional[str] = None,
        pos: Optional[int] = None,
        end: Optional[int] = None,
    ) -> None:
        self.reason = reason
        self.formula = formula
        self.pos = pos
        self.end = end
        super().__init__(_render_error(reason, formula, pos, end))


class FormulaTypeError(FormulaError, TypeError):
    """A variable of the wrong type, e.g. a categorical response or arithmetic on a factor.

    Subclass of both :class:`FormulaError` and :class:`TypeError`.
    """


class FormulaNotImplementedError(FormulaError, NotImplementedError):
    """Valid R formula syntax that lmm does not support (``offset()``, ``cbind()``, ``.``).

    Subclass of both :class:`FormulaError` and :class:`NotImplementedError`.
    """


def _render_error(reason: str, formula: Optional[str], pos: Optional[int], end: Optional[int]) -> str:
    if formula is None:
        return reason
    shown = formula.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if pos is None:
        return f"{reason}\n    {shown}"
    pos = min(max(pos, 0), len(shown))
    width = max(1, (end if end is not None else pos + 1) - pos)
    return f"{reason}\n    {shown}\n    {' ' * pos}{'^' * width}"


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after lme4's expansions.

    Attributes
    ----------
    expr : str
        Right-hand side of the term's model matrix in R syntax, for :func:`model_matrix`:
        ``"Days"`` (intercept implied, as in R), ``"1"``, ``"0 + Days"``, ``"0 + Machine"``.
    factors : tuple of str
        Data columns whose interaction is the grouping factor, in the order of ``name``:
        ``("Subject",)``, ``("cask", "batch")``.
    name : str
        lme4's name of the group: ``"Subject"``, ``"cask:batch"``, ``"c:(b:a)"``.
    double_bar : bool
        True when the term came from splitting a ``||`` term.
    """

    expr: str
    factors: Tuple[str, ...]
    name: str
    double_bar: bool


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed lme4 formula.

    Attributes
    ----------
    text : str
        The formula as given.
    response : str
        Response expression in R syntax, e.g. ``"Reaction"`` or ``"log(Reaction)"``.
    fixed : str
        Fixed-effects right-hand side with the random-effects terms removed, e.g.
        ``"Days"`` or ``"0 + x"``; ``"1"`` when nothing is left.
    random : tuple of RandomTerm
        Random-effects terms in formula order after expansion of ``||`` and ``/``
        (lme4's order: ``(1 | a/b)`` gives ``b:a`` then ``a``).
    """

    text: str
    response: str
    fixed: str
    random: Tuple[RandomTerm, ...]


# --------------------------------------------------------------------------- tokens


_NAME_RE = re.compile(r"(?:[^\W\d_]|\.(?![0-9]))[\w.]*")
_SYNTACTIC_RE = re.compile(r"^(?:[^\W\d_]|\.(?![0-9]))[\w.]*$|^\.$")
_NUMBER_RE = re.compile(r"(0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)([Li]?)")
_RESERVED = frozenset(
    "if else repeat while function for in next break TRUE FALSE NULL Inf NaN NA "
    "NA_integer_ NA_real_ NA_character_".split()
)
_LITERAL_NAMES = {"TRUE": True, "FALSE": False, "NA": math.nan, "NaN": math.nan, "Inf": math.inf,
                  "NA_real_": math.nan, "NA_integer_": math.nan}
# Ordinary R names bound to constants in base R; a data column of that name wins.
_SOFT_CONSTANTS = {"pi": math.pi, "T": True, "F": False}

_MULTI_OPS = ("<<-", "**", "||", "&&", "==", "!=", "<=", ">=", "<-", "->", "::", "[[")
_SINGLE_OPS = "~+-*/^:|&!<>$@[]{};?"


class _Tok:
    __slots__ = ("kind", "text", "pos", "end", "value")

    def __init__(self, kind: str, text: str, pos: int, end: int, value: Any = None) -> None:
        self.kind = kind
        self.text = text
        self.pos = pos
        self.end = end
        self.value = value


# R's numbers are ASCII digits; str.isdigit() also accepts '²' or '٣'.
_DIGITS = frozenset("0123456789")


def _tokenize(text: str) -> List[_Tok]:
    toks: List[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == "#":
            raise FormulaError("comments (#) are not allowed in a formula", text, i)
        if c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER_RE.match(text, i)
            assert m is not None
            if m.group(2) == "i":
                raise FormulaError("complex numbers are not supported", text, i, m.end())
            body = m.group(1)
            value = float(int(body, 16)) if body[:2].lower() == "0x" else float(body)
            toks.append(_Tok("num", m.group(0), i, m.end(), value))
            i = m.end()
            continue
        if c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise FormulaError("a backtick-quoted name is never closed", text, i)
            if j == i + 1:
                raise FormulaError("empty backtick-quoted name", text, i, j + 1)
            toks.append(_Tok("name", text[i : j + 1], i, j + 1, (text[i + 1 : j], True)))
            i = j + 1
            continue
        if c in "\"'":
            j = i + 1
            chars: List[str] = []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    esc = text[j + 1]
                    chars.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}.get(esc, esc))
                    j += 2
                else:
                    chars.append(text[j])
                    j += 1
            if j >= n:
                raise FormulaError("a string is never closed", text, i)
            toks.append(_Tok("str", text[i : j + 1], i, j + 1, "".join(chars)))
            i = j + 1
            continue
        m = _NAME_RE.match(text, i)
        if m and (c.isalpha() or c == "."):
            # R names are letters, decimal digits, '.' and '_'; \w also admits '²' and the like.
            name = m.group(0)
            k = next((j for j, ch in enumerate(name) if not (ch.isalpha() or ch.isdecimal() or ch in "._")), len(name))
            name = name[:k]
            toks.append(_Tok("name", name, i, i + k, (name, False)))
            i += k
            continue
        if c == "%":
            j = text.find("%", i + 1)
            if j < 0:
                raise FormulaError("a %...% operator is never closed", text, i)
            toks.append(_Tok("op", text[i : j + 1], i, j + 1))
            i = j + 1
            continue
        if c in "(),":
            toks.append(_Tok(c, c, i, i + 1))
            i += 1
            continue
        for op in _MULTI_OPS:
            if text.startswith(op, i):
                break
        else:
            op = c if c in _SINGLE_OPS or c == "=" else ""
        if not op:
            raise FormulaError(f"unexpected character {c!r}", text, i)
        if op == "**":
            toks.append(_Tok("op", "^", i, i + 2))
        elif op in ("<-", "<<-", "->"):
            raise FormulaError(
                f"'{op}' is assignment in R and not allowed in a formula"
                + ("; for a comparison with a negative number write '< -1' with a space" if op == "<-" else ""),
                text, i, i + len(op))
        elif op in ("$", "@", "[", "[[", "]", "{", "}", ";", "?", "::"):
            raise FormulaError(f"'{op}' is not supported in formulas; refer to data columns by name",
                               text, i, i + len(op))
        elif op == "=":
            toks.append(_Tok("=", "=", i, i + 1))
        else:
            toks.append(_Tok("op", op, i, i + len(op)))
        i += len(op)
    toks.append(_Tok("eof", "", n, n))
    return toks


# --------------------------------------------------------------------------- syntax tree


class _Node:
    __slots__ = ("pos", "end")


class _Name(_Node):
    __slots__ = ("name", "quoted")

    def __init__(self, name: str, quoted: bool, pos: int, end: int) -> None:
        self.name, self.quoted, self.pos, self.end = name, quoted, pos, end

    @property
    def literal(self) -> bool:
        return not self.quoted and self.name in _RESERVED


class _Num(_Node):
    __slots__ = ("value",)

    def __init__(self, value: float, pos: int, end: int) -> None:
        self.value, self.pos, self.end = value, pos, end


class _Str(_Node):
    __slots__ = ("value",)

    def __init__(self, value: str, pos: int, end: int) -> None:
        self.value, self.pos, self.end = value, pos, end


class _Call(_Node):
    __slots__ = ("func", "func_end", "args", "keywords")

    def __init__(self, func: str, args: List[_Node], keywords: List[Optional[str]],
                 pos: int, func_end: int, end: int) -> None:
        self.func, self.args, self.keywords = func, args, keywords
        self.pos, self.func_end, self.end = pos, func_end, end


class _BinOp(_Node):
    __slots__ = ("op", "left", "right", "op_pos")

    def __init__(self, op: str, left: _Node, right: _Node, op_pos: int) -> None:
        self.op, self.left, self.right, self.op_pos = op, left, right, op_pos
        self.pos, self.end = left.pos, right.end


class _Unary(_Node):
    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: _Node, pos: int) -> None:
        self.op, self.operand, self.pos, self.end = op, operand, pos, operand.end


class _Paren(_Node):
    __slots__ = ("inner",)

    def __init__(self, inner: _Node, pos: int, end: int) -> None:
        self.inner, self.pos, self.end = inner, pos, end


# R's operator precedence (?Syntax), low to high; True marks right associativity.
_BINARY_PREC = {
    "~": (1, False), "||": (2, False), "|": (2, False), "&&": (3, False), "&": (3, False),
    "==": (5, False), "!=": (5, False), "<": (5, False), ">": (5, False), "<=": (5, False),
    ">=": (5, False), "+": (6, False), "-": (6, False), "*": (7, False), "/": (7, False),
    ":": (9, False), "^": (11, True),
}
_PREC_PERCENT = 8
_PREC_UNARY_MINUS = 10
_PREC_NOT = 4


def _binary_prec(tok: _Tok) -> Optional[Tuple[int, bool]]:
    if tok.kind != "op":
        return None
    if tok.text.startswith("%"):
        return (_PREC_PERCENT, False)
    return _BINARY_PREC.get(tok.text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, reason: str, pos: int, end: Optional[int] = None) -> FormulaError:
        return FormulaError(reason, self.text, pos, end)

    def parse(self) -> _Node:
        if not self.text.strip():
            raise self.error("the formula is empty; write it as 'response ~ terms'", 0)
        node = self.expr(0)
        tok = self.peek()
        if tok.kind == ")":
            raise self.error("unbalanced parentheses: this ')' has no matching '('", tok.pos)
        if tok.kind != "eof":
            what = f"name '{tok.value[0]}'" if tok.kind == "name" else f"'{tok.text}'"
            raise self.error(f"unexpected {what}; is an operator such as '+' missing before it?",
                             tok.pos, tok.end)
        return node

    def expr(self, min_prec: int) -> _Node:
        left = self.nud()
        while True:
            tok = self.peek()
            info = _binary_prec(tok)
            if info is None or info[0] < min_prec:
                return left
            prec, right_assoc = info
            self.take()
            right = self.operand(tok, prec if right_assoc else prec + 1)
            left = _BinOp(tok.text, left, right, tok.pos)

    def operand(self, op_tok: _Tok, min_prec: int) -> _Node:
        tok = self.peek()
        if tok.kind in (")", ",", "eof", "=") or (_binary_prec(tok) is not None and tok.text not in "-+~"):
            if op_tok.text in ("|", "||"):
                raise self.error(
                    f"the random-effects term has no grouping factor right of '{op_tok.text}'; write (1 | g)",
                    tok.pos, tok.end if tok.kind != "eof" else None)
            raise self.error(f"'{op_tok.text}' has nothing on its right", tok.pos,
                             tok.end if tok.kind != "eof" else None)
        return self.expr(min_prec)

    def nud(self) -> _Node:
        tok = self.take()
        if tok.kind == "num":
            return _Num(tok.value, tok.pos, tok.end)
        if tok.kind == "str":
            return _Str(tok.value, tok.pos, tok.end)
        if tok.kind == "name":
            name, quoted = tok.value
            if self.peek().kind == "(":
                return self.call(tok, name)
            return _Name(name, quoted, tok.pos, tok.end)
        if tok.kind == "(":
            if self.peek().kind == ")":
                raise self.error("empty parentheses", tok.pos, self.peek().end)
            inner = self.expr(0)
            close = self.peek()
            if close.kind != ")":
                if close.kind == "eof":
                    raise self.error("unbalanced parentheses: this '(' is never closed", tok.pos)
                raise self.error("expected ')' here to close the '(' before it", close.pos, close.end)
            self.take()
            return _Paren(inner, tok.pos, close.end)
        if tok.kind == "op" and tok.text in ("-", "+"):
            return _Unary(tok.text, self.operand(tok, _PREC_UNARY_MINUS + 1), tok.pos)
        if tok.kind == "op" and tok.text == "!":
            return _Unary("!", self.operand(tok, _PREC_NOT + 1), tok.pos)
        if tok.kind == "op" and tok.text == "~":
            return _Unary("~", self.operand(tok, 2), tok.pos)
        if tok.kind == "op":
            if tok.text in ("|", "||"):
                raise self.error(
                    f"the random-effects term has nothing left of '{tok.text}'; "
                    f"write (1 {tok.text} g) for a random intercept", tok.pos, tok.end)
            raise self.error(f"'{tok.text}' has nothing on its left", tok.pos, tok.end)
        if tok.kind == "eof":
            raise self.error("the formula ends too early", tok.pos)
        if tok.kind == ")":
            raise self.error("unexpected ')'", tok.pos)
        raise self.error(f"unexpected '{tok.text}'", tok.pos, tok.end)

    def call(self, name_tok: _Tok, name: str) -> _Call:
        open_tok = self.take()
        args: List[_Node] = []
        keywords: List[Optional[str]] = []
        if self.peek().kind == ")":
            close = self.take()
            return _Call(name, args, keywords, name_tok.pos, name_tok.end, close.end)
        while True:
            keyword = None
            if self.peek().kind in ("name", "str") and self.peek(1).kind == "=":
                key_tok = self.take()
                keyword = key_tok.value[0] if key_tok.kind == "name" else key_tok.value
                self.take()
            tok = self.peek()
            if tok.kind in (",", ")", "eof"):
                raise self.error(f"missing argument in call to {name}()", tok.pos)
            args.append(self.expr(0))
            keywords.append(keyword)
            tok = self.take()
            if tok.kind == ",":
                continue
            if tok.kind == ")":
                return _Call(name, args, keywords, name_tok.pos, name_tok.end, tok.end)
            if tok.kind == "eof":
                raise self.error(f"unbalanced parentheses: the '(' of {name}() is never closed", open_tok.pos)
            raise self.error(f"expected ',' or ')' in call to {name}()", tok.pos, tok.end)


def _parse(text: str) -> _Node:
    return _Parser(text).parse()


# --------------------------------------------------------------------------- deparse (R style)

_SPACED_OPS = frozenset(["+", "-", "*", "==", "!=", "<", ">", "<=", ">=", "&", "&&", "|", "||", "~"])


def _r_name(name: str) -> str:
    if _SYNTACTIC_RE.match(name) and name not in _RESERVED:
        return name
    return "`" + name.replace("`", "\\`") + "`"


def _r_num(v: float) -> str:
    """R's ``as.character`` of a double: 15 significant digits, fixed unless sci is shorter."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    target = float(f"{v:.15g}")
    digits = 15
    for d in range(1, 16):
        if float(f"{v:.{d - 1}e}") == target:
            digits = d
            break
    mant, exp_s = f"{v:.{digits - 1}e}".split("e")
    e = int(exp_s)
    sci = f"{mant}e{'+' if e >= 0 else '-'}{abs(e):02d}"
    fixed = f"{v:.{max(0, digits - 1 - e)}f}"
    return fixed if len(fixed) <= len(sci) else sci


def _r_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _deparse(node: _Node) -> str:
    if isinstance(node, _Name):
        return node.name if node.literal else _r_name(node.name)
    if isinstance(node, _Num):
        return _r_num(node.value)
    if isinstance(node, _Str):
        return _r_string(node.value)
    if isinstance(node, _Paren):
        return "(" + _deparse(node.inner) + ")"
    if isinstance(node, _Unary):
        return node.op + _deparse(node.operand)
    if isinstance(node, _BinOp):
        left, right = _deparse(node.left), _deparse(node.right)
        spaced = node.op in _SPACED_OPS or (node.op.startswith("%") and node.op not in ("%%", "%/%"))
        return f"{left} {node.op} {right}" if spaced else f"{left}{node.op}{right}"
    if isinstance(node, _Call):
        parts = [(f"{_r_name(k)} = " if k is not None else "") + _deparse(a)
                 for a, k in zip(node.args, node.keywords)]
        return f"{_r_name(node.func)}({', '.join(parts)})"
    raise AssertionError(node)


def _strip_parens(node: _Node) -> _Node:
    while isinstance(node, _Paren):
        node = node.inner
    return node


# --------------------------------------------------------------------------- functions

_Literal = Union[float, bool, str, None]

_REQUIRED = object()


class _FuncSpec:
    """What a supported R function accepts: data arguments and constant parameters."""

    __slots__ = ("name", "data", "variadic", "params", "impl")

    def __init__(self, name: str, data: Sequence[str], params: Sequence[Tuple[str, Any, str]],
                 impl: Callable[..., Any], variadic: bool = False) -> None:
        self.name = name
        self.data = tuple(data)
        self.variadic = variadic
        self.params = tuple(params)
        self.impl = impl


_FUNCS: Dict[str, _FuncSpec] = {}

# R functions users plausibly write that lmm does not support (FormulaNotImplementedError).
_UNSUPPORTED_FUNCS = {
    "offset": "offset() is not supported yet; lmm fits have no offset term",
    "cbind": "cbind() responses are for binomial models; lmm fits Gaussian linear mixed models only",
    "ns": "spline bases (ns) are not supported; use poly() or precomputed columns",
    "bs": "spline bases (bs) are not supported; use poly() or precomputed columns",
    "interaction": "interaction() is not supported; use a:b",
    "cut": "cut() is not supported; add the binned column to the data",
    "ifelse": "ifelse() is not supported; add the column to the data",
    "s": "smooth terms s() are for GAMs and are not supported",
}


def _bind(call: _Call, spec: _FuncSpec, text: str) -> Tuple[List[_Node], Dict[str, _Literal]]:
    """Match a call's arguments to ``spec``: data expressions and literal parameters."""
    data: List[_Node] = []
    params: Dict[str, _Literal] = {}
    param_names = [p[0] for p in spec.params]
    positional_params = list(param_names)
    for arg, key in zip(call.args, call.keywords):
        if key is None:
            if spec.variadic or len(data) < len(spec.data):
                data.append(arg)
                continue
            if not positional_params:
                raise FormulaError(f"too many arguments to {spec.name}()", text, arg.pos, arg.end)
            key = positional_params.pop(0)
        elif key in spec.data and not spec.variadic:
            if len(data) != spec.data.index(key):
                raise FormulaError(f"argument '{key}' of {spec.name}() given twice", text, arg.pos, arg.end)
            data.append(arg)
            continue
        elif key not in param_names:
            allowed = ", ".join(list(spec.data) + param_names) or "none"
            raise FormulaError(f"{spec.name}() has no argument '{key}' in lmm (supported: {allowed})",
                               text, arg.pos, arg.end)
        if key in params:
            raise FormulaError(f"argument '{key}' of {spec.name}() given twice", text, arg.pos, arg.end)
        if key in positional_params:
            positional_params.remove(key)
        kind = dict((p[0], p[2]) for p in spec.params)[key]
        params[key] = _literal(arg, kind, spec.name, key, text)
    if len(data) < max(1, len(spec.data)):
        raise FormulaError(f"{spec.name}() needs {'an argument' if len(spec.data) <= 1 else 'more arguments'}",
                           text, call.pos, call.end)
    for name, default, _kind in spec.params:
        if name not in params:
            if default is _REQUIRED:
                raise FormulaError(f"{spec.name}() needs the argument '{name}'", text, call.pos, call.end)
            params[name] = default
    return data, params


def _literal(node: _Node, kind: str, func: str, key: str, text: str) -> _Literal:
    inner = _strip_parens(node)
    value: _Literal
    if kind == "contrast" and isinstance(inner, (_Name, _Str)):
        value = inner.name if isinstance(inner, _Name) else inner.value
        if value not in _CONTRASTS:
            raise FormulaError(
                f"unknown contrasts '{value}' in C(); supported: {', '.join(sorted(_CONTRASTS))}",
                text, node.pos, node.end)
        return value
    if isinstance(inner, _Num):
        value = inner.value
    elif isinstance(inner, _Unary) and inner.op in "-+" and isinstance(_strip_parens(inner.operand), _Num):
        v = _strip_parens(inner.operand).value  # type: ignore[attr-defined]
        value = -v if inner.op == "-" else v
    elif isinstance(inner, _Str):
        value = inner.value
    elif isinstance(inner, _Name) and (inner.name in ("TRUE", "FALSE", "T", "F")) and not inner.quoted:
        value = inner.name in ("TRUE", "T")
    else:
        raise FormulaError(f"argument '{key}' of {func}() must be a constant", text, node.pos, node.end)
    ok = {
        "number": isinstance(value, float),
        "int": isinstance(value, float) and float(value).is_integer(),
        "bool": isinstance(value, bool),
        "bool_or_number": isinstance(value, (bool, float)),
        "ref": isinstance(value, str) or (isinstance(value, float) and float(value).is_integer()),
    }[kind]
    if not ok:
        want = {"number": "a number", "int": "a whole number", "bool": "TRUE or FALSE",
                "bool_or_number": "TRUE, FALSE or a number", "ref": "a level name or number"}[kind]
        raise FormulaError(f"argument '{key}' of {func}() must be {want}", text, node.pos, node.end)
    return value


# --------------------------------------------------------------------------- checking


class _ColRef:
    __slots__ = ("node", "soft")

    def __init__(self, node: _Name, soft: bool) -> None:
        self.node, self.soft = node, soft


def _check(node: _Node, ctx: str, text: str, cols: List[_ColRef]) -> None:
    """Validate a subtree in context 'term' (formula operators), 'value' or 'group'.

    Collects the column references in source order into ``cols``.
    """
    if ctx == "group":
        if isinstance(node, _Name) and not node.literal:
            cols.append(_ColRef(node, False))
        elif isinstance(node, _Paren):
            _check(node.inner, ctx, text, cols)
        elif isinstance(node, _BinOp) and node.op in (":", "/"):
            _check(node.left, ctx, text, cols)
            _check(node.right, ctx, text, cols)
        else:
            raise FormulaError(
                "a grouping factor must be a column name, an interaction a:b or a nesting a/b",
                text, node.pos, node.end)
        return
    if isinstance(node, _Name):
        if node.name == "." and not node.quoted:
            raise FormulaNotImplementedError("'.' (all other columns) is not supported; list the columns",
                                             text, node.pos, node.end)
        if node.literal:
            if ctx == "term":
                raise FormulaError(f"{node.name} is a constant, not a variable", text, node.pos, node.end)
            if node.name == "NULL":
                raise FormulaError("NULL is not allowed here", text, node.pos, node.end)
            return
        soft = ctx == "value" and not node.quoted and node.name in _SOFT_CONSTANTS
        cols.append(_ColRef(node, soft))
        return
    if isinstance(node, _Num):
        if ctx == "term" and node.value not in (0.0, 1.0):
            raise FormulaError("a number in a formula must be 0 or 1 (the intercept); "
                               "wrap arithmetic in I(), e.g. I(2 * x)", text, node.pos, node.end)
        return
    if isinstance(node, _Str):
        if ctx == "term":
            raise FormulaError("a string is not a variable; refer to columns by name (use `...` "
                               "for names with spaces)", text, node.pos, node.end)
        return
    if isinstance(node, _Paren):
        _check(node.inner, ctx, text, cols)
        return
    if isinstance(node, _Unary):
        if node.op == "~":
            raise FormulaError("'~' may appear only once, between response and terms", text, node.pos, node.pos + 1)
        if ctx == "term" and node.op == "!":
            _check(node.operand, "value", text, cols)
        else:
            _check(node.operand, ctx, text, cols)
        return
    if isinstance(node, _BinOp):
        op = node.op
        if op == "~":
            raise FormulaError("'~' may appear only once, between response and terms", text, node.op_pos, node.op_pos + 1)
        if ctx == "term":
            if op in ("|", "||"):
                raise FormulaError(
                    f"a random-effects term must be in parentheses and added with '+': "
                    f"... + (expr {op} group)", text, node.op_pos, node.op_pos + len(op))
            if op in ("+", "-", "*", "/", ":", "%in%"):
                _check(node.left, ctx, text, cols)
                _check(node.right, ctx, text, cols)
                return
            if op == "^":
                _check(node.left, ctx, text, cols)
                power = _strip_parens(node.right)
                if not (isinstance(power, _Num) and power.value.is_integer() and power.value >= 1):
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
        _check(node.left, "value", text, cols)
        _check(node.right, "value", text, cols)
        return
    if isinstance(node, _Call):
        spec = _FUNCS.get(node.func)
        if spec is None:
            if node.func in _UNSUPPORTED_FUNCS:
                raise FormulaNotImplementedError(_UNSUPPORTED_FUNCS[node.func], text, node.pos, node.func_end)
            hint = ""
            if node.func_end < len(text) and text[node.func_end].isspace():
                hint = f" (is a '+' missing between '{node.func}' and '('?)"
            close = difflib.get_close_matches(node.func, list(_FUNCS), n=3)
            if close:
                hint += f"; did you mean {', '.join(close)}?"
            raise FormulaError(
                f"unknown function '{node.func}'{hint}\nsupported functions: {', '.join(sorted(_FUNCS))}",
                text, node.pos, node.func_end)
        data, _params = _bind(node, spec, text)
        for arg in data:
            _check(arg, "value", text, cols)
        return
    raise AssertionError(node)


# --------------------------------------------------------------------------- R's terms()


class _Terms:
    """R's ``terms.formula`` of a right-hand side: intercept, variables and terms.

    ``terms`` are bit masks over ``variables`` (bit i = variable i), sorted by degree and
    then by appearance, exactly as R orders them.
    """

    __slots__ = ("intercept", "variables", "var_nodes", "terms")

    def __init__(self) -> None:
        self.intercept = True
        self.variables: List[str] = []
        self.var_nodes: List[_Node] = []
        self.terms: List[int] = []

    def label(self, term: int) -> str:
        return ":".join(self.variables[i] for i in _bits(term))


def _bits(term: int) -> List[int]:
    out, i = [], 0
    while term:
        if term & 1:
            out.append(i)
        term >>= 1
        i += 1
    return out


def _trim(terms: List[int]) -> List[int]:
    seen, out = set(), []
    for t in terms:
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def _terms(node: _Node, text: str) -> _Terms:
    """Expand a right-hand side with R's rules (EncodeVars in R's model.c)."""
    res = _Terms()
    index: Dict[str, int] = {}
    state = {"parity": True}

    def var(n: _Node) -> List[int]:
        key = _deparse(n)
        if key not in index:
            index[key] = len(res.variables)
            res.variables.append(key)
            res.var_nodes.append(n)
        return [1 << index[key]]

    def enc(n: _Node) -> List[int]:
        if isinstance(n, _Num):
            if n.value == 1.0:
                res.intercept = state["parity"]
            elif n.value == 0.0:
                res.intercept = not state["parity"]
            else:
                raise FormulaError("a number in a formula must be 0 or 1", text, n.pos, n.end)
            return []
        if isinstance(n, _Paren):
            return enc(n.inner)
        if isinstance(n, _Unary) and n.op in "+-":
            if n.op == "+":
                return enc(n.operand)
            state["parity"] = not state["parity"]
            enc(n.operand)
            state["parity"] = not state["parity"]
            return []
        if isinstance(n, _BinOp):
            op = n.op
            if op == "+":
                return _trim(enc(n.left) + enc(n.right))
            if op == "-":
                left = enc(n.left)
                state["parity"] = not state["parity"]
                right = set(enc(n.right))
                state["parity"] = not state["parity"]
                return [t for t in left if t not in right]
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
                power = int(_strip_parens(n.right).value)  # type: ignore[attr-defined]
                cur = left
                for _ in range(power - 1):
                    cur = _trim([a | b for a in left for b in cur])
                return cur
        return var(n)

    terms = enc(node)
    res.terms = sorted(terms, key=lambda t: bin(t).count("1"))
    return res


# --------------------------------------------------------------------------- parse_formula


def _flatten_sum(node: _Node, sign: str, out: List[Tuple[str, _Node, bool]], text: str) -> None:
    """Flatten the top-level +/- chain; entries are (sign, node, is_bar)."""
    if isinstance(node, _BinOp) and node.op in ("+", "-"):
        _flatten_sum(node.left, sign, out, text)
        right_sign = sign if node.op == "+" else ("-" if sign == "+" else "+")
        _flatten_sum(node.right, right_sign, out, text)
        return
    if isinstance(node, _BinOp) and node.op in ("|", "||"):
        raise FormulaError(
            f"a random-effects term must be in parentheses: (expr {node.op} group)",
            text, node.op_pos, node.op_pos + len(node.op))
    if isinstance(node, _Paren):
        inner = _strip_parens(node)
        is_bar = isinstance(inner, _BinOp) and inner.op in ("|", "||")
        has_bar = is_bar or (isinstance(inner, _BinOp) and inner.op in ("+", "-") and _contains_bar(inner))
        if has_bar:
            if sign == "-":
                raise FormulaError("a random-effects term cannot be subtracted", text, node.pos, node.end)
            if is_bar:
                out.append((sign, inner, True))
            else:
                _flatten_sum(inner, sign, out, text)
            return
    out.append((sign, node, False))


def _contains_bar(node: _Node) -> bool:
    if isinstance(node, _BinOp):
        if node.op in ("|", "||"):
            return True
        if node.op in ("+", "-"):
            return _contains_bar(node.left) or _contains_bar(node.right)
    if isinstance(node, _Paren):
        return _contains_bar(node.inner)
    return False


def _split_formula(text: str) -> Tuple[_Node, _Node, _Node]:
    """Parse ``text`` and return (whole, lhs, rhs); raises for a missing '~' or response."""
    node = _parse(text)
    if isinstance(node, _Unary) and node.op == "~":
        raise FormulaError("the formula has no response; write 'response ~ terms'", text, node.pos, node.pos + 1)
    if not (isinstance(node, _BinOp) and node.op == "~"):
        raise FormulaError("a formula needs '~' between response and terms, "
                           "e.g. 'Reaction ~ Days + (Days | Subject)'", text, len(text.rstrip()))
    return node, node.left, node.right


def _group_expansion(grp: _Node, text: str) -> List[_Node]:
    """lme4's expandSlash for one grouping expression: ``a/b`` -> [b:a, a]."""

    def slash_terms(n: _Node) -> Any:
        inner = _strip_parens(n)
        if isinstance(inner, _BinOp) and inner.op == "/":
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
        bar = _Paren(trm11, trm11.pos, trm11.end) if isinstance(trm11, _BinOp) else trm11
        return [_BinOp(":", x[1], bar, x[1].end), trm1]

    def flat(x: Any) -> List[_Node]:
        if isinstance(x, list):
            return [n for item in x for n in flat(item)]
        return [x]

    return flat(make_interaction(slash_terms(grp)))


def _has_slash(node: _Node) -> bool:
    if isinstance(node, _BinOp):
        return node.op == "/" or _has_slash(node.left) or _has_slash(node.right)
    if isinstance(node, _Paren):
        return _has_slash(node.inner)
    return False


def _group_factors(node: _Node) -> Tuple[str, ...]:
    out: List[str] = []

    def walk(n: _Node) -> None:
        if isinstance(n, _Name):
            if n.name not in out:
                out.append(n.name)
        elif isinstance(n, _Paren):
            walk(n.inner)
        elif isinstance(n, _BinOp):
            walk(n.left)
            walk(n.right)

    walk(node)
    return tuple(out)


def _depth_guard(func):
    """Turn a RecursionError (formulas nested or chained beyond Python's recursion
    limit, about a thousand operators) into a FormulaError."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RecursionError:
            text = args[0] if args and isinstance(args[0], str) else None
            raise FormulaError("the formula is nested or chained too deeply to parse "
                               "(more than about a thousand operators or parentheses)",
                               text if text is not None and len(text) < 200 else None, None, None) from None

    return wrapper


@_depth_guard
def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4 formula into response, fixed part and random-effects terms.

    Parameters
    ----------
    text : str
        An R formula as written for ``lme4::lmer``, e.g.
        ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula
        ``fixed`` is the right-hand side without the bars (``"1"`` if nothing is left);
        ``random`` lists the terms after lme4's expansions: ``(x || g)`` becomes
        ``(1 | g) + (0 + x | g)`` and ``(1 | a/b)`` becomes ``(1 | b:a) + (1 | a)``.

    Raises
    ------
    FormulaError
        Malformed formulas (missing ``~``, unbalanced parentheses, an empty side of ``|``,
        ``|`` outside parentheses, unknown functions, trailing operators), with a caret
        under the position.
    FormulaNotImplementedError
        ``offset()``, ``cbind()`` responses, ``.``.

    Example
    -------
    >>> p = parse_formula("strength ~ 1 + (1 | batch/cask)")
    >>> [(t.name, t.factors) for t in p.random]
    [('cask:batch', ('cask', 'batch')), ('batch', ('batch',))]
    >>> [t.expr for t in parse_formula("y ~ (1 + x || g)").random]
    ['1', '0 + x']
    """
    if not isinstance(text, str):
        raise TypeError(f"formula must be a str, not {type(text).__name__}")
    _whole, lhs, rhs = _split_formula(text)
    cols: List[_ColRef] = []
    inner_lhs = _strip_parens(lhs)
    if isinstance(inner_lhs, _Call) and inner_lhs.func == "cbind":
        raise FormulaNotImplementedError(_UNSUPPORTED_FUNCS["cbind"], text, lhs.pos, lhs.end)
    _check(lhs, "value", text, cols)

    summands: List[Tuple[str, _Node, bool]] = []
    _flatten_sum(rhs, "+", summands, text)
    fixed_parts: List[str] = []
    random: List[RandomTerm] = []
    for sign, node, is_bar in summands:
        if not is_bar:
            _check(node, "term", text, cols)
            fixed_parts.append(("" if sign == "+" else "-") + _deparse(node) if not fixed_parts
                               else f"{sign} {_deparse(node)}")
            continue
        assert isinstance(node, _BinOp)
        _check(node.left, "term", text, cols)
        _check(node.right, "group", text, cols)
        terms = _terms(node.left, text)
        if not terms.terms and not terms.intercept:
            raise FormulaError("this random-effects term has no columns: no intercept and no variables left of the bar",
                               text, node.pos, node.end)
        if node.op == "||":
            pieces = (["1"] if terms.intercept else []) + ["0 + " + terms.label(t) for t in terms.terms]
        else:
            pieces = [_deparse(node.left)]
        groups = _group_expansion(node.right, text)
        for piece in pieces:
            for grp in groups:
                random.append(RandomTerm(piece, _group_factors(grp), _deparse(grp), node.op == "||"))
    fixed = " ".join(fixed_parts) if fixed_parts else "1"
    _terms(_parse(fixed), fixed)  # structural check of the fixed part (cannot fail after _check)
    return ParsedFormula(text=text, response=_deparse(lhs), fixed=fixed, random=tuple(random))


def _column_refs(parsed: ParsedFormula) -> List[_ColRef]:
    _whole, lhs, rhs = _split_formula(parsed.text)
    cols: List[_ColRef] = []
    _check(lhs, "value", parsed.text, cols)
    summands: List[Tuple[str, _Node, bool]] = []
    _flatten_sum(rhs, "+", summands, parsed.text)
    for _sign, node, is_bar in summands:
        if is_bar:
            assert isinstance(node, _BinOp)
            _check(node.left, "term", parsed.text, cols)
            _check(node.right, "group", parsed.text, cols)
        else:
            _check(node, "term", parsed.text, cols)
    cols.sort(key=lambda c: c.node.pos)
    return cols


def required_columns(parsed: ParsedFormula) -> List[str]:
    """Data columns the formula uses, in order of first use, without duplicates.

    Covers the response, fixed effects, random-effects slopes and grouping factors.
    ``pi``, ``T`` and ``F`` inside expressions are R constants unless the data has such a
    column; they are not listed here (:func:`check_columns` handles them).

    Example
    -------
    >>> required_columns(parse_formula("log(Reaction) ~ Days + (Days | Subject)"))
    ['Reaction', 'Days', 'Subject']

    Drop incomplete rows as R's ``na.omit`` does before building the design:
    ``data = data.dropna(subset=required_columns(parsed))``.
    """
    out: List[str] = []
    for ref in _column_refs(parsed):
        if not ref.soft and ref.node.name not in out:
            out.append(ref.node.name)
    return out


def _close_columns(name: str, columns: Sequence[str]) -> List[str]:
    lowered: Dict[str, List[str]] = {}
    for c in columns:
        lowered.setdefault(c.lower(), []).append(c)
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    return [c for key in close for c in lowered[key] if c != name][:3]


def _unknown_column_error(nodes: Sequence[_Name], text: str, columns: Sequence[str],
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


def _check_known(refs: Sequence[_ColRef], text: str, columns: Sequence[str]) -> None:
    present = set(columns)
    unknown = [ref.node for ref in refs if ref.node.name not in present and not ref.soft]
    if unknown:
        raise _unknown_column_error(unknown, text, columns)


def check_columns(parsed: ParsedFormula, data: pd.DataFrame) -> None:
    """Raise :class:`FormulaError` (caret into the formula) for names that are not columns.

    Call this before any heavy work so that typos are reported against the formula the
    user wrote.  The message lists close matches.

    Example
    -------
    >>> df = pd.DataFrame({"Reaction": [1.0], "Days": [0], "Subject": ["a"]})
    >>> check_columns(parse_formula("Reaction ~ days + (1 | Subject)"), df)
    Traceback (most recent call last):
    ...
    lmm.formula.FormulaError: unknown column 'days' (did you mean 'Days'?)
        Reaction ~ days + (1 | Subject)
                   ^^^^
    """
    _check_known(_column_refs(parsed), parsed.text, [str(c) for c in data.columns])


# --------------------------------------------------------------------------- values

# ICU root collation order of ASCII punctuation and symbols (what R's sort() gives).
_PUNCT_ORDER = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"
_PUNCT_RANK = {c: i for i, c in enumerate(_PUNCT_ORDER)}


def _collate_key(s: str) -> Tuple[Any, ...]:
    """Approximate ICU root collation (R's default sort of strings) for level order."""
    primary: List[Tuple[int, int]] = []
    secondary: List[int] = []
    tertiary: List[int] = []
    for ch in unicodedata.normalize("NFD", s):
        if unicodedata.combining(ch):
            secondary.append(ord(ch))
            continue
        if ch in _PUNCT_RANK:
            primary.append((0, _PUNCT_RANK[ch]))
        elif ch.isspace():
            primary.append((0, -1))
        elif ch.isdigit():
            primary.append((1, ord(ch)))
        elif ch.isalpha():
            primary.append((2, ord(ch.lower())))
        else:
            primary.append((0, 100 + ord(ch)))
        tertiary.append(1 if ch.isupper() else 0)
    return (tuple(primary), tuple(secondary), tuple(tertiary), s)


class _Factor:
    """An R factor: int32 codes (-1 missing), level labels, ordered flag, contrasts."""

    __slots__ = ("codes", "levels", "ordered", "contrast")

    def __init__(self, codes: np.ndarray, levels: List[str], ordered: bool = False,
                 contrast: Optional[str] = None) -> None:
        self.codes = codes
        self.levels = levels
        self.ordered = ordered
        self.contrast = contrast


class _Logical:
    """An R logical vector: bool values and an optional missing mask."""

    __slots__ = ("values", "na")

    def __init__(self, values: np.ndarray, na: Optional[np.ndarray] = None) -> None:
        self.values = values
        self.na = na if na is not None and na.any() else None


class _Matrix:
    """A matrix-valued variable (poly, scale): (n, k) float64 values and column names."""

    __slots__ = ("values", "colnames")

    def __init__(self, values: np.ndarray, colnames: Optional[List[str]]) -> None:
        self.values = values
        self.colnames = colnames


_Value = Union[np.ndarray, _Factor, _Logical, _Matrix, float, bool, str]


def _level_label(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _r_num(float(v))
    return str(v)


def _drop_unused(f: _Factor) -> _Factor:
    nlev = len(f.levels)
    valid = f.codes >= 0 if f.codes.size and f.codes.min() < 0 else None  # None: nothing missing
    present = np.zeros(nlev, dtype=bool)
    if nlev:
        # (not bincount, which would make an int64 copy of the codes)
        present[f.codes if valid is None else f.codes[valid]] = True
    if present.all():
        return f
    if valid is None:
        valid = np.ones(f.codes.shape, dtype=bool)
    remap = np.full(nlev, -1, dtype=np.int32)
    remap[present] = np.arange(int(present.sum()), dtype=np.int32)
    codes = np.where(valid, remap[np.where(valid, f.codes, 0)], -1).astype(np.int32)
    levels = [lev for lev, p in zip(f.levels, present) if p]
    return _Factor(codes, levels, f.ordered, f.contrast)


def _labels_to_factor(codes: np.ndarray, labels: List[str]) -> _Factor:
    """Factor from codes into (possibly duplicated, unsorted) labels; levels sorted as R sorts."""
    levels = sorted(set(labels), key=_collate_key)
    pos = {lev: i for i, lev in enumerate(levels)}
    remap = np.array([pos[lab] for lab in labels], dtype=np.int32) if labels else np.zeros(0, np.int32)
    if codes.size and codes.min() >= 0:
        return _Factor(remap[codes], levels)
    valid = codes >= 0
    out = np.where(valid, remap[np.where(valid, codes, 0)] if len(remap) else 0, -1).astype(np.int32)
    return _Factor(out, levels)


def _compact_codes(values: np.ndarray, lo: Any, span: int) -> Tuple[np.ndarray, np.ndarray]:
    """Level codes of integer values in ``[lo, lo + span]`` by counting, without sorting the rows.

    Returns the int32 code of each value (levels in increasing order) and the offsets
    from ``lo`` of the values present.  Block by block: the temporaries are O(span + block).
    """
    n = values.shape[0]
    blocks = list(row_blocks(n))
    present = np.zeros(span + 1, dtype=bool)
    for rows in blocks:
        present[(values[rows] - lo).astype(np.int64, copy=False)] = True
    rank = (np.cumsum(present, dtype=np.int64) - 1).astype(np.int32)
    codes = np.empty(n, dtype=np.int32)
    for rows in blocks:
        codes[rows] = rank[(values[rows] - lo).astype(np.int64, copy=False)]
    return codes, np.flatnonzero(present)


def _int_labels(values: np.ndarray) -> List[str]:
    """Decimal labels of integers, converted a block at a time (no array or list of all the ints)."""
    labels: List[str] = []
    for rows in row_blocks(values.shape[0]):
        labels.extend(map(str, values[rows].tolist()))
    return labels


def _numeric_codes(x: np.ndarray, integer: bool) -> Tuple[np.ndarray, np.ndarray]:
    """int32 codes of a numeric vector (-1 where NaN) and its sorted distinct values."""
    # np.min propagates NaN: the test needs no n-sized mask, and a column without
    # missing values is read in place.
    valid = ~np.isnan(x) if x.size and np.isnan(np.min(x)) else None
    values = x if valid is None else x[valid]
    lo = values.min() if values.size else 0.0
    span = values.max() - lo if values.size else 0.0
    if integer and span < 4 * values.size + 1024:
        # Integer codes in a compact range (the usual subject or item ids): levels
        # by counting, without sorting the rows.
        inv, offsets = _compact_codes(values, lo, int(span))
        uniq = offsets + int(lo)
    else:
        uniq, inv = np.unique(values, return_inverse=True)
    if valid is None:
        codes = np.asarray(inv, dtype=np.int32).reshape(-1)
    else:
        codes = np.full(x.shape[0], -1, dtype=np.int32)
        codes[valid] = np.asarray(inv).reshape(-1)
    return codes, uniq


def _numeric_to_factor(x: np.ndarray, integer: bool) -> _Factor:
    codes, uniq = _numeric_codes(x, integer)
    labels = _int_labels(uniq.astype(np.int64)) if integer else [_r_num(float(u)) for u in uniq]
    if len(set(labels)) < len(labels):  # values equal to 15 digits share an R level
        return _labels_to_factor(codes, labels)
    return _Factor(codes, labels)


def _logical_to_factor(v: _Logical, all_levels: bool) -> _Factor:
    codes = v.values.astype(np.int32)
    if v.na is not None:
        codes[v.na] = -1
    f = _Factor(codes, ["FALSE", "TRUE"])
    return f if all_levels else _drop_unused(f)


class _Env:
    """Evaluation environment: the data frame and the text for error carets."""

    def __init__(self, data: pd.DataFrame, text: str) -> None:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        self.data = data
        self.n = len(data)
        self.text = text
        self.lookup = {str(c): c for c in data.columns}
        self.cache: Dict[str, _Value] = {}
        self.state: Optional["ModelFrameState"] = None

    def is_integer_column(self, name: str) -> bool:
        col = self.lookup.get(name)
        return col is not None and pd.api.types.is_integer_dtype(self.data[col].dtype)

    def column(self, node: _Name) -> _Value:
        if node.name in self.cache:
            return self.cache[node.name]
        series = self.data[self.lookup[node.name]]
        if isinstance(series, pd.DataFrame):
            raise FormulaError(f"the data has several columns named '{node.name}'", self.text, node.pos, node.end)
        value = _series_value(series, node, self.text)
        self.cache[node.name] = value
        return value


def _series_value(s: pd.Series, node: _Name, text: str) -> _Value:
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        labels = [_level_label(c) for c in dt.categories]
        codes = s.cat.codes.to_numpy().astype(np.int32)
        if len(set(labels)) < len(labels):
            f = _labels_to_factor(codes, labels)
            f.ordered = bool(dt.ordered)
        else:
            f = _Factor(codes, labels, bool(dt.ordered))
        return _drop_unused(f)
    if pd.api.types.is_bool_dtype(dt):
        if dt == np.bool_:
            return _Logical(s.to_numpy())
        return _Logical(s.to_numpy(dtype=bool, na_value=False), s.isna().to_numpy())
    if pd.api.types.is_complex_dtype(dt):
        raise FormulaTypeError(f"column '{node.name}' is complex; lmm needs real numbers", text, node.pos, node.end)
    if pd.api.types.is_numeric_dtype(dt):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if (pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt)
            or isinstance(dt, (pd.PeriodDtype, pd.IntervalDtype))):
        raise FormulaTypeError(
            f"column '{node.name}' has dtype {dt}; convert it to numbers or categories first",
            text, node.pos, node.end)
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    if inferred == "boolean":
        na = s.isna().to_numpy()
        return _Logical(np.where(na, False, s.to_numpy()).astype(bool), na)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)
    codes, uniques = pd.factorize(s, sort=False, use_na_sentinel=True)
    return _labels_to_factor(np.asarray(codes), [_level_label(u) for u in uniques])


# --------------------------------------------------------------------------- evaluation


def _describe(value: _Value) -> str:
    if isinstance(value, _Factor):
        return "categorical"
    if isinstance(value, _Logical):
        return "logical"
    if isinstance(value, str):
        return "a string"
    return "numeric"


def _as_numeric(value: _Value, node: _Node, env: _Env) -> Union[np.ndarray, float]:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bool, float)):
        return float(value)
    if isinstance(value, _Logical):
        out = value.values.astype(np.float64)
        if value.na is not None:
            out[value.na] = np.nan
        return out
    if isinstance(value, _Matrix):
        if value.values.shape[1] == 1:
            return value.values[:, 0]
        raise FormulaTypeError(f"'{_deparse(node)}' has {value.values.shape[1]} columns; arithmetic needs one",
                               env.text, node.pos, node.end)
    what = "categorical (a factor)" if isinstance(value, _Factor) else "a string"
    raise FormulaTypeError(f"'{_deparse(node)}' is {what}; arithmetic needs numbers", env.text, node.pos, node.end)


def _as_logical(value: _Value, node: _Node, env: _Env) -> Tuple[Union[np.ndarray, bool], Optional[np.ndarray]]:
    if isinstance(value, _Logical):
        return value.values, value.na
    if isinstance(value, bool):
        return value, None
    num = _as_numeric(value, node, env)
    if isinstance(num, float):
        if math.isnan(num):
            return False, np.ones(env.n, dtype=bool)
        return num != 0.0, None
    na = np.isnan(num)
    return (num != 0.0) & ~na, na if na.any() else None


def _eval(node: _Node, env: _Env) -> _Value:
    value = _eval_node(node, env)
    if env.state is not None and isinstance(value, _Factor):
        value = env.state._factor(node, value, env)
    return value


def _eval_node(node: _Node, env: _Env) -> _Value:
    if isinstance(node, _Num):
        return node.value
    if isinstance(node, _Str):
        return node.value
    if isinstance(node, _Name):
        if node.literal:
            if node.name not in _LITERAL_NAMES:
                raise FormulaError(f"{node.name} is not allowed here", env.text, node.pos, node.end)
            return _LITERAL_NAMES[node.name]
        if node.name in env.lookup:
            return env.column(node)
        if node.name in _SOFT_CONSTANTS and not node.quoted:
            return _SOFT_CONSTANTS[node.name]
        raise _unknown_column_error([node], env.text, list(env.lookup))
    if isinstance(node, _Paren):
        return _eval(node.inner, env)
    if isinstance(node, _Unary):
        value = _eval(node.operand, env)
        if node.op == "!":
            vals, na = _as_logical(value, node.operand, env)
            if isinstance(vals, (bool, np.bool_)) and na is None:
                return not vals
            return _Logical(np.logical_not(vals) & np.ones(env.n, dtype=bool), na)
        num = _as_numeric(value, node.operand, env)
        return -num if node.op == "-" else num
    if isinstance(node, _BinOp):
        return _eval_binop(node, env)
    if isinstance(node, _Call):
        spec = _FUNCS[node.func]
        data_nodes, params = _bind(node, spec, env.text)
        return spec.impl(env, node, data_nodes, params)
    raise AssertionError(node)


def _eval_binop(node: _BinOp, env: _Env) -> _Value:
    op = node.op
    left, right = _eval(node.left, env), _eval(node.right, env)
    if op in ("&", "|"):
        a, a_na = _as_logical(left, node.left, env)
        b, b_na = _as_logical(right, node.right, env)
        a_na = a_na if a_na is not None else np.zeros(env.n, dtype=bool)
        b_na = b_na if b_na is not None else np.zeros(env.n, dtype=bool)
        a_arr = np.broadcast_to(np.asarray(a, dtype=bool), (env.n,))
        b_arr = np.broadcast_to(np.asarray(b, dtype=bool), (env.n,))
        if op == "&":
            decided = (~a_arr & ~a_na) | (~b_arr & ~b_na)  # a definite FALSE decides
            na = (a_na | b_na) & ~decided
            return _Logical(a_arr & b_arr & ~na, na)
        decided = (a_arr & ~a_na) | (b_arr & ~b_na)  # a definite TRUE decides
        na = (a_na | b_na) & ~decided
        return _Logical(decided, na)
    if op in ("==", "!=", "<", ">", "<=", ">="):
        if isinstance(left, (_Factor, str)) or isinstance(right, (_Factor, str)):
            return _compare_labels(node, left, right, env)
        a = _as_numeric(left, node.left, env)
        b = _as_numeric(right, node.right, env)
        with np.errstate(invalid="ignore"):
            fn = {"==": np.equal, "!=": np.not_equal, "<": np.less, ">": np.greater,
                  "<=": np.less_equal, ">=": np.greater_equal}[op]
            vals = np.broadcast_to(fn(a, b), (env.n,)).copy()
        na = np.broadcast_to(np.isnan(a) | np.isnan(b), (env.n,))
        return _Logical(vals & ~na, na.copy())
    a = _as_numeric(left, node.left, env)
    b = _as_numeric(right, node.right, env)
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.divide(a, b)
        if op == "^":
            return np.power(np.asarray(a, dtype=np.float64), b)
        if op == "%%":
            return np.mod(a, b)
        if op == "%/%":
            return np.floor_divide(a, b)
    raise FormulaError(f"operator '{op}' is not supported here", env.text, node.op_pos, node.op_pos + len(op))


def _compare_labels(node: _BinOp, left: _Value, right: _Value, env: _Env) -> _Value:
    if node.op not in ("==", "!="):
        raise FormulaTypeError(f"'{node.op}' is not meaningful for categories", env.text, node.op_pos, node.op_pos + 1)
    fac, other = (left, right) if isinstance(left, _Factor) else (right, left)
    if not isinstance(fac, _Factor) or not isinstance(other, str):
        raise FormulaTypeError("compare a categorical variable with a string, e.g. I(g == \"a\")",
                               env.text, node.pos, node.end)
    idx = fac.levels.index(other) if other in fac.levels else -2
    eq = fac.codes == idx
    na = fac.codes < 0
    vals = eq if node.op == "==" else ~eq
    return _Logical(vals & ~na, na)


def _ensure_vector(value: _Value, node: _Node, env: _Env) -> np.ndarray:
    num = _as_numeric(value, node, env)
    if isinstance(num, float):
        return np.full(env.n, num)
    return num


def _math(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Any]:
    def impl(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
        x = _as_numeric(_eval(data[0], env), data[0], env)
        with np.errstate(all="ignore"):
            return fn(np.asarray(x, dtype=np.float64)) if isinstance(x, np.ndarray) else float(fn(np.float64(x)))
    return impl


def _impl_log(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
    x = _as_numeric(_eval(data[0], env), data[0], env)
    base = float(params["base"])  # type: ignore[arg-type]
    with np.errstate(all="ignore"):
        if base == math.e:
            return np.log(x)
        if base == 10.0:
            return np.log10(x)
        if base == 2.0:
            return np.log2(x)
        return np.log(x) / np.log(base)


def _impl_round(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
    x = _as_numeric(_eval(data[0], env), data[0], env)
    return np.round(x, int(params["digits"]))  # type: ignore[arg-type]


def _impl_minmax(fn: Callable[..., Any]) -> Callable[..., Any]:
    def impl(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
        out = _as_numeric(_eval(data[0], env), data[0], env)
        for arg in data[1:]:
            out = fn(out, _as_numeric(_eval(arg, env), arg, env))
        return out
    return impl


def _impl_identity(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
    return _eval(data[0], env)


def _impl_scale(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
    x = _ensure_vector(_eval(data[0], env), data[0], env)
    center, scale = params["center"], params["scale"]
    if env.state is not None and env.state.frozen:
        c, s = env.state._get(call, "scale")
        with np.errstate(all="ignore"):
            x = (x - c) / s
        return _Matrix(np.asarray(x, dtype=np.float64).reshape(-1, 1), None)
    raw = x
    with np.errstate(all="ignore"):
        if center is True:
            valid = x[~np.isnan(x)]
            x = x - (valid.mean() if valid.size else np.nan)
        elif isinstance(center, float):
            x = x - center
        if scale is True:
            valid = x[~np.isnan(x)]
            x = x / math.sqrt(float(np.dot(valid, valid)) / max(1, valid.size - 1))
        elif isinstance(scale, float):
            x = x / scale
    if env.state is not None:
        # x = (raw - c) / s; record c and s for new data
        with np.errstate(all="ignore"):
            valid = ~np.isnan(raw) & ~np.isnan(x)
            if center is True:
                c = float(raw[valid].mean()) if valid.any() else 0.0
            elif isinstance(center, float) and center is not False:
                c = float(center)
            else:
                c = 0.0
            if scale is True:
                xc = raw[valid] - c
                s = math.sqrt(float(np.dot(xc, xc)) / max(1, xc.size - 1))
            elif isinstance(scale, float) and scale is not False:
                s = float(scale)
            else:
                s = 1.0
        env.state._put(call, "scale", (c, s))
    return _Matrix(np.asarray(x, dtype=np.float64).reshape(-1, 1), None)


def _impl_poly(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
    x = _ensure_vector(_eval(data[0], env), data[0], env)
    degree = int(params["degree"])  # type: ignore[arg-type]
    if degree < 1:
        raise FormulaError("'degree' of poly() must be at least 1", env.text, call.pos, call.end)
    if np.isnan(x).any():
        raise FormulaError("missing values are not allowed in poly(); drop those rows first",
                           env.text, call.pos, call.end)
    names = [str(j) for j in range(1, degree + 1)]
    if params["raw"]:
        return _Matrix(np.column_stack([x ** j for j in range(1, degree + 1)]), names)
    if env.state is not None and env.state.frozen:
        alpha, norm2 = env.state._get(call, "poly")
        return _Matrix(_predict_poly(x, alpha, norm2), names)
    if degree >= np.unique(x).size:
        raise FormulaError("'degree' of poly() must be less than the number of unique points",
                           env.text, call.pos, call.end)
    if env.state is not None:
        env.state._put(call, "poly", _poly_coefs(x, degree))
    return _Matrix(_orthogonal_poly(x, degree), names)


def _orthogonal_poly(x: np.ndarray, degree: int) -> np.ndarray:
    """R's ``poly(x, degree)``: orthonormal columns from the QR of [1, x, ..., x^d] (centred x)."""
    xc = x - x.mean()
    vander = np.vander(xc, degree + 1, increasing=True)
    q, r = np.linalg.qr(vander)
    # R takes Q diag(R) normalized to unit length, i.e. Q with the signs of diag(R).
    return np.asfortranarray(q[:, 1:] * np.sign(np.diag(r))[1:])


def _poly_coefs(x: np.ndarray, degree: int) -> Tuple[np.ndarray, np.ndarray]:
    """R's ``attr(poly(x, degree), "coefs")``: the three-term recurrence (alpha, norm2)."""
    xbar = x.mean()
    xc = x - xbar
    q, r = np.linalg.qr(np.vander(xc, degree + 1, increasing=True))
    z = q * np.diag(r)                      # Q diag(R), as R's qr.qy(QR, diag(R))
    norm2 = np.sum(z * z, axis=0)
    alpha = (np.sum(xc[:, None] * z * z, axis=0) / norm2 + xbar)[:degree]
    return alpha, np.concatenate([[1.0], norm2])


def _predict_poly(x: np.ndarray, alpha: np.ndarray, norm2: np.ndarray) -> np.ndarray:
    """R's ``predict(poly(...), newdata)``: the orthogonal basis of the training data at new x."""
    degree = alpha.size
    z = np.ones((x.size, degree + 1))
    z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        z[:, i + 1] = (x - alpha[i]) * z[:, i] - (norm2[i + 1] / norm2[i]) * z[:, i - 1]
    z = z / np.sqrt(norm2[1:])
    return np.asfortranarray(z[:, 1:])


def _as_factor(value: _Value, node: _Node, env: _Env) -> _Factor:
    if isinstance(value, _Factor):
        return value
    if isinstance(value, _Logical):
        return _logical_to_factor(value, all_levels=False)
    if isinstance(value, _Matrix) and value.values.shape[1] == 1:
        value = value.values[:, 0]
    if isinstance(value, np.ndarray):
        inner = _strip_parens(node)
        integer = isinstance(inner, _Name) and env.is_integer_column(inner.name)
        return _numeric_to_factor(value, integer)
    raise FormulaTypeError(f"'{_deparse(node)}' cannot be made a factor", env.text, node.pos, node.end)


def _impl_factor(ordered: Optional[bool]) -> Callable[..., Any]:
    def impl(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
        f = _drop_unused(_as_factor(_eval(data[0], env), data[0], env))
        return _Factor(f.codes, f.levels, f.ordered if ordered is None else ordered, None)
    return impl


def _impl_relevel(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
    f = _as_factor(_eval(data[0], env), data[0], env)
    if f.ordered:
        raise FormulaTypeError("relevel() is only for unordered factors", env.text, call.pos, call.end)
    ref = params["ref"]
    if isinstance(ref, float):
        idx = int(ref) - 1
        if not 0 <= idx < len(f.levels):
            raise FormulaError(f"ref = {int(ref)} is not a level number (1..{len(f.levels)})",
                               env.text, call.pos, call.end)
    else:
        if ref not in f.levels:
            raise FormulaError(f"ref level {ref!r} not found; levels are {f.levels[:10]}",
                               env.text, call.pos, call.end)
        idx = f.levels.index(str(ref))
    order = [idx] + [i for i in range(len(f.levels)) if i != idx]
    remap = np.empty(len(order), dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    codes = np.where(f.codes >= 0, remap[np.where(f.codes >= 0, f.codes, 0)], -1).astype(np.int32)
    return _Factor(codes, [f.levels[i] for i in order], False, f.contrast)


def _impl_C(env: _Env, call: _Call, data: List[_Node], params: Dict[str, _Literal]) -> Any:
    f = _as_factor(_eval(data[0], env), data[0], env)
    return _Factor(f.codes, f.levels, f.ordered, _CONTRASTS[str(params["contr"])])


# contrast spec names -> internal kinds; R names "treatment" columns by level but the
# function contr.treatment by number (R's C() quirk, verified with R 4.2).
_CONTRASTS = {
    "treatment": "treatment", "contr.treatment": "treatment_num",
    "sum": "sum", "contr.sum": "sum", "helmert": "helmert", "contr.helmert": "helmert",
    "poly": "poly", "contr.poly": "poly",
}


def _register() -> None:
    maths: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log2": np.log2, "log10": np.log10,
        "log1p": np.log1p, "expm1": np.expm1, "sin": np.sin, "cos": np.cos, "tan": np.tan,
        "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
        "cosh": np.cosh, "tanh": np.tanh, "floor": np.floor, "ceiling": np.ceil,
        "trunc": np.trunc, "sign": np.sign, "as.numeric": lambda v: v, "as.double": lambda v: v,
        "as.integer": np.trunc,
    }
    for name, fn in maths.items():
        _FUNCS[name] = _FuncSpec(name, ("x",), (), _math(fn))
    _FUNCS["log"] = _FuncSpec("log", ("x",), (("base", math.e, "number"),), _impl_log)
    _FUNCS["round"] = _FuncSpec("round", ("x",), (("digits", 0.0, "int"),), _impl_round)
    _FUNCS["pmin"] = _FuncSpec("pmin", ("x",), (), _impl_minmax(np.minimum), variadic=True)
    _FUNCS["pmax"] = _FuncSpec("pmax", ("x",), (), _impl_minmax(np.maximum), variadic=True)
    _FUNCS["I"] = _FuncSpec("I", ("x",), (), _impl_identity)
    _FUNCS["scale"] = _FuncSpec("scale", ("x",), (("center", True, "bool_or_number"),
                                                  ("scale", True, "bool_or_number")), _impl_scale)
    _FUNCS["poly"] = _FuncSpec("poly", ("x",), (("degree", 1.0, "int"), ("raw", False, "bool")), _impl_poly)
    _FUNCS["factor"] = _FuncSpec("factor", ("x",), (), _impl_factor(None))
    _FUNCS["as.factor"] = _FuncSpec("as.factor", ("x",), (), _impl_factor(None))
    _FUNCS["ordered"] = _FuncSpec("ordered", ("x",), (), _impl_factor(True))
    _FUNCS["as.ordered"] = _FuncSpec("as.ordered", ("x",), (), _impl_factor(True))
    _FUNCS["relevel"] = _FuncSpec("relevel", ("x",), (("ref", _REQUIRED, "ref"),), _impl_relevel)
    _FUNCS["C"] = _FuncSpec("C", ("object",), (("contr", _REQUIRED, "contrast"),), _impl_C)


_register()


# --------------------------------------------------------------------------- model matrices


def _contrast_matrix(f: _Factor) -> Tuple[np.ndarray, List[str]]:
    """Contrast matrix (levels x columns) and column suffixes, as R's contrasts()."""
    nlev = len(f.levels)
    kind = f.contrast or ("poly" if f.ordered else "treatment")
    if kind in ("treatment", "treatment_num"):
        mat = np.eye(nlev)[:, 1:]
        names = list(f.levels[1:]) if kind == "treatment" else [str(i) for i in range(2, nlev + 1)]
        return mat, names
    if kind == "sum":
        mat = np.vstack([np.eye(nlev - 1), -np.ones((1, nlev - 1))])
        return mat, [str(j) for j in range(1, nlev)]
    if kind == "helmert":
        mat = np.zeros((nlev, nlev - 1))
        for j in range(1, nlev):
            mat[:j, j - 1] = -1.0
            mat[j, j - 1] = float(j)
        return mat, [str(j) for j in range(1, nlev)]
    if kind == "poly":
        mat = _orthogonal_poly(np.arange(1.0, nlev + 1.0), nlev - 1)
        names = [".L", ".Q", ".C"] + [f"^{j}" for j in range(4, nlev)]
        return np.ascontiguousarray(mat), names[: nlev - 1]
    raise AssertionError(kind)


class _Block:
    """Columns one variable contributes to a term: a list of column makers and suffixes."""

    __slots__ = ("columns", "suffixes")

    def __init__(self, columns: List[Callable[[], np.ndarray]], suffixes: List[str]) -> None:
        self.columns = columns
        self.suffixes = suffixes


def _factor_block(f: _Factor, code: int) -> _Block:
    codes = f.codes
    missing = codes < 0
    has_missing = bool(missing.any())

    def indicator(level: int) -> Callable[[], np.ndarray]:
        def make() -> np.ndarray:
            col = (codes == level).astype(np.float64)
            if has_missing:
                col[missing] = np.nan
            return col
        return make

    if code == 2:
        return _Block([indicator(i) for i in range(len(f.levels))], list(f.levels))
    mat, names = _contrast_matrix(f)
    if (f.contrast or ("poly" if f.ordered else "treatment")) in ("treatment", "treatment_num"):
        return _Block([indicator(lev) for lev in range(1, len(f.levels))], names)

    def contrast(j: int) -> Callable[[], np.ndarray]:
        def make() -> np.ndarray:
            col = mat[np.where(missing, 0, codes), j]
            if has_missing:
                col[missing] = np.nan
            return col
        return make

    return _Block([contrast(j) for j in range(mat.shape[1])], names)


def _model_variable(value: _Value, node: _Node, env: _Env) -> Union[_Factor, _Matrix]:
    if isinstance(value, _Factor):
        return value
    if isinstance(value, _Logical):
        return _logical_to_factor(value, all_levels=True)
    if isinstance(value, _Matrix):
        return value
    if isinstance(value, np.ndarray):
        return _Matrix(value.reshape(-1, 1), None)
    raise FormulaError(f"'{_deparse(node)}' does not depend on the data; a model variable needs a column",
                       env.text, node.pos, node.end)


def _matrix_names(label: str, var: _Matrix) -> List[str]:
    """Names of the model-matrix columns of a numeric variable: ``x``, ``poly(x, 2)1``, ..."""
    ncol = var.values.shape[1]
    if ncol == 1:
        return [label]
    return [label + s for s in (var.colnames or [str(j + 1) for j in range(ncol)])]


def _parse_rhs(rhs: str) -> Tuple[_Node, str]:
    if not isinstance(rhs, str):
        raise TypeError(f"rhs must be a str, not {type(rhs).__name__}")
    node = _parse(rhs)
    if isinstance(node, _Unary) and node.op == "~":
        node = node.operand
    elif isinstance(node, _BinOp) and node.op == "~":
        raise FormulaError("model_matrix() takes a right-hand side such as '1 + x', not a whole formula",
                           rhs, node.op_pos, node.op_pos + 1)
    return node, rhs


class ModelFrameState:
    """What evaluating a right-hand side on the fitting data fixes for new data.

    R keeps this in a model's ``terms`` and ``xlev``: factor levels, the coefficients of
    ``poly()`` and the centre and scale of ``scale()``, the column names and which term
    each column belongs to (``assign``). Pass a fresh state to :func:`model_matrix` with the
    fitting data to record it; pass the same state with new data to evaluate the
    right-hand side as ``predict(fit, newdata)`` does in R: factors keep the fitting
    levels (a level not seen there is an error), ``poly()`` and ``scale()`` use the
    fitting data's coefficients.

    Attributes
    ----------
    rhs : str or None
        The right-hand side recorded.
    frozen : bool
        True once recorded; later calls evaluate new data.
    names : list of str
        Column names of the recorded model matrix.
    assign : list of int
        Term number per column (0 for the intercept, k for ``term_labels[k - 1]``), as R's
        ``attr(X, "assign")``.
    term_labels : list of str
        R's term labels in column order (``"Days"``, ``"Machine"``, ``"Days:Machine"``).
    term_bits : list of int
        Each term as a bit mask over the formula's variables (term A is contained in term
        B when ``A & ~B == 0``).

    Example
    -------
    >>> train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "f": ["a", "b", "a", "c"]})
    >>> state = ModelFrameState()
    >>> X, names = model_matrix("poly(x, 2) + f", train, state=state)
    >>> Xnew, _ = model_matrix("poly(x, 2) + f", pd.DataFrame({"x": [2.0], "f": ["c"]}), state=state)
    >>> np.allclose(Xnew[0], X[1] * [1, 1, 1, 0, 0] + [0, 0, 0, 0, 1])
    True
    """

    def __init__(self) -> None:
        self.rhs: Optional[str] = None
        self.frozen = False
        self.names: List[str] = []
        self.assign: List[int] = []
        self.term_labels: List[str] = []
        self.term_bits: List[int] = []
        self._values: Dict[Tuple[int, int, str], Any] = {}
        # the fitting data's model variables, for complete_design() (type III contrasts)
        self._variables: List[Union[_Factor, _Matrix]] = []
        self._variable_labels: List[str] = []
        self._numeric: List[bool] = []
        self._intercept = False
        self._nrow = 0

    def numeric_bits(self) -> int:
        """Bit mask of the variables that are plain numeric vectors (R's dataClasses "numeric")."""
        return sum(1 << i for i, num in enumerate(self._numeric) if num)

    def complete_design(self) -> Tuple[np.ndarray, List[str], List[int]]:
        """lmerTest's rank-deficient "complete" design of the recorded fitting data.

        For each term the columns of R's ``model.matrix(~ 0 + term)``: every factor
        coded by indicators of all its levels, numeric variables as they are, products
        for interactions (earlier variables varying fastest), after an ``(Intercept)``
        column when the model has one.

        Returns:
            (X, names, assign): the matrix, its column names (a column of the model matrix
            of treatment-coded factors has the same name as the same column here) and the
            term number of each column (0 for the intercept).
        """
        if not self.frozen:
            raise ValueError("this ModelFrameState has not recorded a model matrix")
        cols: List[np.ndarray] = []
        names: List[str] = []
        assign: List[int] = []
        nrow = self._nrow
        if self._intercept:
            cols.append(np.ones(nrow))
            names.append("(Intercept)")
            assign.append(0)
        for k, t in enumerate(self.term_bits):
            combos: List[Tuple[np.ndarray, List[str]]] = [(np.ones(nrow), [])]
            for i in _bits(t):
                var = self._variables[i]
                label = self._variable_labels[i]
                if isinstance(var, _Factor):
                    parts = [label + lev for lev in var.levels]
                    vals = [(var.codes == lev).astype(np.float64) for lev in range(len(var.levels))]
                else:
                    parts = _matrix_names(label, var)
                    vals = [var.values[:, j] for j in range(var.values.shape[1])]
                combos = [(prev * v, prev_names + [name])
                          for v, name in zip(vals, parts) for prev, prev_names in combos]
            for col, col_names in combos:
                cols.append(col)
                names.append(":".join(col_names))
                assign.append(k + 1)
        X = np.column_stack(cols) if cols else np.zeros((nrow, 0))
        return X, names, assign

    def share_columns(self, M: np.ndarray, names: Sequence[str]) -> bool:
        """Hold the recorded numeric variables that are also columns of ``M`` as views of ``M``.

        :meth:`complete_design` needs the fitting data's model variables. A numeric one
        (``x``, ``poly(x, 2)``) is usually also a run of columns of the model matrix, with
        the same names and values: pointing at those columns instead of keeping its own
        array (or a view that keeps the caller's data frame alive) saves n doubles per
        column. Variables that are not such a run are kept as they are.

        Parameters
        ----------
        M : numpy.ndarray
            (n, k) float64 matrix evaluated on the same rows, e.g. the model matrix that
            this state recorded (after aliased columns were dropped). It must not be
            written to afterwards (the views are read-only; make ``M`` read-only too).
        names : sequence of str
            The column names of ``M``.

        Returns
        -------
        bool
            True when some variable is now a view of ``M``.
        """
        names = list(names)
        shared = False
        for i, var in enumerate(self._variables):
            if not isinstance(var, _Matrix) or var.values.shape[0] != M.shape[0] or not var.values.size:
                continue
            cols = _matrix_names(self._variable_labels[i], var)
            if cols[0] not in names:
                continue
            a = names.index(cols[0])
            run = M[:, a:a + len(cols)]
            if names[a:a + len(cols)] == cols and same_values(run, var.values):
                run.setflags(write=False)
                self._variables[i] = _Matrix(run, var.colnames)
                shared = True
        return shared

    @staticmethod
    def _key(node: _Node, kind: str) -> Tuple[int, int, str]:
        return (node.pos, node.end, kind)

    def _put(self, node: _Node, kind: str, value: Any) -> None:
        self._values[self._key(node, kind)] = value

    def _get(self, node: _Node, kind: str) -> Any:
        try:
            return self._values[self._key(node, kind)]
        except KeyError:
            raise ValueError(f"the recorded model frame has no {kind} at {_deparse(node)!r}") from None

    def _factor(self, node: _Node, f: _Factor, env: _Env) -> _Factor:
        if not self.frozen:
            self._put(node, "factor", list(f.levels))
            return f
        levels = self._get(node, "factor")
        pos = {lev: i for i, lev in enumerate(levels)}
        remap = np.array([pos.get(lev, -2) for lev in f.levels], dtype=np.int32)
        valid = f.codes >= 0
        codes = np.where(valid, remap[np.where(valid, f.codes, 0)] if remap.size else -1, -1).astype(np.int32)
        if np.any(codes == -2):
            new = [lev for lev, r in zip(f.levels, remap) if r == -2]
            raise FormulaError(
                f"'{_deparse(node)}' has level{'s' if len(new) > 1 else ''} {new[:10]} not in the data the "
                f"model was fitted to (levels {levels[:10]}{' ...' if len(levels) > 10 else ''})",
                env.text, node.pos, node.end)
        return _Factor(codes, list(levels), f.ordered, f.contrast)


@_depth_guard
def model_matrix(rhs: str, data: pd.DataFrame, state: Optional[ModelFrameState] = None,
                 like: Optional[Tuple[np.ndarray, Sequence[str]]] = None) -> Tuple[np.ndarray, List[str]]:
    """The model matrix of a right-hand side, as R's ``model.matrix(~ rhs, data)``.

    Same columns, order and names as R: ``(Intercept)`` first, then terms by degree
    (main effects, two-way interactions, ...) in order of appearance; within an
    interaction the first variable varies fastest.  Unordered factors get treatment
    contrasts (first level is the reference), ordered ones polynomial contrasts; a factor
    gets indicator columns for all levels where R's rules say so (``0 + f``, ``a:b``
    without main effects, ``x:f`` without ``x``).  Missing values give NaN in the
    affected columns.

    Parameters
    ----------
    rhs : str
        R formula right-hand side without bars, e.g. ``"1 + Days"``, ``"0 + Machine"``,
        ``"x * f"``, ``"poly(x, 2)"``.  A leading ``~`` is accepted.
    data : pandas.DataFrame
        The data; column types decide numeric versus categorical (see module docs).
    state : ModelFrameState, optional
        A fresh state records the factor levels, ``poly()``/``scale()`` coefficients and
        term structure of ``data``; a recorded one evaluates ``data`` as new data for
        the same right-hand side (R's ``predict`` with ``newdata``).
    like : (M, names), optional
        A model matrix already built from the same ``data`` (Fortran order) and its column
        names.  When the columns of ``rhs`` are a run ``M[:, a:a + k]`` of its columns, with
        the same names and equal values, that view of ``M`` is returned instead of a new
        array (``1 + x`` inside ``1 + x + f``): the columns are made one at a time to
        compare, never all at once.

    Returns
    -------
    X : numpy.ndarray
        float64 array of shape (n, k) in Fortran order (with ``like``, possibly a view of ``M``).
    names : list of str
        R's column names.

    Raises
    ------
    FormulaError
        Syntax errors, unknown columns (with close matches), factors with fewer than two
        levels (R: "contrasts can be applied only to factors with 2 or more levels").
    FormulaTypeError
        Arithmetic on a categorical variable and similar type errors.

    Example
    -------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "f": ["a", "b", "a"]})
    >>> X, names = model_matrix("x * f", df)
    >>> names
    ['(Intercept)', 'x', 'fb', 'x:fb']
    >>> X[:, 3]
    array([0., 2., 0.])
    """
    node, text = _parse_rhs(rhs)
    cols: List[_ColRef] = []
    _check(node, "term", text, cols)
    env = _Env(data, text)
    _check_known(cols, text, list(env.lookup))
    if state is not None:
        if state.frozen and state.rhs != text:
            raise ValueError(f"this ModelFrameState was recorded for {state.rhs!r}, not {text!r}")
        env.state = state
    terms = _terms(node, text)
    variables: List[Union[_Factor, _Matrix]] = []
    numeric: List[bool] = []
    used = set()
    for t in terms.terms:
        used.update(_bits(t))
    for i, vnode in enumerate(terms.var_nodes):
        if i not in used:
            variables.append(_Matrix(np.zeros((0, 0)), None))  # deleted term's variable: never read
            numeric.append(False)
            continue
        raw = _eval(vnode, env)
        numeric.append(isinstance(raw, np.ndarray))
        value = _model_variable(raw, vnode, env)
        if isinstance(value, _Factor) and len(value.levels) < 2:
            raise FormulaError(
                f"'{terms.variables[i]}' has {len(value.levels)} level"
                f"{'' if len(value.levels) == 1 else 's'} "
                f"{value.levels}; a factor in a model needs 2 or more levels "
                "(R: contrasts can be applied only to factors with 2 or more levels)",
                text, vnode.pos, vnode.end)
        if isinstance(value, _Matrix) and value.values.shape[0] != env.n:
            raise FormulaError(f"'{terms.variables[i]}' has {value.values.shape[0]} rows, the data {env.n}",
                               text, vnode.pos, vnode.end)
        variables.append(value)

    # R's TermCode: a factor is coded by contrasts (1) when the term without it is the
    # empty term or is contained in an earlier term; otherwise by indicators (2).
    codes: List[Dict[int, int]] = []
    for k, t in enumerate(terms.terms):
        code: Dict[int, int] = {}
        for i in _bits(t):
            rest = t & ~(1 << i)
            if rest == 0 or any((rest & ~terms.terms[m]) == 0 for m in range(k)):
                code[i] = 1
            else:
                code[i] = 2
        codes.append(code)
    if not terms.intercept:
        # R: without an intercept the first factor of the first term holding one is
        # coded by indicators, so that the factor spans the intercept.
        done = False
        for k, t in enumerate(terms.terms):
            for i in _bits(t):
                if isinstance(variables[i], _Factor):
                    codes[k][i] = 2
                    done = True
                    break
            if done:
                break

    makers: List[Callable[[], Union[np.ndarray, float]]] = []
    names: List[str] = []
    assign: List[int] = []
    if terms.intercept:
        makers.append(lambda: 1.0)  # broadcast into its column: no n-vector of ones to copy
        names.append("(Intercept)")
        assign.append(0)
    for k, t in enumerate(terms.terms):
        combos: List[Tuple[List[Callable[[], np.ndarray]], List[str]]] = [([], [])]
        for i in _bits(t):
            var = variables[i]
            label = terms.variables[i]
            if isinstance(var, _Factor):
                block = _factor_block(var, codes[k][i])
                parts = [label + s for s in block.suffixes]
                cols_i = block.columns
            else:
                parts = _matrix_names(label, var)
                cols_i = [(lambda v=var, j=j: v.values[:, j]) for j in range(var.values.shape[1])]
            # earlier variables vary fastest: the new variable is the outer loop
            combos = [(prev_cols + [col], prev_names + [name])
                      for col, name in zip(cols_i, parts) for prev_cols, prev_names in combos]
        for col_makers, col_names in combos:
            makers.append(_product(col_makers))
            names.append(":".join(col_names))
            assign.append(k + 1)

    X = _run_of(like, names, makers, env.n) if like is not None else None
    if X is None:
        X = np.empty((env.n, len(makers)), dtype=np.float64, order="F")
        for j, make in enumerate(makers):
            X[:, j] = make()
    if state is not None:
        if state.frozen:
            if names != state.names:
                raise ValueError(f"new data give the columns {names}, the fitting data {state.names}")
        else:
            state.rhs = text
            state.names = list(names)
            state.assign = assign
            state.term_labels = [terms.label(t) for t in terms.terms]
            state.term_bits = list(terms.terms)
            state._variables = variables
            state._variable_labels = list(terms.variables)
            state._numeric = numeric
            state._intercept = bool(terms.intercept)
            state._nrow = env.n
            state.frozen = True
    return X, names


def _run_of(like: Tuple[np.ndarray, Sequence[str]], names: List[str],
            makers: List[Callable[[], Union[np.ndarray, float]]], n: int) -> Optional[np.ndarray]:
    """``M[:, a:a + k]`` when the columns the makers give are that run of ``M`` (names and
    values), else None; each column is made and compared block by block, then dropped."""
    M, mnames = like
    mnames = list(mnames)
    k = len(names)
    if (not k or M.ndim != 2 or M.shape[0] != n or M.dtype != np.float64 or not M.flags.f_contiguous
            or names[0] not in mnames):
        return None
    a = mnames.index(names[0])
    if mnames[a:a + k] != names:
        return None
    for j, make in enumerate(makers):
        if not same_values(np.broadcast_to(make(), (n,)), M[:, a + j]):
            return None
    return M[:, a:a + k]


def _product(parts: List[Callable[[], np.ndarray]]) -> Callable[[], np.ndarray]:
    def make() -> np.ndarray:
        out = parts[0]()
        for p in parts[1:]:
            out = out * p()
        return out
    return make


@_depth_guard
def evaluate_response(expr: str, data: pd.DataFrame) -> np.ndarray:
    """Evaluate a response expression such as ``"Reaction"`` or ``"log(Reaction)"``.

    Parameters
    ----------
    expr : str
        R expression (``ParsedFormula.response``).
    data : pandas.DataFrame

    Returns
    -------
    numpy.ndarray
        float64 of shape (n,); missing values are NaN.  Logical responses become 0/1.

    Raises
    ------
    FormulaTypeError
        (a :class:`FormulaError` and :class:`TypeError`) when the response is categorical,
        a string, or has several columns.
    FormulaError
        Unknown columns and syntax errors.

    Example
    -------
    >>> evaluate_response("log(y)", pd.DataFrame({"y": [1.0, np.e]}))
    array([0., 1.])
    """
    if not isinstance(expr, str):
        raise TypeError(f"expr must be a str, not {type(expr).__name__}")
    node = _parse(expr)
    if isinstance(_strip_parens(node), _Call) and _strip_parens(node).func == "cbind":  # type: ignore[attr-defined]
        raise FormulaNotImplementedError(_UNSUPPORTED_FUNCS["cbind"], expr, node.pos, node.end)
    cols: List[_ColRef] = []
    _check(node, "value", expr, cols)
    env = _Env(data, expr)
    _check_known(cols, expr, list(env.lookup))
    value = _eval(node, env)
    if isinstance(value, (_Factor, str)):
        extra = ""
        if isinstance(value, _Factor):
            extra = f" with levels {value.levels[:5]}{' ...' if len(value.levels) > 5 else ''}"
        raise FormulaTypeError(
            f"the response '{_deparse(node)}' is {_describe(value)}{extra}; lmm fits Gaussian "
            "linear mixed models and needs a numeric response", expr, node.pos, node.end)
    if isinstance(value, _Matrix) and value.values.shape[1] != 1:
        raise FormulaTypeError(f"the response '{_deparse(node)}' has {value.values.shape[1]} columns; "
                               "it must be a single numeric column", expr, node.pos, node.end)
    out = _as_numeric(value, node, env)
    if isinstance(out, float):
        raise FormulaError(f"the response '{_deparse(node)}' does not depend on the data", expr, node.pos, node.end)
    return np.array(out, dtype=np.float64)  # a copy: never a view of the caller's frame


class GroupLevels:
    """The levels of a grouping factor in a compact form; their labels are made on request.

    Fitting needs only a grouping factor's codes and its number of levels; the labels
    (R's strings: ``"308"``, ``"a1:b1"``) are for output, at some 60 bytes a level as
    Python strings.  Integer ids are kept as their sorted int64 values (8 bytes a level),
    an interaction ``a:b`` as each level's codes in the levels of ``a`` and of ``b``
    (4 bytes a level per factor), and other factors (strings, categories, decimals,
    whose labels can merge values) as their labels.  :func:`grouping_codes` makes them.

    Example
    -------
    >>> term = parse_formula("y ~ (1 | g)").random[0]
    >>> codes, levels = grouping_codes(term, pd.DataFrame({"g": [7, -2, 7]}))
    >>> len(levels), levels.labels()
    (2, ['-2', '7'])
    """

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def labels(self) -> List[str]:
        """The level labels, R's ``levels()``, made anew at each call (a new list)."""
        raise NotImplementedError

    def take(self, index: np.ndarray) -> "GroupLevels":
        """The levels at the positions ``index`` (integer array), in that order."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__.lstrip('_')}({len(self)} levels)"


class _LabelLevels(GroupLevels):
    """Levels kept as their labels."""

    __slots__ = ("_labels",)

    def __init__(self, labels: List[str]) -> None:
        self._labels = labels

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> List[str]:
        return list(self._labels)

    def take(self, index: np.ndarray) -> GroupLevels:
        return _LabelLevels([self._labels[i] for i in index.tolist()])


class _IntLevels(GroupLevels):
    """Integer levels: distinct int64 values in increasing order, labelled in decimal.

    Distinct integers have distinct decimal labels, so no two values share a level.
    """

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __len__(self) -> int:
        return self.values.shape[0]

    def labels(self) -> List[str]:
        return _int_labels(self.values)

    def take(self, index: np.ndarray) -> GroupLevels:
        return _IntLevels(self.values[index])


class _InteractionLevels(GroupLevels):
    """Levels of ``a:b:...``: the levels of each factor, and (k × L, int32) each level's
    code in each factor's levels; labels join the factors' labels with ``:``."""

    __slots__ = ("factors", "parts")

    def __init__(self, factors: List[GroupLevels], parts: np.ndarray) -> None:
        self.factors = factors
        self.parts = parts

    def __len__(self) -> int:
        return self.parts.shape[1]

    def labels(self) -> List[str]:
        names = [f.labels() for f in self.factors]
        return [":".join(name[c] for name, c in zip(names, combo)) for combo in zip(*self.parts.tolist())]

    def take(self, index: np.ndarray) -> GroupLevels:
        return _InteractionLevels(self.factors, self.parts[:, index])


def _is_increasing(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] > values[:-1]))


def _grouping_column(env: _Env, node: _Name) -> Tuple[np.ndarray, GroupLevels]:
    """Codes and levels of one grouping column, as ``_drop_unused(_as_factor(env.column(node), ...))``.

    An integer column (the usual subject or item ids) is coded from its integers in
    place, without the float64 copy that its numeric value would be. Beyond 2**53 the
    float64 values (what R reads) can merge ids: the general path keeps that.  Integer
    levels are kept as their values (labels made on request) whenever the labels are the
    decimal values that R's numbers print as, one per level.
    """
    series = env.data[env.lookup[node.name]]
    if isinstance(series, pd.Series) and isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
        values = series.to_numpy()
        if values.size and -2 ** 53 <= int(values.min()) and int(values.max()) <= 2 ** 53:
            codes, uniq = _numeric_codes(values, integer=True)
            return codes, _IntLevels(uniq.astype(np.int64))
    value = env.column(node)
    if isinstance(value, np.ndarray) and env.is_integer_column(node.name):
        # The float64 values R reads: _numeric_to_factor's codes and levels.  Its labels
        # are those of the values as int64; values beyond int64, or two with one label,
        # are left to the general path (which merges and sorts labels).
        codes, uniq = _numeric_codes(value, integer=True)
        if not uniq.size or (-2.0 ** 63 <= uniq[0] and uniq[-1] < 2.0 ** 63):
            ints = uniq.astype(np.int64)
            if _is_increasing(ints):
                return codes, _IntLevels(ints)
    f = _drop_unused(_as_factor(value, node, env))
    return f.codes, _LabelLevels(f.levels)


def grouping_codes(term: RandomTerm, data: pd.DataFrame) -> Tuple[np.ndarray, GroupLevels]:
    """Codes and compact levels of a term's grouping factor, as lme4's ``factor(a:b)``.

    The same factor as :func:`grouping_factor`, with the levels as a
    :class:`GroupLevels`: their number without their labels, which
    ``levels.labels()`` makes (equal to :func:`grouping_factor`'s).

    Parameters
    ----------
    term : RandomTerm
    data : pandas.DataFrame

    Returns
    -------
    codes : numpy.ndarray
        int32 of shape (n,), -1 where a grouping variable is missing.
    levels : GroupLevels
        ``len(levels) == codes.max() + 1``.

    Example
    -------
    >>> df = pd.DataFrame({"batch": [2, 1, 1], "cask": ["a", "a", "b"]})
    >>> codes, levels = grouping_codes(parse_formula("y ~ (1 | batch/cask)").random[1], df)
    >>> codes, len(levels), levels.labels()
    (array([1, 0, 0], dtype=int32), 2, ['1', '2'])
    """
    env = _Env(data, term.name)
    factors: List[Tuple[np.ndarray, GroupLevels]] = []
    for name in term.factors:
        node = _Name(name, True, 0, len(term.name))
        if name not in env.lookup:
            raise _unknown_column_error([node], term.name, list(env.lookup), "grouping column")
        factors.append(_grouping_column(env, node))
    if len(factors) == 1:
        return factors[0]  # the factor's own array, made here: not a view of data
    missing = np.zeros(env.n, dtype=bool)
    for fcodes, _ in factors:
        missing |= fcodes < 0
    sizes = [len(levels) for _, levels in factors]
    if math.prod(sizes) < 2 ** 62:
        key = np.zeros(env.n, dtype=np.int64)
        for (fcodes, _), size in zip(factors, sizes):
            key = key * size + np.where(fcodes < 0, 0, fcodes)
        uniq, inv = np.unique(key[~missing], return_inverse=True)
        parts = np.empty((len(factors), uniq.shape[0]), dtype=np.int32)
        rem = uniq
        for j in reversed(range(len(factors))):
            parts[j] = rem % sizes[j]
            rem = rem // sizes[j]
    else:  # astronomically many combinations: sort rows of codes instead
        stacked = np.column_stack([fcodes for fcodes, _ in factors])[~missing]
        uniq_rows, inv = np.unique(stacked, axis=0, return_inverse=True)
        parts = np.ascontiguousarray(uniq_rows.T, dtype=np.int32)
    codes = np.full(env.n, -1, dtype=np.int32)
    codes[~missing] = np.asarray(inv).reshape(-1)
    return codes, _InteractionLevels([levels for _, levels in factors], parts)


def grouping_factor(term: RandomTerm, data: pd.DataFrame) -> Tuple[np.ndarray, List[str]]:
    """Codes and levels of a term's grouping factor, as lme4's ``factor(a:b)``.

    Each variable is made a factor as R would (numbers sorted numerically, strings by
    collation, categoricals in category order, unused levels dropped).  An interaction
    keeps the level combinations that occur, ordered with the first factor varying
    slowest, labelled ``"a1:b1"``.  :func:`grouping_codes` gives the same factor with
    its levels in a compact form, labels made on request.

    Parameters
    ----------
    term : RandomTerm
    data : pandas.DataFrame

    Returns
    -------
    codes : numpy.ndarray
        int32 of shape (n,), -1 where a grouping variable is missing.
    levels : list of str
        Level labels, ``len(levels) == codes.max() + 1``.

    Example
    -------
    >>> df = pd.DataFrame({"batch": ["B", "A", "A"], "cask": ["a", "a", "b"]})
    >>> grouping_factor(parse_formula("y ~ (1 | batch/cask)").random[0], df)
    (array([1, 0, 2], dtype=int32), ['a:A', 'a:B', 'b:A'])
    """
    codes, levels = grouping_codes(term, data)
    return codes, levels.labels()
