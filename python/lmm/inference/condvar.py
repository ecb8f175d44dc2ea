"""Conditional covariances of the random effects (lme4's condVar)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .matrices import lambda_matrix, z_matrix

__all__ = ["conditional_covariances"]


def conditional_covariances(res, max_q: int = 20000) -> list[np.ndarray]:
    """Per model term, the (ℓ, p, p) conditional covariances of b given y (lme4's condVar).

    σ² Λ (Λ'Z'ZΛ + I)⁻¹ Λ' restricted to each level's block, at the estimates (β fixed),
    as lme4's ``ranef(fit, condVar = TRUE)``. Uses a sparse LU of Λ'Z'ZΛ + I and solves
    for the columns of each term block.

    Args:
        res: the fitted result.
        max_q: the largest number of random effects allowed.

    Returns:
        Per term, an array (levels, p, p).

    Raises:
        ValueError: more than ``max_q`` random effects.
    """
    from scipy.sparse import linalg as spla

    model = res.model
    Z = z_matrix(model)
    q = Z.shape[1]
    if q > max_q:
        raise ValueError(f"conditional variances for q = {q} random effects exceed max_q = {max_q}")
    lambdas = res.solution.lambdas
    Lam = lambda_matrix(lambdas, model.terms)
    B = (Z @ Lam).tocsc()
    A = (B.T @ B + sparse.identity(q, format="csc")).tocsc()
    lu = spla.splu(A)
    out = []
    off = 0
    for t, lam in zip(model.terms, lambdas):
        size = t.nlevels * t.p
        blocks = np.empty((t.nlevels, t.p, t.p))
        for start in range(0, size, 512):
            stop = min(size, start + 512)
            rhs = np.zeros((q, stop - start))
            rhs[off + start + np.arange(stop - start), np.arange(stop - start)] = 1.0
            sol = lu.solve(rhs)
            for col in range(start, stop):
                j, a = divmod(col, t.p)
                blocks[j, :, a] = sol[off + j * t.p + np.arange(t.p), col - start]
        blocks = res.sigma**2 * np.einsum("ij,ljk,mk->lim", lam, blocks, lam)
        out.append(blocks)
        off += size
    return out
