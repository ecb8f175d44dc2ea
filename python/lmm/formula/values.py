"""R's values of data columns: numeric vectors, logicals, factors and matrices.

Factors hold int32 codes (-1 missing) and their level labels, sorted as R sorts them
(strings by :func:`~.collation.collation_order`, numbers numerically).  Codes are made
without sorting the rows: by counting where integer values span a compact range, else
by hashing (``pandas.factorize``); only the distinct values are sorted, and the rows'
codes are then renumbered in one pass.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
import pandas as pd

from .. import _core as core
from .._util import row_blocks
from .collation import arrow_collation_order, collation_order
from .errors import FormulaTypeError
from .syntax import Name, r_num

__all__ = [
    "ContrastMatrix", "Factor", "Logical", "Matrix", "Value", "level_label", "drop_unused", "renumbered",
    "sorted_factor", "labels_to_factor", "int_labels", "sorted_codes", "numeric_codes", "numbers_factor",
    "numeric_to_factor", "string_factor", "logical_to_factor", "series_value",
]


class ContrastMatrix:
    """A coding given as a matrix (lme4's ``contrasts = list(f = M)``): one row per level,
    in level order, and the names of its columns (None: numbered 1, 2, ...)."""

    __slots__ = ("values", "names")

    def __init__(self, values: np.ndarray, names: list[str] | None) -> None:
        self.values = values
        self.names = names


class Factor:
    """An R factor: int32 codes (-1 missing), level labels, ordered flag, contrasts."""

    __slots__ = ("codes", "levels", "ordered", "contrast")

    def __init__(self, codes: np.ndarray, levels: list[str], ordered: bool = False,
                 contrast: str | None = None) -> None:
        self.codes = codes
        self.levels = levels
        self.ordered = ordered
        self.contrast = contrast


class Logical:
    """An R logical vector: bool values and an optional missing mask."""

    __slots__ = ("values", "na")

    def __init__(self, values: np.ndarray, na: np.ndarray | None = None) -> None:
        self.values = values
        self.na = na if na is not None and na.any() else None


class Matrix:
    """A matrix-valued variable (poly, scale): (n, k) float64 values and column names."""

    __slots__ = ("values", "colnames")

    def __init__(self, values: np.ndarray, colnames: list[str] | None) -> None:
        self.values = values
        self.colnames = colnames


# An evaluated expression's value (a runtime alias, so ``Union`` for Python 3.9).
Value = Union[np.ndarray, Factor, Logical, Matrix, float, bool, str]


def level_label(v: Any) -> str:
    """R's label of a level value: ``"TRUE"``, ``"3"``, ``"1e+05"``, or the string itself."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return r_num(float(v))
    return str(v)


def renumbered(codes: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """``remap[codes]`` as int32, with the missing code -1 kept (one pass over the rows)."""
    remap = np.asarray(remap, dtype=np.int32)
    if not codes.size or codes.min() >= 0:
        return remap[codes] if remap.size else np.zeros(codes.shape, dtype=np.int32)
    valid = codes >= 0
    if not remap.size:
        return np.full(codes.shape, -1, dtype=np.int32)
    return np.where(valid, remap[np.where(valid, codes, 0)], -1).astype(np.int32)


def _ranks(order: np.ndarray) -> np.ndarray:
    """The inverse permutation of ``order`` (int32): the new code of each old one."""
    rank = np.empty(order.shape[0], dtype=np.int32)
    rank[order] = np.arange(order.shape[0], dtype=np.int32)
    return rank


def drop_unused(f: Factor) -> Factor:
    """The factor without its levels that no row has (R's ``droplevels``); ``f`` itself when none."""
    nlev = len(f.levels)
    valid = f.codes >= 0 if f.codes.size and f.codes.min() < 0 else None  # None: nothing missing
    present = np.zeros(nlev, dtype=bool)
    if nlev:
        # (not bincount, which would make an int64 copy of the codes)
        present[f.codes if valid is None else f.codes[valid]] = True
    if present.all():
        return f
    remap = np.full(nlev, -1, dtype=np.int32)
    remap[present] = np.arange(int(present.sum()), dtype=np.int32)
    levels = _object_array(f.levels)[present].tolist()
    return Factor(renumbered(f.codes, remap), levels, f.ordered, f.contrast)


def _object_array(labels: list[str]) -> np.ndarray:
    """The labels as a one-dimensional object array (never a 2-D array of characters)."""
    out = np.empty(len(labels), dtype=object)
    out[:] = labels
    return out


def sorted_factor(codes: np.ndarray, distinct: list[str]) -> Factor:
    """Factor from codes into distinct labels in any order: levels sorted as R sorts strings,
    codes renumbered to them."""
    order = collation_order(distinct)
    return Factor(renumbered(codes, _ranks(order)), _object_array(distinct)[order].tolist())


def labels_to_factor(codes: np.ndarray, labels: list[str]) -> Factor:
    """Factor from codes into (possibly duplicated, unsorted) labels; levels sorted as R sorts."""
    first, distinct = pd.factorize(_object_array(labels))
    if distinct.shape[0] == len(labels):
        return sorted_factor(codes, labels)
    return sorted_factor(renumbered(codes, first), distinct.tolist())


def _compact_codes(values: np.ndarray, lo: Any, span: int) -> tuple[np.ndarray, np.ndarray]:
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


def int_labels(values: np.ndarray) -> list[str]:
    """Decimal labels of integers, converted a block at a time (no array or list of all the ints)."""
    labels: list[str] = []
    for rows in row_blocks(values.shape[0]):
        labels.extend(map(str, values[rows].tolist()))
    return labels


def sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 codes of numbers (-1 where NaN) and their sorted distinct values.

    The rows are hashed (``pandas.factorize``, which takes 0.0 and -0.0 as one value, as
    ``==`` does), the distinct values sorted, and the codes renumbered: O(n) in the rows
    and O(L log L) in the L distinct values, where ``np.unique`` sorts all n rows.
    """
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    order = np.argsort(uniq, kind="stable")
    return renumbered(codes, _ranks(order)), uniq[order]


def numeric_codes(x: np.ndarray, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """int32 codes of a numeric vector (-1 where NaN) and its sorted distinct values."""
    # np.min propagates NaN: the test needs no n-sized mask, and a column without
    # missing values is read in place.
    has_nan = bool(x.size and np.isnan(np.min(x)))
    if integer and x.size:
        # Integer codes in a compact range (the usual subject or item ids): levels
        # by counting, without hashing or sorting the rows.
        valid = ~np.isnan(x) if has_nan else None
        values = x if valid is None else x[valid]
        lo = values.min() if values.size else 0
        span = values.max() - lo if values.size else 0
        if span < 4 * values.size + 1024:
            inv, offsets = _compact_codes(values, lo, int(span))
            uniq = offsets + int(lo)
            if valid is None:
                return inv, uniq
            codes = np.full(x.shape[0], -1, dtype=np.int32)
            codes[valid] = inv
            return codes, uniq
    return sorted_codes(x)


def numeric_to_factor(x: np.ndarray, integer: bool) -> Factor:
    """R's ``factor()`` of numbers: levels sorted numerically, labelled as R prints them."""
    codes, uniq = numeric_codes(x, integer)
    return numbers_factor(codes, uniq, integer)


def numbers_factor(codes: np.ndarray, uniq: np.ndarray, integer: bool) -> Factor:
    """The factor of :func:`numeric_codes`' codes and sorted values, labelled as R prints
    them (values of one label merged)."""
    labels = int_labels(uniq.astype(np.int64)) if integer else [r_num(float(u)) for u in uniq]
    if len(set(labels)) < len(labels):  # values equal to 15 digits share an R level
        return labels_to_factor(codes, labels)
    return Factor(codes, labels)


def string_factor(s: pd.Series) -> Factor:
    """R's ``factor()`` of a column of strings (pandas' string dtypes or objects that are
    all strings): levels in R's collation order, -1 where missing.

    The rows are hashed once (pyarrow-backed strings by the core's hash table on Arrow's
    buffers, :func:`arrow_codes`, their distinct values then sorted from those buffers;
    other strings by ``pandas.factorize``'s hash table on the objects); only the distinct
    strings are sorted (:func:`~.collation.collation_order`, vectorized for ASCII text).
    """
    if isinstance(s.dtype, pd.StringDtype) and str(s.dtype.storage).startswith("pyarrow"):
        coded = arrow_codes(s.array.__arrow_array__())
        if coded is not None:
            codes, uniques = coded
            order = arrow_collation_order(uniques)
            return Factor(renumbered(codes, _ranks(order)), uniques.take(order).to_pylist())
    codes, uniques = pd.factorize(s.to_numpy(), use_na_sentinel=True)
    return sorted_factor(np.asarray(codes), uniques.tolist())


def arrow_codes(strings: Any) -> tuple[np.ndarray, Any] | None:
    """Codes of a pyarrow string array (or chunked array) read from its buffers, with no
    Python string per row: codes (int32, -1 where missing) in order of first appearance
    and the distinct strings (a pyarrow array) in that order; None for other Arrow types
    (string views, dictionaries), which the caller codes otherwise.

    Example:
        >>> import pyarrow as pa
        >>> codes, uniques = arrow_codes(pa.chunked_array([["b", None], ["a", "b"]]))
        >>> codes.tolist(), uniques.to_pylist()
        ([0, -1, 1, 0], ['b', 'a'])
    """
    import pyarrow as pa

    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    parts = []
    for chunk in chunks:
        large = pa.types.is_large_string(chunk.type)
        if not (large or pa.types.is_string(chunk.type)):
            return None
        valid, offsets, data = chunk.buffers()
        n = len(chunk)
        off = np.frombuffer(offsets, dtype=np.int64 if large else np.int32)[chunk.offset:chunk.offset + n + 1] \
            if offsets is not None else np.zeros(n + 1, dtype=np.int64)
        parts.append((off, np.zeros(0, dtype=np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8),
                      None if valid is None or chunk.null_count == 0 else np.frombuffer(valid, dtype=np.uint8),
                      chunk.offset, n))
    codes, first = core.code_strings(parts)
    uniques = strings.take(pa.array(first))
    return codes, uniques.combine_chunks() if isinstance(uniques, pa.ChunkedArray) else uniques


def logical_to_factor(v: Logical, all_levels: bool) -> Factor:
    """A logical as a factor with levels ``FALSE``, ``TRUE`` (unused ones dropped unless ``all_levels``)."""
    codes = v.values.astype(np.int32)
    if v.na is not None:
        codes[v.na] = -1
    f = Factor(codes, ["FALSE", "TRUE"])
    return f if all_levels else drop_unused(f)


def series_value(s: pd.Series, node: Name, text: str) -> Value:
    """R's value of a data column: numeric, logical or a factor (see the package docs).

    Args:
        s: the column.
        node: the name that refers to it, for error carets.
        text: the text the node's positions index.

    Returns:
        A float64 array, a :class:`Logical` or a :class:`Factor` (unused levels dropped).

    Raises:
        FormulaTypeError: complex, datetime, timedelta, period or interval columns.
    """
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int32)
        labels, distinct = _category_labels(dt.categories)
        if distinct or len(set(labels)) == len(labels):
            return drop_unused(Factor(codes, labels, bool(dt.ordered)))
        f = labels_to_factor(codes, labels)  # e.g. categories 1 and "1": one R level
        f.ordered = bool(dt.ordered)
        return drop_unused(f)
    if pd.api.types.is_bool_dtype(dt):
        if dt == np.bool_:
            return Logical(s.to_numpy())
        return Logical(s.to_numpy(dtype=bool, na_value=False), s.isna().to_numpy())
    if pd.api.types.is_complex_dtype(dt):
        raise FormulaTypeError(f"column '{node.name}' is complex; lmm needs real numbers", text, node.pos, node.end)
    if pd.api.types.is_numeric_dtype(dt):
        if isinstance(dt, np.dtype):  # NumPy numbers: no missing marker but NaN (na_value copies)
            return s.to_numpy(dtype=np.float64)
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if (pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt)
            or isinstance(dt, (pd.PeriodDtype, pd.IntervalDtype))):
        raise FormulaTypeError(
            f"column '{node.name}' has dtype {dt}; convert it to numbers or categories first",
            text, node.pos, node.end)
    if isinstance(dt, pd.StringDtype):
        return string_factor(s)
    # Objects: hashed once; what they are is read from the distinct values only.
    codes, uniques = pd.factorize(s.to_numpy(), use_na_sentinel=True)
    inferred = pd.api.types.infer_dtype(uniques, skipna=True)
    if inferred == "boolean":
        na = s.isna().to_numpy()
        return Logical(np.where(na, False, s.to_numpy()).astype(bool), na)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)
    if inferred in ("string", "empty"):
        return sorted_factor(np.asarray(codes), uniques.tolist())
    return labels_to_factor(np.asarray(codes), [level_label(u) for u in uniques.tolist()])


def _category_labels(categories: pd.Index) -> tuple[list[str], bool]:
    """R's labels of a categorical's categories, and whether they are known to be distinct:
    strings as they are and integers in decimal (both distinct, as categories are, and
    made without a call per category), other values by :func:`level_label`."""
    if pd.api.types.is_integer_dtype(categories.dtype):
        return int_labels(categories.to_numpy(dtype=np.int64)), True
    values = categories.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values.tolist(), True
    return [level_label(c) for c in values.tolist()], False
