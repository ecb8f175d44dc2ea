"""The parametric bootstrap (lme4's bootMer)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmm import inference

from inference_cases import fit

# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_and_independent_of_workers():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    b1 = res.bootstrap(24, seed=7, n_jobs=1, progress=False)
    b2 = res.bootstrap(24, seed=7, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(b1.replicates, b2.replicates)
    assert b1.converged.all()
    assert list(b1.replicates.columns[:6]) == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]
    # the replicates centre near the estimates
    t = b1.replicates
    assert abs(t["Days"].mean() - res.fixef["Days"]) < 4 * res.se["Days"] / np.sqrt(24)
    ci = b1.confint()
    assert (ci.iloc[:, 0] < ci.iloc[:, 1]).all()


def test_bootstrap_use_u_and_confint_method():
    res = fit("Yield ~ 1 + (1 | Batch)", "dyestuff")
    b = res.bootstrap(30, seed=1, use_u=True, progress=False)
    # conditional on b̂ the intercept varies only by the noise: much less than its SE
    assert b.replicates["(Intercept)"].std() < 0.5 * res.se["(Intercept)"]
    ci = res.confint("bootstrap", nsim=30, seed=2, progress=False)
    assert list(ci.index) == [".sig01", ".sigma", "(Intercept)"]


def test_progress_bar_draws_on_a_terminal(capsys):
    bar = inference.Progress(10, enabled=True, desc="boot")
    bar.bar = None   # the plain bar, whether or not tqdm is installed
    bar.update(5)
    bar.close()
    assert "5/10" in capsys.readouterr().err
    quiet = inference.Progress(10, enabled=None)   # stderr captured: not a terminal
    quiet.update(10)
    quiet.close()
    assert capsys.readouterr().err == ""
