"""Fitting from data that arrive in row chunks: :meth:`LinearMixedModel.from_chunks`.

In a linear mixed model everything after the crossproduct blocks A depends on the
numbers of levels, not on the number of rows, and A is a sum over rows. A model is
therefore built from any number of data frames, none of which needs to fit in memory
beside the others:

1. *levels*: the levels of the grouping factors and of the fixed effects' factors over
   the rows used (those without missing values), as the data frame of all rows would
   give them (not collected for columns whose levels are given with ``levels=``);
2. *statistics*: per chunk, the model matrices, merged into the column means and the
   R factor of ``[X_c y]`` (the shift of the design, see :func:`lmm.model.shift_for`)
   and each term's column statistics (its working coordinates,
   ``lmm._core.term_transform``). When X and the terms' columns hold no factors they
   do not depend on the levels, and this is done in the pass of the levels;
3. *crossproducts*: per chunk, the blocks of A in the compiled core against the
   global level codes, shift and transforms, summed (``lmm._core.Crossprod.add``).

The model is then analysed and fitted as one from all rows. What needs the rows
themselves (fitted values, residuals, refits with other responses) is not kept; the
fitted result predicts on any chunk with ``result.predict(chunk)``.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from . import _core as core
from .design import EXACT_FIT_TOL, ReTerm, as_frame, evaluate_offset
from .design.data import checked_contrasts
from .design.fixed import full_rank_columns, warn_scales
from .design.learned import LearningRound, TransformLearner
from .formula import (
    ModelFrameState,
    ParsedFormula,
    check_columns,
    evaluate_response,
    grouping_codes,
    model_matrix,
    parse_formula,
    required_columns,
)
from .model import EXACT_FIT_SIGMA, CoreModel, LinearMixedModel, warn_uncentred

__all__ = ["ChunkedCoreModel", "ChunkedDesign", "ChunkedLinearMixedModel", "DaskRows", "from_chunks", "is_dask_frame",
           "is_parquet_path", "is_partitioned", "parquet_chunks", "partitioned_model", "rows_needed"]

# The in-memory design's tolerances (lmm.design): the exact fit, lme4's checkScaleX factor.
_STATEFUL = re.compile(r"\b(scale|poly|ns|bs)\s*\(")
_FACTOR_CALL = re.compile(r"\b(factor|as\.factor|ordered|relevel|C|interaction)\s*\(")

_ROWS_NEEDED = ("a model fitted from chunks keeps only the crossproducts of the rows, not the rows: {what} "
                "needs them. Evaluate it chunk by chunk instead (result.predict(chunk) gives the fitted values "
                "of a chunk's rows; its response minus them the residuals), or fit the concatenated data in memory")


def rows_needed(what: str) -> NotImplementedError:
    """The error of what needs the rows of a chunked model."""
    return NotImplementedError(_ROWS_NEEDED.format(what=what))


@dataclass
class ChunkedDesign:
    """The design of a model fitted from chunks: everything of :class:`lmm.design.Design`
    that does not need the rows (names, terms with their levels, recorded model-frame
    states, the shift); the per-row arrays raise NotImplementedError.

    Attributes:
        nobs: number of rows used (over all chunks).
        xnames: names of the columns of X.
        terms: random-effects terms in lme4's order; their ``codes`` and ``z`` have no rows.
        fixed_state: the recorded model-frame state of the fixed effects (for new data).
        x_center, y_coef: the shift the core works with.
        nchunks: number of chunks read.
        ndropped: rows dropped for missing values.
        dropped_columns: aliased columns of X dropped.
        rows: the rows of a Dask data frame, for lazy per-row outputs (None: chunks, not kept).
    """

    nobs: int
    xnames: list[str]
    terms: list[ReTerm]
    fixed_state: ModelFrameState
    x_center: np.ndarray
    y_coef: np.ndarray
    nchunks: int = 0
    ndropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    rows: Optional["DaskRows"] = None
    weights: None = None
    offset: None = None

    def per_row(self, result, what: str, type: str = "response", scaled: bool = False):
        """``what`` (``"fitted"``, ``"residuals"``) of the rows: a Dask series computed lazily
        for a model from a Dask data frame; NotImplementedError for chunks (not kept)."""
        if self.rows is None:
            raise rows_needed(f"per-row output ({what})")
        return self.rows.values(result, what, type, scaled)

    @property
    def X(self) -> np.ndarray:
        raise rows_needed("the fixed-effects model matrix X")

    @property
    def y(self) -> np.ndarray:
        raise rows_needed("the response")

    @property
    def y_fit(self) -> np.ndarray:
        raise rows_needed("the response")

    def aligned(self, values: np.ndarray, name: str) -> pd.Series:
        raise rows_needed(f"per-row output ({name})")


def parquet_chunks(path, columns: Optional[Sequence[str]] = None,
                   batch_rows: int = 1 << 18) -> Callable[[], Iterator[pd.DataFrame]]:
    """The rows of a parquet file or dataset (a directory of files) as chunks for
    :meth:`LinearMixedModel.from_chunks`: a function returning a fresh iterator over data
    frames of at most ``batch_rows`` rows, read one at a time with pyarrow.

    Args:
        path: a parquet file or a directory of them (pyarrow's dataset).
        columns: the columns to read (None: all).
        batch_rows: the most rows per chunk (a chunk never spans two files: a
            chunk's pass holds a few hundred bytes per row, so the default's 2¹⁸ rows keep
            that near 100 MiB).

    Raises:
        ImportError: pyarrow is not installed.

    Example:
        >>> import lmm, tempfile, os
        >>> d = lmm.datasets.load("sleepstudy")
        >>> path = os.path.join(tempfile.mkdtemp(), "sleep.parquet")
        >>> d.to_parquet(path, row_group_size=40)  # doctest: +SKIP
        >>> chunks = parquet_chunks(path)  # doctest: +SKIP
        >>> m = lmm.LinearMixedModel.from_chunks("Reaction ~ Days + (Days | Subject)", chunks)  # doctest: +SKIP
    """
    try:
        import pyarrow as pa
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading parquet needs pyarrow: pip install pyarrow") from None
    dataset = ds.dataset(str(path), format="parquet")
    pool = pa.default_memory_pool()
    cols = None if columns is None else list(columns)
    if cols is not None:
        missing = [c for c in cols if c not in dataset.schema.names]
        if missing:
            raise ValueError(f"the parquet data at {str(path)!r} has no columns {missing}; it has "
                             f"{dataset.schema.names}")

    def batches() -> Iterator[pd.DataFrame]:
        # File by file, each read on this thread without buffering its row groups ahead:
        # the dataset's own scanner reads ahead in files and batches, and holds several
        # chunks' decoded columns at once (over a hundred MiB at 10⁶-row chunks).
        for fragment in dataset.get_fragments():
            with dataset.filesystem.open_input_file(fragment.path) as source:
                reader = pq.ParquetFile(source, pre_buffer=False)
                for batch in reader.iter_batches(batch_size=batch_rows, columns=cols, use_threads=False):
                    frame = batch.to_pandas()
                    del batch
                    yield frame
                    del frame
                    pool.release_unused()  # (Arrow's allocator keeps freed pages otherwise)

    return batches


def is_parquet_path(data) -> bool:
    """Whether ``data`` names parquet data (a path ending in .parquet or .pq, or a directory)."""
    import os

    if not isinstance(data, (str, os.PathLike)):
        return False
    text = os.fspath(data)
    return str(text).endswith((".parquet", ".pq")) or os.path.isdir(text)


def is_partitioned(data) -> bool:
    """Whether ``data`` is read partition by partition: a Dask data frame or parquet data."""
    return is_dask_frame(data) or is_parquet_path(data)


def partitioned_model(formula: str, data, REML: bool = True, *, missing: str = "drop",
                      max_dense_bytes: Optional[float] = None, weights=None, offset=None, contrasts=None,
                      double_bar: str = "split", sigma: Optional[float] = None,
                      method: str = "auto") -> "ChunkedLinearMixedModel":
    """The model of a Dask data frame or of parquet data, as ``LinearMixedModel(formula, data, ...)``
    (its arguments): a Dask data frame's partitions, or the parquet data's batches read with
    pyarrow (only the columns the model uses)."""
    if is_parquet_path(data):
        parsed = parse_formula(formula, double_bar=double_bar)
        columns = list(dict.fromkeys(required_columns(parsed) + [c for c in (weights, offset) if isinstance(c, str)]))
        data = parquet_chunks(data, columns)
    return from_chunks(formula, data, REML=REML, weights=weights, offset=offset, contrasts=contrasts, sigma=sigma,
                       missing=missing, double_bar=double_bar, max_dense_bytes=max_dense_bytes, method=method)


def _chunk_source(chunks) -> Callable[[], Iterator[Any]]:
    """A function returning a fresh iterator over the chunks (several passes are made)."""
    if callable(chunks):
        return lambda: iter(chunks())
    if isinstance(chunks, Iterator):
        raise TypeError("chunks is an iterator, which can be read only once; from_chunks reads the chunks more than "
                        "once: pass a list of data frames, or a function returning a fresh iterator over them "
                        "(e.g. lambda: pd.read_csv(path, chunksize=10**6))")
    if isinstance(chunks, (pd.DataFrame, str, bytes)) or not isinstance(chunks, Iterable):
        raise TypeError(f"chunks must be a list of data frames or a function returning an iterator over them, not "
                        f"{type(chunks).__name__}")
    return lambda: iter(chunks)


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


@dataclass
class _Counts:
    """Rows read and dropped for missing values, and the missing values per column."""

    nread: int = 0
    ndropped: int = 0
    missing: dict[str, int] = field(default_factory=dict)

    def merge(self, other: "_Counts") -> "_Counts":
        missing = dict(self.missing)
        for c, n in other.missing.items():
            missing[c] = missing.get(c, 0) + n
        return _Counts(self.nread + other.nread, self.ndropped + other.ndropped, missing)


class _Plan:
    """What every pass shares: the parsed formula, the columns, the rule for used rows."""

    def __init__(self, parsed: ParsedFormula, weights: Optional[str], offset: Optional[str]) -> None:
        self.parsed = parsed
        self.weights = weights
        self.offset = offset
        self.columns = list(dict.fromkeys(required_columns(parsed) + [c for c in (weights, offset) if c]))
        self.group_columns = list(dict.fromkeys(f for rt in parsed.random for f in rt.factors))
        self.factor_calls = bool(_FACTOR_CALL.search(parsed.text))
        # Columns of the model matrices X and z (not the response, not only grouping): when
        # all are numeric and no factor() call is made, the matrices do not depend on the
        # levels, and the pass of the levels also gathers the shift and column statistics.
        self.model_columns = {r.node.name for terms_ in [parsed.fixed_terms] + [rt.terms for rt in parsed.random]
                              for r in terms_.refs if not r.soft}

    def used(self, chunk, k: int) -> tuple[pd.DataFrame, _Counts, Optional[np.ndarray]]:
        """The chunk as a data frame of the used columns, its rows with missing values in
        them dropped; its counts of rows read, dropped and missing values per column; the
        positions of the rows kept (None: all)."""
        frame = as_frame(chunk)
        absent = [c for c in self.columns if c not in frame.columns]
        if absent:
            check_columns(self.parsed, frame)  # (the formula's own message, with close matches)
            raise ValueError(f"chunk {k} has no columns {absent}; every chunk needs the columns {self.columns}")
        frame = frame[self.columns]
        na = frame.isna()
        bad = na.any(axis=1).to_numpy()
        counts = _Counts(len(frame), int(bad.sum()), {str(c): int(n) for c, n in na.sum().items() if n})
        if not counts.ndropped:
            return frame, counts, None
        return frame.loc[~bad], counts, np.flatnonzero(~bad)

    def discrete(self, frame: pd.DataFrame) -> list[str]:
        """The columns whose distinct values make levels: not numeric, grouping columns, and
        every numeric column when the formula makes factors of numbers (factor(x)): their
        distinct values are collected then, and the model matrices made on them."""
        out = []
        for c in self.columns:
            if c in (self.weights, self.offset):
                continue
            s = frame[c]
            if c in self.group_columns or not _is_numeric(s) or (self.factor_calls and s.dtype.kind in "iuf"):
                out.append(c)
        return out

    def levels_free(self, discrete: Sequence[str]) -> bool:
        """Whether the model matrices do not depend on the levels of ``discrete`` columns."""
        return not self.factor_calls and not any(c in self.model_columns for c in discrete)


def _distinct(values: pd.Series) -> pd.Series:
    return pd.Series(pd.unique(values), name=values.name) if not isinstance(values.dtype, pd.CategoricalDtype) else \
        pd.Series(pd.Categorical(values.cat.remove_unused_categories().cat.categories,
                                 categories=values.cat.categories, ordered=values.cat.ordered), name=values.name)


def _union(a: pd.Series, b: pd.Series) -> pd.Series:
    """The distinct values of two chunks, in order of first appearance; categorical
    columns whose categories differ (Dask's unknown categories) have the union of their
    categories in order, as concatenating the chunks gives them."""
    if isinstance(a.dtype, pd.CategoricalDtype) and isinstance(b.dtype, pd.CategoricalDtype) \
            and not a.dtype == b.dtype:
        both = pd.api.types.union_categoricals([pd.Categorical(a), pd.Categorical(b)])
        return _distinct(pd.Series(both, name=a.name))
    return _distinct(pd.concat([a, b], ignore_index=True))


def _levels_frame(values: dict[str, pd.Series], numeric: dict[str, Any]) -> pd.DataFrame:
    """A small frame on which every discrete column takes each of its values (cyclically
    repeated to a common length) and every numeric column one value: evaluating the
    formula on it records the factor levels of all rows."""
    length = max([len(v) for v in values.values()] + [1])
    cols: dict[str, Any] = {}
    for c, v in values.items():
        idx = np.arange(length) % max(len(v), 1)
        cols[c] = v.iloc[idx].reset_index(drop=True)
    for c, v in numeric.items():
        cols[c] = pd.Series([v] * length)
    return pd.DataFrame(cols)


@dataclass
class _Pieces:
    """A chunk's arrays: the response the core fits, X, per term (model order) codes and z,
    weights, the offset (None: none), and which of the chunk's rows they are."""

    y: np.ndarray
    X: np.ndarray
    codes: list[np.ndarray]
    zs: list[np.ndarray]
    weights: Optional[np.ndarray]
    xnames: list[str] = field(default_factory=list)
    offset: Optional[np.ndarray] = None
    rows: Optional[np.ndarray] = None  # positions of the rows in the chunk (None: all)


class _Statistics:
    """The shift's and the terms' statistics of some rows, mergeable: the rows, the means
    and the R factor of the centred [X y] (unweighted, as the in-memory design's shift),
    each term's column statistics (prior weights) and the response's."""

    def __init__(self, nterms: int) -> None:
        self.merged: Optional[tuple[int, np.ndarray, np.ndarray]] = None
        self.stats = [core.TermColumnStats() for _ in range(nterms)]
        self.ystats = core.TermColumnStats()
        self.xnames: list[str] = []
        self.binary: Optional[np.ndarray] = None  # per column of X: every value 0 or 1

    @property
    def n(self) -> int:
        return 0 if self.merged is None else self.merged[0]

    @classmethod
    def of(cls, d: _Pieces) -> "_Statistics":
        """The statistics of a chunk's rows."""
        out = cls(len(d.zs))
        out.xnames = d.xnames
        out.binary = np.all((d.X == 0.0) | (d.X == 1.0), axis=0)
        V = np.column_stack([d.X, d.y])
        mean = V.mean(axis=0)
        out.merged = (d.y.shape[0], mean, np.asarray(np.linalg.qr(V - mean, mode="r")))
        out.stats = [core.TermColumnStats.of(z, d.weights) for z in d.zs]
        out.ystats = core.TermColumnStats.of(d.y[:, None])
        return out

    def merge(self, other: "_Statistics") -> "_Statistics":
        """These statistics and another set's, of other rows, as a new set."""
        if other.merged is None:
            return self
        if self.merged is None:
            return other
        if other.xnames != self.xnames:
            raise ValueError(f"the fixed-effects columns of chunks differ ({self.xnames} then {other.xnames})")
        out = _Statistics(len(self.stats))
        out.xnames = self.xnames
        assert self.binary is not None and other.binary is not None
        out.binary = self.binary & other.binary
        out.merged = _merge_mean_r(self.merged, other.merged)
        for s, a, b in zip(out.stats + [out.ystats], self.stats + [self.ystats], other.stats + [other.ystats]):
            s.merge(a)
            s.merge(b)
        return out

    def shift(self) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """As the in-memory design: the columns of X kept (aliased ones dropped, with lme4's
        warning), x_center (their means when X has an intercept), y_coef (the
        least-squares coefficients of y on X_c, from R) and R of [X_c y]; lme4's warning
        when predictors are on very different scales."""
        assert self.merged is not None
        n, mean, Rc = self.merged
        p = len(self.xnames)
        x_center = np.zeros(p)
        if p > 1 and self.xnames[0] == "(Intercept)":
            x_center[1:] = mean[1:p]
        shift = np.concatenate([x_center, [0.0]])
        R = np.asarray(np.linalg.qr(np.vstack([Rc, math.sqrt(n) * (mean - shift)[None, :]]), mode="r"))
        kept = list(range(p))
        if p:
            norms = np.sqrt(np.einsum("ij,ij->j", R[:, :p], R[:, :p]) + n * x_center * x_center)
            kept = full_rank_columns(R[:, :p], norms)
            if len(kept) < p:
                dropped = [self.xnames[j] for j in range(p) if j not in kept]
                warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): "
                              f"{dropped}", UserWarning, stacklevel=4)
                x_center = x_center[kept]
                R = np.asarray(np.linalg.qr(R[:, kept + [p]], mode="r"))
            assert self.binary is not None
            _check_scale([self.xnames[j] for j in kept], Rc[:, kept], self.binary[kept], n)
        q = len(kept)
        y_coef = np.linalg.solve(R[:q, :q], R[:q, q]) if q else np.zeros(0)
        return kept, x_center, y_coef, R


def _merge_mean_r(a: tuple[int, np.ndarray, np.ndarray],
                  b: tuple[int, np.ndarray, np.ndarray]) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, column means, R of the centred columns) of two sets of rows stacked: the
    centred columns of each are orthogonal to ones, so [R_a; R_b; √(n_a n_b / n)(m_a − m_b)']
    has the R of the union's centred columns (Chan's update of the mean, as a QR)."""
    na, ma, Ra = a
    nb, mb, Rb = b
    total = na + nb
    d = math.sqrt(na * nb / total) * (ma - mb)
    R2 = np.linalg.qr(np.vstack([Ra, Rb, d[None, :]]), mode="r")
    return total, (na / total) * ma + (nb / total) * mb, np.asarray(R2)


class _Evaluator:
    """A chunk's arrays (:class:`_Pieces`) once the model-frame states are known: the
    formula evaluated on its used rows (response minus offset, X, each term's z) and, with
    the levels, the terms' codes in the global levels in model order and the kept columns
    of X. Picklable: Dask ships it to the workers once."""

    def __init__(self, plan: _Plan, fixed_state: ModelFrameState, states: Sequence[ModelFrameState]) -> None:
        self.plan = plan
        self.fixed_state = fixed_state
        self.states = list(states)
        self.groups: list[list[int]] = []
        self.lookups: list[_Lookup] = []
        self.kept: Optional[list[int]] = None

    def numeric(self, frame: pd.DataFrame, k: int) -> _Pieces:
        """The used rows' response (minus the offset), X and z of each term in formula order, weights."""
        parsed, weights = self.plan.parsed, self.plan.weights
        y = np.ascontiguousarray(evaluate_response(parsed.response_expr, frame), dtype=np.float64)
        off = evaluate_offset(parsed, frame, self.plan.offset)
        if off is not None:
            y = y - off
        X, names = model_matrix(parsed.fixed_terms, frame, state=self.fixed_state)
        X = np.asfortranarray(X, dtype=np.float64)
        zs = [np.asfortranarray(model_matrix(rt.terms, frame, state=st)[0], dtype=np.float64)
              for rt, st in zip(parsed.random, self.states)]
        w = None
        if weights is not None:
            w = np.ascontiguousarray(frame[weights].to_numpy(dtype=np.float64))
            if not np.all(np.isfinite(w) & (w > 0)):
                raise ValueError(f"chunk {k}: weights must be positive and finite; drop rows with zero weight")
        parts = [("the response", y), ("X", X)] + [(f"the term for {rt.name!r}", z) for rt, z in zip(parsed.random, zs)]
        for what, v in parts:
            if v.size and not np.all(np.isfinite(v)):
                raise ValueError(f"chunk {k}: {what} has NaN or infinite values after evaluating the formula (e.g. "
                                 "log of a negative value); from_chunks drops only rows with missing data values: "
                                 "filter those rows first")
        return _Pieces(y=y, X=X, codes=[], zs=zs, weights=w, xnames=list(names), offset=off)

    def pieces(self, chunk, k: int) -> _Pieces:
        """The chunk's arrays on the global levels, terms in model order."""
        frame, _, kept_rows = self.plan.used(chunk, k)
        d = self.numeric(frame, k)
        d.rows = kept_rows
        parsed = self.plan.parsed
        d.codes = [self.lookups[g[0]].term_codes(parsed.random[g[0]], frame, k) for g in self.groups]
        d.zs = [d.zs[g[0]] if len(g) == 1 else np.asfortranarray(np.column_stack([d.zs[j] for j in g]))
                for g in self.groups]
        if self.kept is not None and len(self.kept) < d.X.shape[1]:
            d.X = np.asfortranarray(d.X[:, self.kept])
        return d


@dataclass
class _Levels:
    """The pass of the levels over some chunks: counts, the distinct values of the
    discrete columns, the grouping combinations of multi-factor terms, a value of each
    numeric column, whether the model matrices are free of levels (and the first chunk of
    each answer), and then the statistics of the rows."""

    counts: _Counts
    distinct: dict[str, pd.Series]
    combos: list[Optional[pd.DataFrame]]
    numeric: dict[str, Any]
    free: dict[bool, int]
    stats: Optional[_Statistics]
    nchunks: int = 1

    def merge(self, other: "_Levels") -> "_Levels":
        """These chunks' and the (later) other chunks' together."""
        distinct = dict(self.distinct)
        for c, v in other.distinct.items():
            distinct[c] = _union(distinct[c], v) if c in distinct else v
        combos = [b if a is None else a if b is None else pd.concat([a, b], ignore_index=True).drop_duplicates()
                  for a, b in zip(self.combos, other.combos)]
        free = dict(other.free)
        free.update(self.free)  # (the first chunk of each answer)
        free = {f: min(k, other.free.get(f, k)) for f, k in free.items()}
        stats = other.stats if self.stats is None else self.stats if other.stats is None else \
            self.stats.merge(other.stats)
        return _Levels(self.counts.merge(other.counts), distinct, combos, {**other.numeric, **self.numeric}, free,
                       stats, self.nchunks + other.nchunks)


class _LevelsPass:
    """The map of the pass of the levels, for one chunk (picklable, shipped once)."""

    def __init__(self, plan: _Plan, given: dict, preset: dict) -> None:
        self.plan, self.given, self.preset = plan, given, preset

    def __call__(self, chunk, k: int) -> _Levels:
        plan = self.plan
        frame, counts, _ = plan.used(chunk, k)
        discrete = plan.discrete(frame)
        free = plan.levels_free(discrete)
        numeric = {c: frame[c].iloc[0] for c in plan.columns if c not in discrete and len(frame)}
        distinct = {c: _distinct(frame[c]) for c in discrete if c not in self.given}
        combos = [frame[list(rt.factors)].drop_duplicates() if len(rt.factors) > 1 else None
                  for rt in plan.parsed.random]
        stats = None
        if free and len(frame):  # (fresh states: the matrices do not depend on what they record)
            evaluator = _Evaluator(plan, _state(self.preset), [_state(self.preset) for _ in plan.parsed.random])
            stats = _Statistics.of(evaluator.numeric(frame, k))
        return _Levels(counts, distinct, combos, numeric, {free: k}, stats)


class _StatisticsPass:
    """The map of the pass of the statistics (the shift and the terms' column statistics)."""

    def __init__(self, evaluator: _Evaluator) -> None:
        self.evaluator = evaluator

    def __call__(self, chunk, k: int) -> Optional[_Statistics]:
        frame, _, _ = self.evaluator.plan.used(chunk, k)
        return _Statistics.of(self.evaluator.numeric(frame, k)) if len(frame) else None


class _CrossprodPass:
    """The map of the pass of the crossproducts: a chunk's blocks of A in the core."""

    def __init__(self, evaluator: _Evaluator, terms: Sequence[ReTerm], x_center: np.ndarray, y_coef: np.ndarray,
                 transforms: Sequence[core.TermTransform]) -> None:
        self.evaluator = evaluator
        self.shapes = [(len(t.group_levels), t.structure) for t in terms]
        self.x_center, self.y_coef, self.transforms = x_center, y_coef, list(transforms)

    def __call__(self, chunk, k: int) -> Optional[core.Crossprod]:
        d = self.evaluator.pieces(chunk, k)
        if d.y.shape[0] == 0:
            return None
        tuples: list = [(c, z, nl, s) for c, z, (nl, s) in zip(d.codes, d.zs, self.shapes)]
        return core.chunk_crossprod(tuples, d.X, d.y, self.x_center, self.y_coef, d.weights, self.transforms)


def _state(preset: dict) -> ModelFrameState:
    """A fresh model-frame state with the numeric transforms' values learned on all rows."""
    state = ModelFrameState()
    state.transforms.preset = dict(preset)
    return state


class _RoundMap:
    """A round of learning the numeric transforms, as a map over chunks (picklable)."""

    def __init__(self, step: LearningRound) -> None:
        self.step = step

    def __call__(self, chunk, k: int) -> Any:
        return self.step.map(as_frame(chunk))


def _reduce_pair(step: LearningRound, a: Any, b: Any) -> Any:
    return step.reduce([a, b])


def _merge_levels(a: _Levels, b: _Levels) -> _Levels:
    return a.merge(b)


def _merge_statistics(a: Optional[_Statistics], b: Optional[_Statistics]) -> Optional[_Statistics]:
    return b if a is None else a if b is None else a.merge(b)


def _add_crossprods(a: Optional[core.Crossprod], b: Optional[core.Crossprod]) -> Optional[core.Crossprod]:
    """a + b, into a: each partial sum is the input of one addition only, so a is not
    needed afterwards (and a copy of it would double the memory of the largest sums)."""
    if a is None:
        return b
    if b is not None:
        a.add(b)
    return a


def from_chunks(formula: str, chunks, *, levels: Optional[dict] = None, REML: bool = True,
                weights: Optional[str] = None, offset: Optional[str] = None, contrasts=None,
                sigma: Optional[float] = None, missing: str = "drop", double_bar: str = "split",
                max_dense_bytes: Optional[float] = None, method: str = "auto"):
    """A linear mixed model from data in row chunks (or a Dask data frame's partitions),
    equal to the model of all rows at once.

    See :meth:`lmm.LinearMixedModel.from_chunks` (the arguments are its own).
    """
    from .matrix_free import check_method
    from .model import DEFAULT_MAX_DENSE_BYTES

    check_method(method)
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', not {missing!r}")
    for name, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} of a chunked fit must be a column name (one value per row cannot follow the "
                            "chunks)")
    if not isinstance(REML, (bool, np.bool_)):
        raise TypeError(f"REML must be True or False, not {REML!r}")
    number = isinstance(sigma, (int, float, np.floating, np.integer)) and not isinstance(sigma, bool)
    if sigma is not None and not (number and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number (a known residual SD) or None, not {sigma!r}")
    max_dense_bytes = DEFAULT_MAX_DENSE_BYTES if max_dense_bytes is None else float(max_dense_bytes)
    parsed = parse_formula(formula, double_bar=double_bar)
    coding = checked_contrasts(contrasts, parsed)
    for what, expr in [("the response", parsed.response_expr)] + [("an offset", e) for e in parsed.offset_exprs]:
        if _STATEFUL.search(str(expr)):
            raise NotImplementedError(f"{what} {str(expr)!r} holds scale(), poly(), ns() or bs(), which learn from "
                                      "the rows used; from_chunks learns them for the model matrices only: transform "
                                      "that column before chunking, or fit the data in memory")
    plan = _Plan(parsed, weights, offset)
    runner = _runner(chunks, plan)
    given = {str(k): v for k, v in (levels or {}).items()}

    # --- pass 1: levels (distinct values of the discrete columns over the rows used), and
    # the statistics when the model matrices do not depend on them ---------------------------
    # --- pass 0 (scale(), poly(), ns(), bs()): their values learned on all rows, in rounds
    # (lmm.design.learned), then used by every evaluation -------------------------------------
    learner = TransformLearner(parsed, coding)
    while not learner.done:
        step = learner.round()
        learner.advance(runner.map_reduce(_RoundMap(step), functools.partial(_reduce_pair, step)))
    preset = learner.preset()

    seen = runner.map_reduce(_LevelsPass(plan, given, preset), _merge_levels)
    if seen is None:
        raise ValueError("chunks is empty: no data frames to fit")
    if len(seen.free) > 1:
        raise ValueError(f"chunk {max(seen.free.values())}: the columns {sorted(plan.model_columns)} do not have the "
                         "types they have in the first chunk (numeric versus categorical); give every chunk the same "
                         "column types")
    levels_free = next(iter(seen.free))
    ndrop = seen.counts.ndropped
    if ndrop:
        per_column = ", ".join(f"{c}: {k}" for c, k in seen.counts.missing.items())
        if missing == "raise":
            raise ValueError(f"{ndrop} of {seen.counts.nread} rows have missing values ({per_column}); drop them or "
                             "use missing='drop'")
        warnings.warn(f"{ndrop} of {seen.counts.nread} rows dropped because of missing values ({per_column})",
                      UserWarning, stacklevel=3)
    values: dict[str, pd.Series] = dict(seen.distinct)
    for c, v in given.items():
        values[c] = pd.Series(list(v), name=c)
    if seen.counts.nread == ndrop:
        raise ValueError("no rows left after dropping rows with missing values")
    lf = _levels_frame(values, seen.numeric)
    fixed_state = _state(preset)
    # (lme4 passes contrasts to the fixed effects' model matrix only.)
    fixed_state.transforms.contrasts = {c: k for c, k in coding.items() if c in plan.columns}
    _, xnames = model_matrix(parsed.fixed_terms, lf, state=fixed_state)
    states: list[ModelFrameState] = []
    pieces: list[ReTerm] = []
    for j, rt in enumerate(parsed.random):
        st = _state(preset)
        _, cnames = model_matrix(rt.terms, lf, state=st)
        if not cnames:
            raise ValueError(f"random-effects term for {rt.name!r} has no columns ({rt.expr!r})")
        combo = seen.combos[j]
        if combo is not None and not all(f in given for f in rt.factors):
            group_frame = combo
        else:
            group_frame = pd.DataFrame({f: values[f] for f in rt.factors})
        _, group_levels = grouping_codes(rt, group_frame)
        states.append(st)
        pieces.append(ReTerm(name=rt.name, factors=rt.factors, cnames=list(cnames), codes=np.zeros(0, np.int32),
                             group_levels=group_levels, z=np.zeros((0, len(cnames)), order="F"),
                             structure=rt.structure, double_bar=rt.double_bar, exprs=[rt.expr], states=[st]))
    # The pieces in lme4's order (the core's rule), those of a || term then merged into one
    # diagonal term (as the in-memory design: its columns in that order).
    groups = _merge_groups(pieces, core.term_order([len(t.group_levels) for t in pieces]))
    terms = [_merged([pieces[j] for j in g]) for g in groups]
    evaluator = _Evaluator(plan, fixed_state, states)
    evaluator.groups = groups
    evaluator.lookups = [_Lookup(pieces[k].group_levels) for k in range(len(pieces))]

    # --- pass 2 (when the model matrices depend on the levels): the shift and the terms'
    # column statistics ---------------------------------------------------------------------
    acc = seen.stats if levels_free else runner.map_reduce(_StatisticsPass(evaluator), _merge_statistics)
    if acc is None or acc.n == 0:
        raise ValueError("no rows left after dropping rows with missing values")
    if acc.xnames != list(xnames):
        raise ValueError(f"the fixed-effects columns {acc.xnames} of the chunks differ from those of all rows "
                         f"{list(xnames)}")
    n = acc.n
    kept, x_center, y_coef, R = acc.shift()
    dropped = [c for j, c in enumerate(xnames) if j not in kept]
    xnames = [xnames[j] for j in kept]
    evaluator.kept = kept
    p = len(xnames)
    ystats = acc.ystats
    ynorm = math.sqrt(float(ystats.squares[0]))
    if sigma is None and (float(ystats.centred2[0]) == 0.0 or abs(R[p, p]) <= EXACT_FIT_TOL * ynorm):
        raise ValueError(f"the response {parsed.response!r} is constant or fitted exactly by the fixed effects "
                         f"{xnames}: the residual variance would be 0")
    for t in terms:
        if len(t.group_levels) < 2:
            raise ValueError(f"grouping factor {t.name!r} has a single level in the {n} rows used; a random effect "
                             f"needs at least two levels: remove the term {t.label}")
        if sigma is None and len(t.group_levels) >= n:
            raise ValueError(f"grouping factor {t.name!r} has {len(t.group_levels)} levels for {n} observations; "
                             f"the random effect {t.label} and the residual variance are not identifiable")
    term_stats = []
    for g in groups:
        st_ = acc.stats[g[0]]
        if len(g) > 1:
            st_ = core.TermColumnStats()
            st_.merge(acc.stats[g[0]])
            for j in g[1:]:
                st_.append_columns(acc.stats[j])
        term_stats.append(st_)
    transforms = [core.term_transform(st_, t.structure) for st_, t in zip(term_stats, terms)]

    # --- pass 3: the crossproducts, summed ----------------------------------------------
    total = runner.map_reduce(_CrossprodPass(evaluator, terms, x_center, y_coef, transforms), _add_crossprods)
    if total is None or total.n != n:
        raise ValueError(f"the chunks changed between passes ({n} rows, then {0 if total is None else total.n}); pass "
                         "chunks that give the same rows each time they are read")
    design = ChunkedDesign(nobs=int(n), xnames=list(xnames), terms=terms, fixed_state=fixed_state,
                           x_center=x_center, y_coef=y_coef, nchunks=seen.nchunks, ndropped=int(ndrop),
                           dropped_columns=dropped, rows=runner.rows(evaluator))
    model = ChunkedLinearMixedModel.assemble(formula, parsed, design, total, REML=bool(REML), sigma=sigma,
                                             max_dense_bytes=max_dense_bytes, method=method,
                                             response_sd=math.sqrt(float(ystats.centred2[0]) / n))
    if model.method == "exact":
        warn_uncentred(model.core, model.terms, [np.asarray(st_.mean) for st_ in term_stats])
    return model


class ChunkedCoreModel(CoreModel):
    """A :class:`~lmm.model.CoreModel` on crossproducts summed over chunks (no rows kept)."""

    def __init__(self, A: core.Crossprod, terms: Sequence[ReTerm], *, p: int, x_center: np.ndarray,
                 y_coef: np.ndarray, max_dense_bytes: float, reml: bool, sigma: Optional[float]) -> None:
        self._without_rows(terms, p=p, x_center=x_center, y_coef=y_coef, sigma=sigma)
        self._max_dense_bytes = float(max_dense_bytes)
        self.core = core.Model.from_crossprod(A, list(range(len(terms))), self._max_dense_bytes, sigma or 0.0)
        self.terms = [self._design_terms[k] for k in self.core.order]
        self.REML = bool(reml)
        self.theta_scale = np.ones(self.ntheta)

    # Pickled with its crossproducts (sizes set by the levels, not the rows): the core is
    # formed again from them.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["core"] = self.core.crossprod()
        return state

    def __setstate__(self, state: dict) -> None:
        A = state.pop("core")
        self.__dict__.update(state)
        self.core = core.Model.from_crossprod(A, list(range(len(self._design_terms))), self._max_dense_bytes,
                                              self.sigma or 0.0)

    def set_response(self, y: np.ndarray) -> None:
        raise rows_needed("a new response (set_response)")


class ChunkedLinearMixedModel(LinearMixedModel):
    """A :class:`~lmm.LinearMixedModel` built from row chunks (:meth:`LinearMixedModel.from_chunks`).

    Evaluation, fits, results and inference that need only the crossproducts work as
    for the model of all rows; what needs the rows raises NotImplementedError.
    """

    _nobs: int
    _response_sd: float

    def __init__(self, *args, **kwargs) -> None:
        raise TypeError("a ChunkedLinearMixedModel is made by LinearMixedModel.from_chunks(formula, chunks) or "
                        "LinearMixedModel(formula, dask_frame)")

    @classmethod
    def assemble(cls, formula: str, parsed: ParsedFormula, design: ChunkedDesign, A: core.Crossprod, *,
                 REML: bool, sigma: Optional[float], max_dense_bytes: float,
                 response_sd: float, method: str = "auto") -> "ChunkedLinearMixedModel":
        """The model of the crossproducts A summed over the chunks of ``design`` (``method`` as for
        :class:`~lmm.LinearMixedModel`)."""
        from .matrix_free import matrix_free_core

        self = object.__new__(cls)
        self.formula = formula
        self.REML = bool(REML)
        self.sigma = None if sigma is None else float(sigma)
        self.parsed = parsed
        self.design = design  # type: ignore[assignment]
        self._nobs = design.nobs
        self.offset_argument = False
        self.max_dense_bytes = float(max_dense_bytes)
        self.method = "exact"
        too_large = None
        try:
            if method != "matrix-free":
                self._shifted = ChunkedCoreModel(A, design.terms, p=len(design.xnames), x_center=design.x_center,
                                                 y_coef=design.y_coef, max_dense_bytes=self.max_dense_bytes,
                                                 reml=self.REML, sigma=self.sigma)
        except core.DenseLimitError as err:
            if method == "exact":
                raise ValueError(f"cannot set up the model {formula!r}: {err}") from None
            too_large = str(err)
        except ValueError as err:
            raise ValueError(f"cannot set up the model {formula!r}: {err}") from None
        if method == "matrix-free" or too_large is not None:
            self.method = "matrix-free"
            self._shifted = matrix_free_core(lambda: A, design.terms, p=len(design.xnames), x_center=design.x_center,
                                             y_coef=design.y_coef, reml=self.REML, sigma=self.sigma, formula=formula,
                                             too_large=too_large)
        self._core = self._shifted.core
        self.terms = self._shifted.terms
        self._response_sd = response_sd
        return self

    @property
    def nobs(self) -> int:
        return self._nobs

    @property
    def nfixed(self) -> int:
        return len(self.design.xnames)

    def response_core(self) -> CoreModel:
        raise rows_needed("a core for other responses (bootstrap)")

    def with_response(self, y) -> LinearMixedModel:
        raise rows_needed("a refit with another response")

    def fit_many(self, *args, **kwargs):
        raise rows_needed("fit_many (the responses' crossproducts)")

    def fit(self, start=None, *, reml: bool | None = None, optimizer: str = "core", tol: float = 1e-8,
            maxiter: int = 10000, verbose: bool = False, probes: int | None = None, seed: int | None = None):
        """Optimize θ and return the fitted result (see :meth:`LinearMixedModel.fit`)."""
        from .optimize import optimize_theta
        from .results import LmmResult

        reml = self.REML if reml is None else bool(reml)
        if self.method == "matrix-free" or probes is not None or seed is not None:
            res = self._fit_matrix_free(start, reml, optimizer, probes, seed)
        else:
            opt = optimize_theta(self, start=start, reml=reml, optimizer=optimizer, tol=tol, maxiter=maxiter,
                                 verbose=verbose)
            res = LmmResult(self, opt, reml=reml)
        if self.sigma is None and res.sigma <= EXACT_FIT_SIGMA * self._response_sd:
            warnings.warn(f"the residual standard deviation {res.sigma:.3g} is zero to working precision against the "
                          f"response's ({self._response_sd:.3g}): the random effects fit the response exactly, and "
                          "θ is not determined", UserWarning, stacklevel=2)
        return res

class _Tree:
    """Partial results merged pairwise, as a binary counter adds bits, in chunk order.

    Merging two sums of crossed terms costs the sizes of both (their sparse patterns are
    merged), so adding each chunk to one running total costs the total's size per chunk;
    pairwise, each chunk's part is merged about log2(chunks) times. At most log2(chunks)
    partial results are held.
    """

    def __init__(self, merge: Callable[[Any, Any], Any]) -> None:
        self.merge = merge
        self.stack: list[tuple[int, Any]] = []

    def add(self, part: Any) -> None:
        height = 0
        while self.stack and self.stack[-1][0] == height:
            _, older = self.stack.pop()
            part, height = self.merge(older, part), height + 1
        self.stack.append((height, part))

    def total(self) -> Any:
        if not self.stack:
            return None
        out = self.stack.pop()[1]
        while self.stack:
            out = self.merge(self.stack.pop()[1], out)
        return out


class _LocalChunks:
    """The passes over chunks read here, one at a time."""

    def __init__(self, source: Callable[[], Iterator[Any]]) -> None:
        self.source = source

    def map_reduce(self, fn: Callable[[Any, int], Any], merge: Callable[[Any, Any], Any]) -> Any:
        tree = _Tree(merge)
        for k, chunk in enumerate(self.source()):
            tree.add(fn(chunk, k))
            del chunk
            # What the chunk's part and its merges freed goes back to the system: else the
            # heap keeps the largest transient of every chunk resident to the end of the pass.
            core.trim_heap()
        total = tree.total()
        core.trim_heap()
        return total

    def rows(self, evaluator: _Evaluator) -> None:
        return None  # (the chunks are not kept)


class _DaskPartitions:
    """The passes over a Dask data frame's partitions: each partition's part is computed
    where the partition is (a worker of the active ``dask.distributed`` client, else
    Dask's local scheduler), the parts merged in a binary tree of tasks, and only the
    total comes back. The map (with what it holds: levels, states, transforms) is one
    task's input, shipped once to each worker."""

    def __init__(self, frame, plan: _Plan) -> None:
        meta = frame._meta
        check_columns(plan.parsed, meta)  # (the formula's own message, with close matches)
        absent = [c for c in plan.columns if c not in meta.columns]
        if absent:
            raise ValueError(f"the Dask data frame has no columns {absent}; it has {list(meta.columns)}")
        self.frame = frame[plan.columns]

    def map_reduce(self, fn: Callable[[Any, int], Any], merge: Callable[[Any, Any], Any]) -> Any:
        import dask

        mapper = dask.delayed(fn, pure=False)
        combine = dask.delayed(merge, pure=False)
        level = [mapper(part, k) for k, part in enumerate(self.frame.to_delayed())]
        while len(level) > 1:
            level = [combine(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                     for i in range(0, len(level), 2)]
        return level[0].compute() if level else None

    def rows(self, evaluator: _Evaluator) -> "DaskRows":
        return DaskRows(self.frame, evaluator)


def is_dask_frame(data) -> bool:
    """Whether ``data`` is a Dask data frame (without importing Dask)."""
    return type(data).__module__.startswith("dask") and hasattr(data, "to_delayed") and hasattr(data, "map_partitions")


def _runner(chunks, plan: _Plan):
    return _DaskPartitions(chunks, plan) if is_dask_frame(chunks) else _LocalChunks(_chunk_source(chunks))


class DaskRows:
    """The rows of a model fitted from a Dask data frame: per-row outputs (fitted values,
    residuals) are Dask series computed lazily, partition by partition, from the fitted
    coefficients and conditional modes.

    The data frame is not pickled with the model (it may be the data themselves).
    """

    def __init__(self, frame, evaluator: _Evaluator) -> None:
        self.frame = frame
        self.evaluator = evaluator

    def __getstate__(self) -> dict:
        return {"frame": None, "evaluator": self.evaluator}

    def values(self, result, what: str, type: str = "response", scaled: bool = False):
        """A Dask series of ``what`` (``"fitted"`` or ``"residuals"``) on the partitions' index,
        NaN on rows dropped for missing values (as the in-memory results)."""
        if self.frame is None:
            raise NotImplementedError(f"the {what} of a model fitted from a Dask data frame are computed from the "
                                      "data frame, which is not pickled with the model: evaluate them where it was "
                                      "fitted, or with result.predict(partition) on each partition")
        fn = _RowValues(self.evaluator, np.asarray(result.solution.beta), [np.asarray(b) for b in result.solution.b],
                        float(result.sigma), what, type, scaled)
        return self.frame.map_partitions(fn, meta=pd.Series(dtype="float64", name=what))


class _RowValues:
    """Fitted values or residuals of one partition's rows (picklable: shipped to workers)."""

    def __init__(self, evaluator: _Evaluator, beta: np.ndarray, b: list[np.ndarray], sigma: float, what: str,
                 type: str, scaled: bool) -> None:
        self.evaluator, self.beta, self.b, self.sigma = evaluator, beta, b, sigma
        self.what, self.type, self.scaled = what, type, scaled

    def __call__(self, part: pd.DataFrame) -> pd.Series:
        d = self.evaluator.pieces(part, 0)
        eta = d.X @ self.beta
        for codes, z, b in zip(d.codes, d.zs, self.b):
            eta += np.einsum("ij,ij->i", z, b[codes])
        if self.what == "fitted":
            out = eta if d.offset is None else eta + d.offset
        else:
            out = d.y - eta  # (y minus the offset, minus Xβ + Zb)
            if self.type == "pearson" and d.weights is not None:
                out = out * np.sqrt(d.weights) / self.sigma
            elif self.scaled or self.type == "pearson":
                out = out / self.sigma
        if d.rows is not None:
            full = np.full(len(part), np.nan)
            full[d.rows] = out
            out = full
        return pd.Series(out, index=part.index, name=self.what)


def _merge_groups(pieces: list[ReTerm], order: list[int]) -> list[list[int]]:
    """The pieces (indices, in ``order``) that form each term: a run of one-column pieces of
    ``||`` terms on the same grouping factor is one diagonal term, as the in-memory design."""
    groups: list[list[int]] = []
    for k in order:
        t = pieces[k]
        if groups:
            first = pieces[groups[-1][0]]
            if t.double_bar and t.p == 1 and first.double_bar and first.p == 1 and first.factors == t.factors:
                groups[-1].append(k)
                continue
        groups.append([k])
    return groups


def _merged(parts: list[ReTerm]) -> ReTerm:
    """One term of the pieces (a diagonal term of several one-column pieces of a || term)."""
    t = parts[0]
    if len(parts) == 1:
        t.double_bar = t.double_bar and t.p == 1
        return t
    cnames = [c for u in parts for c in u.cnames]
    return ReTerm(name=t.name, factors=t.factors, cnames=cnames, codes=t.codes, group_levels=t.group_levels,
                  z=np.zeros((0, len(cnames)), order="F"), structure="diag", double_bar=True,
                  exprs=[e for u in parts for e in u.exprs], states=[s for u in parts for s in u.states])


def _unknown_levels(new: list, name: str, k: int) -> ValueError:
    return ValueError(f"chunk {k}: the grouping factor {name!r} has levels {new[:5]} that are not among its "
                      "levels (given with levels=?)")


class _Lookup:
    """Codes of a chunk's levels in the global levels of a grouping factor."""

    def __init__(self, levels) -> None:
        self.values = getattr(levels, "values", None)  # integer ids (sorted int64)
        self.levels = levels
        self.index: Optional[pd.Index] = None  # the labels, made when first needed
        self.arrow: Any = None  # the labels as an Arrow array, made when first needed

    def term_codes(self, term, frame: pd.DataFrame, k: int) -> np.ndarray:
        """The chunk's codes of the term's grouping factor in the global levels."""
        if self.values is None and term.group_call is None and len(term.factors) == 1:
            column = frame.get(term.factors[0])
            if column is not None and isinstance(column.dtype, pd.StringDtype) \
                    and str(column.dtype.storage).startswith("pyarrow"):
                return self._string_codes(column, term.name, k)
        return self.codes(*grouping_codes(term, frame), term.name, k)

    def _string_codes(self, column: pd.Series, name: str, k: int) -> np.ndarray:
        # A column of strings is its own labels (R's factor): each row is looked up in
        # the levels in one hash pass in Arrow, without the chunk's own factor (whose
        # levels would be sorted in R's collation only to be mapped here).
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.arrow is None:
            self.arrow = pa.array(self.levels.labels(), pa.large_string())
        values = pa.array(column.array).cast(pa.large_string())
        idx = pc.index_in(values, value_set=self.arrow)
        if idx.null_count:
            raise _unknown_levels(pc.unique(values.filter(pc.is_null(idx))).to_pylist(), name, k)
        return np.ascontiguousarray(idx.to_numpy(zero_copy_only=False), dtype=np.int32)

    def codes(self, local: np.ndarray, local_levels, name: str, k: int) -> np.ndarray:
        lv = getattr(local_levels, "values", None)
        if self.values is not None and lv is not None:
            pos = np.searchsorted(self.values, lv)
            pos = np.minimum(pos, len(self.values) - 1)
            idx = np.where(self.values[pos] == lv, pos, -1)
        else:
            if self.index is None:
                self.index = pd.Index(self.levels.labels(), dtype=object)
            idx = self.index.get_indexer(pd.Index(local_levels.labels(), dtype=object))
        if np.any(idx < 0):
            labels = local_levels.labels()
            raise _unknown_levels([labels[i] for i in np.flatnonzero(idx < 0)[:5]], name, k)
        out = idx[local] if local.size else local
        return np.ascontiguousarray(out, dtype=np.int32)


def _check_scale(xnames: list[str], Rc: np.ndarray, binary: np.ndarray, n: int) -> None:
    """lme4's checkScaleX, as the in-memory design's: warn when the SD of a continuous
    predictor (not all 0/1), or the ratio of two, is beyond 1000. The SDs come from the
    column norms of R of the centred columns."""
    cont = [j for j in range(len(xnames)) if not binary[j]]
    if not cont or n < 2:
        return
    warn_scales([xnames[j] for j in cont], np.linalg.norm(Rc[:, cont], axis=0) / math.sqrt(n - 1))
