"""Profile and Wald intervals against lme4's confint."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm

from inference_cases import PROFILE_FINE, PROFILE_LME4, WALD, by_id, cases, fit, table

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


def test_profile_intervals_of_a_weighted_fit():
    # Prior weights: the variance parameters' intervals are lme4's (profile_weights_reference.json,
    # lme4 1.1.31). lme4's profiles of the fixed effects of a weighted fit are not usable
    # (it warns "non-monotonic profile" and gives (Intercept) 250.4–251.7 against a Wald
    # 236.9–264.1); lmm's are checked against the Wald intervals instead, which they bracket
    # closely for this well-determined model.
    path = pathlib.Path(__file__).parent.parent / "reference" / "profile_weights_reference.json"
    ref = json.loads(path.read_text())
    data = lmm.datasets.load("sleepstudy")
    data["w"] = 1 + (data["Days"] % 3) / 2
    res = lmm.lmer(ref["formula"], data, weights="w")
    got = res.confint()
    variance = [r for r in ref["rows"] if r.startswith(".")]
    want = pd.DataFrame({"lo": ref["lower"], "hi": ref["upper"]}, index=ref["rows"]).loc[variance]
    np.testing.assert_allclose(got.loc[variance].to_numpy(), want.to_numpy(), rtol=PROFILE_LME4, atol=PROFILE_LME4)
    base = res.refit_ml().objective
    for end in got.loc["Days"]:
        held = lmm.lmer("Reaction ~ 1 + (Days | Subject)", data.assign(o=end * data["Days"]), REML=False,
                        weights="w", offset="o")
        assert held.objective - base == pytest.approx(3.841458820694124, rel=1e-3)
