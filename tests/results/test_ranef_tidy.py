"""Conditional modes and variances, tidy tables and the ML refit against lme4 and broom.mixed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inference_cases import COEF, CONDSD, CONDVAL_ABS, SATT_DF, SATT_P, cases, fit, table

# --------------------------------------------------------------------------- random effects


@pytest.mark.parametrize("ref", cases("ranefs"))
def test_conditional_variances_and_coef_match_lme4(ref):
    res = fit(ref["formula"], ref["dataset"])
    want = pd.DataFrame(ref["ranef"])
    got = res.ranef_frame()
    merged = want.merge(got, on=["grpvar", "term", "grp"], suffixes=("_R", ""))
    assert len(merged) == len(want) == len(got)
    np.testing.assert_allclose(merged["condval"], merged["condval_R"], atol=CONDVAL_ABS)
    np.testing.assert_allclose(merged["condsd"], merged["condsd_R"], rtol=CONDSD)
    coefs = res.coef()
    assert set(coefs) == set(ref["coef"])
    for grp, frame in ref["coef"].items():
        w = table(frame)
        g = coefs[grp]
        assert list(g.columns) == list(w.columns)
        np.testing.assert_allclose(g.loc[w.index].to_numpy(), w.to_numpy(), rtol=COEF)


def test_condvar_shapes():
    res = fit("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy")
    cv = res.ranef_condvar()
    assert cv["Subject"].shape == (18, 2, 2)
    assert np.all(cv["Subject"][:, 0, 1] == 0)          # two terms: no cross block, as lme4
    full = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy").ranef_condvar()["Subject"]
    assert np.all(np.linalg.eigvalsh(full) > 0)


@pytest.mark.parametrize("ref", cases("tidies"))
def test_tidy_matches_broom_mixed(ref):
    res = fit(ref["formula"], ref["dataset"])
    want = table(ref["tidy"]).reset_index(drop=True)
    got = res.tidy()
    assert list(got.columns) == list(want.columns)
    assert list(got["effect"]) == list(want["effect"])
    assert list(got["group"].fillna("")) == list(want["group"])
    assert list(got["term"]) == list(want["term"])
    for col, rtol in (("estimate", 1e-5), ("std.error", 1e-5), ("statistic", 1e-5), ("df", SATT_DF),
                      ("p.value", SATT_P)):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=rtol)


def test_tidy_options():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    t = res.tidy()
    np.testing.assert_allclose(t["df"].iloc[:2], res.coef_table()["df"])
    ci = res.tidy(conf_int=True)
    assert {"conf.low", "conf.high"} <= set(ci.columns)
    rv = res.tidy(effects="ran_vals")
    assert len(rv) == 36 and rv["std.error"].gt(0).all()
    pd.testing.assert_frame_equal(res.to_frame(), t)
    with pytest.raises(ValueError, match="unknown effects"):
        res.tidy(effects="random")


def test_refit_ml_matches_an_ml_fit():
    reml = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    ml = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy", REML=False)
    refit = reml.refit_ml()
    assert not refit.REML
    assert refit.objective == pytest.approx(ml.objective, rel=1e-10)
    # the REML result still answers from its own θ
    assert reml.coef_table()["df"].iloc[1] == pytest.approx(17.0, abs=1e-3)
