"""Many responses on one design against lme4 (tests/reference/many_reference.json, written
by make_many_reference.R): simulated responses on sleepstudy's Days + (Days | Subject)
(REML and ML) and on Penicillin's crossed 1 + (1 | plate) + (1 | sample) with prior
weights (REML and ML), among them singular fits, a response shifted by 1e6, one scaled by
1e-3 and responses with missing values. Each design is fitted by one lmm.lmer_many call;
each response is compared with lme4's lmer or refit() of it: the criterion at lme4's θ,
the optimum, θ, β, SEs, σ, the singular flag and the rows used."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "many_reference.json").read_text())
DESIGNS = {d["id"]: d for d in REF["designs"]}

# Named tolerances. lme4's fits are polished (the lower of two tightened optimizers), so the
# optimum's criterion agrees to near rounding, and the estimates to what the flatness of
# the criterion leaves (about the square root of its precision, far better here).
FIXED_REL = 1e-10      # lmm's criterion at lme4's θ vs lme4's criterion: the same function
CRITERION_REL = 1e-10  # the optimum (lmm's may be lower, not higher by more)
LOWER_REL = 1e-14      # below its own value at lme4's θ by more than this: a lower optimum
THETA_REL, THETA_ABS = 1e-5, 1e-6
BETA_SE = 1e-6         # |Δβ| in units of lme4's standard error
SE_REL = 1e-5
SIGMA_REL = 1e-6
# lme4's own fits of a response shifted by 1e6 lose digits to the constant (its θ moves by
# ~7e-6 against its fit of the unshifted response); lmm's are compared with lme4's fit of
# the unshifted response at the tolerances above, and with this against lme4's shifted fit.
SHIFTED_REL = 1e-4


def _responses(design: dict) -> pd.DataFrame:
    return pd.DataFrame({name: np.array([np.nan if v is None else v for v in values], dtype=float)
                         for name, values in design["responses"].items()})


def _kwargs(design: dict) -> dict:
    return {} if design["weights"] is None else {"weights": np.asarray(design["weights"], dtype=float)}


_MANY: dict[str, lmm.ManyResult] = {}


def _many(design_id: str) -> lmm.ManyResult:
    """The design's responses fitted by one lmer_many call (once per session)."""
    if design_id not in _MANY:
        d = DESIGNS[design_id]
        _MANY[design_id] = lmm.lmer_many(d["formula"], lmm.datasets.load(d["dataset"]), Y=_responses(d),
                                         REML=d["REML"], **_kwargs(d))
    return _MANY[design_id]


def _single_model(design: dict, name: str) -> lmm.LinearMixedModel:
    """The model of one response alone, on the rows where it is present (as lme4's na.omit)."""
    y = _responses(design)[name].to_numpy()
    keep = ~np.isnan(y)
    data = lmm.datasets.load(design["dataset"]).assign(y=y)[keep].reset_index(drop=True)
    kwargs = {k: v[keep] for k, v in _kwargs(design).items()}
    return lmm.LinearMixedModel(f"y {design['formula']}", data, REML=design["REML"], **kwargs)


def _fit_ref(design: dict, name: str) -> dict:
    return next(f for f in design["fits"] if f["name"] == name)


def _values(obj: dict) -> np.ndarray:
    return np.asarray(list(obj.values()), dtype=float)


CASES = [pytest.param(d["id"], f["name"], id=f"{d['id']}-{f['name']}") for d in REF["designs"] for f in d["fits"]]
SHIFTED = [pytest.param(d["id"], s, id=f"{d['id']}-{s['name']}") for d in REF["designs"] for s in d["shifted"]]


def test_names_order_and_rows():
    for design_id, d in DESIGNS.items():
        res = _many(design_id)
        assert res.names == [f["name"] for f in d["fits"]] == list(d["responses"])
        assert res.theta_names == list(d["fits"][0]["theta"])
        assert res.fixef_names == list(d["fits"][0]["beta"])
        np.testing.assert_array_equal(res.nobs, [f["nobs"] for f in d["fits"]])
        assert (res.error == "").all() and res.converged.all()
        # some responses really have missing values, and some fits are lme4's refit()
        assert (res.nobs < len(next(iter(d["responses"].values())))).any()
    assert any(f["method"] == "refit" for d in DESIGNS.values() for f in d["fits"])


@pytest.mark.parametrize(("design_id", "name"), CASES)
def test_criterion_at_lme4_theta(design_id, name):
    d = DESIGNS[design_id]
    f = _fit_ref(d, name)
    m = _single_model(d, name)
    assert m.theta_names == list(f["theta"])
    assert m.objective(_values(f["theta"])) == pytest.approx(f["criterion"], rel=FIXED_REL)


@pytest.mark.parametrize(("design_id", "name"), CASES)
def test_fit_matches_lme4(design_id, name):
    d = DESIGNS[design_id]
    f = _fit_ref(d, name)
    res = _many(design_id)
    j = res.names.index(name)
    shifted = any(s["name"] == name for s in d["shifted"])
    est_rel = SHIFTED_REL if shifted else None
    crit = float(res.criterion[j])
    tol = CRITERION_REL * max(abs(f["criterion"]), 1.0)
    assert crit <= f["criterion"] + tol
    assert crit == pytest.approx(f["criterion"], abs=tol)
    at_lme4 = _single_model(d, name).objective(_values(f["theta"]))
    lower = crit < at_lme4 - LOWER_REL * abs(at_lme4)
    if lower and (f["singular"] or res.singular[j]):
        # On the boundary the criterion is flat towards it: lmm went further, to a lower
        # criterion (lme4's θ is no optimum), so θ and the singular flag may differ.
        assert res.singular[j]
    else:
        np.testing.assert_allclose(res.theta[j], _values(f["theta"]), rtol=est_rel or THETA_REL,
                                   atol=est_rel or THETA_ABS)
        assert bool(res.singular[j]) == f["singular"]
    se = _values(f["se"])
    assert np.all(np.abs(res.beta[j] - _values(f["beta"])) <= (est_rel or BETA_SE) * se)
    np.testing.assert_allclose(res.se[j], se, rtol=est_rel or SE_REL)
    assert res.sigma[j] == pytest.approx(f["sigma"], rel=est_rel or SIGMA_REL)
    assert res.nobs[j] == f["nobs"]


@pytest.mark.parametrize(("design_id", "shift"), SHIFTED)
def test_shifted_response_matches_lme4_fit_of_the_unshifted_one(design_id, shift):
    """y + 1e6 is the fit of y with the intercept moved by 1e6: lmm keeps the digits."""
    d = DESIGNS[design_id]
    res = _many(design_id)
    j = res.names.index(shift["name"])
    f = _fit_ref(d, shift["of"])
    assert res.criterion[j] == pytest.approx(f["criterion"], rel=CRITERION_REL)
    np.testing.assert_allclose(res.theta[j], _values(f["theta"]), rtol=THETA_REL, atol=THETA_ABS)
    beta = _values(f["beta"])
    beta[res.fixef_names.index("(Intercept)")] += shift["by"]
    assert np.all(np.abs(res.beta[j] - beta) <= BETA_SE * _values(f["se"]))
    np.testing.assert_allclose(res.se[j], _values(f["se"]), rtol=SE_REL)
    assert res.sigma[j] == pytest.approx(f["sigma"], rel=SIGMA_REL)
