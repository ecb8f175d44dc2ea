"""Codings given as matrices (lme4's ``contrasts = list(f = M)``) against lme4 1.1.31:
the fixed effects' columns and names follow the matrix, the random-effects terms keep
R's default coding (lme4 passes contrasts to the fixed part only). A matrix with fewer
columns than levels − 1 is used as given (model.matrix sets it with how.many = its
columns): a smaller model, as lme4's."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm

REFERENCE = json.loads((pathlib.Path(__file__).parent / "reference" / "contrast_matrix_reference.json").read_text())

# Named tolerances: the objective at the optimum, θ, β and SEs of a small balanced design.
OBJECTIVE = 1e-8
THETA = 1e-4
BETA = 1e-6
SE = 1e-5


def _coding(fit):
    M = np.array(fit["matrix"])
    return pd.DataFrame(M, columns=fit["colnames"]) if fit["colnames"] else M


@pytest.mark.parametrize("fid", list(REFERENCE["fits"]))
def test_contrast_matrix_matches_lme4(fid):
    fit = REFERENCE["fits"][fid]
    res = lmm.lmer(fit["formula"], lmm.datasets.load("machines"), contrasts={"Machine": _coding(fit)})
    assert res.objective == pytest.approx(fit["objective"], rel=OBJECTIVE)
    assert list(res.fixef.index) == list(fit["beta"])
    np.testing.assert_allclose(res.fixef.to_numpy(), list(fit["beta"].values()), rtol=BETA)
    np.testing.assert_allclose(res.se.to_numpy(), list(fit["se"].values()), rtol=SE)
    assert res.theta_names == list(fit["theta"])
    np.testing.assert_allclose(res.theta, list(fit["theta"].values()), rtol=THETA, atol=THETA)
    assert res.model.terms[0].cnames == fit["Z_columns"]
    assert res.sigma == pytest.approx(fit["sigma"], rel=SE)


def test_contrast_matrix_errors():
    data = lmm.datasets.load("machines")
    formula = "score ~ Machine + (1 | Worker)"
    with pytest.raises(ValueError, match="2 rows for a factor with 3 levels"):
        lmm.lmer(formula, data, contrasts={"Machine": np.ones((2, 2))})
    with pytest.raises(ValueError, match="finite levels × columns matrix"):
        lmm.lmer(formula, data, contrasts={"Machine": np.array([1.0, 0.0, -1.0])})
    with pytest.raises(TypeError, match="coding name or a numeric matrix"):
        lmm.lmer(formula, data, contrasts={"Machine": [["a", "b"]] * 3})
