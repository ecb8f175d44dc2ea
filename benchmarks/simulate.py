"""Simulated benchmark datasets, generated with fixed seeds (not committed when large).

    python benchmarks/simulate.py --out benchmarks/data            # all datasets
    python benchmarks/simulate.py --out benchmarks/data sim_long   # one
    python benchmarks/simulate.py --out benchmarks/data --movielens [--fraction 0.1]   # parquet, not by default

Datasets:
    sim_long      20,000 subjects × 10 times: y ~ 1 + t + (1 + t | subj)      (200,000 rows)
    sim_crossed   MovieLens-1M-like: 6,040 users × 3,706 items, skewed counts,
                  y ~ 1 + (1 | user) + (1 | item)                              (1,000,000 rows)
    maximal       kb07-like: 56 subjects × 32 items fully crossed, factors a, b, c coded ±0.5,
                  y ~ 1 + a*b*c + (1 + a*b*c | subj) + (1 + a*b*c | item)     (1,792 rows)
    movielens     ml-25m-like: 162,541 users × 59,047 items, heavy-tailed counts, unique pairs,
                  y ~ 1 + (1 | user) + (1 | item); parquet, string ids      (25,000,095 rows)
                  and its 1/10 and 1/100 scalings movielens_10, movielens_100 (only with --movielens)
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


def movielens(fraction: float = 1.0, seed: int = SEED) -> pd.DataFrame:
    """ml-25m-shaped ratings, y ~ 1 + (1 | user) + (1 | item): μ = 3.5, sd_user 0.45, sd_item 0.55, σ = 0.85.

    At fraction f: round(25,000,095 f) rows, round(162,541 f) users, round(59,047 f) items, each
    user and item rated, each (user, item) pair once, rows by user. Ratings per user: 20 + a
    lognormal (σ 1.42) scaled to the rows, at most 0.55 × items (ml-25m's largest share). Item
    popularity at popularity quantile q: 0.3 + c·exp(-(1000 q)^0.47) expected ratings (c to the
    rows), item ids random against it; each user's items are drawn by popularity, repeats skipped,
    until he has his count; an item left unrated then takes one rating of a popular item.
    ``user`` and ``item`` are categoricals of ids "u000000", "m000000" (integer codes in memory).
    """
    rng = np.random.default_rng(seed)
    nrows, nusers, nitems = (round(n * fraction) for n in (25_000_095, 162_541, 59_047))
    cap = int(0.55 * nitems)
    if not 20 * nusers <= nrows <= cap * nusers:
        raise ValueError(f"fraction {fraction}: {nrows:,} ratings do not fit {nusers:,} users of 20 to {cap:,}")
    counts = _counts(rng.lognormal(0.0, 1.42, nusers), nrows, 20, cap)
    m = np.exp(-((1000 * (np.arange(nitems) + 0.5) / nitems) ** 0.47))
    m = 0.3 + (nrows / nitems - 0.3) * m / m.mean()  # expected ratings by popularity rank
    user, rank = _distinct_draws(rng, counts, m / m.sum())
    rated = np.bincount(rank, minlength=nitems)
    missing = np.flatnonzero(rated == 0)
    donors = rng.choice(np.flatnonzero(rated[rank] > missing.size), missing.size, replace=False)
    rank[donors] = missing
    keys = user * nitems + rng.permutation(nitems)[rank]  # item ids random against popularity
    del user, rank
    keys.sort()
    users, items = (keys // nitems).astype(np.int32), (keys % nitems).astype(np.int32)
    del keys
    y = 3.5 + 0.45 * rng.standard_normal(nusers)[users] + 0.55 * rng.standard_normal(nitems)[items]
    y += 0.85 * rng.standard_normal(nrows)
    user_ids = pd.Categorical.from_codes(users, [f"u{k:06d}" for k in range(nusers)])
    item_ids = pd.Categorical.from_codes(items, [f"m{k:06d}" for k in range(nitems)])
    return pd.DataFrame({"y": y, "user": user_ids, "item": item_ids})


def _counts(x: np.ndarray, total: int, low: int, cap: int) -> np.ndarray:
    """Integers ≈ min(low + s·x, cap) summing to total (the remainders rounded up largest first)."""
    capped = np.zeros(x.size, bool)
    while True:
        scale = (total - low * x.size - (cap - low) * capped.sum()) / x[~capped].sum()
        over = ~capped & (low + scale * x > cap)
        if not over.any():
            break
        capped |= over
    t = np.where(capped, cap, low + scale * x)
    counts = np.floor(t).astype(np.int64)
    counts[np.argsort(counts - t)[: total - counts.sum()]] += 1
    return counts


def _distinct_draws(rng: np.random.Generator, counts: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """counts[u] distinct ranks for each user u, drawn one by one with probabilities p (decreasing),
    repeats skipped: (users, ranks), sorted. Drawn in rounds: for each user as many draws as his
    shortfall needs, from the ranks after those he holds without a gap from rank 0."""
    nusers, nitems = counts.size, p.size
    cdf = np.cumsum(p)
    before = cdf - p
    keys = np.empty(0, np.int64)  # user * nitems + rank, sorted
    short = counts
    while (todo := np.flatnonzero(short)).size:
        user, rank = np.divmod(keys, nitems)
        have = counts - short
        head = np.bincount(user[rank == np.arange(keys.size) - (np.cumsum(have) - have)[user]], minlength=nusers)
        head = head[todo]  # ranks 0 … head - 1 all held
        rest = 1 - np.bincount(user, weights=p[rank], minlength=nusers)[todo]  # the mass not held
        draws = np.ceil(1.2 * short[todo] * (1 - before[head]) / rest).astype(np.int64) + 4
        lo = np.repeat(before[head], draws)
        rank = np.searchsorted(cdf, lo + (1 - lo) * rng.random(lo.size), side="right")
        new = np.repeat(todo * nitems, draws) + np.clip(rank, np.repeat(head, draws), nitems - 1)
        del lo, rank
        new = new[np.sort(np.unique(new, return_index=True)[1])]  # each pair's first draw, in order
        if keys.size:  # not held before
            new = new[keys[np.minimum(np.searchsorted(keys, new), keys.size - 1)] != new]
        user = new // nitems
        new = new[np.arange(new.size) - np.searchsorted(user, user) < short[user]]  # the first `short`
        keys = np.sort(np.concatenate([keys, new]), kind="stable")
        short = counts - np.bincount(keys // nitems, minlength=nusers)
    return np.divmod(keys, nitems)


def movielens_path(fraction: float, directory: pathlib.Path) -> pathlib.Path:
    """``movielens.parquet`` at fraction 1, ``movielens_<k>.parquet`` at fraction 1/k."""
    k = round(1 / fraction)
    if not np.isclose(k * fraction, 1):
        raise ValueError(f"fraction {fraction} is not 1/k")
    return directory / ("movielens.parquet" if k == 1 else f"movielens_{k}.parquet")


def write_movielens(frame: pd.DataFrame, path: pathlib.Path) -> None:
    """Parquet with string ids in row groups of 10⁶ rows (read group by group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("y", pa.float64()), ("user", pa.string()), ("item", pa.string())])
    names = {c: pa.array(frame[c].cat.categories, pa.string()) for c in ("user", "item")}
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, len(frame), 1_000_000):
            part = frame.iloc[start : start + 1_000_000]
            ids = {c: pa.DictionaryArray.from_arrays(part[c].cat.codes.to_numpy(), names[c]) for c in names}
            columns = {"y": part["y"].to_numpy(), **{c: ids[c].cast(pa.string()) for c in ids}}
            writer.write_table(pa.table(columns, schema=schema), row_group_size=1_000_000)
    tmp.replace(path)


def load_movielens(fraction: float, directory: pathlib.Path) -> pathlib.Path:
    """The MovieLens-shaped parquet file at this fraction, generated first when missing."""
    path = movielens_path(fraction, directory)
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        write_movielens(movielens(fraction), path)
    return path


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
    parser.add_argument("names", nargs="*", help=f"datasets (default all of {', '.join(GENERATORS)})")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "data")
    parser.add_argument("--movielens", action="store_true", help="write the MovieLens-shaped parquet files")
    parser.add_argument("--fraction", type=float, help="with --movielens: only fraction 1/k (default 0.01, 0.1, 1)")
    args = parser.parse_args()
    if args.fraction is not None and not args.movielens:
        parser.error("--fraction needs --movielens")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or ([] if args.movielens else list(GENERATORS)):
        generate(name).to_csv(args.out / f"{name}.csv", index=False)
        print(f"wrote {args.out / (name + '.csv')}")
    if args.movielens:
        for fraction in [0.01, 0.1, 1.0] if args.fraction is None else [args.fraction]:
            path = movielens_path(fraction, args.out)
            write_movielens(movielens(fraction), path)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
