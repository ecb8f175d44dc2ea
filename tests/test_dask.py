"""Fits from Dask data frames: the partitions' crossproducts formed on the workers of a
``distributed.LocalCluster`` (several processes) and summed in a tree must give the fit
of the same rows in pandas: θ, β, σ, the criterion, SEs, conditional modes, Satterthwaite
df, and fitted values and residuals (Dask series). A worker killed during the reduction
(Dask recomputes what it held) leaves the answer unchanged.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

import lmm

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

# Named tolerances: sums in another order (tree of partitions) change the crossproducts by
# rounding; fitted quantities then agree to the optimizer's tolerance.
OBJECTIVE_TOL = 1e-10
FIT_TOL = 1e-8
ROW_TOL = 1e-8
NPARTITIONS = 24


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as cl:
        yield cl


def _data(n: int = 4000, seed: int = 1) -> pd.DataFrame:
    """Crossed users (strings, skewed counts) and items (integers), a slope per user, a
    three-level fixed factor, prior weights and an offset."""
    rng = np.random.default_rng(seed)
    users = np.minimum(rng.geometric(0.02, n), 150)
    items = rng.integers(0, 40, n)
    x = 5.0 + rng.standard_normal(n)
    f = rng.choice(["lo", "mid", "hi"], n)
    bu, su, bi = rng.standard_normal(151), 0.3 * rng.standard_normal(151), 0.5 * rng.standard_normal(40)
    w = rng.uniform(0.5, 2.0, n)
    y = (1.0 + 0.4 * (x - 5.0) + np.where(f == "hi", 0.8, 0.0) + bu[users] + su[users] * (x - 5.0) + bi[items]
         + rng.standard_normal(n) / np.sqrt(w))
    return pd.DataFrame({"y": y, "x": x, "f": f, "user": [f"u{k:03d}" for k in users], "item": items, "w": w,
                         "o": 0.01 * rng.standard_normal(n)})


def _assert_same_fit(got, want, tol: float = FIT_TOL) -> None:
    np.testing.assert_allclose(got.objective, want.objective, rtol=tol)
    np.testing.assert_allclose(got.theta, want.theta, rtol=tol, atol=tol * np.max(np.abs(want.theta)))
    assert list(got.fixef.index) == list(want.fixef.index)
    np.testing.assert_allclose(got.fixef.to_numpy(), want.fixef.to_numpy(), rtol=tol)
    np.testing.assert_allclose(got.sigma, want.sigma, rtol=tol)
    np.testing.assert_allclose(got.se.to_numpy(), want.se.to_numpy(), rtol=tol)
    assert got.nobs == want.nobs
    for name, frame in want.ranef.items():
        g = got.ranef[name]
        assert list(g.index) == list(frame.index)
        np.testing.assert_allclose(g.to_numpy(), frame.to_numpy(), rtol=tol, atol=tol * np.abs(frame.to_numpy()).max())


def _assert_same_rows(got, want: pd.Series) -> None:
    """A Dask series of per-row outputs equals the pandas one (NaN on the same dropped rows)."""
    assert isinstance(got, dd.Series)
    values = got.compute()
    assert list(values.index) == list(want.index)
    np.testing.assert_allclose(values.to_numpy(), want.to_numpy(), rtol=ROW_TOL,
                               atol=ROW_TOL * np.nanmax(np.abs(want.to_numpy())))


FORMULA = "y ~ x + f + (1 + x | user) + (1 | item)"


def test_threaded_scheduler_without_a_client():
    """Without a client Dask's local scheduler runs the partitions (the core releases the GIL)."""
    d = _data(seed=2)
    import dask

    with dask.config.set(scheduler="threads"):
        got = lmm.lmer("y ~ x + (1 | user) + (1 | item)", dd.from_pandas(d, npartitions=8))
    _assert_same_fit(got, lmm.lmer("y ~ x + (1 | user) + (1 | item)", d))


def test_fit_through_the_cluster_equals_pandas(client):
    d = _data()
    ddf = dd.from_pandas(d, npartitions=NPARTITIONS)
    assert ddf.npartitions >= 20
    m = lmm.LinearMixedModel(FORMULA, ddf, weights="w", offset="o")
    full = lmm.LinearMixedModel(FORMULA, d, weights="w", offset="o")
    assert isinstance(m, lmm.chunks.ChunkedLinearMixedModel)
    assert m.design.nchunks == ddf.npartitions
    theta = full.theta_start
    for reml in (True, False):
        np.testing.assert_allclose(m.objective(theta, reml), full.objective(theta, reml), rtol=OBJECTIVE_TOL)
    got, want = m.fit(), full.fit()
    _assert_same_fit(got, want)
    np.testing.assert_allclose(got.coef_table()["df"], want.coef_table()["df"], rtol=1e-6)
    _assert_same_rows(got.fitted(), want.fitted())
    _assert_same_rows(got.residuals(), want.residuals())
    _assert_same_rows(got.residuals(type="pearson"), want.residuals(type="pearson"))
    np.testing.assert_allclose(got.fitted(array=True).compute(), want.fitted(array=True), rtol=ROW_TOL)
    _assert_same_fit(m.fit(reml=False), full.fit(reml=False))


def test_nan_rows_dropped_as_in_pandas(client):
    d = _data(seed=3)
    d.loc[d.index[[5, 900, 2500]], "x"] = np.nan
    d.loc[d.index[[40, 3100]], "y"] = np.nan
    d.loc[d.index[[77]], "user"] = None
    d.loc[d.index[[1500]], "f"] = None
    ddf = dd.from_pandas(d, npartitions=NPARTITIONS)
    with pytest.warns(UserWarning, match="7 of 4000 rows dropped because of missing values") as got_w:
        got = lmm.lmer(FORMULA, ddf)
    with pytest.warns(UserWarning, match="dropped") as want_w:
        want = lmm.lmer(FORMULA, d)
    assert len(got_w) == len(want_w) == 1
    _assert_same_fit(got, want)
    _assert_same_rows(got.fitted(), want.fitted())  # NaN on the dropped rows, as pandas
    with pytest.raises(ValueError, match="missing values"):
        lmm.lmer(FORMULA, ddf, missing="raise")


def test_unknown_and_known_categories(client):
    """Categorical columns whose categories Dask does not know (each partition its own),
    and known ones with an unused category, give the fit of the computed frame."""
    d = _data(seed=4)
    ddf = dd.from_pandas(d, npartitions=NPARTITIONS).astype({"user": "category", "f": "category"})
    assert not ddf["user"].cat.known
    whole = ddf.compute()
    _assert_same_fit(lmm.lmer(FORMULA, ddf), lmm.lmer(FORMULA, whole))
    known = d.astype({"f": pd.CategoricalDtype(["mid", "hi", "lo", "unused"]), "user": "category"})
    kddf = dd.from_pandas(known, npartitions=NPARTITIONS)
    assert kddf["f"].cat.known
    got, want = lmm.lmer(FORMULA, kddf), lmm.lmer(FORMULA, known)
    assert list(got.fixef.index) == list(want.fixef.index)  # reference level "mid", as the categories order
    _assert_same_fit(got, want)


# dask 2026.8's read_parquet calls reset_index and set_index with inplace=True, which pandas 3.1 deprecates.
@pytest.mark.filterwarnings(r"ignore:The inplace keyword in DataFrame\.(reset|set)_index is deprecated")
def test_parquet_out_of_core(client, tmp_path):
    """dd.read_parquet (partitions read on the workers) and lmer on the path (pyarrow
    batches read here) both equal the in-memory fit."""
    d = _data(seed=5)
    path = tmp_path / "ratings"
    dd.from_pandas(d, npartitions=12).to_parquet(path)
    want = lmm.lmer(FORMULA, d, weights="w")
    ddf = dd.read_parquet(path)
    assert ddf.npartitions >= 10
    _assert_same_fit(lmm.lmer(FORMULA, ddf, weights="w"), want)
    _assert_same_fit(lmm.lmer(FORMULA, str(path), weights="w"), want)


def test_worker_killed_during_the_reduction(client):
    """A worker process killed while the partitions are processed: its tasks and the
    parts it held are recomputed elsewhere, and the fit is the same."""
    d = _data(seed=6)
    formula = "y ~ x + (1 | user) + (1 | item)"

    def slow(part: pd.DataFrame) -> pd.DataFrame:
        time.sleep(0.15)
        return part

    ddf = dd.from_pandas(d, npartitions=NPARTITIONS).map_partitions(slow)
    want = lmm.lmer(formula, d)
    before = client.run(os.getpid)
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                pid = before.get(busy[0])
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one)
    killer.start()
    got = lmm.lmer(formula, ddf)
    killer.join()
    assert killed, "no worker was busy to be killed"
    assert killed[0] not in client.run(os.getpid).values()  # (the nanny started another process)
    _assert_same_fit(got, want)


def test_result_pickles_without_the_data(client):
    d = _data(seed=7)
    res = lmm.lmer("y ~ x + (1 | user)", dd.from_pandas(d, npartitions=6))
    back = pickle.loads(pickle.dumps(res))
    assert back.objective == res.objective
    np.testing.assert_array_equal(back.fixef.to_numpy(), res.fixef.to_numpy())
    with pytest.raises(NotImplementedError, match="not pickled"):
        back.fitted()
    # A partition's fitted values from the result itself, as the error says.
    part = d.iloc[:300]
    np.testing.assert_allclose(back.predict(part), res.fitted().compute().iloc[:300], rtol=ROW_TOL)


def test_bad_input_is_refused(client):
    d = _data(seed=8)
    ddf = dd.from_pandas(d, npartitions=4)
    with pytest.raises(lmm.formula.FormulaError, match="nothere"):
        lmm.lmer("y ~ nothere + (1 | user)", ddf)
    with pytest.raises(ValueError, match="single level"):
        lmm.lmer("y ~ x + (1 | g)", ddf.assign(g="one"))
    with pytest.raises(TypeError, match="column name"):
        lmm.lmer("y ~ x + (1 | user)", ddf, weights=np.ones(len(d)))


def test_stateful_transforms_through_the_cluster(client):
    """scale(), poly() and ns() learned in rounds over the partitions on the workers."""
    d = _data(seed=9)
    d.loc[d.index[[3, 2000]], "y"] = np.nan
    formula = "y ~ scale(x) + poly(w, 2) + ns(o, df = 3) + (1 | user)"
    with pytest.warns(UserWarning, match="dropped"):
        got = lmm.lmer(formula, dd.from_pandas(d, npartitions=NPARTITIONS))
    with pytest.warns(UserWarning, match="dropped"):
        want = lmm.lmer(formula, d)
    _assert_same_fit(got, want)


def test_matrix_free_through_the_cluster(client):
    """The matrix-free method on a Dask frame's summed crossproducts equals it on the pandas frame."""
    d = _data(seed=6)
    ddf = dd.from_pandas(d, npartitions=NPARTITIONS)
    formula = "y ~ x + (1 | user) + (1 | item)"
    got = lmm.lmer(formula, ddf, weights="w", method="matrix-free")
    want = lmm.lmer(formula, d, weights="w", method="matrix-free")
    assert got.model.method == want.model.method == "matrix-free"
    _assert_same_fit(got, want)
    _assert_same_rows(got.fitted(), want.fitted())
