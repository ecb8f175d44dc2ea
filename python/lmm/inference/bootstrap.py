"""Parametric bootstrap as lme4's bootMer, refitting only the response, in parallel threads."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from ..covariance import theta_to_sdcor, varpar_names
from .common import Progress, percent_names

if TYPE_CHECKING:
    from ..many import _Fitter
    from ..model import LinearMixedModel, Solution

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
        n_jobs: threads used (with a client: its workers' threads times the threads per task).
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


def bootstrap(res, nsim: int = 500, seed=None, use_u: bool = False, n_jobs: int | None = None,
              progress: bool | None = None, chunk: int = 256, verbose: bool = False,
              client=None) -> BootstrapResult:
    """Parametric bootstrap (lme4's ``bootMer(type = "parametric")``).

    Each replicate simulates y from the fitted model (new random effects unless
    ``use_u``) and refits θ with the same criterion, starting at θ̂. Only the response
    changes: the replicates are fitted as many responses on the model's design
    (:func:`lmm.many.fit_many`'s core: the crossproducts of Z and X formed once, per
    replicate only those of y, in C++ threads without the GIL). The responses come from
    the result's simulator (:func:`lmm.results.predict.simulate_response`); replicate r
    uses its own random stream spawned from ``seed``, so results do not depend on
    ``n_jobs``, ``chunk`` or ``client``.

    Args:
        res: the fitted result.
        nsim: number of replicates.
        seed: seed of ``numpy.random.SeedSequence``.
        use_u: keep the conditional modes b̂ fixed and simulate only the noise.
        n_jobs: worker threads (default: every CPU; with ``client``, threads per task,
            default 1).
        progress: show a progress bar (default: when stderr is a terminal).
        chunk: replicates simulated and fitted together (memory: ``chunk`` responses; with
            ``client``, the most per task).
        verbose: print a line per block of replicates fitted (blocks of 16, or of a tenth of them).
        client: a ``dask.distributed`` Client: blocks of replicates are simulated and
            fitted on its workers (see :mod:`lmm.cluster`), the same replicates as here.

    Returns:
        BootstrapResult.
    """
    from ..many import _Fitter, _n_jobs, fit_progress

    model = res.model
    ntheta, p = model.ntheta, model.nfixed
    if client is not None:
        from .. import cluster

        client = cluster.as_client(client)
    seeds = np.random.SeedSequence(seed).spawn(nsim)
    n_jobs = _n_jobs(1 if client is not None and n_jobs is None else n_jobs)
    fitter = _Fitter(model._shifted, res.REML, n_jobs, False, theta_start=res.par)
    work = _Replicates(model, res.solution, use_u, fitter)
    bar = fit_progress(nsim, progress, "bootstrap", verbose)
    if verbose:
        chunk = min(chunk, max(16, nsim // 10))
    chunk = max(1, int(chunk))
    t0 = time.perf_counter()
    parts = []
    try:
        if client is None:
            for i in range(0, nsim, chunk):
                parts.append(work.fit(seeds[i:i + chunk], bar))
        else:
            size = cluster.block_size(client, nsim, most=chunk)
            blocks = ((seeds[i:i + size], len(seeds[i:i + size]), "replicates") for i in range(0, nsim, size))
            parts = list(cluster.map_blocks(client, _replicates_task, work, blocks, bar))
            n_jobs = cluster.worker_threads(client) * n_jobs
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    theta = np.vstack([part["theta"] for part in parts]) if parts else np.empty((0, ntheta))
    sigma = np.concatenate([part["sigma"] for part in parts]) if parts else np.empty(0)
    beta = np.vstack([part["beta"] for part in parts]) if parts else np.empty((0, p))
    converged = np.concatenate([part["converged"] for part in parts]) if parts else np.empty(0, dtype=bool)
    vn = varpar_names(model.terms)
    xnames = list(res.fixef.index)
    rows = [np.concatenate([theta_to_sdcor(theta[r], sigma[r], model.terms), beta[r]]) for r in range(nsim)]
    frame = pd.DataFrame(rows, columns=vn + xnames) if rows else pd.DataFrame(columns=vn + xnames)
    for i, name in enumerate(res.par_names):
        frame[f"theta_{name}"] = theta[:, i]
    t0_stats = pd.Series(np.concatenate([theta_to_sdcor(res.par, res.sigma, model.terms), res.fixef.to_numpy()]),
                         index=vn + xnames)
    return BootstrapResult(replicates=frame, estimates=t0_stats, converged=converged, seconds=seconds, n_jobs=n_jobs)


@dataclass
class _Replicates:
    """What fitting a block of replicates needs (pickled once to each worker with ``client``)."""

    model: LinearMixedModel
    solution: Solution
    use_u: bool
    fitter: _Fitter

    def fit(self, seeds: list, bar: Progress) -> dict:
        """The refits of the replicates of ``seeds`` (one ``SeedSequence`` each), in order."""
        from ..results.predict import simulate_response

        model = self.model
        Y = np.column_stack([simulate_response(model, self.solution, np.random.default_rng(ss), use_u=self.use_u)
                             for ss in seeds])
        offset = model.design.offset
        part = self.fitter.fit(Y if offset is None else Y - offset[:, None], bar, "replicates")
        return {key: part[key] for key in ("theta", "sigma", "beta", "converged")}


def _replicates_task(work: _Replicates, seeds: list) -> dict:
    """A worker's block of replicates (numbers only travel back)."""
    return work.fit(seeds, Progress(len(seeds), False))
