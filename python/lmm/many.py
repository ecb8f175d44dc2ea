"""Many fits that share one design: a model per response (genes, voxels, metrics) or per
candidate covariate (a GWAS-style scan).

A model's crossproducts of Z and X and the analysis of its factor are formed once; per
response only Z'y, X'y and y'y differ. The core (``lmm::fit_many``) forms those for a
block of responses at a time by matrix products and fits the responses in threads
without the GIL, each exactly as :func:`lmm.lmer` fits it alone (same start, same
optimizer, same stopping rules): the results equal separate fits to rounding.

Rows with a missing value in a response are dropped for that response only, as a
separate fit would: responses with the same missing rows share one model of the rows
left. Results come as arrays, as a tidy table (:attr:`ManyResult.coefficients`, a row per
response × term) and a table per response (:attr:`ManyResult.fits`); with ``output=`` a
file of the tidy table is written chunk by chunk instead, for 10⁵ responses and more.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import os
import time
import warnings
from typing import Any, Callable, Generator, Iterable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import _core
from ._threads import blas_limit
from .covariance import theta_names as _theta_names
from .design import EXACT_FIT_TOL, RANK_TOL, as_frame
from .inference.common import Progress
from .model import EXACT_FIT_SIGMA, CoreModel, LinearMixedModel, _centred_r_factor, _least_squares, build_core
from .optimize import FTOL

__all__ = ["ManyResult", "fit_many", "lmer_many"]

# The placeholder response a design for many responses is built with (any values do:
# the responses replace it before anything depends on it).
_PLACEHOLDER = ".lmm_many_response"
# Progress is shown on a terminal once a run has taken this many seconds.
_SHOW_AFTER = 1.0


class ManyResult:
    """Fits of many responses (or candidate covariates) on one design.

    Arrays have one row per fit, in the order of ``names``; a fit that failed (a
    constant response, one the fixed effects fit exactly, too few rows left) has NaN
    estimates and its reason in ``error``.

    Attributes:
        names: the responses' (or candidates') names.
        fixef_names: the fixed-effects columns (the candidate's last in a scan).
        theta_names: the covariance parameters' names (the model's ``theta_names``).
        reml: REML fits (else ML).
        theta: (m, ntheta) θ at each optimum, lme4's order.
        beta: (m, p) fixed effects.
        se: (m, p) their standard errors.
        sigma, criterion: (m,) σ̂ and the REML criterion (ML deviance).
        converged, singular: (m,) flags, as :class:`~lmm.results.LmmResult`'s.
        nobs, evaluations: (m,) rows used and criterion evaluations.
        error: (m,) why a fit failed ("" where it did not).
        df, p_value: (m, p) Satterthwaite df and p-values of the t tests (with
            ``satterthwaite=True``; else None).
        seconds: wall time of the whole call.
        n_jobs: threads used.
    """

    def __init__(self, names: list[str], fixef_names: list[str], theta_names: list[str], reml: bool,
                 parts: list[dict], seconds: float, n_jobs: int,
                 refit: Optional[Callable[[int], object]] = None) -> None:
        self.names = list(names)
        self.fixef_names = list(fixef_names)
        self.theta_names = list(theta_names)
        self.reml = reml
        m = len(self.names)

        def stack(key: str, width: int | None = None, dtype=np.float64, fill=np.nan) -> np.ndarray:
            if parts:
                return np.concatenate([part[key] for part in parts])
            return np.full((m,) if width is None else (m, width), fill, dtype=dtype)

        p, nt = len(self.fixef_names), len(self.theta_names)
        self.theta = stack("theta", nt)
        self.beta = stack("beta", p)
        self.se = stack("se", p)
        self.sigma = stack("sigma")
        self.criterion = stack("criterion")
        self.converged = stack("converged", dtype=bool, fill=False)
        self.singular = stack("singular", dtype=bool, fill=False)
        self.nobs = stack("nobs", dtype=np.int64, fill=0)
        self.evaluations = stack("evaluations", dtype=np.int64, fill=0)
        self.error = stack("error", dtype=object, fill="")
        self.df = stack("df", p) if parts and "df" in parts[0] else None
        self.seconds = seconds
        self.n_jobs = n_jobs
        self._refit = refit

    # Pickled with its numbers only: result() needs the responses, which stay behind.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_refit"] = None
        return state

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        failed = int(np.sum(self.error != ""))
        return (f"<ManyResult: {len(self)} fits of {len(self.fixef_names)} fixed effects and "
                f"{len(self.theta_names)} covariance parameters, {int(self.converged.sum())} converged, "
                f"{int(self.singular.sum())} singular, {failed} failed; {self.seconds:.3g} s on {self.n_jobs} "
                f"thread(s)>")

    @property
    def statistic(self) -> np.ndarray:
        """(m, p) t statistics β̂ / SE."""
        return self.beta / self.se

    @property
    def p_value(self) -> Optional[np.ndarray]:
        """(m, p) two-sided p-values of the t tests with Satterthwaite df (None without df)."""
        if self.df is None:
            return None
        return 2 * stats.t.sf(np.abs(self.statistic), self.df)

    @property
    def coefficients(self) -> pd.DataFrame:
        """The tidy table, one row per fit and fixed effect (response, term, estimate,
        std_error, statistic and, with Satterthwaite df, df and p_value)."""
        m, p = self.beta.shape
        table = {
            "response": np.repeat(np.asarray(self.names, dtype=object), p),
            "term": np.tile(np.asarray(self.fixef_names, dtype=object), m),
            "estimate": self.beta.ravel(),
            "std_error": self.se.ravel(),
            "statistic": self.statistic.ravel(),
        }
        p_value = self.p_value
        if self.df is not None and p_value is not None:
            table["df"] = self.df.ravel()
            table["p_value"] = p_value.ravel()
        return pd.DataFrame(table)

    @property
    def fits(self) -> pd.DataFrame:
        """A table with one row per fit, indexed by name, of nobs, criterion, sigma, θ
        (``theta_<name>``), converged, singular, evaluations and error."""
        table: dict = {"nobs": self.nobs, "criterion": self.criterion, "sigma": self.sigma}
        for k, name in enumerate(self.theta_names):
            table[f"theta_{name}"] = self.theta[:, k]
        table.update(converged=self.converged, singular=self.singular, evaluations=self.evaluations,
                     error=self.error)
        return pd.DataFrame(table, index=pd.Index(self.names, name="response"))

    def to_frame(self) -> pd.DataFrame:
        """:attr:`coefficients` with each fit's :attr:`fits` columns beside its rows."""
        return self.coefficients.join(self.fits, on="response")

    def result(self, i: int | str):
        """The full :class:`~lmm.results.LmmResult` of fit ``i`` (a position or a name), fitted again
        alone: everything a single fit offers (random effects, summary, intervals)."""
        if self._refit is None:
            raise NotImplementedError("result() needs the responses in memory; this result was streamed "
                                      "from an iterator of chunks")
        k = self.names.index(i) if isinstance(i, str) else int(i)
        if not -len(self) <= k < len(self):
            raise IndexError(f"fit {i} out of range for {len(self)} fits")
        return self._refit(k % len(self))


def _n_jobs(n_jobs: int | None) -> int:
    """Threads for n_jobs (None or -1: every CPU this process may use)."""
    if n_jobs is None or n_jobs == -1:
        try:
            return max(len(os.sched_getaffinity(0)), 1)
        except AttributeError:
            return os.cpu_count() or 1
    if not isinstance(n_jobs, (int, np.integer)) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive number of threads, -1 or None (all CPUs), not {n_jobs!r}")
    return int(n_jobs)


def fit_progress(total: int, enabled: bool | None, desc: str, verbose: bool = False) -> Progress:
    """Feedback on many fits: a bar on a terminal once the run has taken _SHOW_AFTER seconds
    (advanced by the core while it fits), or with ``verbose`` a line per block on stdout."""
    return Progress(total, enabled, desc=desc, delay=_SHOW_AFTER, verbose=verbose)


def _responses_matrix(Y, n: int, names) -> tuple[np.ndarray, list[str]]:
    """Y as an (n, m) float array and the responses' names."""
    if isinstance(Y, pd.Series):
        Y = Y.to_frame()
    if isinstance(Y, pd.DataFrame):
        got = [str(c) for c in Y.columns]
        try:
            values = Y.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            bad = [str(c) for c in Y.columns if not pd.api.types.is_numeric_dtype(Y[c])]
            raise TypeError(f"the responses must be numeric; not numeric: {bad}") from None
    else:
        arr = np.asarray(Y)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"the responses must be numeric, not of dtype {arr.dtype}")
        values = arr.astype(np.float64, copy=False)
        if values.ndim == 1:
            values = values[:, None]
        got = [f"y{j}" for j in range(values.shape[1])] if values.ndim == 2 else []
    if values.ndim != 2:
        raise ValueError(f"Y must be two-dimensional (rows × responses), not of shape {values.shape}")
    if values.shape[0] != n:
        raise ValueError(f"Y has {values.shape[0]} rows; the model uses {n} (one row per observation it uses)")
    if names is not None:
        got = [str(v) for v in names]
        if len(got) != values.shape[1]:
            raise ValueError(f"{len(got)} names for {values.shape[1]} responses")
    if np.isinf(values).any():
        raise ValueError("the responses have infinite values")
    return values, got


def _chunks(Y, n: int, names, chunk_size: int) -> Iterator[tuple[np.ndarray, list[str]]]:
    """(values, names) blocks of at most chunk_size responses: of one matrix, or of an
    iterator of matrices (streaming)."""
    if isinstance(Y, (np.ndarray, pd.DataFrame, pd.Series)) or not isinstance(Y, Iterable):
        values, got = _responses_matrix(Y, n, names)
        for j0 in range(0, max(values.shape[1], 1), chunk_size):
            yield values[:, j0:j0 + chunk_size], got[j0:j0 + chunk_size]
        return
    if names is not None:
        raise ValueError("names= goes with a matrix of responses; name the chunks' columns (DataFrames) instead")
    offset = 0
    for block in Y:
        values, got = _responses_matrix(block, n, None)
        if not isinstance(block, pd.DataFrame):
            got = [f"y{offset + j}" for j in range(values.shape[1])]
        offset += values.shape[1]
        for j0 in range(0, values.shape[1], chunk_size):
            yield values[:, j0:j0 + chunk_size], got[j0:j0 + chunk_size]


def _subset_core(core: CoreModel, rows: np.ndarray) -> CoreModel:
    """A core of the rows ``rows`` of ``core``'s design (levels no row uses dropped, as lme4
    drops them), for responses missing on the other rows; the shift is the rows' own."""
    terms = []
    for t in core._design_terms:
        present, codes = np.unique(t.codes[rows], return_inverse=True)
        terms.append(dataclasses.replace(t, codes=codes.astype(np.int32).reshape(-1),
                                          group_levels=t.group_levels.take(present),
                                          z=np.asfortranarray(t.z[rows])))
    for t in terms:
        if t.nlevels < 2:
            raise ValueError(f"the grouping factor {t.name!r} has {t.nlevels} level on the rows left")
    X = np.asfortranarray(core._X[rows])
    weights = None if core.weights is None else core.weights[rows]
    x_center = core._x_center.copy()
    if np.any(x_center):
        x_center[1:] = X[:, 1:].mean(axis=0)
    R = _centred_r_factor(X, x_center)
    # The core's rank test (lmm::fit, lme4's tolerance RANK_TOL): each column's residual on
    # those before it against its norm.
    norms = np.sqrt(np.einsum("ij,ij->j", R, R))
    if np.any(np.abs(np.diag(R)) <= RANK_TOL * norms):
        raise ValueError("the fixed-effects columns are not of full rank on the rows left")
    return build_core(terms, X, np.zeros(len(rows)), x_center=x_center, y_coef=np.zeros(X.shape[1]),
                      max_dense_bytes=core._max_dense_bytes, theta_scale=core.theta_scale, reml=core.REML,
                      weights=weights, sigma=core.sigma)


class _Fitter:
    """Fits blocks of complete responses on one core and turns the core's arrays into
    the user's (θ in lme4's order, β for the user's X, failures as NaN)."""

    def __init__(self, core: CoreModel, reml: bool, threads: int, warm_start: bool,
                 columns: Optional[np.ndarray] = None, theta_start: Optional[np.ndarray] = None) -> None:
        self.core, self.reml, self.threads, self.warm_start = core, reml, threads, warm_start
        #: The start of every fit (θ; None: lmer's default start).
        self.theta_start = None if theta_start is None else core._theta(theta_start)
        #: Positions of the core's fixed effects among the model's (a rebuilt design may have fewer).
        self.columns = np.arange(core._X.shape[1]) if columns is None else columns
        if core._R is None:
            core._R = _centred_r_factor(core._X, core._x_center) if core._X.shape[1] else np.zeros((0, 0))
        self.R = core._R

    def fit(self, Y: np.ndarray, bar: Progress, note: str = "fits") -> dict:
        c = self.core
        with blas_limit(1):
            r = c.core.fit_many(c._tuples, c._X, np.asfortranarray(Y), self.R, self.reml, threads=self.threads,
                                warm_start=self.warm_start, theta_start=self.theta_start, theta_scale=c.theta_scale,
                                gradient_tolerance=1e-9, gradient_tolerance_rel=1e-9,
                                relative_decrease_tolerance=FTOL, progress=_progress_of(bar))
        _advance(bar, Y.shape[1], note)
        return _part(r, Y, c.sigma is not None)


def _progress_of(bar: Progress) -> Optional[Callable[[int], None]]:
    """The core's progress callback (fits done so far) advancing ``bar``, or None when it is off."""
    if not bar.enabled:
        return None
    done = {"k": 0}

    def progress(k: int) -> None:
        bar.update(k - done["k"])
        done["k"] = k

    return progress


def _advance(bar: Progress, k: int, note: str) -> None:
    """After the core's run of ``k`` fits: the steps a bar did not see (with ``verbose``, a line)."""
    if not bar.enabled:
        bar.update(k, note)


def _part(r: dict, Y: np.ndarray, sigma_known: bool, what: str = "response", constant_fails: bool = True) -> dict:
    """The core's per-fit arrays as the user's (a row per fit), with the failures a single fit
    refuses before fitting (the design's checks of its response; ``Y`` its columns, the
    responses or candidates) marked and set to NaN."""
    m = Y.shape[1]
    error = np.asarray(r["error"], dtype=object)
    sigma = np.asarray(r["sigma"])
    # σ̂ against the residual SD on X, where the random effects fit y exactly.
    rms = np.sqrt(np.asarray(r["residual_ss"]) / max(Y.shape[0], 1))
    constant = (np.max(Y, axis=0) == np.min(Y, axis=0)) if Y.shape[0] else np.ones(m, dtype=bool)
    constant &= constant_fails
    exact_x = np.asarray(r["residual_ratio"]) <= EXACT_FIT_TOL
    exact_z = (sigma <= EXACT_FIT_SIGMA * rms) & (not sigma_known)
    error[(error == "") & exact_z] = "fitted exactly by the random effects: the residual variance is 0"
    error[exact_x & ~constant] = "fitted exactly by the fixed effects: the residual variance would be 0"
    error[constant] = f"the {what} is constant"
    failed = error != ""
    out = {
        "theta": np.asarray(r["theta"]).T.copy(),
        "beta": np.asarray(r["beta"]).T.copy(),
        "se": np.asarray(r["se"]).T.copy(),
        "sigma": sigma.copy(),
        "criterion": np.asarray(r["criterion"]).copy(),
        "converged": np.asarray(r["converged"]) & ~failed,
        "singular": np.asarray(r["singular"]) & ~failed,
        "nobs": np.full(m, Y.shape[0], dtype=np.int64),
        "evaluations": np.asarray(r["evaluations"], dtype=np.int64),
        "error": error,
    }
    for key in ("theta", "beta", "se", "sigma", "criterion"):
        out[key][failed] = np.nan
    return out


def _empty_part(m: int, p: int, nt: int, error: str, nobs: int = 0) -> dict:
    return {"theta": np.full((m, nt), np.nan), "beta": np.full((m, p), np.nan), "se": np.full((m, p), np.nan),
            "sigma": np.full(m, np.nan), "criterion": np.full(m, np.nan), "converged": np.zeros(m, dtype=bool),
            "singular": np.zeros(m, dtype=bool), "nobs": np.full(m, nobs, dtype=np.int64),
            "evaluations": np.zeros(m, dtype=np.int64), "error": np.full(m, error, dtype=object)}


def _fit_chunk(model: LinearMixedModel, Y: np.ndarray, reml: bool, threads: int, warm_start: bool,
               fitters: dict, bar: Progress, missing_model: Callable[[np.ndarray], LinearMixedModel]) -> dict:
    """The fits of one block of responses (n × k, NaN where missing), in their order."""
    p, nt = model.nfixed, model.ntheta
    offset = model.design.offset
    # One copy in column order (the core's): each response's values are contiguous.
    Y_fit = np.asfortranarray(Y if offset is None else Y - offset[:, None])
    present = ~np.isnan(Y_fit)
    complete = present.all(axis=0)
    out = _empty_part(Y.shape[1], p, nt, "")
    groups: dict[bytes, list[int]] = {}
    for j in np.flatnonzero(~complete):
        groups.setdefault(np.packbits(present[:, j]).tobytes(), []).append(int(j))
    if complete.all():
        work = [(None, np.arange(Y.shape[1]))]
    else:
        work = [(None, np.flatnonzero(complete))] + [(present[:, cols[0]], np.asarray(cols))
                                                     for cols in groups.values()]
    for rows_mask, cols in work:
        if cols.size == 0:
            continue
        if rows_mask is None:
            key, Ysub = b"", (Y_fit if cols.size == Y_fit.shape[1] else np.asfortranarray(Y_fit[:, cols]))
        else:
            key = np.packbits(rows_mask).tobytes()
            Ysub = np.asfortranarray(Y_fit[np.ix_(rows_mask, cols)])
        if key not in fitters:
            try:
                sub = model if rows_mask is None else missing_model(np.flatnonzero(rows_mask))
                names = model.design.xnames
                fitters[key] = _Fitter(sub._shifted, reml, threads, warm_start,
                                       np.array([names.index(x) for x in sub.design.xnames]))
            except ValueError as err:
                fitters[key] = f"no model on the {Ysub.shape[0]} rows without a missing value: {err}"
        fitter = fitters[key]
        if isinstance(fitter, str):
            part = _empty_part(cols.size, p, nt, fitter, nobs=Ysub.shape[0])
            bar.update(cols.size, "failed")
        else:
            part = fitter.fit(Ysub, bar)
        for k, v in part.items():
            if k in ("beta", "se") and v.shape[1] != p:
                # (lmer dropped a column aliased on these rows: NaN in its place.)
                full = np.full((cols.size, p), np.nan)
                full[:, fitter.columns] = v
                v = full
            out[k][cols] = v
    return out


def _satterthwaite_df(model: LinearMixedModel, Y: np.ndarray, part: dict, reml: bool,
                      missing_model: Optional[Callable[[np.ndarray], LinearMixedModel]]) -> np.ndarray:
    """(k, p) Satterthwaite df of each fit in a block, from each response's own result."""
    from .inference.satterthwaite import satterthwaite_setup, variance_and_df
    from .optimize import OptimizeResult
    from .results import LmmResult

    k, p = part["beta"].shape
    df = np.full((k, p), np.nan)
    for j in range(k):
        if part["error"][j]:
            continue
        y = Y[:, j]
        rows = ~np.isnan(y)
        if rows.all() or missing_model is None:
            m = model.with_response(y)
        else:
            m = missing_model(np.flatnonzero(rows)).with_response(y[rows])
        theta = part["theta"][j]
        opt = OptimizeResult(theta=theta, objective=float(part["criterion"][j]), optimizer="core", nfev=0, ngev=0,
                             time=0.0, message="", converged=bool(part["converged"][j]),
                             gradient=np.zeros(theta.size))
        s = satterthwaite_setup(LmmResult(m, opt, reml=reml))
        df[j] = [variance_and_df(s, e)[1] for e in np.eye(p)]
    return df


class _Writer:
    """The tidy table written chunk by chunk (parquet through pyarrow, or CSV)."""

    def __init__(self, path) -> None:
        self.path = os.fspath(path)
        self.parquet = self.path.endswith((".parquet", ".pq"))
        if not self.parquet and not self.path.endswith((".csv", ".csv.gz", ".tsv")):
            raise ValueError(f"output must name a .parquet or .csv file, not {self.path!r}")
        self.writer: Any = None
        self.first = True

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise ImportError("output= to parquet needs pyarrow (pip install pyarrow)") from None
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.path, table.schema)
            self.writer.write_table(table)
        else:
            frame.to_csv(self.path, mode="w" if self.first else "a", header=self.first, index=False,
                         sep="\t" if self.path.endswith(".tsv") else ",")
        self.first = False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def fit_many(model: LinearMixedModel, Y, *, names=None, reml: bool | None = None, n_jobs: int | None = None,
             warm_start: bool = False, satterthwaite: bool = False, progress: bool | None = None, output=None,
             chunk_size: int = 4096, verbose: bool = False, client=None,
             _rebuild: Optional[Callable[[np.ndarray], LinearMixedModel]] = None):
    """Fit each column of ``Y`` as the response of ``model``'s design.

    Each response is fitted as ``lmm.lmer`` would fit it alone (the same start,
    optimizer and stopping rules: criterion, θ, β and SEs agree with separate fits to
    rounding), but the design's crossproducts and the factor's analysis are built once
    and the fits run in C++ threads.

    Args:
        model: the design (its own response is not used).
        Y: (nobs, m) responses, one row per row the model uses (a NumPy array, or a
            DataFrame whose columns name the responses), or an iterable of such blocks
            (streamed: with ``output``, memory then holds one block at a time). NaN marks a
            missing value: those rows are dropped for that response only (levels no row
            uses are dropped, as lme4 would; the design's stateful transforms, learned on
            every row, are kept).
        names: names of the responses (default: the DataFrame's columns, or ``y0``, ``y1``, ...).
        reml: REML (default: the model's) or ML.
        n_jobs: threads (None or -1: every CPU; with ``client``, threads per task, default
            1); BLAS runs on one thread meanwhile.
        warm_start: start each fit after the first of a block at the previous optimum
            (unless that fit was singular): fewer evaluations on similar responses, but
            results that depend on the order of the responses, within the optimizer's
            tolerance or, where a criterion has several local minima, by reaching another.
        satterthwaite: also the Satterthwaite df of each t test (lmerTest's), from each
            response's exact gradients (a few ms per response).
        progress: a progress bar (None: on a terminal, for runs longer than a second).
        verbose: a line per block of fits on stdout instead of the bar.
        output: a ``.parquet`` or ``.csv`` path: the tidy table (:meth:`ManyResult.to_frame`)
            is written there chunk by chunk and the path returned.
        chunk_size: responses per block (with ``client``, the most per task).
        client: a ``dask.distributed`` Client: blocks of responses are fitted on its
            workers (Satterthwaite's df too) and come back in order, written to ``output``
            here as they arrive (see :mod:`lmm.cluster`); the results are those fitted here.

    Returns:
        ManyResult, or the path written with ``output``.
    """
    t0 = time.perf_counter()
    reml = model.REML if reml is None else bool(reml)
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of responses, not {chunk_size!r}")
    if client is not None:
        from . import cluster

        client = cluster.as_client(client)
    threads = _n_jobs(1 if client is not None and n_jobs is None else n_jobs)
    n = model.nobs
    work = _Responses(model, reml, threads, warm_start, satterthwaite, _rebuild)
    missing_model = _Subsets(model, _rebuild)
    total = _count(Y)
    bar = fit_progress(total if total is not None else 0, progress if total is not None else False, "fits", verbose)
    size = int(chunk_size) if client is None or total is None else cluster.block_size(client, total, chunk_size)
    chunks = _chunks(Y, n, names, size)
    fitters: dict = {}
    sent: collections.deque = collections.deque()  # the blocks out, in order

    def blocks() -> Iterator[tuple[np.ndarray, int, str]]:
        for values, got in chunks:
            sent.append((values, got))
            yield values, values.shape[1], "fits"

    if client is None:
        results: Generator[dict, None, None] = (work.fit(values, bar, fitters, missing_model)
                                                for values, _, _ in blocks())
    else:
        results = cluster.map_blocks(client, _responses_task, work, blocks(), bar)
        threads *= cluster.worker_threads(client)
    writer = _Writer(output) if output is not None else None
    parts: list[dict] = []
    all_names: list[str] = []
    kept: list[np.ndarray] = []
    try:
        for part in results:
            values, got = sent.popleft()
            if writer is not None:
                chunk = ManyResult(got, model.design.xnames, _theta_names(model.terms), reml, [part], 0.0, threads)
                writer.write(chunk.to_frame())
            else:
                parts.append(part)
                all_names += got
                if total is not None:  # (blocks of a matrix: views; of an iterator: not kept)
                    kept.append(values)
    finally:
        results.close()  # (with a client: what is still running is cancelled)
        bar.close()
        if writer is not None:
            writer.close()
    if writer is not None:
        return writer.path
    if len(set(all_names)) < len(all_names):
        warnings.warn("some responses share a name; result() by name picks the first", UserWarning, stacklevel=2)
    starts = np.cumsum([0] + [b.shape[1] for b in kept])

    def refit(k: int):
        b = int(np.searchsorted(starts, k, side="right")) - 1
        y = kept[b][:, k - starts[b]]
        rows = ~np.isnan(y)
        m = model.with_response(y) if rows.all() else missing_model(np.flatnonzero(rows)).with_response(y[rows])
        return m.fit(reml=reml)

    return ManyResult(all_names, model.design.xnames, _theta_names(model.terms), reml, parts,
                      time.perf_counter() - t0, threads, refit if total is not None else None)


class _Subsets:
    """The model on the rows a response does not miss (``rows``, positions among its rows):
    its arrays' subset, or (where that is not of full rank, or a factor keeps one level) the
    design built again as lmer would build it (``rebuild``); one per set of rows."""

    def __init__(self, model: LinearMixedModel, rebuild: Optional[Callable[[np.ndarray], LinearMixedModel]]) -> None:
        self.model, self.rebuild = model, rebuild
        self.models: dict[bytes, LinearMixedModel] = {}

    def __call__(self, rows: np.ndarray) -> LinearMixedModel:
        key = np.packbits(np.isin(np.arange(self.model.nobs), rows)).tobytes()
        if key not in self.models:
            try:
                self.models[key] = _subset_model(self.model, rows)
            except ValueError:
                if self.rebuild is None:
                    raise
                self.models[key] = self.rebuild(rows)
        return self.models[key]


@dataclasses.dataclass
class _Responses:
    """What fitting a block of responses needs (pickled once to each worker with ``client=``)."""

    model: LinearMixedModel
    reml: bool
    threads: int
    warm_start: bool
    satterthwaite: bool
    rebuild: Optional[Callable[[np.ndarray], LinearMixedModel]]

    def __post_init__(self) -> None:
        # The design's R factor (cached on its core) formed once here: the tasks that share
        # the model on a worker then only read it.
        _Fitter(self.model._shifted, self.reml, self.threads, self.warm_start)

    def fit(self, values: np.ndarray, bar: Progress, fitters: dict, missing_model: _Subsets) -> dict:
        """The fits of the block ``values`` (n × k, NaN where missing), Satterthwaite's df with them."""
        part = _fit_chunk(self.model, values, self.reml, self.threads, self.warm_start, fitters, bar, missing_model)
        if self.satterthwaite:
            part["df"] = _satterthwaite_df(self.model, values, part, self.reml, missing_model)
        return part


def _responses_task(work: _Responses, values: np.ndarray) -> dict:
    """A worker's block of responses (numbers only travel back)."""
    return work.fit(values, Progress(values.shape[1], False), {}, _Subsets(work.model, work.rebuild))


def _count(Y) -> Optional[int]:
    """The number of responses when known before the run (None for an iterator)."""
    if isinstance(Y, (pd.DataFrame, pd.Series)):
        return Y.shape[1] if Y.ndim == 2 else 1
    if isinstance(Y, np.ndarray) or not isinstance(Y, Iterable):
        shape = np.shape(Y)
        return shape[1] if len(shape) == 2 else 1
    return None


def _subset_model(model: LinearMixedModel, rows: np.ndarray) -> LinearMixedModel:
    """``model`` on the rows ``rows`` (positions among its rows), as :func:`_subset_core`."""
    core = _subset_core(model._shifted, rows)
    d = model.design
    new = copy.copy(model)
    new.design = dataclasses.replace(
        d, y=d.y[rows], X=core._X, terms=core._design_terms, rows=d.rows[rows], x_center=core._x_center,
        y_coef=np.zeros(d.X.shape[1]), weights=core.weights, offset=None if d.offset is None else d.offset[rows],
        positions=(rows if d.positions is None else d.positions[rows]))
    new._shifted = core
    new._core = core.core
    new.terms = core.terms
    return new


def _split_formula(formula: str) -> tuple[str, str]:
    """(left-hand side, right-hand side) of a formula's text ('' for a one-sided one)."""
    if not isinstance(formula, str):
        raise TypeError(f"the formula must be a string, not {type(formula).__name__}")
    depth = 0
    for i, ch in enumerate(formula):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "~" and depth == 0:
            return formula[:i].strip(), formula[i + 1:].strip()
    raise ValueError(f"the formula {formula!r} has no '~' (write it as '~ x + (1 | g)')")


def lmer_many(formula: str, data, *, responses: Sequence[str] | None = None, Y=None, vary=None,
              REML: bool = True, weights=None, offset=None, contrasts=None, missing: str = "drop",
              double_bar: str = "split", n_jobs: int | None = None, warm_start: bool = False,
              satterthwaite: bool = False, progress: bool | None = None, output=None, chunk_size: int = 4096,
              verbose: bool = False, client=None):
    """Many ``lmer`` fits on one design: one per response, or one per candidate covariate.

    Args:
        formula: an lme4 formula. With ``responses`` or ``Y`` it may be one-sided
            (``"~ cond + (1 | sample)"``); with ``vary`` it names the one response.
        data: the data (pandas, polars, pyarrow, a dict of columns).
        responses: columns of ``data`` to fit, one model each.
        Y: responses not in ``data``: an (n_rows × m) array or DataFrame with a row per
            row of ``data`` (or an iterable of such blocks, streamed with ``output``).
        vary: candidate columns (an (n_rows × c) array or DataFrame, a row per row of
            ``data``): one fit per candidate, the candidate added to the fixed effects as
            its last column (a scan as in GWAS); the fits' ``names`` are the candidates'.
        REML, weights, offset, contrasts, missing, double_bar: as :func:`lmm.lmer`; rows
            missing in a predictor are dropped for every fit, rows missing in a response
            for that response only (as separate fits would drop them).
        n_jobs, warm_start, satterthwaite, progress, output, chunk_size, verbose, client:
            see :func:`fit_many` (``client``, a ``dask.distributed`` Client, fits blocks of
            responses on its workers; not yet with ``vary``).

    Returns:
        ManyResult (or the path written, with ``output``).

    Example:
        >>> import lmm, numpy as np
        >>> d = lmm.datasets.load("sleepstudy")
        >>> d["noisy"] = d["Reaction"] + np.random.default_rng(0).normal(0, 10, len(d))
        >>> res = lmm.lmer_many("~ Days + (Days | Subject)", d, responses=["Reaction", "noisy"])
        >>> round(float(res.criterion[0]), 3)
        1743.628
    """
    lhs, rhs = _split_formula(formula)
    if vary is not None:
        if responses is not None or Y is not None:
            raise NotImplementedError("vary= scans candidates for one response (the formula's); fit several "
                                      "responses with one scan each")
        if not lhs:
            raise ValueError("with vary=, the formula names the response ('y ~ x + (1 | g)')")
        if client is not None:
            raise NotImplementedError("client= with vary= (a scan of candidates) is not implemented yet; "
                                      "scan on this machine (its C++ threads), or fit the responses= on the client")
        return _scan(formula, data, vary, REML=REML, weights=weights, offset=offset, contrasts=contrasts,
                     missing=missing, double_bar=double_bar, n_jobs=n_jobs, progress=progress, output=output,
                     satterthwaite=satterthwaite, verbose=verbose)
    if (responses is None) == (Y is None):
        raise TypeError("give the responses as responses= (columns of data) or as Y= (an array), one of them")
    if lhs:
        raise ValueError(f"the formula has a response ({lhs!r}) and responses are given as well: write it "
                         f"one-sided, '~ {rhs}'")
    frame = as_frame(data)
    if responses is not None:
        responses = [responses] if isinstance(responses, str) else list(responses)
        unknown = [r for r in responses if r not in frame.columns]
        if unknown:
            raise ValueError(f"unknown response columns {unknown}; the data has {list(frame.columns)[:20]}")
        Y = frame[responses]
    frame = frame.copy(deep=False)
    frame[_PLACEHOLDER] = np.random.default_rng(0).standard_normal(len(frame))
    f = f"`{_PLACEHOLDER}` ~ {rhs}"
    model = LinearMixedModel(f, frame, REML=REML, weights=weights, offset=offset, contrasts=contrasts,
                             missing=missing, double_bar=double_bar)
    positions = model.design.positions

    def rows_of(block):
        if positions is None:
            return block
        if isinstance(block, (pd.DataFrame, pd.Series)):
            return block.iloc[positions]
        return np.asarray(block)[positions]

    def rebuild(rows: np.ndarray) -> LinearMixedModel:
        # The design of the data with the rows a response misses dropped, as lmer builds it.
        keep = np.zeros(len(frame), dtype=bool)
        keep[rows if positions is None else positions[rows]] = True
        sub = frame.copy(deep=False)
        sub[_PLACEHOLDER] = np.where(keep, frame[_PLACEHOLDER].to_numpy(), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LinearMixedModel(f, sub, REML=REML, weights=weights, offset=offset, contrasts=contrasts,
                                    missing=missing, double_bar=double_bar)

    if isinstance(Y, (np.ndarray, pd.DataFrame, pd.Series)) or not isinstance(Y, Iterable):
        nrows = np.shape(Y)[0]
        if nrows != len(frame):
            raise ValueError(f"Y has {nrows} rows; the data has {len(frame)} (one row of Y per row of data)")
        Y_model = rows_of(Y)
    else:
        Y_model = (rows_of(block) for block in Y)
    return fit_many(model, Y_model, reml=REML, n_jobs=n_jobs, warm_start=warm_start, satterthwaite=satterthwaite,
                    progress=progress, output=output, chunk_size=chunk_size, verbose=verbose, client=client,
                    _rebuild=rebuild)


def _with_column(model: LinearMixedModel, g: np.ndarray, name: str) -> LinearMixedModel:
    """``model`` with the column ``g`` (one value per row it uses) added to X last."""
    d = model.design
    X = np.asfortranarray(np.column_stack([d.X, g]))
    intercept = d.X.shape[1] > 0 and np.min(d.X[:, 0]) == 1.0 == np.max(d.X[:, 0])
    x_center = np.append(d.x_center, float(np.mean(g)) if intercept else 0.0)
    new = copy.copy(model)
    new.design = dataclasses.replace(d, X=X, xnames=d.xnames + [name], x_center=x_center, y_coef=np.zeros(0))
    R = _centred_r_factor(X, x_center)
    core = build_core(d.terms, X, d.y_fit, x_center=x_center, y_coef=_least_squares(R, X, x_center, d.y_fit),
                      max_dense_bytes=model.max_dense_bytes, theta_scale=model.theta_scale, reml=model.REML,
                      weights=d.weights, sigma=model.sigma)
    core._R = R
    new.design.y_coef = core._y_coef
    new._shifted = core
    new._core = core.core
    return new


def _scan(formula: str, data, vary, *, REML: bool, weights, offset, contrasts, missing: str, double_bar: str,
          n_jobs: int | None, progress: bool | None, output, satterthwaite: bool,
          verbose: bool) -> ManyResult | str:
    """One fit per candidate column, added to the fixed effects last (lmer_many's ``vary``).

    Each candidate's model shares the design's random-effects terms (level codes and
    columns) and X; its crossproducts are formed for X with the candidate (one pass) and
    fitted as a separate ``lmer`` of ``y ~ ... + candidate`` would be. Rows where a
    candidate is missing are dropped for that candidate.
    """
    t0 = time.perf_counter()
    frame = as_frame(data)
    model = LinearMixedModel(formula, frame, REML=REML, weights=weights, offset=offset, contrasts=contrasts,
                             missing=missing, double_bar=double_bar)
    positions = model.design.positions
    if isinstance(vary, pd.Series):
        vary = vary.to_frame()
    G, names = _responses_matrix(vary, len(frame), None)
    if positions is not None:
        G = G[positions]
    clash = [c for c in names if c in model.design.xnames]
    if clash:
        raise ValueError(f"candidates named as fixed effects of the model: {clash}")
    threads = _n_jobs(n_jobs)
    subsets: dict[bytes, LinearMixedModel] = {}

    def fit_one(j: int, satterthwaite: bool = False) -> tuple[dict, Optional[LinearMixedModel]]:
        g = G[:, j]
        rows = ~np.isnan(g)
        base = model
        try:
            if not rows.all():
                key = np.packbits(rows).tobytes()
                if key not in subsets:
                    subsets[key] = _subset_model(model, np.flatnonzero(rows))
                base = subsets[key]
            if np.ptp(g[rows]) == 0 and "(Intercept)" in base.design.xnames:
                raise ValueError("the candidate is constant")
            mj = _with_column(base, g[rows], names[j])
        except ValueError as err:
            return _empty_part(1, model.nfixed + 1, model.ntheta, str(err), nobs=int(rows.sum())), None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = _Fitter(mj._shifted, model.REML, 1, False).fit(mj.design.y_fit[:, None], Progress(1, False))
        if satterthwaite:
            part["df"] = _satterthwaite_df(mj, mj.design.y[:, None], part, model.REML, None)
        return part, mj

    # Candidates without missing values: the core's scan (a model per candidate built and
    # fitted in C++ threads); the others (rows dropped per candidate) one by one here.
    bar = fit_progress(len(names), progress, "scan", verbose)
    complete = ~np.isnan(G).any(axis=0)
    part = _empty_part(len(names), model.nfixed + 1, model.ntheta, "")
    core = model._shifted
    try:
        idx = np.flatnonzero(complete)
        if idx.size:
            Gc = np.asfortranarray(G[:, idx])
            with blas_limit(1):
                r = _core.fit_scan(core._tuples, core._X, model.design.y_fit, Gc, core._max_dense_bytes,
                                   weights=core.weights, sigma=core.sigma or 0.0, reml=model.REML, threads=threads,
                                   gradient_tolerance=1e-9, gradient_tolerance_rel=1e-9,
                                   relative_decrease_tolerance=FTOL, progress=_progress_of(bar))
            intercept = model.design.xnames[:1] == ["(Intercept)"]
            for k, v in _part(r, Gc, core.sigma is not None, "candidate", intercept).items():
                part[k][idx] = v
            _advance(bar, idx.size, "candidates")
        for j in np.flatnonzero(~complete):
            for k, v in fit_one(int(j))[0].items():
                part[k][j] = v[0]
            bar.update(1, f"candidate {names[j]!r}")
    finally:
        bar.close()
    if satterthwaite:
        part["df"] = np.full(part["beta"].shape, np.nan)
        for j in np.flatnonzero(part["error"] == ""):
            one, mj = fit_one(int(j), satterthwaite=True)
            part["df"][j] = one["df"][0]
    parts = [part]

    def refit(k: int):
        part, mj = fit_one(k)
        if mj is None:
            raise ValueError(f"candidate {names[k]!r}: {part['error'][0]}")
        return mj.fit()

    result = ManyResult(names, model.design.xnames + ["(candidate)"], _theta_names(model.terms), model.REML, parts,
                        time.perf_counter() - t0, threads, refit)
    if output is None:
        return result
    writer = _Writer(output)
    try:
        writer.write(result.to_frame())
    finally:
        writer.close()
    return writer.path
