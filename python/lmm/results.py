"""The fitted model: estimates, variance components, conditional modes, summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .optimize import SINGULAR_TOL, OptimizeResult

__all__ = ["LmmResult"]


def _make_unique(names: list[str]) -> list[str]:
    """R's make.unique: later duplicates get .1, .2, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


class LmmResult:
    """A fitted linear mixed model.

    Attributes:
        theta: θ at the optimum (lme4's order, see ``theta_names``).
        fixef: fixed effects (pandas Series in model-matrix column order).
        sigma: residual standard deviation.
        objective: REML criterion (REML fits) or deviance (ML fits).
        loglik, aic, bic: log-likelihood (REML fits: the restricted one, as lme4) and criteria.
        nobs: number of observations used.
        ngroups: levels per grouping factor.
        varcorr: DataFrame grp, var1, var2, vcov, sdcor as R's ``as.data.frame(VarCorr(fit))``.
        ranef: dict group → DataFrame of conditional modes (levels × coefficients).
        vcov: covariance of the fixed effects (DataFrame).
        converged, singular: convergence and boundary flags.
        optinfo: what the optimizer did (OptimizeResult).
    """

    def __init__(self, model, opt: OptimizeResult) -> None:
        self.model = model
        self.optinfo = opt
        self.REML = model.REML
        self.formula = model.formula
        core = model._core
        core.set_theta(opt.theta)
        self.theta = np.asarray(opt.theta, dtype=np.float64)
        self.theta_names = model.theta_names
        self.objective = float(core.objective(self.REML))
        self.sigma = float(core.sigma(self.REML))
        u, beta = core.solve()
        self._u = np.asarray(u)
        self._b = np.asarray(core.b(u))
        xnames = model.design.xnames
        self.fixef = pd.Series(np.asarray(beta), index=xnames, name="Estimate")
        self.vcov = pd.DataFrame(np.asarray(core.vcov_beta(self.REML)), index=xnames, columns=xnames)
        self.nobs = model.nobs
        self.loglik = -0.5 * self.objective
        npar = model.nfixed + model.ntheta + 1
        self.npar = npar
        self.aic = -2.0 * self.loglik + 2.0 * npar
        self.bic = -2.0 * self.loglik + math.log(self.nobs) * npar
        lower = model.theta_lower
        self.singular = bool(np.any(self.theta[lower == 0] < SINGULAR_TOL))
        self.converged = opt.converged
        self._lambdas = [np.asarray(core.lambda_(k)) for k in range(len(model.terms))]
        self.ngroups = {}
        for t in model.terms:
            self.ngroups.setdefault(t.name, t.nlevels)
        self.varcorr = self._varcorr()
        self.ranef = self._ranef()

    # --- variance components ----------------------------------------------------------

    def _pieces(self):
        """(group name, term, column indices) per lme4 term; diagonal terms are one piece per column."""
        pieces = []
        for t, lam in zip(self.model.terms, self._lambdas):
            if t.diagonal:
                pieces += [(t.name, t, lam, [j]) for j in range(t.p)]
            else:
                pieces.append((t.name, t, lam, list(range(t.p))))
        names = _make_unique([p[0] for p in pieces])
        return [(name,) + p[1:] for name, p in zip(names, pieces)]

    def _varcorr(self) -> pd.DataFrame:
        rows = []
        s2 = self.sigma**2
        for grp, t, lam, cols in self._pieces():
            L = lam[np.ix_(cols, cols)]
            cov = s2 * (L @ L.T)
            sd = np.sqrt(np.diag(cov))
            names = [t.cnames[j] for j in cols]
            for i, name in enumerate(names):
                rows.append((grp, name, None, cov[i, i], sd[i]))
            for j in range(len(cols)):
                for i in range(j + 1, len(cols)):
                    denom = sd[i] * sd[j]
                    corr = cov[i, j] / denom if denom > 0 else float("nan")
                    rows.append((grp, names[j], names[i], cov[i, j], corr))
        rows.append(("Residual", None, None, s2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    def _ranef(self) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        off = 0
        for t in self.model.terms:
            size = t.nlevels * t.p
            frame = pd.DataFrame(self._b[off:off + size].reshape(t.nlevels, t.p), index=t.levels, columns=t.cnames)
            off += size
            if t.name in out:
                out[t.name] = pd.concat([out[t.name], frame], axis=1)
            else:
                out[t.name] = frame
        return out

    @property
    def se(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="Std. Error")

    # --- fitted values ----------------------------------------------------------------------

    def fitted(self) -> np.ndarray:
        """Fitted values Xβ̂ + Zb̂ on the rows used in the fit."""
        d = self.model.design
        out = d.X @ self.fixef.to_numpy()
        off = 0
        for t in self.model.terms:
            size = t.nlevels * t.p
            b = self._b[off:off + size].reshape(t.nlevels, t.p)
            out += np.einsum("ij,ij->i", t.z, b[t.codes])
            off += size
        return out

    def residuals(self, scaled: bool = False) -> np.ndarray:
        """Response residuals (scaled=True: divided by σ̂, as lme4's scaled residuals)."""
        r = self.model.design.y - self.fitted()
        return r / self.sigma if scaled else r

    def predict(self, newdata=None) -> np.ndarray:
        """Predictions with the conditional modes (lme4's default ``re.form``).

        Only the training data are supported for now; ``newdata`` raises
        NotImplementedError.
        """
        if newdata is not None:
            raise NotImplementedError("predict(newdata=...) is not implemented yet; predict() gives fitted values")
        return self.fitted()

    def simulate(self, nsim: int = 1, seed: int | None = None) -> np.ndarray:
        """Simulate responses from the fitted model (new random effects and noise).

        Returns:
            Array (n, nsim).
        """
        rng = np.random.default_rng(seed)
        d = self.model.design
        n = len(d.y)
        mean = d.X @ self.fixef.to_numpy()
        out = np.empty((n, nsim))
        for s in range(nsim):
            y = mean + self.sigma * rng.standard_normal(n)
            for t, lam in zip(self.model.terms, self._lambdas):
                b = self.sigma * rng.standard_normal((t.nlevels, t.p)) @ lam.T
                y += np.einsum("ij,ij->i", t.z, b[t.codes])
            out[:, s] = y
        return out

    # --- reporting ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain-Python summary of the fit (for JSON)."""
        vc = self.varcorr.astype(object).where(self.varcorr.notna(), None)
        return {
            "formula": self.formula,
            "REML": self.REML,
            "objective": self.objective,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "nobs": self.nobs,
            "ngroups": self.ngroups,
            "theta": dict(zip(self.theta_names, self.theta.tolist())),
            "fixef": self.fixef.to_dict(),
            "se": self.se.to_dict(),
            "sigma": self.sigma,
            "varcorr": vc.to_dict(orient="records"),
            "converged": self.converged,
            "singular": self.singular,
            "optimizer": {
                "name": self.optinfo.optimizer,
                "nfev": self.optinfo.nfev,
                "ngev": self.optinfo.ngev,
                "time": self.optinfo.time,
                "message": self.optinfo.message,
                "gradient": self.optinfo.gradient.tolist(),
            },
        }

    def summary(self) -> str:
        """lme4-style summary text."""
        return _format_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        kind = "REML" if self.REML else "ML"
        return f"<LmmResult {self.formula!r} {kind} objective={self.objective:.4f}>"


def _table(rows: list[list[str]], align: list[str]) -> list[str]:
    """Columns padded to their widest cell; align is 'l' or 'r' per column."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(align))]
    return [" ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip()
            for r in rows]


def _abbreviate(name: str, width: int = 6) -> str:
    """R's abbreviate(): drop lower-case vowels, then lower-case letters, from the right."""
    chars = list(name)
    for droppable in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > width and i > 0:
            if chars[i] in droppable and chars[i - 1] != " ":
                del chars[i]
            i -= 1
    return "".join(chars[:width]) if len(chars) > width else "".join(chars)


def _g(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


def _format_summary(res: LmmResult) -> str:
    lines = []
    if res.REML:
        lines.append("Linear mixed model fit by REML")
    else:
        lines.append("Linear mixed model fit by maximum likelihood")
    lines.append(f"Formula: {res.formula}")
    lines.append("")
    if res.REML:
        lines.append(f"REML criterion at convergence: {res.objective:.4f}")
    else:
        df_resid = res.nobs - res.npar
        lines += _table([["AIC", "BIC", "logLik", "deviance", "df.resid"],
                         [f"{res.aic:.1f}", f"{res.bic:.1f}", f"{res.loglik:.1f}", f"{res.objective:.1f}",
                          str(df_resid)]], ["r"] * 5)
    lines.append("")
    q = np.quantile(res.residuals(scaled=True), [0, 0.25, 0.5, 0.75, 1])
    lines.append("Scaled residuals:")
    lines += _table([["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]], ["r"] * 5)
    lines.append("")
    lines.append("Random effects:")
    rows = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    for grp, t, lam, cols in res._pieces():
        L = lam[np.ix_(cols, cols)]
        cov = res.sigma**2 * (L @ L.T)
        sd = np.sqrt(np.diag(cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(sd, sd)
        for i, j in enumerate(cols):
            corr_cells = " ".join(f"{corr[i, k]:.2f}" for k in range(i)) if i else ""
            rows.append([grp if i == 0 else "", t.cnames[j], _g(cov[i, i]), _g(sd[i]), corr_cells])
    rows.append(["Residual", "", _g(res.sigma**2), _g(res.sigma), ""])
    lines += [" " + r for r in _table(rows, ["l", "l", "r", "r", "l"])]
    groups = ", ".join(f"{k}, {v}" for k, v in res.ngroups.items())
    lines.append(f"Number of obs: {res.nobs}, groups:  {groups}")
    lines.append("")
    lines.append("Fixed effects:")
    se = res.se
    rows = [["", "Estimate", "Std. Error", "t value"]]
    for name in res.fixef.index:
        est, s = res.fixef[name], se[name]
        rows.append([name, _g(est, 6), _g(s, 5), f"{est / s:.3f}" if s > 0 else "NaN"])
    lines += _table(rows, ["l", "r", "r", "r"])
    if len(res.fixef) > 1:
        lines.append("")
        lines.append("Correlation of Fixed Effects:")
        v = res.vcov.to_numpy()
        d = np.sqrt(np.diag(v))
        corr = v / np.outer(d, d)
        abbrev = [_abbreviate(n) for n in res.fixef.index]
        rows = [[""] + abbrev[:-1]]
        for i, name in enumerate(res.fixef.index):
            if i == 0:
                continue
            rows.append([name] + [f"{corr[i, j]:.3f}" for j in range(i)] + [""] * (len(abbrev) - 1 - i))
        lines += _table(rows, ["l"] + ["r"] * (len(abbrev) - 1))
    notes = []
    if res.singular:
        notes.append("boundary (singular) fit: see the variance components")
    if not res.converged:
        notes.append(f"the optimizer did not converge: {res.optinfo.message}")
    if res.model.design.dropped_columns:
        notes.append(f"rank deficient X: dropped {res.model.design.dropped_columns}")
    if notes:
        lines.append("")
        lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
