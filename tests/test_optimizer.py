"""The core's optimizer (lmm::fit, optimizer="core", the default) against SciPy's L-BFGS-B, and the shared constants."""

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import _core, optimize

# The two optimizers reach the same optimum: criterion (relative) and θ (absolute).
CRITERION = 1e-9
THETA = 2e-4

MODELS = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin"),
    ("strength ~ 1 + (1 | batch/cask)", "pastes"),
    ("Yield ~ 1 + (1 | Batch)", "dyestuff2"),
]


@pytest.mark.parametrize("formula,dataset", MODELS)
@pytest.mark.parametrize("reml", [True, False])
def test_core_optimizer_reaches_the_default_optimum(formula, dataset, reml):
    model = lmm.LinearMixedModel(formula, lmm.datasets.load(dataset), REML=reml)
    ref = model.fit(optimizer="L-BFGS-B")
    got = model.fit(optimizer="core")
    assert got.converged and got.optinfo.optimizer == "core"
    assert got.objective <= ref.objective + CRITERION * abs(ref.objective)
    np.testing.assert_allclose(got.objective, ref.objective, rtol=CRITERION)
    np.testing.assert_allclose(got.theta, ref.theta, atol=THETA)
    assert got.singular == ref.singular


def test_core_optimizer_scaled_theta():
    """A slope in tiny units (θ scaled by the optimizer) gives the same fit as in ordinary units."""
    df = lmm.datasets.load("sleepstudy")
    df = df.assign(Days=df["Days"] * 1e-4)
    with pytest.warns(UserWarning, match="very different scales"):
        model = lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", df)
    ref, got = model.fit(optimizer="L-BFGS-B"), model.fit(optimizer="core")
    np.testing.assert_allclose(got.objective, ref.objective, rtol=CRITERION)
    np.testing.assert_allclose(got.theta / model.theta_scale, ref.theta / model.theta_scale, atol=THETA)


def test_one_set_of_constants():
    """Python's verdict and singular tolerance are the core's."""
    d = _core.FIT_DEFAULTS
    assert optimize.SINGULAR_TOL == d["singular_tolerance"] == 1e-4
    assert optimize.GRADIENT_TOL == d["convergence_tolerance"]
    assert optimize.GRADIENT_TOL_REL == d["convergence_tolerance_rel"]


def test_core_optimizer_trace(capsys):
    lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"), optimizer="core", verbose=True)
    lines = capsys.readouterr().out.splitlines()
    # the two starts first (λ̃ = I, then lme4's λ = I: 1773.68), then the run, numbered
    assert lines[0].startswith("  eval    1: objective ") and lines[1].startswith("  eval    2: objective 1773.")
    assert [int(s.split()[1].rstrip(":")) for s in lines] == list(range(1, len(lines) + 1))


def test_long_fits_show_a_status_line_on_a_terminal_only(monkeypatch, capsys):
    data = lmm.datasets.load("sleepstudy")
    lmm.lmer("Reaction ~ Days + (Days | Subject)", data)
    assert capsys.readouterr().err == ""  # not a terminal (captured): silent
    monkeypatch.setattr(optimize, "_on_terminal", lambda: True)
    monkeypatch.setattr(optimize._FitStatus, "AFTER", 0.0)  # as if every fit ran long
    monkeypatch.setattr(optimize._FitStatus, "INTERVAL", 1e-9)
    res = lmm.lmer("Reaction ~ Days + (Days | Subject)", data)
    err = capsys.readouterr().err
    assert "fitting: " in err and "evaluations, criterion" in err
    assert err.endswith("\r")  # the line is cleared at the end
    assert res.objective == pytest.approx(1743.6282719585, rel=1e-10)


def test_profile_progress_bar(capsys):
    res = lmm.lmer("Reaction ~ Days + (1 | Subject)", lmm.datasets.load("sleepstudy"))
    res.profile(which=".sigma", progress=True)
    assert "profile" in capsys.readouterr().err


def test_satterthwaite_shows_progress_only_when_slow(monkeypatch, capsys):
    import sys

    from lmm.inference import satterthwaite

    data = lmm.datasets.load("sleepstudy")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    lmm.lmer("Reaction ~ Days + (Days | Subject)", data).coef_table()
    assert "Satterthwaite df" not in capsys.readouterr().err  # quick: no bar
    monkeypatch.setattr(satterthwaite, "_SLOW", -1.0)  # as if every evaluation were slow
    lmm.lmer("Reaction ~ Days + (Days | Subject)", data).coef_table()
    assert "Satterthwaite df" in capsys.readouterr().err


def _simulated(rng):
    n, ng, nh = 6000, 300, 40
    g, h = rng.integers(0, ng, n), rng.integers(0, nh, n)
    t = rng.uniform(0, 9, n)
    b = rng.multivariate_normal([0, 0], [[4.0, 0.6], [0.6, 0.25]], ng)
    y = 2 + 0.5 * t + b[g, 0] + b[g, 1] * t + 1.5 * rng.standard_normal(nh)[h] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "t": t, "g": g, "h": h})


@pytest.mark.parametrize("formula", ["y ~ t + (t | g) + (1 | h)", "y ~ t + (t || g) + (1 | h)",
                                     "y ~ t + (1 | g) + (1 | h)"])
def test_moment_start_is_near_the_optimum_and_saves_evaluations(formula):
    # The moments' start (per level the effects' least-squares estimates less their
    # sampling variance) lies near the optimum of well-determined terms, and the fit
    # from it reaches the optimum the fit from lme4's start reaches, in fewer evaluations.
    data = _simulated(np.random.default_rng(11))
    model = lmm.LinearMixedModel(formula, data)
    moments = model.core.moment_start
    best = model.fit()
    optimum = model.working_from_theta(best.theta)
    start = model.working_start
    assert np.linalg.norm(moments - optimum) < 0.25 * np.linalg.norm(start - optimum)
    lme4_start = model.fit(start=model.theta_start)
    assert best.objective == pytest.approx(lme4_start.objective, rel=1e-10)
    assert best.optinfo.nfev < lme4_start.optinfo.nfev


def test_moment_start_keeps_the_default_for_structured_terms_and_stays_off_the_boundary():
    # Structured terms (cs here) keep the default start; nested terms, whose effects are
    # confounded as fixed effects, still get finite starts above the floor (0.05).
    data = lmm.datasets.load("sleepstudy")
    model = lmm.LinearMixedModel("Reaction ~ Days + cs(0 + factor(Days) | Subject)", data)
    np.testing.assert_array_equal(model.core.moment_start, model.working_start)
    model = lmm.LinearMixedModel("strength ~ 1 + (1 | batch/cask)", lmm.datasets.load("pastes"))
    moments = model.core.moment_start
    assert np.all(np.isfinite(moments)) and np.all(moments >= 0.05 - 1e-12)
