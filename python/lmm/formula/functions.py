"""The R functions a formula may call: their signatures and how a call binds to them.

:data:`SIGNATURES` says what each supported function accepts (data arguments and
constant parameters); the checks (:mod:`.checks`) and the evaluator (:mod:`.evaluate`,
which holds the implementations) both bind calls through :func:`bind`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Tuple, Union

from .errors import FormulaError
from .syntax import Call, Name, Node, Num, Str, Unary, strip_parens

__all__ = ["ParamValue", "REQUIRED", "FuncSpec", "SIGNATURES", "GROUPING_SIGNATURES", "UNSUPPORTED_FUNCS",
           "CONTRASTS", "MATH_FUNCTIONS", "bind"]

# A constant parameter's value: a number, TRUE/FALSE, a string, NULL or a vector c(...)
# of numbers (a runtime alias, so ``Union`` for Python 3.9).
ParamValue = Union[float, bool, str, None, Tuple[float, ...]]

REQUIRED = object()


class FuncSpec:
    """What a supported R function accepts: data arguments and constant parameters."""

    __slots__ = ("name", "data", "variadic", "params")

    def __init__(self, name: str, data: Sequence[str], params: Sequence[tuple[str, Any, str]] = (),
                 variadic: bool = False) -> None:
        self.name = name
        self.data = tuple(data)
        self.variadic = variadic
        self.params = tuple(params)


# R functions users plausibly write that lmm does not support (FormulaNotImplementedError).
UNSUPPORTED_FUNCS = {
    "offset": "offset() is a term of the fixed part (y ~ x + offset(log(n))), not a function of a value",
    "cbind": "cbind() responses are for binomial models; lmm fits Gaussian linear mixed models only",
    "interaction": "interaction() is supported as a grouping factor, (1 | interaction(a, b)); "
                   "in the fixed part write a:b",
    "cut": "cut() is not supported; add the binned column to the data",
    "ifelse": "ifelse() is not supported; add the column to the data",
    "s": "smooth terms s() are for GAMs and are not supported",
}


def bind(call: Call, spec: FuncSpec, text: str) -> tuple[list[Node], dict[str, ParamValue]]:
    """Match a call's arguments to ``spec``: data expressions and constant parameters.

    Args:
        call: the call node.
        spec: the function's signature (``SIGNATURES[call.func]``).
        text: the text the call was parsed from, for error carets.

    Returns:
        The data argument nodes in order, and every parameter's value (defaults filled in).

    Raises:
        FormulaError: unknown, repeated, missing or non-constant arguments.
    """
    data: list[Node] = []
    params: dict[str, ParamValue] = {}
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
        kind, default = {p[0]: (p[2], p[1]) for p in spec.params}[key]
        params[key] = None if default is None and _is_null(arg) else _literal(arg, kind, spec.name, key, text)
    if len(data) < max(1, len(spec.data)):
        raise FormulaError(f"{spec.name}() needs {'an argument' if len(spec.data) <= 1 else 'more arguments'}",
                           text, call.pos, call.end)
    for name, default, _kind in spec.params:
        if name not in params:
            if default is REQUIRED:
                raise FormulaError(f"{spec.name}() needs the argument '{name}'", text, call.pos, call.end)
            params[name] = default
    return data, params


def _is_null(node: Node) -> bool:
    """``NULL`` (or ``c()``, which is NULL in R): the default of a parameter whose default is NULL."""
    inner = strip_parens(node)
    return ((isinstance(inner, Name) and inner.name == "NULL" and not inner.quoted)
            or (isinstance(inner, Call) and inner.func == "c" and not inner.args))


def _number(node: Node) -> float | None:
    """The value of a number literal, signed or not, else None."""
    inner = strip_parens(node)
    if isinstance(inner, Num):
        return inner.value
    if isinstance(inner, Unary) and inner.op in "-+" and isinstance(strip_parens(inner.operand), Num):
        v = strip_parens(inner.operand).value  # type: ignore[attr-defined]
        return -v if inner.op == "-" else v
    return None


def _literal(node: Node, kind: str, func: str, key: str, text: str) -> ParamValue:
    inner = strip_parens(node)
    value: ParamValue
    if kind == "numbers":
        one = _number(inner)
        if one is not None:
            return (one,)
        if isinstance(inner, Call) and inner.func == "c" and all(k is None for k in inner.keywords):
            values = [_number(a) for a in inner.args]
            if all(v is not None for v in values):
                return tuple(values)  # type: ignore[arg-type]
        raise FormulaError(f"argument '{key}' of {func}() must be a number or numbers c(a, b, ...)",
                           text, node.pos, node.end)
    if kind == "contrast" and isinstance(inner, (Name, Str)):
        value = inner.name if isinstance(inner, Name) else inner.value
        if value not in CONTRASTS:
            raise FormulaError(
                f"unknown contrasts '{value}' in C(); supported: {', '.join(sorted(CONTRASTS))}",
                text, node.pos, node.end)
        return value
    number = _number(inner)
    if number is not None:
        value = number
    elif isinstance(inner, Str):
        value = inner.value
    elif isinstance(inner, Name) and (inner.name in ("TRUE", "FALSE", "T", "F")) and not inner.quoted:
        value = inner.name in ("TRUE", "T")
    else:
        raise FormulaError(f"argument '{key}' of {func}() must be a constant", text, node.pos, node.end)
    ok = {
        "number": isinstance(value, float),
        "int": isinstance(value, float) and float(value).is_integer(),
        "bool": isinstance(value, bool),
        "bool_or_number": isinstance(value, (bool, float)),
        "ref": isinstance(value, str) or (isinstance(value, float) and float(value).is_integer()),
        "string": isinstance(value, str),
    }[kind]
    if not ok:
        want = {"number": "a number", "int": "a whole number", "bool": "TRUE or FALSE",
                "bool_or_number": "TRUE, FALSE or a number", "ref": "a level name or number",
                "string": "a string"}[kind]
        raise FormulaError(f"argument '{key}' of {func}() must be {want}", text, node.pos, node.end)
    return value


# contrast spec names -> internal kinds; R names "treatment" columns by level but the
# function contr.treatment by number (R's C() quirk, verified with R 4.2).
CONTRASTS = {
    "treatment": "treatment", "contr.treatment": "treatment_num",
    "sum": "sum", "contr.sum": "sum", "helmert": "helmert", "contr.helmert": "helmert",
    "poly": "poly", "contr.poly": "poly",
}

# Elementwise maths of one numeric argument.
MATH_FUNCTIONS = (
    "exp", "sqrt", "abs", "log2", "log10", "log1p", "expm1", "sin", "cos", "tan", "asin", "acos", "atan",
    "sinh", "cosh", "tanh", "floor", "ceiling", "trunc", "sign", "as.numeric", "as.double", "as.integer",
)

SIGNATURES: dict[str, FuncSpec] = {name: FuncSpec(name, ("x",)) for name in MATH_FUNCTIONS}
SIGNATURES.update({
    "log": FuncSpec("log", ("x",), (("base", math.e, "number"),)),
    "round": FuncSpec("round", ("x",), (("digits", 0.0, "int"),)),
    "pmin": FuncSpec("pmin", ("x",), variadic=True),
    "pmax": FuncSpec("pmax", ("x",), variadic=True),
    "I": FuncSpec("I", ("x",)),
    "scale": FuncSpec("scale", ("x",), (("center", True, "bool_or_number"), ("scale", True, "bool_or_number"))),
    "poly": FuncSpec("poly", ("x",), (("degree", 1.0, "int"), ("raw", False, "bool"))),
    "factor": FuncSpec("factor", ("x",)),
    "as.factor": FuncSpec("as.factor", ("x",)),
    "ordered": FuncSpec("ordered", ("x",)),
    "as.ordered": FuncSpec("as.ordered", ("x",)),
    "relevel": FuncSpec("relevel", ("x",), (("ref", REQUIRED, "ref"),)),
    "C": FuncSpec("C", ("object",), (("contr", None, "contrast"),)),
    # splines::ns and splines::bs, their arguments in R's order (positional ones bind so)
    "ns": FuncSpec("ns", ("x",), (("df", None, "int"), ("knots", None, "numbers"), ("intercept", False, "bool"),
                                  ("Boundary.knots", None, "numbers"))),
    "bs": FuncSpec("bs", ("x",), (("df", None, "int"), ("knots", None, "numbers"), ("degree", 3.0, "int"),
                                  ("intercept", False, "bool"), ("Boundary.knots", None, "numbers"))),
})

# Functions that make a grouping factor, (1 | interaction(a, b)): only right of a bar.
GROUPING_SIGNATURES: dict[str, FuncSpec] = {
    "interaction": FuncSpec("interaction", ("...",), (("drop", False, "bool"), ("sep", ".", "string"),
                                                      ("lex.order", False, "bool")), variadic=True),
}
