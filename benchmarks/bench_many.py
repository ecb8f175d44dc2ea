"""Many responses, one design: lmm.lmer_many against a loop of lmm.lmer, lme4's refit() and
lmer() loops and FLASH-MM, on the same simulated data in the same run.

Designs (fixed seeds):
    sleep   sleepstudy-sized: 18 groups × 10 times, y ~ t + (t | g), 10,000 responses drawn
            from true models with varied variance components (1 in 50 with no slope variance,
            1 in 50 with a correlation of ±0.999, 1 in 50 with no intercept variance: near-singular)
    genes   5,000 cells × 2,000 genes, y ~ cond + x + (1 | sample): 20 samples of unequal sizes,
            cond a sample-level condition, x a cell-level covariate; 1 gene in 20 with no
            sample variance

Timed (the whole call from a data frame, as a user waits for it; median of --repeat calls,
after one small warm-up call per system): lmm.lmer_many on all responses with Y= an array
(n_jobs=1, n_jobs=2, and warm_start=True; with --cluster also client= a dask LocalCluster of 1
and 2 worker processes, a thread each) and with responses= naming the columns of a wide
frame, also read from a CSV (string group ids) and printed (the result and its tidy table's
head) in the same timed call; a Python loop of lmm.lmer over the first --subset responses, extrapolated per fit;
lme4's refit() loop and a loop of lmer() over the same subset through Rscript
(refit_lme4.R, timed inside R: R's startup and refit()'s template lmer() fit excluded);
FLASH-MM's lmmfit (X and Z built from the frame, then its summary statistics and Fisher
scoring at its default tolerance) on all responses. FLASH-MM fits variance components only
(no correlation): on the sleep design it fits y ~ t + (t || g), and so does the lmm row it
is compared with.

"fits/s/core" divides by the threads used (n_jobs for lmer_many, 1 otherwise: BLAS is
pinned to one thread, OPENBLAS_NUM_THREADS etc. default to 1 here). "lmm ×" is lmm's
fits/s/core (lmer_many, Y=, n_jobs=1, same model) over the row's: how many times faster lmm is.

Accuracy: on the subset, the largest relative difference between lmer_many and the lmm.lmer
loop and between lmm and lme4's lmer() (criterion; θ and β norm-wise: per response the
largest difference over the largest magnitude; θ also absolute, which reads where both are
near 0); lme4's refit() (which optimizes the REML criterion for p = 1, see refit_lme4.R) by
lmm's criterion at its θ; for FLASH-MM, its variance components and β against lmm's (all
responses), and lmm's REML criterion at FLASH-MM's θ = sqrt(var_k / var0) (a negative
variance as 0) against lmm's optimum (subset): above means FLASH-MM stopped short of it.

Peak memory: a fresh process per mode and count (--memory-responses, default 10³ and 10⁵
sleep responses) generates the responses in chunks of --chunk and fits them: streamed to a
parquet or CSV file with output=, chunk by chunk on one model keeping only the result
arrays, or as one iterable into one ManyResult (see MEMORY_MODES). Peak RSS (VmHWM) should
grow between the counts by no more than the results held in memory.

    python benchmarks/bench_many.py --quick                    # smoke run, small sizes
    python benchmarks/bench_many.py                            # the full benchmark
    python benchmarks/bench_many.py --designs genes --no-r --json many.json
    python benchmarks/bench_many.py --designs                  # peak memory only
    python benchmarks/bench_many.py --designs sleep --cluster --no-r --no-flash --memory-responses
                                                               # ... and on a LocalCluster (client=)
"""

from __future__ import annotations

import os

# Pinned before NumPy loads its BLAS (a user's setting is kept, and reported).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import lmm  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
try:
    FLASH_VERSION: str | None = importlib.metadata.version("flash-mm")
except importlib.metadata.PackageNotFoundError:
    FLASH_VERSION = None
SEED = 20260317


# --- data ---------------------------------------------------------------------------------

@dataclass
class Design:
    """One design and its responses: the frame holds the design's columns only."""

    name: str
    rhs: str                      # lme4 formula without its left-hand side
    flash_rhs: str                # the model FLASH-MM fits (variance components only)
    frame: pd.DataFrame
    Y: np.ndarray                 # n × m, Fortran order
    flash_terms: list[tuple[str, str, str | None]] = field(default_factory=list)
    #                             (lmm θ name, grouping column, z column or None for an intercept)
    flash_fixed: list[tuple[str, object]] = field(default_factory=list)
    #                             (column, None: as is; a value: indicator of that level); intercept first

    @property
    def m(self) -> int:
        return self.Y.shape[1]

    def formula(self, rhs: str | None = None) -> str:
        return f"y {rhs or self.rhs}"


def sleep_frame() -> pd.DataFrame:
    g = np.repeat([f"S{i:02d}" for i in range(1, 19)], 10)
    t = np.tile(np.arange(10, dtype=float), 18)
    return pd.DataFrame({"g": g, "t": t})


def sleep_responses(m: int, seed: int) -> np.ndarray:
    """m sleepstudy-like responses (180 × m): β ≈ (250, 10), σ ≈ 25, SDs and correlation varied."""
    rng = np.random.default_rng(seed)
    frame = sleep_frame()
    codes = pd.factorize(frame["g"])[0]
    t = frame["t"].to_numpy()
    sigma = 25.0 * np.exp(0.3 * rng.standard_normal(m))
    sd0 = sigma * rng.uniform(0.2, 1.5, m)
    sd1 = sigma * rng.uniform(0.05, 0.4, m)
    rho = rng.uniform(-0.7, 0.7, m)
    k = np.arange(m) % 50
    sd1[k == 0] = 0.0             # near-singular: no slope variance
    rho[k == 25] = np.where(rng.random((k == 25).sum()) < 0.5, -0.999, 0.999)
    sd0[k == 10] = 0.0            # no intercept variance
    z0, z1 = rng.standard_normal((2, 18, m))
    b0 = sd0 * z0
    b1 = sd1 * (rho * z0 + np.sqrt(1 - rho**2) * z1)
    beta0 = 250.0 + 20.0 * rng.standard_normal(m)
    beta1 = 10.0 + 3.0 * rng.standard_normal(m)
    eps = rng.standard_normal((180, m))
    Y = beta0 + np.outer(t, beta1) + b0[codes] + b1[codes] * t[:, None] + sigma * eps
    return np.asfortranarray(Y)


def sleep_design(m: int, seed: int = SEED) -> Design:
    return Design("sleep", "~ t + (t | g)", "~ t + (t || g)", sleep_frame(), sleep_responses(m, seed),
                  flash_terms=[("g.(Intercept)", "g", None), ("g.t", "g", "t")],
                  flash_fixed=[("t", None)])


def genes_design(ncells: int, ngenes: int, seed: int = SEED + 1) -> Design:
    """Cells in 20 samples (Dirichlet sizes), cond by sample, x per cell; log-expression-like genes."""
    rng = np.random.default_rng(seed)
    nsamples = 20
    share = rng.dirichlet(np.full(nsamples, 5.0))
    sample = rng.choice(nsamples, size=ncells, p=share)
    sample[:nsamples] = np.arange(nsamples)       # every sample has cells
    cond = np.where(sample < nsamples // 2, "ctrl", "treat")
    x = rng.standard_normal(ncells)
    frame = pd.DataFrame({"sample": [f"s{i:02d}" for i in sample], "cond": cond, "x": x})
    sigma = np.exp(0.25 * rng.standard_normal(ngenes))
    sd_b = rng.uniform(0.0, 0.6, ngenes)
    sd_b[np.arange(ngenes) % 20 == 0] = 0.0     # near-singular: no sample variance
    beta = np.vstack([2.0 + rng.standard_normal(ngenes), 0.3 * rng.standard_normal(ngenes),
                      0.2 * rng.standard_normal(ngenes)])
    X = np.column_stack([np.ones(ncells), (cond == "treat").astype(float), x])
    b = sd_b * rng.standard_normal((nsamples, ngenes))
    Y = X @ beta + b[sample] + sigma * rng.standard_normal((ncells, ngenes))
    return Design("genes", "~ cond + x + (1 | sample)", "~ cond + x + (1 | sample)", frame, np.asfortranarray(Y),
                  flash_terms=[("sample.(Intercept)", "sample", None)], flash_fixed=[("cond", "treat"), ("x", None)])


# --- timing -------------------------------------------------------------------------------

def timed(fn, repeat: int):
    """(median seconds, last value) of repeat calls."""
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


@dataclass
class Fits:
    """Per-response estimates of one system (rows: responses)."""

    theta: np.ndarray
    beta: np.ndarray
    criterion: np.ndarray | None = None
    sigma: np.ndarray | None = None
    converged: np.ndarray | None = None


def lmm_many(design: Design, rhs: str, n_jobs: int, wide: pd.DataFrame | None = None,
             warm_start: bool = False) -> tuple[Fits, object]:
    if wide is None:
        res = lmm.lmer_many(rhs, design.frame, Y=design.Y, n_jobs=n_jobs, warm_start=warm_start, progress=False)
    else:
        names = [c for c in wide.columns if c not in design.frame.columns]
        res = lmm.lmer_many(rhs, wide, responses=names, n_jobs=n_jobs, warm_start=warm_start, progress=False)
    return Fits(np.asarray(res.theta), np.asarray(res.beta), np.asarray(res.criterion), np.asarray(res.sigma),
                np.asarray(res.converged)), res


def lmer_loop(design: Design, wide: pd.DataFrame, names: list[str]) -> Fits:
    theta, beta, crit, sigma, conv = [], [], [], [], []
    for name in names:
        r = lmm.lmer(f"{name} {design.rhs}", wide)
        theta.append(r.theta)
        beta.append(r.fixef.to_numpy())
        crit.append(r.objective)
        sigma.append(r.sigma)
        conv.append(r.converged)
    return Fits(np.array(theta), np.array(beta), np.array(crit), np.array(sigma), np.array(conv))


def flash_matrices(design: Design, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """FLASH-MM's X and Z = [Z_1 … Z_k] (one block per variance component) from the frame."""
    cols = [np.ones(len(frame))]
    for col, level in design.flash_fixed:
        v = frame[col].to_numpy()
        cols.append((v == level).astype(float) if level is not None else v.astype(float))
    X = np.column_stack(cols)
    blocks, d = [], []
    for _, group, zcol in design.flash_terms:
        dummies = pd.get_dummies(frame[group], dtype=float).to_numpy()
        blocks.append(dummies if zcol is None else dummies * frame[zcol].to_numpy()[:, None])
        d.append(dummies.shape[1])
    return X, np.hstack(blocks), d


def flash_fit(design: Design, Y: np.ndarray) -> tuple[Fits, dict]:
    import flash_mm

    X, Z, d = flash_matrices(design, design.frame)
    fit = flash_mm.lmmfit(Y.T, X, Z, d=d, method="REML")
    var = fit["theta"].to_numpy().T                    # m × (k + 1): component variances, then σ²
    conv = ~(np.abs(fit["dlogL"].to_numpy()) > 1e-5).any(axis=0)
    theta = np.sqrt(np.clip(var[:, :-1], 0.0, None) / var[:, -1:])
    return Fits(theta, fit["coef"].to_numpy().T, None, np.sqrt(var[:, -1]), conv), {"var": var,
                                                                                      "niter": fit["niter"].to_numpy()}


def lme4_refit(design: Design, Y: np.ndarray, workdir: pathlib.Path) -> dict | str:
    """lme4's refit() loop over the columns of Y through Rscript: its JSON, or why it did not run."""
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    check = subprocess.run(["Rscript", "-e", "library(lme4); library(jsonlite)"], capture_output=True)
    if check.returncode != 0:
        return "R packages lme4 and jsonlite needed"
    csv, ybin, out = workdir / f"{design.name}.csv", workdir / f"{design.name}_Y.bin", workdir / f"{design.name}.json"
    design.frame.to_csv(csv, index=False)
    np.asarray(Y, dtype="<f8").T.tofile(ybin)         # response after response
    proc = subprocess.run(["Rscript", str(HERE / "refit_lme4.R"), str(csv), str(ybin), str(Y.shape[1]),
                           design.formula(), str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        return "failed: " + (proc.stderr.strip().splitlines() or ["no output"])[-1][:100]
    return json.loads(out.read_text())


def lme4_fits(loop: dict, S: int) -> Fits:
    """One loop of refit_lme4.R's output as Fits; converged: no lme4 message but a singular fit's."""
    conv = [all(part.startswith("boundary (singular) fit") for part in msg.split("; ")) if msg else True
            for msg in np.atleast_1d(loop["messages"])]
    return Fits(np.array(loop["theta"], dtype=float).reshape(S, -1), np.array(loop["beta"], dtype=float).reshape(S, -1),
                np.array(loop["criterion"], dtype=float), np.array(loop["sigma"], dtype=float), np.array(conv))


# --- accuracy -----------------------------------------------------------------------------

def normwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: max |a − b| over max(|a|, |b|) (0 where both rows are 0)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    scale = np.maximum(np.abs(a).max(axis=1), np.abs(b).max(axis=1))
    diff = np.abs(a - b).max(axis=1)
    return np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)


def compare(a: Fits, b: Fits) -> dict:
    """Largest relative differences of criterion, θ and β (and medians) between two systems."""
    out = {}
    parts = [("theta", normwise(a.theta, b.theta)), ("beta", normwise(a.beta, b.beta))]
    if a.criterion is not None and b.criterion is not None:
        parts.insert(0, ("criterion", relative(a.criterion, b.criterion)))
    for key, d in parts:
        out[f"max_rel_{key}"] = float(d.max())
        out[f"median_rel_{key}"] = float(np.median(d))
    # θ is an SD over σ: its absolute difference reads where both are near 0 (a singular fit).
    out["max_abs_theta"] = float(np.abs(np.atleast_2d(a.theta) - np.atleast_2d(b.theta)).max())
    return out


def objective_at(design: Design, rhs: str, names: list[str], thetas: np.ndarray, cols: range) -> np.ndarray:
    """lmm's REML criterion of response j at θ_j, for j in cols (θ columns in the order of names)."""
    out = []
    for j, theta in zip(cols, thetas):
        frame = design.frame.assign(y=design.Y[:, j])
        model = lmm.LinearMixedModel(design.formula(rhs), frame)
        order = [names.index(n) for n in model.theta_names]
        out.append(model.objective(theta[order]))
    return np.array(out)


# --- peak memory --------------------------------------------------------------------------

def rss_mib() -> float:
    """Current resident set (MiB), from /proc; the peak so far where /proc is absent."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


MEMORY_MODES = {
    "parquet": "lmer_many(Y=an iterator of chunks, output=a .parquet file): the results on disk",
    "csv": "lmer_many(Y=an iterator of chunks, output=a .csv file): the results on disk",
    "kept": "fit_many per chunk on one model, each chunk's result arrays kept, the rest dropped",
    "iterable": "fit_many(Y=an iterator of chunks) into one ManyResult",
}


def chunks(m: int, chunk: int):
    """m sleep responses in chunks of ``chunk`` (a seed per chunk)."""
    for i, start in enumerate(range(0, m, chunk)):
        yield sleep_responses(min(chunk, m - start), SEED + 1000 + i)


def peak_rss_mib() -> float:
    """Peak resident set of this process (MiB): VmHWM, which starts afresh at exec; getrusage's
    ru_maxrss where /proc is absent (Linux carries that over exec, from the parent's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_case(m: int, chunk: int, mode: str, workdir: str) -> dict:
    """Fit m sleep responses generated chunk by chunk (see MEMORY_MODES); RSS and times."""
    design = sleep_design(1)
    model = lmm.LinearMixedModel(design.formula(), design.frame.assign(y=design.Y[:, 0]))
    model.fit_many(sleep_responses(10, SEED + 7), n_jobs=1)       # one-time costs are not the fits'
    before = rss_mib()
    t0 = time.perf_counter()
    results_mib = 0.0
    if mode in ("parquet", "csv"):
        path = lmm.lmer_many(design.rhs, design.frame, Y=chunks(m, chunk), n_jobs=1, progress=False,
                             output=os.path.join(workdir, f"fits.{mode}"), chunk_size=chunk)
        results_mib = os.path.getsize(path) / 2**20                  # on disk, not in memory
    elif mode == "kept":
        kept: list[np.ndarray] = []
        for Y in chunks(m, chunk):
            res = model.fit_many(Y, n_jobs=1, progress=False)
            kept += [np.array(getattr(res, k)) for k in ("theta", "beta", "se", "sigma", "criterion", "converged")]
            del res, Y
        results_mib = sum(a.nbytes for a in kept) / 2**20
    else:
        res = model.fit_many(chunks(m, chunk), n_jobs=1, progress=False, chunk_size=chunk)
        results_mib = sum(getattr(res, k).nbytes for k in ("theta", "beta", "se", "sigma", "criterion", "converged",
                                                            "singular", "nobs", "evaluations")) / 2**20
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib()
    return {"responses": m, "chunk": chunk, "mode": mode, "rss_before_mib": before, "peak_rss_mib": peak,
            "results_mib": results_mib, "seconds": seconds, "fits_per_s": m / seconds}


def run_memory_case(m: int, chunk: int, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, __file__, "--memory-case", str(m), "--chunk", str(chunk),
                               "--memory-mode", mode, "--memory-dir", tmp], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"responses": m, "mode": mode, "status": f"failed: {tail[:100]}"}
    return {"status": "ok", **json.loads(lines[-1])}


# --- the benchmark of one design ----------------------------------------------------------

class Table:
    """The timed rows of one design."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, system: str, model: str, responses: int, seconds: float, cores: int, note: str = "") -> None:
        self.rows.append({"system": system, "model": model, "responses": responses, "seconds": seconds,
                          "fits_per_s": responses / seconds, "fits_per_s_core": responses / seconds / cores,
                          "note": note})

    def skipped(self, system: str, model: str, why: str) -> None:
        self.rows.append({"system": system, "model": model, "note": why})

    def ratios(self) -> None:
        """lmm's fits/s/core (lmer_many, Y=, n_jobs=1) on the row's model over the row's."""
        base = {r["model"]: r["fits_per_s_core"] for r in self.rows if r["system"] == BASE}
        for r in self.rows:
            if "fits_per_s_core" in r and r["model"] in base:
                r["lmm_times"] = base[r["model"]] / r["fits_per_s_core"]


BASE = "lmm.lmer_many(Y=, n_jobs=1)"


def bench_lmm(design: Design, table: Table, repeat: int, accuracy: dict) -> Fits:
    """lmer_many with n_jobs 1 and 2 (Y=) and by column names; its fits (n_jobs=1)."""
    names = [f"y{j:05d}" for j in range(design.m)]
    wide = pd.concat([design.frame, pd.DataFrame(design.Y, columns=names)], axis=1)
    lmm_many(warm_up(design), design.rhs, 1)
    many: dict[int, Fits] = {}
    for jobs in (1, 2):
        sec, (many[jobs], _) = timed(lambda jobs=jobs: lmm_many(design, design.rhs, jobs), repeat)
        table.add(BASE.replace("n_jobs=1", f"n_jobs={jobs}"), design.rhs, design.m, sec, jobs)
    sec, (warm, _) = timed(lambda: lmm_many(design, design.rhs, 1, warm_start=True), repeat)
    table.add("lmm.lmer_many(Y=, n_jobs=1, warm_start=True)", design.rhs, design.m, sec, 1,
              "each fit starts at the previous optimum")
    sec, (by_name, _) = timed(lambda: lmm_many(design, design.rhs, 1, wide), repeat)
    table.add("lmm.lmer_many(responses=, n_jobs=1)", design.rhs, design.m, sec, 1, "wide frame, a column per response")
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "wide.csv"
        wide.to_csv(path, index=False)

        def from_csv() -> None:
            # What a user waits for: the CSV read (string group ids), the fits, the printed results.
            frame = pd.read_csv(path)
            res = lmm.lmer_many(design.rhs, frame, responses=names, n_jobs=1, progress=False)
            print(res, res.coefficients.head(), file=io.StringIO())

        sec, _ = timed(from_csv, repeat)
    table.add("read_csv + lmm.lmer_many(responses=) + print", design.rhs, design.m, sec, 1,
              "the whole call from a CSV with string ids")
    warm_gap = warm.criterion - many[1].criterion
    accuracy["lmm"] = {"converged": int(many[1].converged.sum()), "responses": design.m,
                       "warm_converged": int(warm.converged.sum()),
                       "warm_minus_cold_criterion_min": float(warm_gap.min()),
                       "warm_minus_cold_criterion_max": float(warm_gap.max()),
                       "n_jobs_2_vs_1_max_rel_criterion": float(relative(many[2].criterion, many[1].criterion).max()),
                       "responses_vs_Y_max_rel_criterion": float(relative(by_name.criterion, many[1].criterion).max())}
    return many[1]


def warm_up(design: Design) -> Design:
    """The design with its first 5 responses (a call that pays one-time costs)."""
    return Design(design.name, design.rhs, design.flash_rhs, design.frame, design.Y[:, :5],
                  design.flash_terms, design.flash_fixed)


def bench_loop(design: Design, S: int, table: Table, repeat: int, ours: Fits, accuracy: dict) -> None:
    names = [f"y{j:05d}" for j in range(S)]
    wide = pd.concat([design.frame, pd.DataFrame(design.Y[:, :S], columns=names)], axis=1)
    lmm.lmer(f"{names[0]} {design.rhs}", wide)
    sec, loop = timed(lambda: lmer_loop(design, wide, names), repeat)
    table.add("loop of lmm.lmer", design.rhs, S, sec, 1, f"first {S} responses, per fit extrapolated")
    accuracy["lmer_many_vs_lmer_loop"] = compare(ours, loop)


def bench_lme4(design: Design, S: int, table: Table, ours: Fits, accuracy: dict, workdir: pathlib.Path) -> None:
    out = lme4_refit(design, design.Y[:, :S], workdir)
    if isinstance(out, str):
        table.skipped("lme4 refit() loop", design.rhs, out)
        return
    fits = {kind: lme4_fits(out[kind], S) for kind in ("refit", "lmer")}
    table.add(f"lme4 {out['version']} refit() loop", design.rhs, S, out["refit"]["seconds"], 1,
              f"first {S} responses, timed in R (template lmer() {out['template_seconds']:.3f} s apart)")
    table.add(f"lme4 {out['version']} lmer() loop", design.rhs, S, out["lmer"]["seconds"], 1,
              f"first {S} responses, timed in R")
    acc = compare(ours, fits["lmer"])
    diff = ours.criterion - fits["lmer"].criterion
    acc.update({"max_lmm_minus_lme4_criterion": float(diff.max()), "min_lmm_minus_lme4_criterion": float(diff.min()),
                "lme4_lower_by_1e-6": int((diff > 1e-6).sum()), "lme4_converged": int(fits["lmer"].converged.sum()),
                "responses": S})
    refit = fits["refit"]
    at_refit = objective_at(design, design.rhs, list(np.atleast_1d(out["theta_names"])), refit.theta, range(S))
    gap = at_refit - ours.criterion
    acc.update({"refit_max_rel_reported_criterion": float(relative(refit.criterion, ours.criterion).max()),
                "refit_max_rel_theta": float(normwise(refit.theta, ours.theta).max()),
                "refit_max_rel_beta": float(normwise(refit.beta, ours.beta).max()),
                "refit_criterion_at_theta_minus_lmm_min": float(gap.min()),
                "refit_criterion_at_theta_minus_lmm_median": float(np.median(gap)),
                "refit_criterion_at_theta_minus_lmm_max": float(gap.max()),
                "refit_converged": int(refit.converged.sum())})
    accuracy["lmm_vs_lme4"] = acc


def bench_flash(design: Design, S: int, table: Table, repeat: int, ours: Fits, accuracy: dict) -> None:
    """FLASH-MM on all responses; lmm on FLASH-MM's model where that is not the design's."""
    if design.flash_rhs != design.rhs:
        lmm_many(warm_up(design), design.flash_rhs, 1)
        sec, (ours, _) = timed(lambda: lmm_many(design, design.flash_rhs, 1), repeat)
        table.add(BASE, design.flash_rhs, design.m, sec, 1, "FLASH-MM's model")
    flash_fit(design, design.Y[:, :5])
    sec, (flash, extra) = timed(lambda: flash_fit(design, design.Y), repeat)
    table.add(f"FLASH-MM {FLASH_VERSION} lmmfit", design.flash_rhs, design.m, sec, 1,
              "REML, default epsilon 1e-5, max_iter 50")
    names = [n for n, _, _ in design.flash_terms]
    theta_names = lmm.LinearMixedModel(design.formula(design.flash_rhs), design.frame.assign(y=design.Y[:, 0])
                                       ).theta_names
    if sorted(theta_names) != sorted(names):
        raise RuntimeError(f"FLASH-MM's components {names} do not match lmm's θ {theta_names}")
    lmm_theta = ours.theta[:, [theta_names.index(n) for n in names]]
    lmm_var = np.column_stack([(lmm_theta * ours.sigma[:, None]) ** 2, ours.sigma**2])
    acc = compare(Fits(flash.theta, flash.beta), Fits(lmm_theta, ours.beta))
    vd = normwise(extra["var"], lmm_var)
    acc.update({"max_rel_variances": float(vd.max()), "median_rel_variances": float(np.median(vd)),
                "flash_converged": int(flash.converged.sum()),
                "flash_negative_variance": int((extra["var"][:, :-1] < 0).sum()),
                "flash_median_iterations": float(np.median(extra["niter"])), "responses": design.m})
    print(f"[{design.name}] lmm's criterion at FLASH-MM's θ ({S} responses) …", file=sys.stderr, flush=True)
    gap = objective_at(design, design.flash_rhs, names, flash.theta[:S], range(S)) - ours.criterion[:S]
    acc.update({"criterion_at_flash_minus_lmm_max": float(gap.max()),
                "criterion_at_flash_minus_lmm_median": float(np.median(gap)),
                "criterion_at_flash_minus_lmm_min": float(gap.min()),
                "flash_above_lmm_by_1e-6": int((gap > 1e-6).sum()),
                "flash_below_lmm_by_1e-6": int((gap < -1e-6).sum()), "criterion_responses": S})
    accuracy["flash_vs_lmm"] = acc


def bench_cluster(design: Design, table: Table, repeat: int, ours: Fits, accuracy: dict) -> None:
    """lmer_many(client=) on a LocalCluster of 1 and 2 worker processes (a thread each)."""
    from distributed import Client, LocalCluster

    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
                Client(lc) as client:
            def call(d: Design = design) -> lmm.ManyResult:
                return lmm.lmer_many(d.rhs, d.frame, Y=d.Y, client=client, progress=False)

            call(warm_up(design))  # (the workers import lmm)
            sec, res = timed(call, repeat)
        table.add(f"lmm.lmer_many(Y=, client=), {workers} worker process(es)", design.rhs, design.m, sec, workers,
                  "LocalCluster, a thread per worker")
        accuracy[f"client_{workers}_vs_n_jobs_1_max_rel_criterion"] = float(
            relative(np.asarray(res.criterion), ours.criterion).max())


def bench_design(design: Design, args, workdir: pathlib.Path) -> dict:
    S = min(args.subset, design.m)
    table = Table()
    accuracy: dict = {}
    print(f"[{design.name}] lmm.lmer_many …", file=sys.stderr, flush=True)
    ours = bench_lmm(design, table, args.repeat, accuracy)
    if args.cluster:
        print(f"[{design.name}] lmm.lmer_many on a LocalCluster …", file=sys.stderr, flush=True)
        bench_cluster(design, table, args.repeat, ours, accuracy)
    first = Fits(ours.theta[:S], ours.beta[:S], ours.criterion[:S])
    print(f"[{design.name}] loop of lmm.lmer over {S} …", file=sys.stderr, flush=True)
    bench_loop(design, S, table, args.repeat, first, accuracy)
    if args.no_r:
        table.skipped("lme4 refit() loop", design.rhs, "skipped (--no-r)")
    else:
        print(f"[{design.name}] lme4 refit() and lmer() over {S} …", file=sys.stderr, flush=True)
        bench_lme4(design, S, table, first, accuracy, workdir)
    if args.no_flash or FLASH_VERSION is None:
        table.skipped("FLASH-MM lmmfit", design.flash_rhs,
                      "skipped (--no-flash)" if args.no_flash else "not installed (pip install flash-mm==0.1.0)")
    else:
        print(f"[{design.name}] FLASH-MM and lmm on {design.flash_rhs} …", file=sys.stderr, flush=True)
        bench_flash(design, S, table, args.repeat, ours, accuracy)
    table.ratios()
    return {"design": design.name, "rows_of_data": len(design.frame), "responses": design.m, "subset": S,
            "formula": design.rhs, "rows": table.rows, "accuracy": accuracy}


# --- output -------------------------------------------------------------------------------

def print_table(cols: list[str], table: list[list[str]]) -> None:
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def thread_settings() -> dict:
    out: dict = {v: os.environ.get(v, "unset") for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        from threadpoolctl import threadpool_info

        out["threadpools"] = [f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()]
    except ImportError:
        pass
    return out


def report(result: dict) -> None:
    print(f"\n## {result['design']}: {result['rows_of_data']} rows, {result['responses']} responses, "
          f"y {result['formula']} (subset: the first {result['subset']})")
    cols = ["system", "model", "responses", "seconds", "fits/s", "fits/s/core", "lmm ×", "note"]
    table = [[r["system"], r["model"], fmt(r.get("responses"), "d"), fmt(r.get("seconds"), ".3f"),
              fmt(r.get("fits_per_s"), ".0f"), fmt(r.get("fits_per_s_core"), ".0f"), fmt(r.get("lmm_times"), ".1f"),
              r.get("note", "")] for r in result["rows"]]
    print_table(cols, table)
    acc = result["accuracy"]
    a, b = acc["lmer_many_vs_lmer_loop"], acc["lmm"]
    print(f"lmer_many vs lmm.lmer loop ({result['subset']}): max rel. criterion {a['max_rel_criterion']:.1e}, "
          f"θ {a['max_rel_theta']:.1e}, β {a['max_rel_beta']:.1e}; n_jobs=2 vs 1 criterion "
          f"{b['n_jobs_2_vs_1_max_rel_criterion']:.1e}; responses= vs Y= {b['responses_vs_Y_max_rel_criterion']:.1e}; "
          f"lmm converged {b['converged']}/{b['responses']}")
    print(f"warm_start=True: converged {b['warm_converged']}/{b['responses']}; its criterion minus the cold start's "
          f"in [{b['warm_minus_cold_criterion_min']:.2e}, {b['warm_minus_cold_criterion_max']:.2e}]")
    clients = {k: v for k, v in acc.items() if k.startswith("client_")}
    if clients:
        print("client= vs n_jobs=1: max rel. criterion "
              + ", ".join(f"{k.split('_')[1]} worker(s) {v:.1e}" for k, v in clients.items()))
    if "lmm_vs_lme4" in acc:
        a = acc["lmm_vs_lme4"]
        print(f"lmm vs lme4 lmer() ({a['responses']}): max rel. criterion {a['max_rel_criterion']:.1e} (median "
              f"{a['median_rel_criterion']:.1e}), θ {a['max_rel_theta']:.1e} (median {a['median_rel_theta']:.1e}, "
              f"max abs. {a['max_abs_theta']:.1e}), β {a['max_rel_beta']:.1e} (median {a['median_rel_beta']:.1e}); "
              f"lmm − lme4 criterion in "
              f"[{a['min_lmm_minus_lme4_criterion']:.2e}, {a['max_lmm_minus_lme4_criterion']:.2e}], lme4 lower "
              f"by > 1e-6 in {a['lme4_lower_by_1e-6']}; lme4 without convergence warnings "
              f"{a['lme4_converged']}/{a['responses']}")
        print(f"lmm vs lme4 refit(): REMLcrit as refit() reports it, max rel. "
              f"{a['refit_max_rel_reported_criterion']:.1e}; "
              f"θ {a['refit_max_rel_theta']:.1e}, β {a['refit_max_rel_beta']:.1e}; lmm's criterion at refit()'s θ "
              f"minus lmm's optimum: median {a['refit_criterion_at_theta_minus_lmm_median']:.2e}, range "
              f"[{a['refit_criterion_at_theta_minus_lmm_min']:.2e}, {a['refit_criterion_at_theta_minus_lmm_max']:.2e}]"
              f" (refit() optimizes REML for p = 1: see refit_lme4.R)")
    if "flash_vs_lmm" in acc:
        a = acc["flash_vs_lmm"]
        print(f"FLASH-MM vs lmm ({a['responses']}): variance components max rel. {a['max_rel_variances']:.1e} "
              f"(median {a['median_rel_variances']:.1e}), θ {a['max_rel_theta']:.1e} (median "
              f"{a['median_rel_theta']:.1e}, max abs. {a['max_abs_theta']:.1e}), β {a['max_rel_beta']:.1e} "
              f"(median {a['median_rel_beta']:.1e}); "
              f"FLASH-MM converged {a['flash_converged']}/{a['responses']}, negative variances "
              f"{a['flash_negative_variance']}, median iterations {a['flash_median_iterations']:.0f}")
        print(f"lmm's REML criterion at FLASH-MM's θ minus lmm's optimum ({a['criterion_responses']}): median "
              f"{a['criterion_at_flash_minus_lmm_median']:.2e}, range [{a['criterion_at_flash_minus_lmm_min']:.2e}, "
              f"{a['criterion_at_flash_minus_lmm_max']:.2e}]; above by > 1e-6 in {a['flash_above_lmm_by_1e-6']}, "
              f"below by > 1e-6 in {a['flash_below_lmm_by_1e-6']}")


def report_memory(cases: list[dict]) -> None:
    print("\n## peak memory: sleep design, responses generated in chunks, a fresh process per row "
          "(fits/s include generating the responses)")
    for mode, text in MEMORY_MODES.items():
        print(f"  {mode}: {text}")
    cols = ["mode", "responses", "chunk", "RSS before (MiB)", "peak RSS (MiB)", "results (MiB)", "s", "fits/s"]
    table = [[c["mode"], str(c["responses"]), fmt(c.get("chunk"), "d"), fmt(c.get("rss_before_mib"), ".1f"),
              fmt(c.get("peak_rss_mib"), ".1f"), fmt(c.get("results_mib"), ".1f"), fmt(c.get("seconds"), ".2f"),
              fmt(c.get("fits_per_s"), ".0f")] if c["status"] == "ok" else [c["mode"], str(c["responses"]),
                                                                            c["status"]] + [""] * 5 for c in cases]
    print_table(cols, table)
    for mode in MEMORY_MODES:
        ok = [c for c in cases if c["status"] == "ok" and c["mode"] == mode]
        if len(ok) >= 2:
            lo, hi = ok[0], ok[-1]
            where = "on disk" if mode in ("parquet", "csv") else "in memory"
            print(f"{mode}: peak RSS grew {hi['peak_rss_mib'] - lo['peak_rss_mib']:.1f} MiB from {lo['responses']} "
                  f"to {hi['responses']} responses; results ({where}) grew "
                  f"{hi['results_mib'] - lo['results_mib']:.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--responses", type=int, help="sleep design responses (default 10,000; --quick 300)")
    ap.add_argument("--genes", type=int, help="genes design responses (default 2,000; --quick 200)")
    ap.add_argument("--cells", type=int, help="genes design rows (default 5,000; --quick 1,000)")
    ap.add_argument("--subset", type=int, help="responses for the loops and accuracy (default 300; --quick 40)")
    ap.add_argument("--repeat", type=int, help="timed calls per system, median reported (default 3; --quick 1)")
    ap.add_argument("--designs", nargs="*", choices=["sleep", "genes"], default=["sleep", "genes"])
    ap.add_argument("--memory-responses", type=int, nargs="*",
                    help="response counts for peak memory (default 1000 100000; --quick 1000 5000; none: skip)")
    ap.add_argument("--chunk", type=int, default=1000, help="responses per chunk in the memory runs")
    ap.add_argument("--no-r", action="store_true", help="skip lme4")
    ap.add_argument("--cluster", action="store_true",
                    help="also lmer_many(client=) on a dask LocalCluster of 1 and 2 worker processes")
    ap.add_argument("--no-flash", action="store_true", help="skip FLASH-MM")
    ap.add_argument("--json", type=pathlib.Path, help="also write the results here")
    ap.add_argument("--memory-case", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--memory-mode", choices=list(MEMORY_MODES), default="kept", help=argparse.SUPPRESS)
    ap.add_argument("--memory-dir", default=".", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_case is not None:
        print(json.dumps(memory_case(args.memory_case, args.chunk, args.memory_mode, args.memory_dir)))
        return
    quick = args.quick
    args.responses = args.responses or (300 if quick else 10_000)
    args.genes = args.genes or (200 if quick else 2_000)
    args.cells = args.cells or (1_000 if quick else 5_000)
    args.subset = args.subset or (40 if quick else 300)
    args.repeat = args.repeat or (1 if quick else 3)
    if args.memory_responses is None:
        args.memory_responses = [1000, 5000] if quick else [1000, 100_000]
    for name in ("responses", "genes", "cells", "subset", "repeat", "chunk"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if not hasattr(lmm, "lmer_many"):
        sys.exit("this lmm has no lmer_many (issue 17): build lmm from a version that has it")

    settings = {"machine": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                "lmm": getattr(lmm, "__version__", "?"), "threads": thread_settings(), "repeat": args.repeat}
    print(f"# bench_many: {settings['machine']}, {settings['cpus']} cpus; "
          + ", ".join(f"{k}={v}" for k, v in settings["threads"].items() if k != "threadpools")
          + f"; BLAS pools: {', '.join(settings['threads'].get('threadpools', [])) or 'unknown'}; "
          f"median of {args.repeat} call(s) per row; lmm.lmer_many pins BLAS to one thread per worker")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.designs:
            design = sleep_design(args.responses) if name == "sleep" else genes_design(args.cells, args.genes)
            results.append(bench_design(design, args, pathlib.Path(tmp)))
            report(results[-1])
    memory = []
    for mode in MEMORY_MODES:
        for m in args.memory_responses:
            print(f"[memory] {mode}, {m} responses …", file=sys.stderr, flush=True)
            memory.append(run_memory_case(m, args.chunk, mode))
    if memory:
        report_memory(memory)
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "designs": results, "memory": memory}, indent=2))


if __name__ == "__main__":
    main()
