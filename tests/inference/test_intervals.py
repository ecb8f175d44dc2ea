"""Profile and Wald intervals against lme4's confint."""

from __future__ import annotations

import numpy as np
import pytest


from inference_cases import PROFILE_LME4, PROFILE_FINE, WALD, cases, by_id, fit, table


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize("ref", cases("intervals"))
def test_profile_intervals_match_lme4(ref):
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    got = res.confint()
    want = table(ref["profile"])
    fine = table(ref["profile_fine"])
    assert list(got.index) == list(want.index)
    assert list(got.columns) == ["2.5 %", "97.5 %"]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=PROFILE_LME4)
    np.testing.assert_allclose(got.to_numpy(), fine.to_numpy(), rtol=PROFILE_FINE)
    wald = res.confint("wald")
    want = table(ref["wald"])
    assert list(wald.index) == list(want.index)
    np.testing.assert_allclose(wald.to_numpy(), want.to_numpy(dtype=float), rtol=WALD)


def test_profile_zeta_curve_matches_lme4_points():
    ref = by_id("intervals")["dyestuff"]
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    prof = res.profile()
    for name, curve in ref["zeta"].items():
        f = prof.zeta_functions[name]
        for value, zeta in list(zip(curve["value"], curve["zeta"]))[::3]:
            assert f(value) == pytest.approx(zeta, abs=1e-4), (name, value)
        pts = prof.curves[name]
        assert (np.diff(pts["zeta"].to_numpy()) > 0).all()   # monotone profile
        assert pts["zeta"].abs().max() >= 2.5


def test_confint_level_and_parm():
    res = fit("Yield ~ 1 + (1 | Batch)", "dyestuff")
    ci = res.confint(level=0.9, parm=["(Intercept)"])
    assert list(ci.columns) == ["5 %", "95 %"] and list(ci.index) == ["(Intercept)"]
    assert ci.iloc[0, 0] > res.confint().loc["(Intercept)"].iloc[0]
    with pytest.raises(ValueError, match="method"):
        res.confint("asymptotic")
