"""The linear mixed model: formula + data → compiled core → fit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from . import _core as core
from .design import Design, ReTerm, build_design
from .formula import parse_formula

__all__ = ["LinearMixedModel", "lmer"]

DEFAULT_MAX_DENSE_BYTES = 4.0 * 2**30
# A fitted residual SD below this fraction of the response's SD is zero to working
# precision (the criterion then falls without bound as θ grows).
EXACT_FIT_SIGMA = 1e-6

# The dense block of crossed terms is factored and inverted by the LAPACK SciPy
# carries (OpenBLAS in SciPy's wheels: faster than Eigen's kernels, and
# multithreaded by OPENBLAS_NUM_THREADS or threadpoolctl).
core.set_dense_backend("lapack")


class LinearMixedModel:
    """A linear mixed model ``y ~ fixed + (expr | group) + ...`` as lme4's ``lmer`` defines it.

    Construction parses the formula, builds the design (dropping rows with
    missing values), forms the crossproducts in one pass and analyses the
    blocked Cholesky factor. Nothing afterwards depends on the number of rows
    except fitted values and residuals.

    Args:
        formula: an lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
        data: a pandas DataFrame (or anything ``pandas.DataFrame`` accepts).
        REML: fit by REML (default, as lme4) or maximum likelihood.
        missing: ``"drop"`` rows with missing values in used columns (with a
            warning) or ``"raise"``.
        max_dense_bytes: the largest dense block of L allowed (crossed factors).

    Example:
        >>> import lmm
        >>> m = lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
        >>> round(m.objective([1.0, 0.0, 1.0]), 4)
        1773.6803
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        REML: bool = True,
        *,
        missing: str = "drop",
        max_dense_bytes: float = DEFAULT_MAX_DENSE_BYTES,
    ) -> None:
        self.formula = formula
        self.REML = bool(REML)
        self.parsed = parse_formula(formula)
        self.design: Design = build_design(self.parsed, data, missing=missing)
        d = self.design
        if not isinstance(REML, (bool, np.bool_)):
            raise TypeError(f"REML must be True or False, not {REML!r}")
        if not max_dense_bytes > 0:
            raise ValueError(f"max_dense_bytes must be a positive number of bytes, not {max_dense_bytes!r}")
        try:
            # The core works on X centred and y with its least-squares fit on X removed
            # (formed row by row as it reads the data): the same model, β mapping back
            # through the design, without the cancellation that large offsets cause in
            # crossproducts.
            self._core = core.Model(
                [(t.codes, t.z, t.nlevels, t.diagonal) for t in d.terms], d.X, d.y, float(max_dense_bytes),
                x_center=d.x_center, y_coef=d.y_coef,
            )
        except ValueError as err:
            raise ValueError(f"cannot set up the model {formula!r}: {err}") from None
        #: Random-effects terms in model order (decreasing number of levels, as lme4).
        self.terms: list[ReTerm] = [d.terms[k] for k in self._core.order]

    # --- sizes and parameters ---------------------------------------------------------

    @property
    def nobs(self) -> int:
        return len(self.design.y)

    @property
    def nfixed(self) -> int:
        return self.design.X.shape[1]

    @property
    def ntheta(self) -> int:
        return self._core.ntheta

    @property
    def core(self) -> core.Model:
        """The compiled model (crossproducts and factor, built with the shift)."""
        return self._core

    @property
    def theta_lower(self) -> np.ndarray:
        """Lower bounds of θ (the core's parameterizations): 0 for diagonal entries of λ."""
        return np.asarray(self._core.theta_lower)

    @property
    def theta_upper(self) -> np.ndarray:
        """Upper bounds of θ (+inf where unbounded)."""
        return np.asarray(self._core.theta_upper)

    @property
    def theta_start(self) -> np.ndarray:
        """lme4's starting θ: λ = I."""
        return np.asarray(self._core.theta_start)

    @property
    def theta_scale(self) -> np.ndarray:
        """Scale of each θ entry used by the optimizer (θ = scale · φ).

        1 unless a column of a term's z has a root mean square outside
        [1e-2, 1e2]; then the entries of that row of λ are scaled by its
        inverse, so that φ is of order one whatever the units of the slope.
        """
        scales = []
        for t in self.terms:
            rms = np.sqrt(np.einsum("ij,ij->j", t.z, t.z) / t.z.shape[0])  # no n × p temporary
            row = np.where((rms > 0) & ((rms < 1e-2) | (rms > 1e2)), 1.0 / np.where(rms > 0, rms, 1.0), 1.0)
            scales.extend(row[i] for i, _ in t.theta_positions())
        return np.asarray(scales, dtype=np.float64)

    @property
    def theta_names(self) -> list[str]:
        """lme4's names of θ: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ..."""
        return [f"{t.name}.{t.cnames[i]}" if i == j else f"{t.name}.{t.cnames[i]}.{t.cnames[j]}"
                for k, t in enumerate(self.terms) for i, j in self._core.theta_positions(k)]

    # --- evaluation ----------------------------------------------------------------------

    def _theta(self, theta) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        if theta.size != self.ntheta:
            raise ValueError(f"theta has {theta.size} entries; this model has {self.ntheta}: {self.theta_names}")
        if np.any(theta < self.theta_lower):
            raise ValueError("theta violates its lower bounds (diagonal entries of λ must be >= 0)")
        if np.any(theta > self.theta_upper):
            raise ValueError(f"theta violates its upper bounds {self.theta_upper}")
        return theta

    def _reml(self, reml: bool | None) -> bool:
        return self.REML if reml is None else bool(reml)

    def objective(self, theta, reml: bool | None = None) -> float:
        """Profiled REML criterion (REML models) or ML deviance at ``theta``.

        Args:
            theta: relative covariance parameters in lme4's order (``theta_names``).
            reml: the criterion (None: the model's).

        Returns:
            The criterion lme4's ``devfun`` returns at the same θ.
        """
        return float(self._core.evaluate(self._theta(theta), self._reml(reml)))

    def gradient(self, theta, reml: bool | None = None) -> np.ndarray:
        """Exact gradient of :meth:`objective` with respect to θ.

        Args:
            theta: relative covariance parameters in lme4's order.
            reml: the criterion (None: the model's).

        Returns:
            Array of length ``ntheta``.
        """
        return self.objective_and_gradient(theta, reml)[1]

    def objective_and_gradient(self, theta, reml: bool | None = None) -> tuple[float, np.ndarray]:
        """The objective and its exact gradient at ``theta`` from one factorization."""
        value, grad = self._core.evaluate_with_gradient(self._theta(theta), self._reml(reml))
        return float(value), np.asarray(grad)

    def fit(self, start=None, *, optimizer: str = "L-BFGS-B", tol: float = 1e-8, maxiter: int = 10000,
            verbose: bool = False):
        """Optimize θ and return the fitted result.

        Args:
            start: starting θ (default λ = I).
            optimizer: ``"L-BFGS-B"`` (default, SciPy's, exact gradient), ``"core"``
                (the C++ library's projected L-BFGS, exact gradient) or SciPy's
                derivative-free ``"COBYQA"``, ``"Nelder-Mead"`` or ``"Powell"``.
            tol: tolerance on the projected gradient (L-BFGS-B) or the objective.
            maxiter: limit on evaluations.
            verbose: print the objective at each evaluation.

        Returns:
            LmmResult.
        """
        from .optimize import optimize_theta
        from .results import LmmResult

        opt = optimize_theta(self, start=start, optimizer=optimizer, tol=tol, maxiter=maxiter, verbose=verbose)
        res = LmmResult(self, opt)
        sd = _sd(self.design.y)
        if res.sigma <= EXACT_FIT_SIGMA * sd:
            warnings.warn(
                f"the residual standard deviation {res.sigma:.3g} is zero to working precision against the "
                f"response's ({sd:.3g}): the random effects fit the response exactly, and θ is not "
                "determined", UserWarning, stacklevel=2)
        return res


def _sd(y: np.ndarray, block: int = 1 << 12) -> float:
    """Standard deviation of y, in blocks (no temporary of y's length)."""
    mean = float(y.mean())
    ss = sum(float(np.square(y[i:i + block] - mean).sum()) for i in range(0, len(y), block))
    return math.sqrt(ss / max(len(y), 1))


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, **kwargs):
    """Fit a linear mixed model, as lme4's ``lmer``.

    Args:
        formula: an lme4 formula.
        data: the data frame.
        REML: REML (default) or maximum likelihood.
        **kwargs: ``missing``/``max_dense_bytes`` go to :class:`LinearMixedModel`,
            the rest to :meth:`LinearMixedModel.fit`.

    Returns:
        LmmResult.

    Example:
        >>> import lmm
        >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
        >>> round(res.objective, 3)
        1743.628
    """
    model_keys = {"missing", "max_dense_bytes"}
    model_kwargs = {k: v for k, v in kwargs.items() if k in model_keys}
    fit_kwargs = {k: v for k, v in kwargs.items() if k not in model_keys}
    return LinearMixedModel(formula, data, REML=REML, **model_kwargs).fit(**fit_kwargs)
