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


def test_fits_run_blas_on_one_thread_and_thread_only_large_dense_blocks(monkeypatch):
    # Inside fits BLAS runs on one thread (its own threads cost more than they give at a
    # mixed model's sizes, much more on a busy machine); the core's dense kernels take the
    # user's BLAS threads for tails of THREADED_ORDER columns and more, one thread below.
    from threadpoolctl import threadpool_info, threadpool_limits

    from lmm import _core, _threads

    seen = []
    original = _threads.dense_blas

    def recording(tail_size):
        seen.append(tail_size)
        return original(tail_size)

    monkeypatch.setattr(optimize, "dense_blas", recording)
    lmm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", lmm.datasets.load("penicillin"))
    assert seen and seen[0] < _threads.THREADED_ORDER

    def blas():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    with threadpool_limits(2):
        before = blas()
        with _threads.dense_blas(10):
            assert blas() == {1} and _core.dense_threads() == 1
        with _threads.dense_blas(_threads.THREADED_ORDER):
            assert blas() == {1} and _core.dense_threads() == 2
            # Nested (an evaluation inside a summary's differences): the outer block's
            # user threads, not the one BLAS thread it left.
            with _threads.dense_blas(_threads.THREADED_ORDER):
                assert blas() == {1} and _core.dense_threads() == 2
            with _threads.dense_blas(10):
                assert _core.dense_threads() == 1
            assert blas() == {1} and _core.dense_threads() == 2
        assert blas() == before and _core.dense_threads() == 1


def test_threaded_dense_kernels_give_the_one_thread_answer():
    # A crossed model with a dense tail above THREADED_ORDER: the criterion, gradient and
    # fit with the dense kernels on 2 threads equal those on one (the products are split,
    # not reordered within a part, so only the order of a few sums changes).
    from threadpoolctl import threadpool_limits

    from lmm import _core, _threads

    rng = np.random.default_rng(3)
    n, na, nb = 12_000, 900, _threads.THREADED_ORDER + 150
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    y = rng.standard_normal(na)[a] + 0.7 * rng.standard_normal(nb)[b] + rng.standard_normal(n)
    m = lmm.LinearMixedModel("y ~ 1 + (1 | a) + (1 | b)", pd.DataFrame({"y": y, "a": a, "b": b}))
    assert m.core.tail_size >= _threads.THREADED_ORDER
    theta = np.array([0.8, 0.6])
    got = {}
    with threadpool_limits(1):
        for threads in (1, 2):
            _core.set_dense_threads(threads)
            try:
                f, g = m.objective_and_gradient(theta)
                res = m.fit()
            finally:
                _core.set_dense_threads(1)
            got[threads] = (f, g, res.theta, res.objective)
    (f1, g1, t1, o1), (f2, g2, t2, o2) = got[1], got[2]
    assert f2 == pytest.approx(f1, rel=1e-13)
    np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(t2, t1, rtol=1e-6)
    assert o2 == pytest.approx(o1, rel=1e-12)
