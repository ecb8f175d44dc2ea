"""Conditional covariances of the random effects (lme4's condVar)."""

from __future__ import annotations

import numpy as np

__all__ = ["conditional_covariances"]


def conditional_covariances(res) -> list[np.ndarray]:
    """Per model term, the (ℓ, p, p) conditional covariances of b given y (lme4's condVar).

    σ² Λ (Λ'Z'ZΛ + I)⁻¹ Λ' restricted to each level's block, at the estimates (β fixed),
    as lme4's ``ranef(fit, condVar = TRUE)``: from the core's factor (its selected
    inverse), for any number of levels.

    Args:
        res: the fitted result.

    Returns:
        Per term (model order), an array (levels, p, p).
    """
    core_model = res.model.core
    core_model.set_theta(res.par)
    out = []
    for t, c in zip(res.model.terms, core_model.conditional_variances()):
        # c is p × (p·ℓ), level j's block in columns j·p .. j·p + p − 1.
        out.append(res.sigma**2 * np.asarray(c).reshape(t.p, t.nlevels, t.p).transpose(1, 0, 2))
    return out
