"""Likelihood-ratio tests against lme4's anova."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lmm
from lmm import inference

from inference_cases import LRT, cases, fit, table

# --------------------------------------------------------------------------- likelihood-ratio tests


@pytest.mark.parametrize("ref", cases("lrts"))
def test_lrt_table_matches_lme4(ref):
    fits = [fit(f, ref["dataset"], ref["REML"]) for f in ref["formulas"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = lmm.anova(*fits)
    refit = [w for w in caught if issubclass(w.category, inference.RefitMLWarning)]
    assert bool(refit) == ref["REML"]
    want = table(ref["table"])
    assert list(got.index) == list(want.index)
    assert list(got.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    np.testing.assert_array_equal(got["npar"], want["npar"])
    for col in ("AIC", "BIC", "logLik", "deviance"):
        np.testing.assert_allclose(got[col], want[col], rtol=LRT)
    for col in ("Chisq", "Df", "Pr(>Chisq)"):
        np.testing.assert_allclose(got[col].iloc[1:], want[col].iloc[1:].astype(float), rtol=1e-5)
        assert np.isnan(got[col].iloc[0])


def test_anova_checks_its_models():
    a = fit("Reaction ~ Days + (1 | Subject)", "sleepstudy", REML=False)
    b = fit("Yield ~ 1 + (1 | Batch)", "dyestuff", REML=False)
    with pytest.raises(ValueError, match="same number of observations"):
        lmm.anova(a, b)
    with pytest.raises(ValueError, match="at least one"):
        lmm.anova()
