"""R's formula syntax: tokens, the syntax tree, the parser and R-style deparsing.

:func:`parse` is the only parser of formula text in lmm: every later stage (checks,
``terms()``, random-effects terms, evaluation, model matrices) works on the nodes it
returns.  Nodes keep their character span in the text they came from, for error carets;
:func:`deparse` gives R's canonical text of a node (column names, level keys).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Callable, TypeVar

from .errors import FormulaError

__all__ = [
    "Node", "Name", "Num", "Str", "Call", "BinOp", "Unary", "Paren",
    "parse", "deparse", "strip_parens", "r_num", "r_name", "depth_guard",
    "RESERVED", "LITERAL_NAMES", "SOFT_CONSTANTS",
]

_NAME_RE = re.compile(r"(?:[^\W\d_]|\.(?![0-9]))[\w.]*")
_SYNTACTIC_RE = re.compile(r"^(?:[^\W\d_]|\.(?![0-9]))[\w.]*$|^\.$")
_NUMBER_RE = re.compile(r"(0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)([Li]?)")
RESERVED = frozenset(
    "if else repeat while function for in next break TRUE FALSE NULL Inf NaN NA "
    "NA_integer_ NA_real_ NA_character_".split()
)
LITERAL_NAMES = {"TRUE": True, "FALSE": False, "NA": math.nan, "NaN": math.nan, "Inf": math.inf,
                  "NA_real_": math.nan, "NA_integer_": math.nan}
# Ordinary R names bound to constants in base R; a data column of that name wins.
SOFT_CONSTANTS = {"pi": math.pi, "T": True, "F": False}

_MULTI_OPS = ("<<-", "**", "||", "&&", "==", "!=", "<=", ">=", "<-", "->", "::", "[[")
_SINGLE_OPS = "~+-*/^:|&!<>$@[]{};?"


class Token:
    """A token: its kind (``"name"``, ``"num"``, ``"str"``, ``"op"``, ``"("``, ...), text, span and value."""

    __slots__ = ("kind", "text", "pos", "end", "value")

    def __init__(self, kind: str, text: str, pos: int, end: int, value: Any = None) -> None:
        self.kind = kind
        self.text = text
        self.pos = pos
        self.end = end
        self.value = value


# R's numbers are ASCII digits; str.isdigit() also accepts '²' or '٣'.
_DIGITS = frozenset("0123456789")


def tokenize(text: str) -> list[Token]:
    """R tokens of ``text``, ending with an ``"eof"`` token; FormulaError for what R would not read."""
    toks: list[Token] = []
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
            toks.append(Token("num", m.group(0), i, m.end(), value))
            i = m.end()
            continue
        if c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise FormulaError("a backtick-quoted name is never closed", text, i)
            if j == i + 1:
                raise FormulaError("empty backtick-quoted name", text, i, j + 1)
            toks.append(Token("name", text[i : j + 1], i, j + 1, (text[i + 1 : j], True)))
            i = j + 1
            continue
        if c in "\"'":
            j = i + 1
            chars: list[str] = []
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
            toks.append(Token("str", text[i : j + 1], i, j + 1, "".join(chars)))
            i = j + 1
            continue
        m = _NAME_RE.match(text, i)
        if m and (c.isalpha() or c == "."):
            # R names are letters, decimal digits, '.' and '_'; \w also admits '²' and the like.
            name = m.group(0)
            k = next((j for j, ch in enumerate(name) if not (ch.isalpha() or ch.isdecimal() or ch in "._")), len(name))
            name = name[:k]
            toks.append(Token("name", name, i, i + k, (name, False)))
            i += k
            continue
        if c == "%":
            j = text.find("%", i + 1)
            if j < 0:
                raise FormulaError("a %...% operator is never closed", text, i)
            toks.append(Token("op", text[i : j + 1], i, j + 1))
            i = j + 1
            continue
        if c in "(),":
            toks.append(Token(c, c, i, i + 1))
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
            toks.append(Token("op", "^", i, i + 2))
        elif op in ("<-", "<<-", "->"):
            raise FormulaError(
                f"'{op}' is assignment in R and not allowed in a formula"
                + ("; for a comparison with a negative number write '< -1' with a space" if op == "<-" else ""),
                text, i, i + len(op))
        elif op in ("$", "@", "[", "[[", "]", "{", "}", ";", "?", "::"):
            raise FormulaError(f"'{op}' is not supported in formulas; refer to data columns by name",
                               text, i, i + len(op))
        elif op == "=":
            toks.append(Token("=", "=", i, i + 1))
        else:
            toks.append(Token("op", op, i, i + len(op)))
        i += len(op)
    toks.append(Token("eof", "", n, n))
    return toks


class Node:
    """A node of the syntax tree; ``pos`` and ``end`` are its span in the parsed text."""

    __slots__ = ("pos", "end")
    pos: int
    end: int


class Name(Node):
    """A name: a column, or an R constant (``TRUE``, ``pi``); ``quoted`` for a backtick-quoted name."""

    __slots__ = ("name", "quoted")

    def __init__(self, name: str, quoted: bool, pos: int, end: int) -> None:
        self.name, self.quoted, self.pos, self.end = name, quoted, pos, end

    @property
    def literal(self) -> bool:
        return not self.quoted and self.name in RESERVED


class Num(Node):
    """A number literal (float value)."""

    __slots__ = ("value",)

    def __init__(self, value: float, pos: int, end: int) -> None:
        self.value, self.pos, self.end = value, pos, end


class Str(Node):
    """A string literal."""

    __slots__ = ("value",)

    def __init__(self, value: str, pos: int, end: int) -> None:
        self.value, self.pos, self.end = value, pos, end


class Call(Node):
    """A function call ``func(args)``; ``keywords[i]`` names argument i (None when positional)."""

    __slots__ = ("func", "func_end", "args", "keywords")

    def __init__(self, func: str, args: list[Node], keywords: list[str | None],
                 pos: int, func_end: int, end: int) -> None:
        self.func, self.args, self.keywords = func, args, keywords
        self.pos, self.func_end, self.end = pos, func_end, end


class BinOp(Node):
    """A binary operator; ``op_pos`` is the operator's position."""

    __slots__ = ("op", "left", "right", "op_pos")

    def __init__(self, op: str, left: Node, right: Node, op_pos: int) -> None:
        self.op, self.left, self.right, self.op_pos = op, left, right, op_pos
        self.pos, self.end = left.pos, right.end


class Unary(Node):
    """A prefix operator: ``-``, ``+``, ``!`` or ``~``."""

    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: Node, pos: int) -> None:
        self.op, self.operand, self.pos, self.end = op, operand, pos, operand.end


class Paren(Node):
    """Parentheses around ``inner`` (kept: R's deparse keeps them)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Node, pos: int, end: int) -> None:
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


def _binary_prec(tok: Token) -> tuple[int, bool] | None:
    if tok.kind != "op":
        return None
    if tok.text.startswith("%"):
        return (_PREC_PERCENT, False)
    return _BINARY_PREC.get(tok.text)


class Parser:
    """Precedence-climbing parser with R's operator precedence (``?Syntax``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, reason: str, pos: int, end: int | None = None) -> FormulaError:
        return FormulaError(reason, self.text, pos, end)

    def parse(self) -> Node:
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

    def expr(self, min_prec: int) -> Node:
        left = self.nud()
        while True:
            tok = self.peek()
            info = _binary_prec(tok)
            if info is None or info[0] < min_prec:
                return left
            prec, right_assoc = info
            self.take()
            right = self.operand(tok, prec if right_assoc else prec + 1)
            left = BinOp(tok.text, left, right, tok.pos)

    def operand(self, op_tok: Token, min_prec: int) -> Node:
        tok = self.peek()
        if tok.kind in (")", ",", "eof", "=") or (_binary_prec(tok) is not None and tok.text not in "-+~"):
            if op_tok.text in ("|", "||"):
                raise self.error(
                    f"the random-effects term has no grouping factor right of '{op_tok.text}'; write (1 | g)",
                    tok.pos, tok.end if tok.kind != "eof" else None)
            raise self.error(f"'{op_tok.text}' has nothing on its right", tok.pos,
                             tok.end if tok.kind != "eof" else None)
        return self.expr(min_prec)

    def nud(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Num(tok.value, tok.pos, tok.end)
        if tok.kind == "str":
            return Str(tok.value, tok.pos, tok.end)
        if tok.kind == "name":
            name, quoted = tok.value
            if self.peek().kind == "(":
                return self.call(tok, name)
            return Name(name, quoted, tok.pos, tok.end)
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
            return Paren(inner, tok.pos, close.end)
        if tok.kind == "op" and tok.text in ("-", "+"):
            return Unary(tok.text, self.operand(tok, _PREC_UNARY_MINUS + 1), tok.pos)
        if tok.kind == "op" and tok.text == "!":
            return Unary("!", self.operand(tok, _PREC_NOT + 1), tok.pos)
        if tok.kind == "op" and tok.text == "~":
            return Unary("~", self.operand(tok, 2), tok.pos)
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

    def call(self, name_tok: Token, name: str) -> Call:
        open_tok = self.take()
        args: list[Node] = []
        keywords: list[str | None] = []
        if self.peek().kind == ")":
            close = self.take()
            return Call(name, args, keywords, name_tok.pos, name_tok.end, close.end)
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
                return Call(name, args, keywords, name_tok.pos, name_tok.end, tok.end)
            if tok.kind == "eof":
                raise self.error(f"unbalanced parentheses: the '(' of {name}() is never closed", open_tok.pos)
            raise self.error(f"expected ',' or ')' in call to {name}()", tok.pos, tok.end)


def parse(text: str) -> Node:
    """Parse R formula or expression text into its syntax tree.

    Args:
        text: R text, e.g. ``"y ~ x + (1 | g)"`` or ``"log(x)"``.

    Returns:
        The root node; every node keeps its span (``pos``, ``end``) in ``text``.

    Raises:
        FormulaError: malformed text, with a caret under the position.

    Example:
        >>> deparse(parse("y~x*f+(1|g)"))
        'y ~ x * f + (1 | g)'
    """
    return Parser(text).parse()



# --------------------------------------------------------------------------- deparse (R style)

_SPACED_OPS = frozenset(["+", "-", "*", "==", "!=", "<", ">", "<=", ">=", "&", "&&", "|", "||", "~"])


def r_name(name: str) -> str:
    if _SYNTACTIC_RE.match(name) and name not in RESERVED:
        return name
    return "`" + name.replace("`", "\\`") + "`"


def r_num(v: float) -> str:
    """R's ``as.character`` of a double: 15 significant digits, fixed unless sci is shorter."""
    if v.is_integer() and abs(v) < 1e15:
        return _whole_number(int(v))
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


def _whole_number(i: int) -> str:
    """:func:`r_num` of a whole number below 1e15 (at most 15 digits: exact), without its
    search for the shortest digits: those are the digits without trailing zeros."""
    digits = str(abs(i))
    mantissa = digits.rstrip("0") or "0"
    exponent = len(digits) - 1
    # fixed: the digits; sci: the mantissa's digits, its point (when more than one) and e+XX
    if len(digits) <= len(mantissa) + (len(mantissa) > 1) + 4:
        return str(i)
    point = f"{mantissa[0]}.{mantissa[1:]}" if len(mantissa) > 1 else mantissa
    return f"{'-' if i < 0 else ''}{point}e+{exponent:02d}"


def r_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def deparse(node: Node) -> str:
    """R's text of a node, as ``deparse()`` writes it (``x * f``, ``I(x^2)``, ``poly(x, 2)``).

    Args:
        node: a node from :func:`parse` (or built from such nodes).

    Returns:
        The canonical text: it names model-matrix columns and keys transform state.
    """
    if isinstance(node, Name):
        return node.name if node.literal else r_name(node.name)
    if isinstance(node, Num):
        return r_num(node.value)
    if isinstance(node, Str):
        return r_string(node.value)
    if isinstance(node, Paren):
        return "(" + deparse(node.inner) + ")"
    if isinstance(node, Unary):
        return node.op + deparse(node.operand)
    if isinstance(node, BinOp):
        left, right = deparse(node.left), deparse(node.right)
        spaced = node.op in _SPACED_OPS or (node.op.startswith("%") and node.op not in ("%%", "%/%"))
        return f"{left} {node.op} {right}" if spaced else f"{left}{node.op}{right}"
    if isinstance(node, Call):
        parts = [(f"{r_name(k)} = " if k is not None else "") + deparse(a)
                 for a, k in zip(node.args, node.keywords)]
        return f"{r_name(node.func)}({', '.join(parts)})"
    raise AssertionError(node)


def strip_parens(node: Node) -> Node:
    """The node inside any number of parentheses."""
    while isinstance(node, Paren):
        node = node.inner
    return node



_F = TypeVar("_F", bound=Callable[..., Any])


def depth_guard(func: _F) -> _F:
    """Turn a RecursionError (formulas nested or chained beyond Python's recursion
    limit, about a thousand operators) into a FormulaError.

    The formula is quoted when the first argument is its text (or an object with a
    ``text`` attribute) of fewer than 200 characters.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RecursionError:
            first = args[0] if args else None
            text = first if isinstance(first, str) else getattr(first, "text", None)
            raise FormulaError("the formula is nested or chained too deeply to parse "
                               "(more than about a thousand operators or parentheses)",
                               text if isinstance(text, str) and len(text) < 200 else None, None, None) from None

    return wrapper  # type: ignore[return-value]
