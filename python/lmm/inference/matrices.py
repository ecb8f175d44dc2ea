"""Sparse Z and Λ of a fitted model, for the methods that need them explicitly."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import sparse

__all__ = ["lambda_matrix", "z_matrix"]


def z_matrix(model, transforms: Sequence[np.ndarray] | None = None) -> sparse.csc_matrix:
    """The random-effects model matrix Z (n × q, sparse) in the core's order and layout.

    Columns of term k start at the sum of ℓ·p of earlier terms; level j's p columns are
    consecutive (the layout of u and b from the core).

    Args:
        model: a :class:`~lmm.model.LinearMixedModel`.
        transforms: per term a p × p T: Z of the columns z T (the core's working columns,
            ``model.working_transforms()``); None: of z.
    """
    n = model.nobs
    rows, cols, vals = [], [], []
    off = 0
    for k, t in enumerate(model.terms):
        p = t.p
        valid = t.codes >= 0
        r = np.flatnonzero(valid)
        z = t.z if transforms is None else t.z @ transforms[k]
        for a in range(p):
            rows.append(r)
            cols.append(off + t.codes[valid].astype(np.int64) * p + a)
            vals.append(z[valid, a])
        off += t.nlevels * p
    if not rows:
        return sparse.csc_matrix((n, 0))
    return sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, off))


def lambda_matrix(lams: Sequence[np.ndarray], terms) -> sparse.csc_matrix:
    """Λ = blockdiag(I_ℓk ⊗ λ_k) (q × q, sparse).

    Args:
        lams: per term, its λ.
        terms: the terms in model order.
    """
    blocks = [sparse.kron(sparse.identity(t.nlevels, format="csc"), sparse.csc_matrix(lam), format="csc")
              for t, lam in zip(terms, lams)]
    return sparse.block_diag(blocks, format="csc") if blocks else sparse.csc_matrix((0, 0))
