"""Evaluation of expression nodes on data: R's arithmetic and the function library.

Stateful transforms (``scale``, ``poly``, the splines ``ns`` and ``bs`` and the factor functions ``factor``,
``relevel``, ``C``, ...) keep what they learn from the fitting data in a
:class:`TransformState`, keyed by the canonical text of their expression, so that new
data are evaluated as R's ``predict(fit, newdata)`` does.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, cast

import numpy as np
import pandas as pd

from .checks import unknown_column_error
from .errors import FormulaError, FormulaTypeError
from .functions import CONTRASTS, SIGNATURES, ParamValue, bind
from .splines import bs_basis, ns_basis
from .syntax import (
    LITERAL_NAMES,
    SOFT_CONSTANTS,
    BinOp,
    Call,
    Name,
    Node,
    Num,
    Paren,
    Str,
    Unary,
    deparse,
    strip_parens,
)
from .values import Factor, Logical, Matrix, Value, drop_unused, logical_to_factor, numeric_to_factor, series_value

__all__ = ["Columns", "Env", "TransformState", "IMPLEMENTATIONS", "evaluate", "as_numeric", "as_factor", "describe",
           "orthogonal_poly"]

# The implementation of a function: (env, call, data argument nodes, parameters) -> value.
Implementation = Callable[["Env", Call, "list[Node]", "dict[str, ParamValue]"], Any]


class TransformState:
    """What stateful transforms learn from the fitting data, for new data.

    ``scale()`` records its centre and scale, ``poly()`` its recurrence coefficients,
    ``ns()`` and ``bs()`` their knots (a :class:`~.splines.SplineBasis`), and every factor-valued expression
    (``g``, ``factor(n)``, ``relevel(f, "b")``, ``C(f, sum)``) its levels. Each is keyed by the canonical R text of
    its expression (:func:`~.syntax.deparse` of the node, with its kind), so the key does not depend on
    where the expression stands in the formula or how it was spaced. Once ``frozen``,
    evaluation uses the recorded values instead of computing them from the data.

    Attributes:
        frozen: True once recorded; later evaluations use the recorded values.
    """

    def __init__(self, contrasts: dict[str, str] | None = None) -> None:
        self.frozen = False
        self._values: dict[tuple[str, str], Any] = {}
        #: Coding per data column (lme4's ``contrasts`` argument): column → contrast kind.
        self.contrasts: dict[str, str] = dict(contrasts or {})
        #: Values of numeric transforms learned beforehand, on every row of the data (R's
        #: model frame evaluates them before incomplete rows are dropped): used, and
        #: recorded, instead of learning from the rows evaluated.
        self.preset: dict[tuple[str, str], Any] = {}

    def learned(self) -> dict[tuple[str, str], Any]:
        """The numeric transforms' recorded values (``scale``, ``poly``, ``ns``, ``bs``; not factor levels)."""
        return {key: v for key, v in self._values.items() if key[1] != "factor"}

    def known(self, node: Node, kind: str) -> Any:
        """The value to evaluate a numeric transform with: the recorded one (frozen), the
        preset one (recorded now), or None (learn it from the data evaluated)."""
        if self.frozen:
            return self.recorded(node, kind)
        value = self.preset.get((deparse(node), kind))
        if value is not None:
            self.record(node, kind, value)
        return value

    def keys(self) -> list[tuple[str, str]]:
        """The recorded (expression, kind) pairs, e.g. ``("scale(x)", "scale")``."""
        return list(self._values)

    def record(self, node: Node, kind: str, value: Any) -> None:
        """Record ``value`` of kind ``"scale"``, ``"poly"``, ``"ns"``, ``"bs"`` or ``"factor"`` for an expression."""
        self._values[(deparse(node), kind)] = value

    def recorded(self, node: Node, kind: str) -> Any:
        """The value recorded for an expression; ValueError when there is none."""
        try:
            return self._values[(deparse(node), kind)]
        except KeyError:
            raise ValueError(f"the recorded model frame has no {kind} at {deparse(node)!r}") from None

    def factor(self, node: Node, f: Factor, text: str) -> Factor:
        """Record a factor's levels, or (frozen) code it in the recorded levels.

        Raises:
            FormulaError: (frozen) the factor has levels not among the recorded ones.
        """
        if not self.frozen:
            self.record(node, "factor", list(f.levels))
            return f
        levels = self.recorded(node, "factor")
        pos = {lev: i for i, lev in enumerate(levels)}
        remap = np.array([pos.get(lev, -2) for lev in f.levels], dtype=np.int32)
        valid = f.codes >= 0
        codes = np.where(valid, remap[np.where(valid, f.codes, 0)] if remap.size else -1, -1).astype(np.int32)
        if np.any(codes == -2):
            new = [lev for lev, r in zip(f.levels, remap) if r == -2]
            raise FormulaError(
                f"'{deparse(node)}' has level{'s' if len(new) > 1 else ''} {new[:10]} not in the data the "
                f"model was fitted to (levels {levels[:10]}{' ...' if len(levels) > 10 else ''})",
                text, node.pos, node.end)
        return Factor(codes, list(levels), f.ordered, f.contrast)


class Columns:
    """A data frame's columns read once for every evaluation on it: each column's Series,
    and R's value of it (converted once), shared by the response, the model matrices and
    the grouping factors of one model.

    Args:
        data: the data.

    Raises:
        TypeError: ``data`` is not a DataFrame.
    """

    __slots__ = ("data", "n", "lookup", "_series", "_values")

    def __init__(self, data: pd.DataFrame) -> None:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        self.data = data
        self.n = len(data)
        self.lookup = {str(c): c for c in data.columns}
        self._series: dict[str, pd.Series] = {}
        self._values: dict[str, Value] = {}

    def series(self, name: str) -> pd.Series | pd.DataFrame:
        """The column ``name`` (a DataFrame when several columns have that name)."""
        s = self._series.get(name)
        if s is None:
            s = self._series[name] = self.data[self.lookup[name]]
        return s

    def value(self, node: Name, text: str) -> Value:
        """R's value of the column ``node`` names (:func:`~.values.series_value`), converted once."""
        value = self._values.get(node.name)
        if value is None:
            series = self.series(node.name)
            if isinstance(series, pd.DataFrame):
                raise FormulaError(f"the data has several columns named '{node.name}'", text, node.pos, node.end)
            value = self._values[node.name] = series_value(series, node, text)
        return value


class Env:
    """Evaluation environment: the data's columns, the text for error carets, the transform state.

    Args:
        data: the data, or its :class:`Columns` (shared with other evaluations on the
            same rows); each column is read and converted once, on first use.
        text: the text the evaluated nodes' positions index.
        transforms: the transform state to record into or evaluate with, or None.

    Raises:
        TypeError: ``data`` is not a DataFrame.
    """

    def __init__(self, data: pd.DataFrame | Columns, text: str, transforms: TransformState | None = None) -> None:
        self.columns = data if isinstance(data, Columns) else Columns(data)
        self.data = self.columns.data
        self.n = self.columns.n
        self.text = text
        self.lookup = self.columns.lookup
        self.transforms = transforms

    def is_integer_column(self, name: str) -> bool:
        """Whether the data column ``name`` has an integer dtype."""
        return name in self.lookup and pd.api.types.is_integer_dtype(self.columns.series(name).dtype)

    def column(self, node: Name) -> Value:
        """R's value of the column a name refers to, with the model's contrasts (lme4's ``contrasts``)."""
        value = self.columns.value(node, self.text)
        kind = self.transforms.contrasts.get(node.name) if self.transforms is not None else None
        if kind is not None and isinstance(value, Factor):
            value = Factor(value.codes, value.levels, value.ordered, kind)
        return value


def describe(value: Value) -> str:
    """A value's kind in words, for messages: ``"categorical"``, ``"numeric"``, ..."""
    if isinstance(value, Factor):
        return "categorical"
    if isinstance(value, Logical):
        return "logical"
    if isinstance(value, str):
        return "a string"
    return "numeric"


def as_numeric(value: Value, node: Node, env: Env) -> np.ndarray | float:
    """A value as numbers (logicals 0/1, one-column matrices as a vector); else FormulaTypeError."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bool, float)):
        return float(value)
    if isinstance(value, Logical):
        out = value.values.astype(np.float64)
        if value.na is not None:
            out[value.na] = np.nan
        return out
    if isinstance(value, Matrix):
        if value.values.shape[1] == 1:
            return value.values[:, 0]
        raise FormulaTypeError(f"'{deparse(node)}' has {value.values.shape[1]} columns; arithmetic needs one",
                               env.text, node.pos, node.end)
    what = "categorical (a factor)" if isinstance(value, Factor) else "a string"
    raise FormulaTypeError(f"'{deparse(node)}' is {what}; arithmetic needs numbers", env.text, node.pos, node.end)


def _as_logical(value: Value, node: Node, env: Env) -> tuple[np.ndarray | bool, np.ndarray | None]:
    if isinstance(value, Logical):
        return value.values, value.na
    if isinstance(value, bool):
        return value, None
    num = as_numeric(value, node, env)
    if isinstance(num, float):
        if math.isnan(num):
            return False, np.ones(env.n, dtype=bool)
        return num != 0.0, None
    na = np.isnan(num)
    return (num != 0.0) & ~na, na if na.any() else None


def evaluate(node: Node, env: Env) -> Value:
    """R's value of a checked expression node on the environment's data.

    Args:
        node: a node checked by :func:`~.checks.check`.
        env: the data, the text for error carets and the transform state.

    Returns:
        A float64 array or scalar, a :class:`~.values.Logical`, :class:`~.values.Factor`
        (its levels fixed by ``env.transforms`` when that has recorded them) or
        :class:`~.values.Matrix`, or a constant.

    Raises:
        FormulaTypeError: arithmetic on a factor and similar type errors.
        FormulaError: unknown columns, bad arguments, levels not in the fitting data.
    """
    value = _eval_node(node, env)
    if env.transforms is not None and isinstance(value, Factor):
        value = env.transforms.factor(node, value, env.text)
    return value


def _eval_node(node: Node, env: Env) -> Value:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Name):
        if node.literal:
            if node.name not in LITERAL_NAMES:
                raise FormulaError(f"{node.name} is not allowed here", env.text, node.pos, node.end)
            return LITERAL_NAMES[node.name]
        if node.name in env.lookup:
            return env.column(node)
        if node.name in SOFT_CONSTANTS and not node.quoted:
            return SOFT_CONSTANTS[node.name]
        raise unknown_column_error([node], env.text, list(env.lookup))
    if isinstance(node, Paren):
        return evaluate(node.inner, env)
    if isinstance(node, Unary):
        value = evaluate(node.operand, env)
        if node.op == "!":
            vals, na = _as_logical(value, node.operand, env)
            if isinstance(vals, (bool, np.bool_)) and na is None:
                return not vals
            return Logical(np.logical_not(vals) & np.ones(env.n, dtype=bool), na)
        num = as_numeric(value, node.operand, env)
        return -num if node.op == "-" else num
    if isinstance(node, BinOp):
        return _eval_binop(node, env)
    if isinstance(node, Call):
        data_nodes, params = bind(node, SIGNATURES[node.func], env.text)
        return IMPLEMENTATIONS[node.func](env, node, data_nodes, params)
    raise AssertionError(node)


def _eval_binop(node: BinOp, env: Env) -> Value:
    op = node.op
    left, right = evaluate(node.left, env), evaluate(node.right, env)
    if op in ("&", "|"):
        a_log, a_na = _as_logical(left, node.left, env)
        b_log, b_na = _as_logical(right, node.right, env)
        a_na = a_na if a_na is not None else np.zeros(env.n, dtype=bool)
        b_na = b_na if b_na is not None else np.zeros(env.n, dtype=bool)
        a_arr = np.broadcast_to(np.asarray(a_log, dtype=bool), (env.n,))
        b_arr = np.broadcast_to(np.asarray(b_log, dtype=bool), (env.n,))
        if op == "&":
            decided = (~a_arr & ~a_na) | (~b_arr & ~b_na)  # a definite FALSE decides
            na = (a_na | b_na) & ~decided
            return Logical(a_arr & b_arr & ~na, na)
        decided = (a_arr & ~a_na) | (b_arr & ~b_na)  # a definite TRUE decides
        na = (a_na | b_na) & ~decided
        return Logical(decided, na)
    if op in ("==", "!=", "<", ">", "<=", ">="):
        if isinstance(left, (Factor, str)) or isinstance(right, (Factor, str)):
            return _compare_labels(node, left, right, env)
        a = as_numeric(left, node.left, env)
        b = as_numeric(right, node.right, env)
        with np.errstate(invalid="ignore"):
            fn = {"==": np.equal, "!=": np.not_equal, "<": np.less, ">": np.greater,
                  "<=": np.less_equal, ">=": np.greater_equal}[op]
            vals = np.broadcast_to(fn(a, b), (env.n,)).copy()
        na = np.broadcast_to(np.isnan(a) | np.isnan(b), (env.n,))
        return Logical(vals & ~na, na.copy())
    a = as_numeric(left, node.left, env)
    b = as_numeric(right, node.right, env)
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


def _compare_labels(node: BinOp, left: Value, right: Value, env: Env) -> Value:
    if node.op not in ("==", "!="):
        raise FormulaTypeError(f"'{node.op}' is not meaningful for categories", env.text, node.op_pos, node.op_pos + 1)
    fac, other = (left, right) if isinstance(left, Factor) else (right, left)
    if not isinstance(fac, Factor) or not isinstance(other, str):
        raise FormulaTypeError("compare a categorical variable with a string, e.g. I(g == \"a\")",
                               env.text, node.pos, node.end)
    idx = fac.levels.index(other) if other in fac.levels else -2
    eq = fac.codes == idx
    na = fac.codes < 0
    vals = eq if node.op == "==" else ~eq
    return Logical(vals & ~na, na)


def _ensure_vector(value: Value, node: Node, env: Env) -> np.ndarray:
    num = as_numeric(value, node, env)
    if isinstance(num, float):
        return np.full(env.n, num)
    return num


def _math(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Any]:
    def impl(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
        x = as_numeric(evaluate(data[0], env), data[0], env)
        xa = np.asarray(x, dtype=np.float64)  # 0-d for a scalar
        with np.errstate(all="ignore"):
            return fn(xa) if isinstance(x, np.ndarray) else float(fn(xa))
    return impl


def _impl_log(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
    x = as_numeric(evaluate(data[0], env), data[0], env)
    base = float(params["base"])  # type: ignore[arg-type]
    with np.errstate(all="ignore"):
        if base == math.e:
            return np.log(x)
        if base == 10.0:
            return np.log10(x)
        if base == 2.0:
            return np.log2(x)
        return np.log(x) / np.log(base)


def _impl_round(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
    x = as_numeric(evaluate(data[0], env), data[0], env)
    return np.round(x, int(params["digits"]))  # type: ignore[arg-type]


def _impl_minmax(fn: Callable[..., Any]) -> Callable[..., Any]:
    def impl(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
        out = as_numeric(evaluate(data[0], env), data[0], env)
        for arg in data[1:]:
            out = fn(out, as_numeric(evaluate(arg, env), arg, env))
        return out
    return impl


def _impl_identity(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
    return evaluate(data[0], env)


def _impl_scale(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
    x = _ensure_vector(evaluate(data[0], env), data[0], env)
    center, scale = params["center"], params["scale"]
    known = env.transforms.known(call, "scale") if env.transforms is not None else None
    if known is not None:
        c, s = known
        with np.errstate(all="ignore"):
            x = (x - c) / s
        return Matrix(np.asarray(x, dtype=np.float64).reshape(-1, 1), None)
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
    if env.transforms is not None:
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
        env.transforms.record(call, "scale", (c, s))
    return Matrix(np.asarray(x, dtype=np.float64).reshape(-1, 1), None)


def _impl_poly(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
    x = _ensure_vector(evaluate(data[0], env), data[0], env)
    degree = int(params["degree"])  # type: ignore[arg-type]
    if degree < 1:
        raise FormulaError("'degree' of poly() must be at least 1", env.text, call.pos, call.end)
    if np.isnan(x).any():
        raise FormulaError("missing values are not allowed in poly(); drop those rows first",
                           env.text, call.pos, call.end)
    names = [str(j) for j in range(1, degree + 1)]
    if params["raw"]:
        return Matrix(np.column_stack([x ** j for j in range(1, degree + 1)]), names)
    known = env.transforms.known(call, "poly") if env.transforms is not None else None
    if known is not None:
        alpha, norm2 = known
        return Matrix(_predict_poly(x, alpha, norm2), names)
    if degree >= np.unique(x).size:
        raise FormulaError("'degree' of poly() must be less than the number of unique points",
                           env.text, call.pos, call.end)
    if env.transforms is not None:
        env.transforms.record(call, "poly", _poly_coefs(x, degree))
    return Matrix(orthogonal_poly(x, degree), names)


def orthogonal_poly(x: np.ndarray, degree: int) -> np.ndarray:
    """R's ``poly(x, degree)``: orthonormal columns from the QR of [1, x, ..., x^d] (centred x)."""
    xc = x - x.mean()
    vander = np.vander(xc, degree + 1, increasing=True)
    q, r = np.linalg.qr(vander)
    # R takes Q diag(R) normalized to unit length, i.e. Q with the signs of diag(R).
    return np.asfortranarray(q[:, 1:] * np.sign(np.diag(r))[1:])


def _poly_coefs(x: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
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


def _impl_spline(kind: str) -> Implementation:
    """``ns()``/``bs()``: the basis with knots from the data, or (frozen) the recorded knots."""
    def impl(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
        x = _ensure_vector(evaluate(data[0], env), data[0], env)
        recorded = env.transforms.known(call, kind) if env.transforms is not None else None
        try:
            if recorded is not None:
                values = recorded.evaluate(x)
            else:
                df = None if params["df"] is None else int(params["df"])  # type: ignore[arg-type]
                # bind() made these None or tuples of numbers ("numbers" parameters)
                knots = cast(Optional[tuple], params["knots"])
                boundary = cast(Optional[tuple], params["Boundary.knots"])
                intercept = bool(params["intercept"])
                if kind == "ns":
                    values, basis = ns_basis(x, df, knots, intercept, boundary)
                else:
                    degree = int(params["degree"])  # type: ignore[arg-type]
                    values, basis = bs_basis(x, df, knots, degree, intercept, boundary)
                if env.transforms is not None:
                    env.transforms.record(call, kind, basis)
        except ValueError as err:
            raise FormulaError(f"{kind}(): {err}", env.text, call.pos, call.end) from None
        return Matrix(values, [str(j) for j in range(1, values.shape[1] + 1)])
    return impl


def as_factor(value: Value, node: Node, env: Env) -> Factor:
    """R's ``as.factor`` of a value (integer columns keep integer labels); else FormulaTypeError."""
    if isinstance(value, Factor):
        return value
    if isinstance(value, Logical):
        return logical_to_factor(value, all_levels=False)
    if isinstance(value, Matrix) and value.values.shape[1] == 1:
        value = value.values[:, 0]
    if isinstance(value, np.ndarray):
        inner = strip_parens(node)
        integer = isinstance(inner, Name) and env.is_integer_column(inner.name)
        return numeric_to_factor(value, integer)
    raise FormulaTypeError(f"'{deparse(node)}' cannot be made a factor", env.text, node.pos, node.end)


def _impl_factor(ordered: bool | None) -> Callable[..., Any]:
    def impl(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
        f = drop_unused(as_factor(evaluate(data[0], env), data[0], env))
        return Factor(f.codes, f.levels, f.ordered if ordered is None else ordered, None)
    return impl


def _impl_relevel(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
    f = as_factor(evaluate(data[0], env), data[0], env)
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
    return Factor(codes, [f.levels[i] for i in order], False, f.contrast)


def _impl_C(env: Env, call: Call, data: list[Node], params: dict[str, ParamValue]) -> Any:
    f = as_factor(evaluate(data[0], env), data[0], env)
    if params["contr"] is None:  # C(f): the default coding (treatment, or polynomial when ordered)
        return Factor(f.codes, f.levels, f.ordered, f.contrast)
    return Factor(f.codes, f.levels, f.ordered, CONTRASTS[str(params["contr"])])


_MATHS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "expm1": np.expm1, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
    "cosh": np.cosh, "tanh": np.tanh, "floor": np.floor, "ceiling": np.ceil,
    "trunc": np.trunc, "sign": np.sign, "as.numeric": lambda v: v, "as.double": lambda v: v,
    "as.integer": np.trunc,
}

# One implementation per signature in functions.SIGNATURES.
IMPLEMENTATIONS: dict[str, Implementation] = {name: _math(fn) for name, fn in _MATHS.items()}
IMPLEMENTATIONS.update({
    "log": _impl_log,
    "round": _impl_round,
    "pmin": _impl_minmax(np.minimum),
    "pmax": _impl_minmax(np.maximum),
    "I": _impl_identity,
    "scale": _impl_scale,
    "poly": _impl_poly,
    "ns": _impl_spline("ns"),
    "bs": _impl_spline("bs"),
    "factor": _impl_factor(None),
    "as.factor": _impl_factor(None),
    "ordered": _impl_factor(True),
    "as.ordered": _impl_factor(True),
    "relevel": _impl_relevel,
    "C": _impl_C,
})
