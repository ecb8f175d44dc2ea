"""Diagnostic plots of a fitted model (matplotlib, an optional dependency: ``pip install lmm[plots]``).

Every function returns the matplotlib Figure and draws nothing on screen by itself;
matplotlib is imported when a plot is made, not when lmm is imported.

- :func:`caterpillar`: conditional modes per level with ±z·conditional SD intervals
  (lme4's ``dotplot(ranef(fit, condVar = TRUE))``), one panel per group and coefficient.
- :func:`residuals_vs_fitted`: residuals against fitted values with a LOWESS smoother.
- :func:`qq_residuals`, :func:`qq_ranef`: normal Q–Q plots of the residuals and of the
  conditional modes (one panel per group and coefficient).
- :func:`profile_zeta`: zeta against each parameter of a likelihood profile (lme4's
  ``xyplot(profile(fit))``), with the ±z lines of the confidence levels.
- :func:`save_all`: the diagnostic plots as PNG files (the CLI's ``--plots DIR``).
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
from scipy import stats

__all__ = ["caterpillar", "residuals_vs_fitted", "qq_residuals", "qq_ranef", "profile_zeta", "save_all", "lowess"]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'lmm[plots]' (or pip install matplotlib)") from None
    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return int(math.ceil(n / cols)), cols


def lowess(x: np.ndarray, y: np.ndarray, frac: float = 2 / 3, iters: int = 3, points: int = 100) -> tuple:
    """A LOWESS smoother (Cleveland 1979, tricube weights, robustness iterations) on a grid.

    Returns:
        (grid, smoothed values) with ``points`` grid values over the range of x.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.size
    grid = np.linspace(x.min(), x.max(), points) if n else np.zeros(0)
    if n < 3:
        return grid, np.interp(grid, x, y) if n else grid
    k = max(3, int(math.ceil(frac * n)))
    rob = np.ones(n)

    def fit_at(x0: np.ndarray) -> np.ndarray:
        out = np.empty(x0.size)
        for i, v in enumerate(x0):
            d = np.abs(x - v)
            h = np.partition(d, k - 1)[k - 1]
            h = h if h > 0 else max(d.max(), 1e-12)
            w = np.clip(1 - (d / h) ** 3, 0, None) ** 3 * rob
            sw = w.sum()
            if sw <= 0:
                out[i] = np.nan
                continue
            mx = (w * x).sum() / sw
            my = (w * y).sum() / sw
            vx = (w * (x - mx) ** 2).sum()
            slope = (w * (x - mx) * (y - my)).sum() / vx if vx > 1e-12 * max(1.0, mx * mx) * sw else 0.0
            out[i] = my + slope * (v - mx)
        return out

    sample = x if n <= 2000 else np.quantile(x, np.linspace(0, 1, 500))
    for _ in range(iters):
        fitted = np.interp(x, np.sort(sample), fit_at(np.sort(sample))) if n > 2000 else fit_at(x)
        resid = y - fitted
        s = np.median(np.abs(resid))
        if s <= 0:
            break
        rob = np.clip(1 - (resid / (6 * s)) ** 2, 0, None) ** 2
    return grid, fit_at(grid)


def caterpillar(res, group: Optional[str] = None, level: float = 0.95, max_levels: int = 200):
    """Conditional modes with intervals ±z·(conditional SD), sorted, per group and coefficient.

    Args:
        res: the fitted result.
        group: one grouping factor (default all).
        level: coverage of the intervals (lme4's dotplot uses 0.95).
        max_levels: a panel shows at most this many levels (the most extreme ones
            are kept when a factor has more).

    Returns:
        matplotlib Figure, one Axes per (group, coefficient), each with one point per level.
    """
    plt = _plt()
    condvar = res.ranef_condvar()
    z = stats.norm.ppf((1 + level) / 2)
    panels = []
    for grp, frame in res.ranef.items():
        if group is not None and grp != group:
            continue
        for j, col in enumerate(frame.columns):
            panels.append((grp, col, frame[col].to_numpy(), np.sqrt(np.maximum(condvar[grp][:, j, j], 0)),
                           [str(v) for v in frame.index]))
    if not panels:
        raise ValueError(f"no random effects for group {group!r}; groups are {list(res.ranef)}")
    rows, cols = _grid(len(panels))
    height = max(3.0, min(12.0, 0.14 * min(max(len(p[2]) for p in panels), max_levels) + 1.5))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, height * rows), squeeze=False)
    for ax, (grp, col, vals, sd, labels) in zip(axes.ravel(), panels):
        order = np.argsort(vals)
        if order.size > max_levels:
            half = max_levels // 2
            order = np.concatenate([order[:half], order[-(max_levels - half):]])
        pos = np.arange(order.size)
        ax.errorbar(vals[order], pos, xerr=z * sd[order], fmt="o", ms=3, lw=0.8, capsize=0, color="C0")
        ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
        if order.size <= 60:
            ax.set_yticks(pos)
            ax.set_yticklabels([labels[i] for i in order], fontsize=7)
        else:
            ax.set_yticks([])
        ax.set_title(f"{grp}: {col}", fontsize=9)
        ax.set_xlabel("conditional mode")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def residuals_vs_fitted(res, smoother: bool = True, frac: float = 2 / 3):
    """Pearson residuals against fitted values, with a LOWESS smoother (lme4's ``plot(fit)``).

    Returns:
        matplotlib Figure with one Axes: a scatter of nobs points, the smoother as a line.
    """
    plt = _plt()
    fitted = res.fitted(array=True)
    resid = res.residuals(type="pearson", array=True)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(fitted, resid, s=10, alpha=0.6, color="C0", edgecolors="none")
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
    if smoother:
        gx, gy = lowess(fitted, resid, frac=frac)
        ax.plot(gx, gy, color="C3", lw=1.5)
    ax.set_xlabel("fitted values")
    ax.set_ylabel("Pearson residuals")
    ax.set_title(res.formula, fontsize=9)
    fig.tight_layout()
    return fig


def _qq(ax, values: np.ndarray, title: str) -> None:
    values = np.sort(np.asarray(values, float))
    n = values.size
    # R's ppoints
    a = 3 / 8 if n <= 10 else 0.5
    q = stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))
    ax.scatter(q, values, s=10, color="C0", edgecolors="none")
    # R's qqline through the quartiles
    y1, y2 = np.quantile(values, [0.25, 0.75])
    x1, x2 = stats.norm.ppf([0.25, 0.75])
    slope = (y2 - y1) / (x2 - x1)
    ax.plot(q[[0, -1]], y1 + slope * (q[[0, -1]] - x1), color="C3", lw=1)
    ax.set_xlabel("standard normal quantiles")
    ax.set_ylabel("sample quantiles")
    ax.set_title(title, fontsize=9)


def qq_residuals(res):
    """Normal Q–Q plot of the Pearson residuals with R's qqline.

    Returns:
        matplotlib Figure with one Axes holding nobs points.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    _qq(ax, res.residuals(type="pearson", array=True), "residuals")
    fig.tight_layout()
    return fig


def qq_ranef(res, group: Optional[str] = None):
    """Normal Q–Q plots of the conditional modes, one panel per group and coefficient.

    Returns:
        matplotlib Figure; each Axes holds one point per level.
    """
    plt = _plt()
    panels = [(grp, col, frame[col].to_numpy()) for grp, frame in res.ranef.items()
              if group is None or grp == group for col in frame.columns]
    if not panels:
        raise ValueError(f"no random effects for group {group!r}; groups are {list(res.ranef)}")
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (grp, col, vals) in zip(axes.ravel(), panels):
        _qq(ax, vals, f"{grp}: {col}")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def profile_zeta(prof, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.99)):
    """zeta against each profiled parameter (lme4's ``xyplot(profile(fit))``).

    Args:
        prof: a :class:`lmm.inference.Profile` (``res.profile()``) or a fitted result
            (then it is profiled first).
        levels: confidence levels drawn as horizontal ±z lines.

    Returns:
        matplotlib Figure, one Axes per parameter with the profile's points and curve.
    """
    from .inference import Profile

    plt = _plt()
    if not isinstance(prof, Profile):
        prof = prof.profile()
    names = list(prof.curves)
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.3 * rows), squeeze=False)
    zs = [stats.norm.ppf((1 + lv) / 2) for lv in levels]
    for ax, name in zip(axes.ravel(), names):
        curve = prof.curves[name]
        ax.plot(curve["value"], curve["zeta"], "o-", ms=3, lw=1, color="C0")
        for zv in zs:
            ax.axhline(zv, color="0.7", lw=0.6, ls=":")
            ax.axhline(-zv, color="0.7", lw=0.6, ls=":")
        ax.axvline(prof.estimates[name], color="0.5", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("zeta")
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def save_all(res, directory: str, profile: bool = False, dpi: int = 100) -> list[str]:
    """Save the diagnostic plots of a fit as PNG files in ``directory`` (created if needed).

    Writes ``caterpillar.png``, ``residuals_fitted.png``, ``qq_residuals.png``,
    ``qq_ranef.png`` and, with ``profile=True``, ``profile_zeta.png``.

    Returns:
        The paths written.
    """
    plt = _plt()
    os.makedirs(directory, exist_ok=True)
    makers: list[tuple[str, Callable[..., Any]]] = [
        ("caterpillar.png", caterpillar), ("residuals_fitted.png", residuals_vs_fitted),
        ("qq_residuals.png", qq_residuals), ("qq_ranef.png", qq_ranef)]
    if profile:
        makers.append(("profile_zeta.png", profile_zeta))
    paths = []
    for name, make in makers:
        fig = make(res)
        path = os.path.join(directory, name)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
