"""Diagnostic plots, drawn headless (Agg), checked for content; and the CLI's --plots."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import lmm  # noqa: E402
from lmm import plots  # noqa: E402
from lmm.cli import main  # noqa: E402

_FITS: dict = {}


def fit(formula: str, dataset: str):
    if (formula, dataset) not in _FITS:
        _FITS[formula, dataset] = lmm.lmer(formula, lmm.datasets.load(dataset))
    return _FITS[formula, dataset]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_caterpillar_has_a_panel_per_coefficient_and_a_point_per_level():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    fig = plots.caterpillar(res)
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["Subject: (Intercept)", "Subject: Days"]
    for ax, col in zip(axes, ["(Intercept)", "Days"]):
        x = ax.lines[0].get_xdata()
        assert len(x) == 18
        np.testing.assert_allclose(np.sort(x), np.sort(res.ranef["Subject"][col].to_numpy()))
        assert len(ax.get_yticklabels()) == 18


def test_caterpillar_crossed_and_one_group():
    res = fit("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin")
    assert len(_visible_axes(plots.caterpillar(res))) == 2
    fig = plots.caterpillar(res, group="sample")
    axes = _visible_axes(fig)
    assert len(axes) == 1 and len(axes[0].lines[0].get_xdata()) == 6
    with pytest.raises(ValueError, match="groups are"):
        plots.caterpillar(res, group="Batch")


def test_residuals_vs_fitted_has_every_observation_and_a_smoother():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    fig = plots.residuals_vs_fitted(res)
    (ax,) = fig.axes
    offsets = ax.collections[0].get_offsets()
    assert offsets.shape == (180, 2)
    np.testing.assert_allclose(offsets[:, 0], res.fitted())
    smoother = [ln for ln in ax.lines if len(ln.get_xdata()) == 100]
    assert len(smoother) == 1 and np.isfinite(smoother[0].get_ydata()).all()


def test_lowess_follows_a_curve():
    x = np.linspace(0, 3, 200)
    y = np.sin(x) + 0.01 * np.cos(37 * x)
    gx, gy = plots.lowess(x, y, frac=0.2)
    assert np.max(np.abs(gy - np.sin(gx))) < 0.05


def test_qq_plots():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    (ax,) = plots.qq_residuals(res).axes
    pts = ax.collections[0].get_offsets()
    assert pts.shape == (180, 2)
    assert np.all(np.diff(pts[:, 0]) > 0) and np.all(np.diff(pts[:, 1]) >= 0)
    axes = _visible_axes(plots.qq_ranef(res))
    assert len(axes) == 2
    assert all(ax.collections[0].get_offsets().shape == (18, 2) for ax in axes)


def test_profile_zeta_plot():
    res = fit("Yield ~ 1 + (1 | Batch)", "dyestuff")
    prof = res.profile()
    fig = plots.profile_zeta(prof)
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == [".sig01", ".sigma", "(Intercept)"]
    for ax, name in zip(axes, prof.curves):
        assert len(ax.lines[0].get_xdata()) == len(prof.curves[name])


def test_cli_saves_plots(tmp_path, capsys):
    out = tmp_path / "plots"
    code = main(["fit", "Yield ~ 1 + (1 | Batch)", "--dataset", "dyestuff", "--plots", str(out)])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["caterpillar.png", "qq_ranef.png", "qq_residuals.png", "residuals_fitted.png"]
    for p in out.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    captured = capsys.readouterr()
    assert "Satterthwaite" in captured.out and "saved 4 plots" in captured.err
