"""Results and models survive pickling (joblib, multiprocessing, caches): the compiled core
is formed again from the design, and every output is the same."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import lmm


def _roundtrip(obj):
    return pickle.loads(pickle.dumps(obj))


@pytest.mark.parametrize("formula,kwargs", [
    ("Reaction ~ Days + (Days | Subject)", {}),
    ("Reaction ~ Days + cs(1 + Days | Subject)", {}),
    ("Reaction ~ Days + (1 | Subject) + offset(Days / 10)", {"weights": "w"}),
])
def test_pickled_result_gives_the_same_outputs(formula, kwargs):
    data = lmm.datasets.load("sleepstudy")
    data = data.assign(w=1.0 + (data["Days"] % 3) / 2)
    res = lmm.lmer(formula, data, **kwargs)
    summary = str(res)  # caches Satterthwaite's ingredients, pickled with the result
    got = _roundtrip(res)
    assert str(got) == summary
    assert got.objective == res.objective
    np.testing.assert_array_equal(got.theta, res.theta)
    np.testing.assert_array_equal(got.predict(data.head(20)), res.predict(data.head(20)))
    np.testing.assert_array_equal(got.ranef["Subject"].to_numpy(), res.ranef["Subject"].to_numpy())
    # the model evaluates again (its core was formed anew) and refits
    assert got.model.objective(res.theta * 1.1) == pytest.approx(res.model.objective(res.theta * 1.1), rel=1e-13)
    assert got.refit_ml().objective == pytest.approx(res.refit_ml().objective, rel=1e-12)


def _fit_objective(data) -> float:
    return lmm.lmer("Reaction ~ Days + (Days | Subject)", data).objective


def test_fits_run_in_worker_processes():
    data = lmm.datasets.load("sleepstudy")
    with ProcessPoolExecutor(max_workers=1) as pool:
        got = pool.submit(_fit_objective, data).result()
        res = pool.submit(lmm.lmer, "Reaction ~ Days + (1 | Subject)", data).result()
    assert got == pytest.approx(_fit_objective(data), rel=1e-12)
    assert res.objective == pytest.approx(lmm.lmer("Reaction ~ Days + (1 | Subject)", data).objective, rel=1e-12)
