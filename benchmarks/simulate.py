"""Simulated benchmark datasets, generated with fixed seeds (not committed when large).

    python benchmarks/simulate.py --out benchmarks/data            # all datasets
    python benchmarks/simulate.py --out benchmarks/data sim_long   # one

Datasets:
    sim_long      20,000 subjects × 10 times: y ~ 1 + t + (1 + t | subj)      (200,000 rows)
    sim_crossed   MovieLens-1M-like: 6,040 users × 3,706 items, skewed counts,
                  y ~ 1 + (1 | user) + (1 | item)                              (1,000,000 rows)
    maximal       kb07-like: 56 subjects × 32 items fully crossed, factors a, b, c coded ±0.5,
                  y ~ 1 + a*b*c + (1 + a*b*c | subj) + (1 + a*b*c | item)     (1,792 rows)
Scaled versions for the scaling table: ``sim_long_n`` and ``sim_crossed_n`` with n rows.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import pandas as pd

SEED = 20261125


def sim_long(nsubj: int = 20000, ntimes: int = 10, seed: int = SEED) -> pd.DataFrame:
    """Longitudinal intercept-and-slope data: β = (10, 0.5), sd = (2, 0.5), corr 0.3, σ = 1."""
    rng = np.random.default_rng(seed)
    cov = np.array([[4.0, 0.3 * 2 * 0.5], [0.3 * 2 * 0.5, 0.25]])
    b = rng.multivariate_normal([0, 0], cov, nsubj)
    subj = np.repeat(np.arange(nsubj), ntimes)
    t = np.tile(np.arange(ntimes, dtype=float), nsubj)
    y = 10 + 0.5 * t + b[subj, 0] + b[subj, 1] * t + rng.standard_normal(subj.size)
    return pd.DataFrame({"y": y, "t": t, "subj": subj})


def sim_crossed(n: int = 1_000_000, nusers: int = 6040, nitems: int = 3706, seed: int = SEED) -> pd.DataFrame:
    """Crossed users × items with skewed (Zipf-like) activity: μ = 3.5, sd_user 0.4, sd_item 0.5, σ = 0.9."""
    rng = np.random.default_rng(seed)
    uw = 1.0 / np.arange(1, nusers + 1) ** 0.8
    iw = 1.0 / np.arange(1, nitems + 1) ** 0.9
    users = rng.choice(nusers, size=n, p=uw / uw.sum())
    items = rng.choice(nitems, size=n, p=iw / iw.sum())
    users[:nusers] = np.arange(nusers)            # every user and item appears
    items[:nitems] = np.arange(nitems)
    bu = 0.4 * rng.standard_normal(nusers)
    bi = 0.5 * rng.standard_normal(nitems)
    y = 3.5 + bu[users] + bi[items] + 0.9 * rng.standard_normal(n)
    return pd.DataFrame({"y": y, "user": users, "item": items})


def maximal(nsubj: int = 56, nitems: int = 32, seed: int = SEED) -> pd.DataFrame:
    """kb07-like 2×2×2 within-subject, within-item design with maximal random effects."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(nsubj), nitems)
    item = np.tile(np.arange(nitems), nsubj)
    cond = (subj + item) % 8                       # Latin-square counterbalancing
    a = np.where(cond & 1, 0.5, -0.5)
    b = np.where(cond & 2, 0.5, -0.5)
    c = np.where(cond & 4, 0.5, -0.5)
    Xr = np.column_stack([np.ones_like(a), a, b, a * b, c, a * c, b * c, a * b * c])
    beta = np.array([2000.0, 60.0, -30.0, 10.0, 80.0, 0.0, 5.0, -10.0])

    def random_cov(sds):
        A = rng.standard_normal((8, 8))
        corr = np.corrcoef(A @ A.T + 8 * np.eye(8))
        return corr * np.outer(sds, sds)

    bs = rng.multivariate_normal(np.zeros(8), random_cov(np.array([300, 60, 40, 30, 50, 20, 20, 15.0])), nsubj)
    bi = rng.multivariate_normal(np.zeros(8), random_cov(np.array([350, 40, 30, 20, 60, 15, 15, 10.0])), nitems)
    y = Xr @ beta + np.einsum("ij,ij->i", Xr, bs[subj]) + np.einsum("ij,ij->i", Xr, bi[item])
    y = y + 600 * rng.standard_normal(y.size)
    return pd.DataFrame({"y": y, "a": a, "b": b, "c": c, "subj": [f"S{s:02d}" for s in subj],
                         "item": [f"I{i:02d}" for i in item]})


GENERATORS = {"sim_long": sim_long, "sim_crossed": sim_crossed, "maximal": maximal}


def load(name: str, directory: pathlib.Path) -> pd.DataFrame:
    """Read a generated dataset, generating it first when missing."""
    path = directory / f"{name}.csv"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        generate(name).to_csv(path, index=False)
    return pd.read_csv(path)


def generate(name: str) -> pd.DataFrame:
    """A dataset by name; ``sim_long_<n>`` and ``sim_crossed_<n>`` give n rows."""
    if name.startswith("sim_long_"):
        n = int(name.rsplit("_", 1)[1])
        return sim_long(nsubj=max(n // 10, 2))
    if name.startswith("sim_crossed_"):
        return sim_crossed(n=int(name.rsplit("_", 1)[1]))
    return GENERATORS[name]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(GENERATORS))
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        generate(name).to_csv(args.out / f"{name}.csv", index=False)
        print(f"wrote {args.out / (name + '.csv')}")


if __name__ == "__main__":
    main()
