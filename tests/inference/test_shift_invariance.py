"""Inference is invariant to shifting the response or a predictor (regression tests).

Each fit works on X centred and y with its least-squares fit removed (the core's shift),
which protects the crossproducts from cancellation. Inference used to build its own cores
without that shift: sleepstudy with ``Reaction + 1e6`` gave Satterthwaite df 17.3 / 16.7
instead of 17 / 17, with ``Reaction + 1e8`` df 181 / 165 and a failed profile, with
``Reaction + 1e10`` a Cholesky error in Satterthwaite, profile and bootstrap, and with
``Days + 1e4`` in the fixed effects df 17.26. The profile of a fixed effect also needs its
own core's shift refreshed for each new response (without it, ``Days + 1e4`` makes the
profile's root finder warn). Every
quantity below must equal the one of the unshifted fit; the intercept's intervals move by
the shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm

# Tolerances per quantity, relative to the unshifted fit's (intervals: to their width).
# Observed after the fix: Satterthwaite df 7e-9, Kenward-Roger df 6e-9 (Days shifted;
# 2e-15 for the response), profile ends 9e-9 (the intercept's, less the shift, 5e-8),
# bootstrap ends 8e-8 (intercept 2e-8). Before: df 2e-2 off at 1e6, 10x at 1e8, errors at 1e10.
SATT_DF = 1e-6
KR_DF = 1e-6
PROFILE_END = 1e-5
BOOT_END = 1e-5
SOLUTION = 0.0       # evaluating elsewhere changes nothing: exact

FORMULA = "Reaction ~ Days + (Days | Subject)"
Y_SHIFTS = [1e6, 1e8, 1e10]
X_SHIFT = 1e4
BOOT_NSIM = 20
BOOT_SEED = 1
VARIANCE_ROWS = [".sig01", ".sig02", ".sig03", ".sigma"]

_FITS: dict = {}


def fit(y_shift: float = 0.0, x_shift: float = 0.0):
    """sleepstudy with the response and the fixed-effects ``Days`` shifted (random part unchanged)."""
    key = (y_shift, x_shift)
    if key not in _FITS:
        data = lmm.datasets.load("sleepstudy").copy()
        data["Reaction"] = data["Reaction"] + y_shift
        data["DaysX"] = data["Days"] + x_shift
        _FITS[key] = lmm.lmer("Reaction ~ DaysX + (Days | Subject)", data)
    return _FITS[key]


def _rel(got, want, scale) -> float:
    return float(np.max(np.abs(np.asarray(got) - np.asarray(want)) / np.asarray(scale)))


def _widths(ci: pd.DataFrame) -> np.ndarray:
    return (ci.iloc[:, 1] - ci.iloc[:, 0]).to_numpy()


# --------------------------------------------------------------------------- degrees of freedom


@pytest.mark.parametrize("shift", Y_SHIFTS)
@pytest.mark.parametrize("ddf,tol", [("Satterthwaite", SATT_DF), ("Kenward-Roger", KR_DF)])
def test_df_of_a_shifted_response_equal_the_unshifted(shift, ddf, tol):
    base = fit().coef_table(ddf)["df"].to_numpy()
    got = fit(shift).coef_table(ddf)["df"].to_numpy()
    assert _rel(got, base, base) < tol


@pytest.mark.parametrize("ddf,tol", [("Satterthwaite", SATT_DF), ("Kenward-Roger", KR_DF)])
def test_df_of_a_shifted_predictor_equal_the_unshifted(ddf, tol):
    base, shifted = fit(), fit(0.0, X_SHIFT)
    got = shifted.coef_table(ddf)["df"].to_numpy()
    # the slope is the same parameter; the intercept is now β₀ − 1e4 β₁
    slope = base.coef_table(ddf)["df"].iloc[1]
    intercept = base.test([1.0, -X_SHIFT], ddf=ddf, joint=False)["df"].iloc[0]
    assert _rel(got, [intercept, slope], [intercept, slope]) < tol


# --------------------------------------------------------------------------- intervals


def _check_intervals(base: pd.DataFrame, got: pd.DataFrame, shift: float, tol: float, intercept: bool) -> None:
    width = _widths(base)
    rows = VARIANCE_ROWS + ["DaysX"]
    for name in rows:
        i = list(base.index).index(name)
        assert _rel(got.loc[name], base.loc[name], width[i]) < tol, name
    if intercept:
        i = list(base.index).index("(Intercept)")
        assert _rel(got.loc["(Intercept)"] - shift, base.loc["(Intercept)"], width[i]) < tol


@pytest.mark.parametrize("shift", Y_SHIFTS)
def test_profile_intervals_of_a_shifted_response_move_with_it(shift):
    base = fit().confint("profile")
    _check_intervals(base, fit(shift).confint("profile"), shift, PROFILE_END, intercept=True)


def test_profile_intervals_of_a_shifted_predictor_equal_the_unshifted():
    base = fit().confint("profile", parm=VARIANCE_ROWS + ["DaysX"])
    got = fit(0.0, X_SHIFT).confint("profile", parm=VARIANCE_ROWS + ["DaysX"])
    _check_intervals(base, got, 0.0, PROFILE_END, intercept=False)


def _boot(res) -> pd.DataFrame:
    return res.confint("bootstrap", nsim=BOOT_NSIM, seed=BOOT_SEED, n_jobs=1, progress=False)


@pytest.mark.parametrize("shift", Y_SHIFTS)
def test_bootstrap_intervals_of_a_shifted_response_move_with_it(shift):
    _check_intervals(_boot(fit()), _boot(fit(shift)), shift, BOOT_END, intercept=True)


def test_bootstrap_intervals_of_a_shifted_predictor_equal_the_unshifted():
    _check_intervals(_boot(fit()), _boot(fit(0.0, X_SHIFT)), 0.0, BOOT_END, intercept=False)


# --------------------------------------------------------------------------- evaluation leaves the fit alone


def _outputs(res) -> dict:
    return {
        "fixef": res.fixef.to_numpy().copy(), "vcov": res.vcov.to_numpy().copy(), "sigma": res.sigma,
        "objective": res.objective, "theta": res.theta.copy(),
        "varcorr": res.varcorr["sdcor"].to_numpy().copy(),
        "ranef": np.concatenate([f.to_numpy().ravel() for f in res.ranef.values()]),
        "fitted": res.fitted(), "predict": res.predict(), "summary": res.summary(ddf=None),
        "simulate": res.simulate(2, seed=5),
        "condvar": np.concatenate([a.ravel() for a in res.ranef_condvar().values()]),
        "tidy": res.tidy(ddf=None)["estimate"].to_numpy().copy(),
    }


def test_evaluating_the_model_elsewhere_changes_no_output_of_the_fit():
    data = lmm.datasets.load("sleepstudy")
    model = lmm.LinearMixedModel(FORMULA, data)
    res = model.fit()
    before = _outputs(res)
    other = model.solution([0.3, -0.2, 1.7], reml=False)
    assert other.objective != res.objective
    model.objective([2.0, 0.5, 0.1])
    res.refit_ml()
    after = _outputs(res)
    for key, value in before.items():
        if isinstance(value, str):
            assert after[key] == value, key
        else:
            np.testing.assert_allclose(after[key], value, rtol=SOLUTION, atol=0, err_msg=key)
