"""Parametric bootstrap as lme4's bootMer, refitting only the response, in parallel threads."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ..covariance import theta_to_sdcor, varpar_names
from ..optimize import optimize_theta
from .common import Progress, blas_single_thread, percent_names

__all__ = ["BootstrapResult", "bootstrap"]


@dataclass
class BootstrapResult:
    """Parametric bootstrap replicates, as lme4's ``bootMer`` with ``confint``'s statistics.

    Attributes:
        replicates: DataFrame, one row per replicate, columns ``.sig01``..., ``.sigma``
            and the fixed effects (lme4's names), plus ``theta`` entries as ``theta_<name>``.
        estimates: the same statistics for the fit (``t0``).
        converged: per replicate, whether the refit converged.
        seconds: wall time.
        n_jobs: workers used.
    """

    replicates: pd.DataFrame
    estimates: pd.Series
    converged: np.ndarray
    seconds: float
    n_jobs: int

    @property
    def statistics(self) -> list[str]:
        return list(self.estimates.index)

    def confint(self, level: float = 0.95, type: str = "perc") -> pd.DataFrame:
        """Percentile (``"perc"``), basic or normal intervals, as boot's ``confint`` of lme4."""
        lo_name, hi_name = percent_names(level)
        a = (1 - level) / 2
        t = self.replicates[self.statistics]
        t0 = self.estimates
        if type == "perc":
            lo, hi = _boot_quantile(t, a), _boot_quantile(t, 1 - a)
        elif type == "basic":
            lo, hi = 2 * t0 - _boot_quantile(t, 1 - a), 2 * t0 - _boot_quantile(t, a)
        elif type == "norm":
            z = stats.norm.ppf(1 - a)
            bias = t.mean() - t0
            sd = t.std(ddof=1)
            lo, hi = t0 - bias - z * sd, t0 - bias + z * sd
        else:
            raise ValueError("type must be 'perc', 'basic' or 'norm'")
        return pd.DataFrame({lo_name: lo, hi_name: hi})

    def __repr__(self) -> str:
        return (f"<BootstrapResult {len(self.replicates)} replicates, {int(self.converged.sum())} converged, "
                f"{self.seconds:.2f} s on {self.n_jobs} worker(s)>")


def _boot_quantile(t: pd.DataFrame, p: float) -> pd.Series:
    """boot's norm.inter order-statistic quantile (type of boot.ci 'perc') without interpolation quirks."""
    return t.quantile(p, interpolation="linear")


class _Refitter:
    """Per-worker state: a core of the model's design (with its shift), y replaced per replicate."""

    def __init__(self, res, simulate: Callable[[np.random.Generator], np.ndarray]) -> None:
        self.core = res.model.response_core()
        self.reml = res.REML
        self.theta0 = res.par
        self.simulate = simulate
        self.offset = res.model.design.offset

    def refit(self, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool]:
        self.core.set_response(y if self.offset is None else y - self.offset)
        opt = optimize_theta(self.core, start=self.theta0, reml=self.reml)
        sol = self.core.solution(opt.theta, reml=self.reml)
        return opt.theta, sol.sigma, sol.beta, bool(opt.converged)


def _run_chunk(refitter: _Refitter, seeds, ntheta: int, p: int):
    out = np.empty((len(seeds), ntheta + 1 + p + 1))
    for r, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        theta, sigma, beta, ok = refitter.refit(refitter.simulate(rng))
        out[r] = np.concatenate([theta, [sigma], beta, [float(ok)]])
    return out


def _run_bootstrap(chunks, results, make_refitter, ntheta, p, n_jobs, bar) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    try:
        if n_jobs == 1:
            refitter = make_refitter()
            for k, ch in enumerate(chunks):
                results[k] = _run_chunk(refitter, ch, ntheta, p)
                bar.update(len(ch), "replicates")
        else:
            import threading
            local = threading.local()

            def work(k: int):
                if not hasattr(local, "refitter"):
                    local.refitter = make_refitter()
                return k, _run_chunk(local.refitter, chunks[k], ntheta, p)

            with ThreadPoolExecutor(max_workers=n_jobs) as ex:
                futures = [ex.submit(work, k) for k in range(len(chunks))]
                for fut in as_completed(futures):
                    k, out = fut.result()
                    results[k] = out
                    bar.update(len(chunks[k]), "replicates")
    finally:
        bar.close()


def _default_jobs(res) -> int:
    """All CPUs when one evaluation of the objective takes long enough for threads to pay off.

    Below ~1 ms per evaluation the optimizer's Python work (under the GIL) dominates and
    threads only contend; above it the core's work (without the GIL) runs in parallel.
    """
    t0 = time.perf_counter()
    for _ in range(3):
        res.model.objective_and_gradient(res.par, reml=res.REML)
    per_eval = (time.perf_counter() - t0) / 3
    return (os.cpu_count() or 1) if per_eval > 1e-3 else 1


def bootstrap(res, nsim: int = 500, seed=None, use_u: bool = False, n_jobs: int | None = None,
              progress: bool | None = None, chunk: int = 16, verbose: bool = False) -> BootstrapResult:
    """Parametric bootstrap (lme4's ``bootMer(type = "parametric")``).

    Each replicate simulates y from the fitted model (new random effects unless
    ``use_u``) and refits θ with the same criterion, starting at θ̂. Only the response
    changes: each worker keeps a core of the model's design (made by
    :meth:`~lmm.model.LinearMixedModel.response_core`, with the model's shift) whose
    crossproducts of Z and X are formed once. The responses come from the result's
    simulator (:func:`lmm.results.predict.simulate_response`). Workers are threads (the
    core releases the GIL while it computes, so threads pay off when evaluations are not
    tiny); replicate r uses its own random stream spawned from ``seed``, so results do
    not depend on ``n_jobs``.

    Args:
        res: the fitted result.
        nsim: number of replicates.
        seed: seed of ``numpy.random.SeedSequence``.
        use_u: keep the conditional modes b̂ fixed and simulate only the noise.
        n_jobs: worker threads (default: the number of CPUs when an evaluation of the
            objective takes over 1 ms, else 1).
        progress: show a progress bar (default: when stderr is a terminal).
        chunk: replicates per task.
        verbose: print a line per task done (``chunk`` replicates).

    Returns:
        BootstrapResult.
    """
    from ..results.predict import simulate_response

    model = res.model
    ntheta, p = model.ntheta, model.nfixed
    seeds = np.random.SeedSequence(seed).spawn(nsim)
    if n_jobs is None:
        n_jobs = _default_jobs(res)
    n_jobs = max(1, min(int(n_jobs), max(1, nsim // max(1, chunk))))

    def make_refitter() -> _Refitter:
        return _Refitter(res, lambda rng: simulate_response(model, res.solution, rng, use_u=use_u))

    bar = Progress(nsim, progress, desc="bootstrap", verbose=verbose)
    t0 = time.perf_counter()
    chunks = [seeds[i:i + chunk] for i in range(0, nsim, chunk)]
    results: list = [None] * len(chunks)
    with blas_single_thread():
        _run_bootstrap(chunks, results, make_refitter, ntheta, p, n_jobs, bar)
    seconds = time.perf_counter() - t0
    raw = np.vstack(results) if results else np.empty((0, ntheta + p + 2))
    vn = varpar_names(model.terms)
    xnames = list(res.fixef.index)
    rows = [np.concatenate([theta_to_sdcor(r[:ntheta], r[ntheta], model.terms), r[ntheta + 1:ntheta + 1 + p]])
            for r in raw]
    frame = pd.DataFrame(rows, columns=vn + xnames)
    for i, name in enumerate(res.par_names):
        frame[f"theta_{name}"] = raw[:, i]
    t0_stats = pd.Series(np.concatenate([theta_to_sdcor(res.par, res.sigma, model.terms), res.fixef.to_numpy()]),
                         index=vn + xnames)
    return BootstrapResult(replicates=frame, estimates=t0_stats, converged=raw[:, -1].astype(bool),
                           seconds=seconds, n_jobs=n_jobs)
