"""Inference after the fit: tests, degrees of freedom, intervals, bootstrap, model comparison.

One module per method: :mod:`~lmm.inference.numdiff` (numDeriv's Richardson derivatives),
:mod:`~lmm.inference.satterthwaite`, :mod:`~lmm.inference.kenward_roger`,
:mod:`~lmm.inference.contrasts` (coefficient tables, contest, anova tables),
:mod:`~lmm.inference.anova_contrasts` (lmerTest's type I, II and III contrasts),
:mod:`~lmm.inference.anova` (likelihood-ratio tests), :mod:`~lmm.inference.profile`,
:mod:`~lmm.inference.bootstrap`, :mod:`~lmm.inference.confint`,
:mod:`~lmm.inference.condvar` (conditional covariances). Every method evaluates the
fitted model through its public interface (:meth:`lmm.model.LinearMixedModel.solution`
and friends), so it inherits the protection of the model's shift; where a different
model is needed (the bootstrap's responses, the profile of a fixed effect) its core comes
from :func:`lmm.model.build_core`, which always applies the shift.

What is computed, and how it matches R:

* **Satterthwaite** degrees of freedom for t and F tests of fixed-effect contrasts,
  as lmerTest (3.1). The variance parameters are lmerTest's "varpar" (θ and σ); their
  covariance is 2 H⁻¹ with H the Hessian of the deviance (REML criterion for REML fits)
  as a function of (θ, σ), not profiled; the Jacobian of Var(β̂) = σ²(R_X'R_X)⁻¹ with
  respect to (θ, σ) gives the gradient of a contrast's variance. The deviance's gradient
  in θ is exact (from the core) and its σ derivatives closed forms; the Hessian and the
  Jacobian of Var(β̂) are central differences (numDeriv's step d = 1e-4) of the exact
  gradient and Var(β̂) along θ, two evaluations per θ entry, so the numbers agree with
  lmerTest's (Richardson-extrapolated differences of the deviance) to the precision of
  the optimum (1.9e-7 on the reference cases), not just to that of a difference scheme.
* **Kenward–Roger** adjusted covariance of β̂ and degrees of freedom, as pbkrtest
  (0.5): covariance parameters are the entries of each term's covariance matrix and
  the residual variance (linear in Σ, as pbkrtest). Instead of pbkrtest's dense n × n
  matrices this works with q × q, q × p and p × p ones (Z'Σ⁻¹Z, Z'Σ⁻²Z, Z'Σ⁻¹X, ...)
  formed from the crossproducts Z'Z, Z'X, X'X through the Woodbury identity, never with
  n × q ones; the dense work (q²) is limited by ``KR_MAX_ELEMENTS``. REML fits only (as lmerTest).
* **Profile** likelihood intervals as lme4's ``profile``/``confint``: the ML deviance
  (REML fits are refitted by ML first, as lme4 does) profiled over the standard
  deviations and correlations of the random effects, σ and each fixed effect; zeta =
  sign(x − x̂)·sqrt(deviance − minimum). lme4 interpolates the zeta curve with a spline;
  here the interval ends are roots of the exact zeta function (Brent), so lme4's
  numbers differ from these by its interpolation error.
* **Parametric bootstrap** as lme4's ``bootMer``: new responses from the fitted model,
  refitted with the same structure (only y changes; the core's crossproducts for the
  random effects and X are reused), in parallel, with percentile intervals.
* **Anova tables** as lmerTest's ``anova(fit, type, ddf)``: types I (sequential), II
  (each term adjusted for all but the terms containing it) and III (SAS's containment,
  built in treatment coding whatever the model's coding, as lmerTest); each term is an F
  test of its contrast matrix with Satterthwaite or Kenward–Roger df, or lme4's table.
* **Likelihood-ratio tests** as lme4's ``anova(m0, m1, ...)``, refitting REML fits by ML.
"""

from __future__ import annotations

from ..covariance import sdcor_to_theta, theta_to_sdcor, varpar_names
from .anova import RefitMLWarning, anova
from .anova_contrasts import anova_contrasts, check_type, containment
from .bootstrap import BootstrapResult, bootstrap
from .common import Progress
from .condvar import conditional_covariances
from .confint import confint
from .contrasts import anova_table, as_contrast, check_ddf, coef_table, contrast_test
from .kenward_roger import KR_MAX_ELEMENTS, KenwardRoger, kenward_roger_setup, kr_adjust
from .matrices import lambda_matrix, z_matrix
from .numdiff import hessian_richardson, jacobian_richardson
from .profile import Profile, profile
from .satterthwaite import Satterthwaite, satterthwaite_setup, variance_and_df

__all__ = [
    "anova",
    "anova_contrasts",
    "anova_table",
    "as_contrast",
    "bootstrap",
    "BootstrapResult",
    "check_ddf",
    "check_type",
    "coef_table",
    "conditional_covariances",
    "confint",
    "containment",
    "contrast_test",
    "hessian_richardson",
    "jacobian_richardson",
    "kenward_roger_setup",
    "KenwardRoger",
    "kr_adjust",
    "KR_MAX_ELEMENTS",
    "lambda_matrix",
    "profile",
    "Profile",
    "Progress",
    "RefitMLWarning",
    "satterthwaite_setup",
    "Satterthwaite",
    "sdcor_to_theta",
    "theta_to_sdcor",
    "variance_and_df",
    "varpar_names",
    "z_matrix",
]
