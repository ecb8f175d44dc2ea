"""Model matrices with R's columns, column order and names (``model.matrix``).

:func:`model_matrix` evaluates a right-hand side's variables once each, codes factors by
contrasts or indicators as R's ``TermCode`` decides, and forms the columns of each
term (earlier variables varying fastest).  A :class:`ModelFrameState` records what new
data need: the terms, the transform state, the column names and R's ``assign``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .._util import same_values
from .checks import check_known
from .errors import FormulaError
from .evaluate import Columns, Env, TransformState, evaluate, orthogonal_poly
from .syntax import Node, deparse, depth_guard
from .terms import Terms, bits, parse_rhs
from .values import ContrastMatrix, Factor, Logical, Matrix, Value, logical_to_factor

__all__ = ["ModelFrameState", "model_matrix"]


def _contrast_matrix(f: Factor) -> tuple[np.ndarray, list[str]]:
    """Contrast matrix (levels x columns) and column suffixes, as R's contrasts()."""
    nlev = len(f.levels)
    kind = f.contrast or ("poly" if f.ordered else "treatment")
    if isinstance(kind, ContrastMatrix):
        # lme4 hands the matrix to model.matrix's contrasts.arg, which sets it with
        # how.many = its number of columns: rows are the levels in order, every column is
        # used as given (fewer than nlevels − 1 make a smaller model; more, aliased columns).
        if kind.values.shape[0] != nlev:
            raise ValueError(f"the contrast matrix has {kind.values.shape[0]} rows for a factor with {nlev} "
                             f"levels {f.levels[:10]}")
        names = kind.names or [str(j) for j in range(1, kind.values.shape[1] + 1)]
        return np.asarray(kind.values, dtype=np.float64), list(names)
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
        mat = orthogonal_poly(np.arange(1.0, nlev + 1.0), nlev - 1)
        names = [".L", ".Q", ".C"] + [f"^{j}" for j in range(4, nlev)]
        return np.ascontiguousarray(mat), names[: nlev - 1]
    raise AssertionError(kind)


class _Block:
    """Columns one variable contributes to a term: a list of column makers and suffixes."""

    __slots__ = ("columns", "suffixes")

    def __init__(self, columns: list[Callable[[], np.ndarray]], suffixes: list[str]) -> None:
        self.columns = columns
        self.suffixes = suffixes


def _factor_block(f: Factor, code: int) -> _Block:
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


def _model_variable(value: Value, node: Node, env: Env) -> Factor | Matrix:
    if isinstance(value, Factor):
        return value
    if isinstance(value, Logical):
        return logical_to_factor(value, all_levels=True)
    if isinstance(value, Matrix):
        return value
    if isinstance(value, np.ndarray):
        return Matrix(value.reshape(-1, 1), None)
    raise FormulaError(f"'{deparse(node)}' does not depend on the data; a model variable needs a column",
                       env.text, node.pos, node.end)


def _matrix_names(label: str, var: Matrix) -> list[str]:
    """Names of the model-matrix columns of a numeric variable: ``x``, ``poly(x, 2)1``, ..."""
    ncol = var.values.shape[1]
    if ncol == 1:
        return [label]
    return [label + s for s in (var.colnames or [str(j + 1) for j in range(ncol)])]


def _matrix_columns(var: Matrix) -> list[Callable[[], np.ndarray]]:
    """Makers of the model-matrix columns of a numeric variable, one per column of its values."""
    def column(j: int) -> Callable[[], np.ndarray]:
        return lambda: var.values[:, j]
    return [column(j) for j in range(var.values.shape[1])]


class ModelFrameState:
    """What evaluating a right-hand side on the fitting data fixes for new data.

    R keeps this in a model's ``terms`` and ``xlev``: factor levels, the coefficients of
    ``poly()``, the centre and scale of ``scale()``, the knots of ``ns()`` and ``bs()``
    (R's ``predvars``), the column names and which term
    each column belongs to (``assign``). Pass a fresh state to :func:`model_matrix` with the
    fitting data to record it; pass the same state with new data to evaluate the
    right-hand side as ``predict(fit, newdata)`` does in R: factors keep the fitting
    levels (a level not seen there is an error), ``poly()``, ``scale()``, ``ns()`` and
    ``bs()`` use the fitting data's coefficients and knots.

    Attributes:
        rhs: the canonical R text of the right-hand side recorded, or None.
        terms: the :class:`~.terms.Terms` recorded (evaluate new data with
            ``model_matrix(state.terms, newdata, state=state)``), or None.
        transforms: the factor levels, ``poly()``/``scale()`` coefficients and spline knots, keyed by
            expression (:class:`~.evaluate.TransformState`).
        frozen: True once recorded; later calls evaluate new data.
        names: column names of the recorded model matrix.
        assign: term number per column (0 for the intercept, k for ``term_labels[k - 1]``),
            as R's ``attr(X, "assign")``.
        term_labels: R's term labels in column order (``"Days"``, ``"Machine"``,
            ``"Days:Machine"``).
        term_bits: each term as a bit mask over the formula's variables (term A is
            contained in term B when ``A & ~B == 0``).

    Example:
        >>> train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "f": ["a", "b", "a", "c"]})
        >>> state = ModelFrameState()
        >>> X, names = model_matrix("poly(x, 2) + f", train, state=state)
        >>> Xnew, _ = model_matrix(state.terms, pd.DataFrame({"x": [2.0], "f": ["c"]}), state=state)
        >>> np.allclose(Xnew[0], X[1] * [1, 1, 1, 0, 0] + [0, 0, 0, 0, 1])
        True
    """

    def __init__(self) -> None:
        self.rhs: str | None = None
        self.terms: Terms | None = None
        self.transforms = TransformState()
        self.names: list[str] = []
        self.assign: list[int] = []
        self.term_labels: list[str] = []
        self.term_bits: list[int] = []
        # the fitting data's model variables, for complete_design() (type III contrasts)
        self._variables: list[Factor | Matrix] = []
        self._variable_labels: list[str] = []
        self._numeric: list[bool] = []
        self._intercept = False
        self._nrow = 0

    @property
    def frozen(self) -> bool:
        """True once recorded; later calls evaluate new data."""
        return self.transforms.frozen

    def numeric_bits(self) -> int:
        """Bit mask of the variables that are plain numeric vectors (R's dataClasses "numeric")."""
        return sum(1 << i for i, num in enumerate(self._numeric) if num)

    def complete_design(self) -> tuple[np.ndarray, list[str], list[int]]:
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
        cols: list[np.ndarray] = []
        names: list[str] = []
        assign: list[int] = []
        nrow = self._nrow
        if self._intercept:
            cols.append(np.ones(nrow))
            names.append("(Intercept)")
            assign.append(0)
        for k, t in enumerate(self.term_bits):
            combos: list[tuple[np.ndarray, list[str]]] = [(np.ones(nrow), [])]
            for i in bits(t):
                var = self._variables[i]
                label = self._variable_labels[i]
                if isinstance(var, Factor):
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

        Args:
            M: (n, k) float64 matrix evaluated on the same rows, e.g. the model matrix that
                this state recorded (after aliased columns were dropped). It must not be
                written to afterwards (the views are read-only; make ``M`` read-only too).
            names: the column names of ``M``.

        Returns:
            True when some variable is now a view of ``M``.
        """
        names = list(names)
        shared = False
        for i, var in enumerate(self._variables):
            if not isinstance(var, Matrix) or var.values.shape[0] != M.shape[0] or not var.values.size:
                continue
            cols = _matrix_names(self._variable_labels[i], var)
            if cols[0] not in names:
                continue
            a = names.index(cols[0])
            run = M[:, a:a + len(cols)]
            if names[a:a + len(cols)] == cols and same_values(run, var.values):
                run.setflags(write=False)
                self._variables[i] = Matrix(run, var.colnames)
                shared = True
        return shared


@depth_guard
def model_matrix(rhs: str | Terms, data: pd.DataFrame | Columns, state: ModelFrameState | None = None,
                 like: tuple[np.ndarray, Sequence[str]] | None = None) -> tuple[np.ndarray, list[str]]:
    """The model matrix of a right-hand side, as R's ``model.matrix(~ rhs, data)``.

    Same columns, order and names as R: ``(Intercept)`` first, then terms by degree
    (main effects, two-way interactions, ...) in order of appearance; within an
    interaction the first variable varies fastest.  Unordered factors get treatment
    contrasts (first level is the reference), ordered ones polynomial contrasts; a factor
    gets indicator columns for all levels where R's rules say so (``0 + f``, ``a:b``
    without main effects, ``x:f`` without ``x``).  Missing values give NaN in the
    affected columns.

    Args:
        rhs: R formula right-hand side without bars, e.g. ``"1 + Days"``, ``"0 + Machine"``,
            ``"x * f"``, ``"poly(x, 2)"`` (a leading ``~`` is accepted), or a
            :class:`~.terms.Terms` (``ParsedFormula.fixed_terms``, ``RandomTerm.terms``,
            ``ModelFrameState.terms``), used without parsing again.
        data: the data; column types decide numeric versus categorical (see the package docs).
        state: a fresh state records the factor levels, ``poly()``/``scale()`` coefficients
            and term structure of ``data``; a recorded one evaluates ``data`` as new data
            for the same right-hand side (R's ``predict`` with ``newdata``).
        like: ``(M, names)``, a model matrix already built from the same ``data`` (Fortran
            order) and its column names.  When the columns of ``rhs`` are a run
            ``M[:, a:a + k]`` of its columns, with the same names and equal values, that view
            of ``M`` is returned instead of a new array (``1 + x`` inside ``1 + x + f``):
            the columns are made one at a time to compare, never all at once.

    Returns:
        ``(X, names)``: float64 array of shape (n, k) in Fortran order (with ``like``,
        possibly a view of ``M``), and R's column names.

    Raises:
        FormulaError: syntax errors, unknown columns (with close matches), factors with
            fewer than two levels (R: "contrasts can be applied only to factors with 2 or
            more levels"), levels of new data not in the fitting data.
        FormulaTypeError: arithmetic on a categorical variable and similar type errors.
        ValueError: a recorded ``state`` of another right-hand side.

    Example:
        >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "f": ["a", "b", "a"]})
        >>> X, names = model_matrix("x * f", df)
        >>> names
        ['(Intercept)', 'x', 'fb', 'x:fb']
        >>> X[:, 3]
        array([0., 2., 0.])
    """
    terms = rhs if isinstance(rhs, Terms) else parse_rhs(rhs)
    text = terms.text
    env = Env(data, text)
    check_known(terms.refs, text, list(env.lookup))
    if state is not None:
        if state.frozen and state.rhs != str(terms):
            raise ValueError(f"this ModelFrameState was recorded for {state.rhs!r}, not {str(terms)!r}")
        env.transforms = state.transforms
    variables: list[Factor | Matrix] = []
    numeric: list[bool] = []
    used = set()
    for t in terms.terms:
        used.update(bits(t))
    for i, vnode in enumerate(terms.var_nodes):
        if i not in used:
            variables.append(Matrix(np.zeros((0, 0)), None))  # deleted term's variable: never read
            numeric.append(False)
            continue
        raw = evaluate(vnode, env)
        numeric.append(isinstance(raw, np.ndarray))
        value = _model_variable(raw, vnode, env)
        if isinstance(value, Factor) and len(value.levels) < 2:
            raise FormulaError(
                f"'{terms.variables[i]}' has {len(value.levels)} level"
                f"{'' if len(value.levels) == 1 else 's'} "
                f"{value.levels}; a factor in a model needs 2 or more levels "
                "(R: contrasts can be applied only to factors with 2 or more levels)",
                text, vnode.pos, vnode.end)
        if isinstance(value, Matrix) and value.values.shape[0] != env.n:
            raise FormulaError(f"'{terms.variables[i]}' has {value.values.shape[0]} rows, the data {env.n}",
                               text, vnode.pos, vnode.end)
        variables.append(value)

    # R's TermCode: a factor is coded by contrasts (1) when the term without it is the
    # empty term or is contained in an earlier term; otherwise by indicators (2).
    codes: list[dict[int, int]] = []
    for k, t in enumerate(terms.terms):
        code: dict[int, int] = {}
        for i in bits(t):
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
            for i in bits(t):
                if isinstance(variables[i], Factor):
                    codes[k][i] = 2
                    done = True
                    break
            if done:
                break

    makers: list[Callable[[], np.ndarray | float]] = []
    names: list[str] = []
    assign: list[int] = []
    if terms.intercept:
        makers.append(lambda: 1.0)  # broadcast into its column: no n-vector of ones to copy
        names.append("(Intercept)")
        assign.append(0)
    for k, t in enumerate(terms.terms):
        combos: list[tuple[list[Callable[[], np.ndarray]], list[str]]] = [([], [])]
        for i in bits(t):
            var = variables[i]
            label = terms.variables[i]
            if isinstance(var, Factor):
                block = _factor_block(var, codes[k][i])
                parts = [label + s for s in block.suffixes]
                cols_i = block.columns
            else:
                parts = _matrix_names(label, var)
                cols_i = _matrix_columns(var)
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
            state.rhs = str(terms)
            state.terms = terms
            state.names = list(names)
            state.assign = assign
            state.term_labels = [terms.label(t) for t in terms.terms]
            state.term_bits = list(terms.terms)
            state._variables = variables
            state._variable_labels = list(terms.variables)
            state._numeric = numeric
            state._intercept = bool(terms.intercept)
            state._nrow = env.n
            state.transforms.frozen = True
    return X, names


def _run_of(like: tuple[np.ndarray, Sequence[str]], names: list[str],
            makers: list[Callable[[], np.ndarray | float]], n: int) -> np.ndarray | None:
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


def _product(parts: list[Callable[[], np.ndarray]]) -> Callable[[], np.ndarray]:
    def make() -> np.ndarray:
        out = parts[0]()
        for p in parts[1:]:
            out = out * p()
        return out
    return make


