"""Feedback on long work and what it costs: progress on a terminal only, ``verbose=`` with one
meaning everywhere, a printed summary bounded by the length of θ, BLAS on one thread where
many small refits run."""

from __future__ import annotations

import importlib
import inspect
import sys

import numpy as np
import pytest

import lmm
from lmm import inference
from lmm.inference import kenward_roger

# (the package's names bootstrap and profile are the functions)
many_module = importlib.import_module("lmm.many")
profile_module = importlib.import_module("lmm.inference.profile")

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return lmm.datasets.load("sleepstudy")


def _fresh(sleep) -> lmm.LmmResult:
    """A new fit: nothing of Satterthwaite's or Kenward-Roger's computed yet."""
    return lmm.lmer(FORMULA, sleep)


def _on_a_terminal(monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)


# --- Kenward-Roger's progress ------------------------------------------------------------------


def test_kenward_roger_shows_progress_on_a_terminal_only(sleep, monkeypatch, capsys):
    want = _fresh(sleep).kenward_roger()
    assert capsys.readouterr().err == ""  # captured stderr is not a terminal: silent
    _on_a_terminal(monkeypatch)
    monkeypatch.setattr(kenward_roger, "_SHOW_AFTER", 0.0)  # as if the work ran long
    got = _fresh(sleep).kenward_roger()
    assert "Kenward-Roger" in capsys.readouterr().err
    np.testing.assert_array_equal(got.phi_adj, want.phi_adj)  # the bar changes nothing computed
    _fresh(sleep).kenward_roger(progress=False)
    assert capsys.readouterr().err == ""


def test_kenward_roger_bar_waits_before_showing(sleep, monkeypatch, capsys):
    _on_a_terminal(monkeypatch)
    monkeypatch.setattr(kenward_roger, "_SHOW_AFTER", 1e9)  # never long enough
    res = _fresh(sleep)
    res.coef_table("Kenward-Roger")  # through the cache, as the summary and anova reach it
    assert capsys.readouterr().err == ""
    assert "kr" in res._cache
    _fresh(sleep).kenward_roger(progress=True)  # asked for: shown at once
    assert "Kenward-Roger" in capsys.readouterr().err


def test_plain_bar_waits_for_its_delay(capsys):
    bar = inference.Progress(4, enabled=True, desc="work", delay=1e9)
    bar.bar = None  # the plain bar, whether or not tqdm is installed
    bar.update(2)
    bar.close()
    assert capsys.readouterr().err == ""
    bar = inference.Progress(4, enabled=True, desc="work", delay=0.0)
    bar.bar = None
    bar.update(2)
    bar.close()
    err = capsys.readouterr().err
    assert "work [" in err and "2/4" in err and err.endswith("\r")


def test_confint_shows_the_profile_bar_on_a_terminal(sleep, monkeypatch, capsys):
    # res.confint() on InstEval printed nothing for 300 s: its profile has a bar on a terminal.
    res = _fresh(sleep)
    res.confint(parm=".sigma")
    assert capsys.readouterr().err == ""
    _on_a_terminal(monkeypatch)
    res.confint(parm=".sigma")
    assert "profile" in capsys.readouterr().err


# --- verbose= --------------------------------------------------------------------------------


def _long_work(sleep):
    """Each long computation a user starts, with its keywords: (name, call)."""
    return [
        ("fit", lambda **kw: lmm.lmer(FORMULA, sleep, **kw)),
        ("profile", lambda **kw: _fresh(sleep).profile(which=[".sigma", "Days"], **kw)),
        ("confint", lambda **kw: _fresh(sleep).confint(parm=[".sigma", "Days"], **kw)),
        ("bootstrap", lambda **kw: _fresh(sleep).bootstrap(20, seed=1, **kw)),
        ("Satterthwaite", lambda **kw: _fresh(sleep).satterthwaite(**kw)),
        ("Kenward-Roger", lambda **kw: _fresh(sleep).kenward_roger(**kw)),
    ]


@pytest.mark.parametrize("name", ["fit", "profile", "confint", "bootstrap", "Satterthwaite", "Kenward-Roger"])
def test_verbose_prints_steps_on_stdout_and_no_bar(sleep, name, monkeypatch, capsys):
    run = dict(_long_work(sleep))[name]
    run(verbose=False)
    assert capsys.readouterr() == ("", "")  # the default: nothing in a script
    _on_a_terminal(monkeypatch)
    run(verbose=True)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) >= 2 and all(line.startswith("  ") for line in lines), out
    assert err == ""  # the lines replace the bar, as a verbose fit's trace replaces its status line


def test_long_work_takes_verbose_false_by_default():
    calls = {
        "lmer": lmm.lmer,
        "LinearMixedModel.fit": lmm.LinearMixedModel.fit,
        "profile": inference.profile,
        "bootstrap": lmm.LmmResult.bootstrap,
        "inference.bootstrap": inference.bootstrap,
        "satterthwaite": lmm.LmmResult.satterthwaite,
        "kenward_roger": lmm.LmmResult.kenward_roger,
        "satterthwaite_setup": inference.satterthwaite_setup,
        "kenward_roger_setup": inference.kenward_roger_setup,
    }
    for name, f in calls.items():
        params = inspect.signature(f).parameters
        assert "verbose" in params and params["verbose"].default is False, name
    for name in ("profile", "bootstrap", "satterthwaite", "kenward_roger"):
        params = inspect.signature(getattr(lmm.LmmResult, name) if name != "profile" else inference.profile).parameters
        assert "progress" in params and params["progress"].default is None, name


# --- what printing a result costs ----------------------------------------------------------------


def test_printing_a_crossed_fit_costs_four_evaluations_per_theta(monkeypatch):
    # print(res) on a 10⁶-row crossed fit took ~160 s after a 15 s fit: lmerTest's numerical
    # Hessian needed ~70 evaluations of the criterion. With the exact gradient the df take
    # 4 per θ entry (and the centre); every evaluation at a θ is counted here.
    res = lmm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", lmm.datasets.load("penicillin"))
    counts = {"n": 0}
    cls = type(res.model)
    for name in ("deviance_terms", "objective", "gradient", "objective_and_gradient", "working_objective",
                 "working_objective_and_gradient", "solution"):
        original = getattr(cls, name)

        def counted(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)
    text = str(res)
    assert "Satterthwaite" in text and "df" in text
    assert 0 < counts["n"] <= 4 * res.model.ntheta + 2, counts
    counts["n"] = 0
    str(res)  # the ingredients are kept: printing again evaluates nothing
    assert counts["n"] == 0


# --- BLAS threads where many small refits run -----------------------------------------------------


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.mark.parametrize("work", ["bootstrap", "profile"])
def test_refits_run_on_one_blas_thread(sleep, work, monkeypatch):
    # threadpoolctl is a dependency: without the limit OpenBLAS's threads spin between the
    # tiny factorizations of each refit, which made the bootstrap 3-20 times slower at random.
    from threadpoolctl import threadpool_limits

    seen: list[set[int]] = []
    # (Recorded where each runs its fits: the bootstrap's core call asks for its progress callback there.)
    module, name = (many_module, "_progress_of") if work == "bootstrap" else (profile_module, "_trace")
    original = getattr(module, name)

    def recording(*args, **kwargs):
        seen.append(_blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)
    res = _fresh(sleep)
    with threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() != {2}:
            pytest.skip("BLAS cannot be set to two threads here")
        if work == "bootstrap":
            res.bootstrap(32, seed=1, n_jobs=1, progress=False)
        else:
            res.profile(which=".sigma", progress=False)
        assert _blas_threads() == {2}  # the limit ends with the work
    assert seen and all(s == {1} for s in seen)
