"""Thread safety: different models fitted from several Python threads give the serial answers.

The core releases the GIL in ``evaluate``, ``evaluate_with_gradient`` and ``set_theta``,
so fits of different models overlap. Each model owns its core object; one model must not
be fitted from two threads at once (``set_theta`` mutates it), so that is not tested.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import optimize

THREADS = 4


def _simulated(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 40, n)
    b = rng.integers(0, 15, n)
    x = rng.standard_normal(n)
    y = (1 + 0.5 * x + rng.standard_normal(40)[a] + 0.5 * rng.standard_normal(40)[a] * x
         + 0.7 * rng.standard_normal(15)[b] + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


MODELS = [
    ("Reaction ~ Days + (Days | Subject)", lambda: lmm.datasets.load("sleepstudy"), True),
    ("Reaction ~ Days + (Days || Subject)", lambda: lmm.datasets.load("sleepstudy"), False),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: lmm.datasets.load("penicillin"), True),
    ("strength ~ 1 + (1 | batch/cask)", lambda: lmm.datasets.load("pastes"), False),
    ("score ~ Machine + (0 + Machine | Worker)", lambda: lmm.datasets.load("machines"), True),
    ("y ~ x + (x | a) + (1 | b)", lambda: _simulated(1), True),
    ("y ~ x + (x | a) + (1 | b)", lambda: _simulated(2), False),
    ("y ~ x + (1 | a:b) + (1 | a)", lambda: _simulated(3), True),
]


def _fit(spec):
    formula, data, reml = spec
    res = lmm.LinearMixedModel(formula, data(), REML=reml).fit()
    return res.objective, res.theta, res.fixef.to_numpy(), res.sigma


def _same(a, b):
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_concurrent_fits_equal_serial_fits():
    serial = [_fit(spec) for spec in MODELS]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for _ in range(2):
            concurrent = list(pool.map(_fit, MODELS * 2))
            for got, want in zip(concurrent, serial * 2):
                _same(got, want)


def test_concurrent_evaluations_on_separate_models():
    """Many objective/gradient calls on distinct models at once, each against its serial value."""
    models = [lmm.LinearMixedModel(f, d(), REML=r) for f, d, r in MODELS]
    rng = np.random.default_rng(0)
    thetas = []
    for m in models:
        lower = m.theta_lower
        thetas.append([np.where(lower == 0, rng.uniform(0.01, 2, m.ntheta), rng.uniform(-1, 1, m.ntheta))
                       for _ in range(25)])
    serial = [[m.objective_and_gradient(t) for t in ts] for m, ts in zip(models, thetas)]

    def work(k):
        return [models[k].objective_and_gradient(t) for t in thetas[k]]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for _ in range(3):
            for got_model, want_model in zip(pool.map(work, range(len(models))), serial):
                for (v, g), (v0, g0) in zip(got_model, want_model):
                    assert v == v0
                    np.testing.assert_array_equal(g, g0)


def test_models_built_concurrently():
    """Design construction (formula evaluation, validation, crossproducts) from several threads."""
    def build(spec):
        f, d, r = spec
        m = lmm.LinearMixedModel(f, d(), REML=r)
        return m.objective(m.theta_start)

    serial = [build(spec) for spec in MODELS]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        got = list(pool.map(build, MODELS * 2))
    assert got == serial * 2


def test_small_dense_blocks_factor_on_one_blas_thread(monkeypatch):
    # Fits whose dense tail is below DENSE_THREADS_MIN run with BLAS limited to one thread
    # (threads cost more than they give there, much more on a busy machine); larger tails
    # keep the threads as set.
    from threadpoolctl import threadpool_info

    from lmm import _threads

    seen = []
    original = _threads.dense_blas

    def recording(tail_size):
        seen.append(tail_size)
        return original(tail_size)

    monkeypatch.setattr(optimize, "dense_blas", recording)
    lmm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", lmm.datasets.load("penicillin"))
    assert seen and seen[0] < _threads.DENSE_THREADS_MIN
    with _threads.dense_blas(10):
        assert {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"} == {1}
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    with _threads.dense_blas(_threads.DENSE_THREADS_MIN):
        assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before
