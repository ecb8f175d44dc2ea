"""Grouping factors of random-effects terms: codes and compact levels, as lme4's ``factor(a:b)``
and ``factor(interaction(a, b))``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .bars import RandomTerm
from .checks import unknown_column_error
from .errors import FormulaNotImplementedError
from .evaluate import Columns, Env, as_factor, evaluate
from .functions import GROUPING_SIGNATURES, bind
from .syntax import Call, Name, r_num, strip_parens
from .values import drop_unused, int_labels, numbers_factor, numeric_codes, sorted_codes

__all__ = ["GroupLevels", "grouping_codes", "grouping_factor"]


class GroupLevels:
    """The levels of a grouping factor in a compact form; their labels are made on request.

    Fitting needs only a grouping factor's codes and its number of levels; the labels
    (R's strings: ``"308"``, ``"a1:b1"``) are for output, at some 60 bytes a level as
    Python strings.  Integer ids are kept as their sorted int64 values (8 bytes a level),
    whole numbers stored as doubles (ids read from a file with missing values) as their
    sorted float64 values, an interaction ``a:b`` as each level's codes in the levels of
    ``a`` and of ``b`` (4 bytes a level per factor), and other factors (strings,
    categories, decimals, whose labels can merge values) as their labels.
    :func:`grouping_codes` makes them.

    Example:
        >>> term = RandomTerm("1", ("g",), "g", False)
        >>> codes, levels = grouping_codes(term, pd.DataFrame({"g": [7, -2, 7]}))
        >>> len(levels), levels.labels()
        (2, ['-2', '7'])
    """

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def labels(self) -> list[str]:
        """The level labels, R's ``levels()``, made anew at each call (a new list)."""
        raise NotImplementedError

    def take(self, index: np.ndarray) -> GroupLevels:
        """The levels at the positions ``index`` (integer array), in that order."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__.lstrip('_')}({len(self)} levels)"


class _LabelLevels(GroupLevels):
    """Levels kept as their labels."""

    __slots__ = ("_labels",)

    def __init__(self, labels: list[str]) -> None:
        self._labels = labels

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> list[str]:
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

    def labels(self) -> list[str]:
        return int_labels(self.values)

    def take(self, index: np.ndarray) -> GroupLevels:
        return _IntLevels(self.values[index])


class _NumberLevels(GroupLevels):
    """Whole numbers stored as doubles, below 1e15 in magnitude: distinct float64 values in
    increasing order, labelled as R prints them (``"308"``, ``"1e+05"``).

    Below 1e15 a whole number has at most 15 digits, R's precision, so distinct values
    have distinct labels.
    """

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __len__(self) -> int:
        return self.values.shape[0]

    def labels(self) -> list[str]:
        return [r_num(v) for v in self.values.tolist()]

    def take(self, index: np.ndarray) -> GroupLevels:
        return _NumberLevels(self.values[index])


# Whole numbers below this magnitude have distinct labels as R prints them (15 digits).
_DISTINCT_LABELS = 1e15


class _InteractionLevels(GroupLevels):
    """Levels of ``a:b:...`` (or ``interaction(a, b, ...)``): the levels of each factor, and
    (k × L, int32) each level's code in each factor's levels; labels join the factors'
    labels with ``sep`` (``:`` for ``a:b``)."""

    __slots__ = ("factors", "parts", "sep")

    def __init__(self, factors: list[GroupLevels], parts: np.ndarray, sep: str = ":") -> None:
        self.factors = factors
        self.parts = parts
        self.sep = sep

    def __len__(self) -> int:
        return self.parts.shape[1]

    def labels(self) -> list[str]:
        names = [f.labels() for f in self.factors]
        return [self.sep.join(name[c] for name, c in zip(names, combo)) for combo in zip(*self.parts.tolist())]

    def take(self, index: np.ndarray) -> GroupLevels:
        return _InteractionLevels(self.factors, self.parts[:, index], self.sep)


def _is_increasing(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] > values[:-1]))


def _grouping_column(env: Env, node: Name) -> tuple[np.ndarray, GroupLevels]:
    """Codes and levels of one grouping column, as ``as_factor(env.column(node), ...)``.

    An integer column (the usual subject or item ids) is coded from its integers in
    place, without the float64 copy that its numeric value would be. Beyond 2**53 the
    float64 values (what R reads) can merge ids: the general path keeps that.  Integer
    levels are kept as their values (labels made on request) whenever the labels are the
    decimal values that R's numbers print as, one per level; so are whole numbers stored
    as doubles (ids with missing values), whose labels are distinct.
    """
    series = env.columns.series(node.name)
    if isinstance(series, pd.Series) and isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
        values = series.to_numpy()
        if values.size and -2 ** 53 <= int(values.min()) and int(values.max()) <= 2 ** 53:
            codes, uniq = numeric_codes(values, integer=True)
            return codes, _IntLevels(uniq.astype(np.int64))
    value = env.column(node)
    if isinstance(value, np.ndarray) and env.is_integer_column(node.name):
        # The float64 values R reads: numeric_to_factor's codes and levels.  Its labels
        # are those of the values as int64; values beyond int64, or two with one label,
        # are left to the general path (which merges and sorts labels).
        codes, uniq = numeric_codes(value, integer=True)
        if not uniq.size or (-2.0 ** 63 <= uniq[0] and uniq[-1] < 2.0 ** 63):
            ints = uniq.astype(np.int64)
            if _is_increasing(ints):
                return codes, _IntLevels(ints)
    elif isinstance(value, np.ndarray):
        codes, uniq = numeric_codes(value, integer=False)
        if np.all(np.abs(uniq) < _DISTINCT_LABELS) and np.all(uniq == np.round(uniq)):
            return codes, _NumberLevels(uniq)
        f = numbers_factor(codes, uniq, integer=False)
        return f.codes, _LabelLevels(f.levels)
    f = as_factor(value, node, env)  # (a column's factor has no unused levels: series_value drops them)
    return f.codes, _LabelLevels(f.levels)


def grouping_codes(term: RandomTerm, data: pd.DataFrame | Columns) -> tuple[np.ndarray, GroupLevels]:
    """Codes and compact levels of a term's grouping factor, as lme4's ``factor(a:b)``.

    The same factor as :func:`grouping_factor`, with the levels as a
    :class:`GroupLevels`: their number without their labels, which
    ``levels.labels()`` makes (equal to :func:`grouping_factor`'s).

    Args:
        term: the random-effects term (only its ``factors`` and ``name`` are read).
        data: the data.

    Returns:
        ``(codes, levels)``: int32 codes of shape (n,), -1 where a grouping variable is
        missing, and the :class:`GroupLevels`, ``len(levels) == codes.max() + 1``.

    Raises:
        FormulaError: a grouping column is not in the data.

    Example:
        >>> df = pd.DataFrame({"batch": [2, 1, 1], "cask": ["a", "a", "b"]})
        >>> codes, levels = grouping_codes(RandomTerm("1", ("batch",), "batch", False), df)
        >>> codes, len(levels), levels.labels()
        (array([1, 0, 0], dtype=int32), 2, ['1', '2'])
    """
    grouped = term.group_call
    if grouped is not None:  # interaction(a, b)
        return _interaction_call(grouped[0], Env(data, grouped[1]))
    env = Env(data, term.name)
    factors: list[tuple[np.ndarray, GroupLevels]] = []
    for name in term.factors:
        node = Name(name, True, 0, len(term.name))
        if name not in env.lookup:
            raise unknown_column_error([node], term.name, list(env.lookup), "grouping column")
        factors.append(_grouping_column(env, node))
    if len(factors) == 1:
        return factors[0]  # the factor's own array, made here: not a view of data
    return _combined(factors, env.n, list(range(len(factors))), ":")


def _combined(factors: list[tuple[np.ndarray, GroupLevels]], n: int, significance: list[int],
              sep: str) -> tuple[np.ndarray, GroupLevels]:
    """The factor of the level combinations that occur, ordered by the factors' codes with
    ``factors[significance[0]]`` varying slowest; labels join the factors' in their order."""
    missing = np.zeros(n, dtype=bool)
    for fcodes, _ in factors:
        missing |= fcodes < 0
    sizes = [len(levels) for _, levels in factors]
    parts = np.empty((len(factors), 0), dtype=np.int32)
    if math.prod(sizes) < 2 ** 62:
        key = np.zeros(n, dtype=np.int64)
        for j in significance:
            key = key * sizes[j] + np.where(factors[j][0] < 0, 0, factors[j][0])
        inv, uniq = sorted_codes(key[~missing])
        parts = np.empty((len(factors), uniq.shape[0]), dtype=np.int32)
        rem = uniq
        for j in reversed(significance):
            parts[j] = rem % sizes[j]
            rem = rem // sizes[j]
    else:  # astronomically many combinations: sort rows of codes instead
        stacked = np.column_stack([factors[j][0] for j in significance])[~missing]
        uniq_rows, inv = np.unique(stacked, axis=0, return_inverse=True)
        parts = np.empty((len(factors), uniq_rows.shape[0]), dtype=np.int32)
        for col, j in enumerate(significance):
            parts[j] = uniq_rows[:, col]
    codes = np.full(n, -1, dtype=np.int32)
    codes[~missing] = np.asarray(inv).reshape(-1)
    return codes, _InteractionLevels([levels for _, levels in factors], parts, sep)


# The most combinations whose labels are compared when level labels contain the separator.
_MAX_LABEL_CHECK = 10 ** 6


def _check_distinct_labels(call: Call, factors: list[GroupLevels], sep: str, text: str) -> None:
    """Refuse an interaction() in which two combinations of levels have one label
    (``"a.b" + "c"`` and ``"a" + "b.c"``): R merges them into one level, lmm does not.

    Labels are distinct unless some level's label contains ``sep``; only then are the
    labels of all combinations (present in the data or not, as R's levels) compared.
    """
    if len(factors) < 2:
        return
    labels = [levels.labels() for levels in factors]
    if sep and not any(sep in lab for labs in labels for lab in labs):
        return
    count = math.prod(len(labs) for labs in labels)
    if count <= _MAX_LABEL_CHECK:
        joined = labels[0]
        for labs in labels[1:]:
            joined = [f"{a}{sep}{b}" for b in labs for a in joined]
        if len(set(joined)) == count:
            return
    raise FormulaNotImplementedError(
        f"level labels of interaction() that contain its separator {sep!r} give two combinations one "
        "label (R merges them into one level); give another sep = \"...\"", text, call.pos, call.end)


def _interaction_call(call: Call, env: Env) -> tuple[np.ndarray, GroupLevels]:
    """lme4's ``factor(interaction(a, b, ...))``: R's levels (the first factor varying
    fastest, or slowest with ``lex.order = TRUE``; labels joined by ``sep``), unused ones
    dropped, whatever ``drop`` says (lme4 drops them)."""
    data, params = bind(call, GROUPING_SIGNATURES["interaction"], env.text)
    factors: list[tuple[np.ndarray, GroupLevels]] = []
    for arg in data:
        inner = strip_parens(arg)
        if isinstance(inner, Name) and inner.name in env.lookup:
            factors.append(_grouping_column(env, inner))
        else:
            f = drop_unused(as_factor(evaluate(arg, env), arg, env))
            factors.append((f.codes, _LabelLevels(f.levels)))
    sep = str(params["sep"])
    _check_distinct_labels(call, [levels for _, levels in factors], sep, env.text)
    significance = list(range(len(factors)))
    if not params["lex.order"]:
        significance.reverse()
    return _combined(factors, env.n, significance, sep)


def grouping_factor(term: RandomTerm, data: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Codes and levels of a term's grouping factor, as lme4's ``factor(a:b)``.

    Each variable is made a factor as R would (numbers sorted numerically, strings by
    collation, categoricals in category order, unused levels dropped).  An interaction
    keeps the level combinations that occur, ordered with the first factor varying
    slowest, labelled ``"a1:b1"``.  :func:`grouping_codes` gives the same factor with
    its levels in a compact form, labels made on request.

    Args:
        term: the random-effects term (only its ``factors`` and ``name`` are read).
        data: the data.

    Returns:
        ``(codes, levels)``: int32 codes of shape (n,), -1 where a grouping variable is
        missing, and the level labels, ``len(levels) == codes.max() + 1``.

    Raises:
        FormulaError: a grouping column is not in the data.

    Example:
        >>> df = pd.DataFrame({"batch": ["B", "A", "A"], "cask": ["a", "a", "b"]})
        >>> grouping_factor(RandomTerm("1", ("cask", "batch"), "cask:batch", False), df)
        (array([1, 0, 2], dtype=int32), ['a:A', 'a:B', 'b:A'])
    """
    codes, levels = grouping_codes(term, data)
    return codes, levels.labels()

