"""Kenward–Roger adjusted covariance and degrees of freedom as pbkrtest (0.5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg as sla

from ..covariance import is_entry_structure, lambdas_from_theta, theta_positions
from .common import Progress
from .matrices import lambda_matrix, z_matrix

__all__ = ["KR_MAX_ELEMENTS", "KenwardRoger", "kenward_roger_setup", "kr_adjust"]

#: Largest q² (doubles, q = number of random effects) of the q × q matrices Kenward–Roger
#: works with densely (about 400 MB each; a handful are alive at once).
KR_MAX_ELEMENTS = 50_000_000
# Seconds of work after which a terminal shows the progress bar (as a long fit's status line).
_SHOW_AFTER = 2.0


@dataclass
class KenwardRoger:
    """pbkrtest's ``vcovAdj``: Φ (unadjusted Var(β̂)), Φ_A (adjusted), P_i and W = 2·I_E⁻¹.

    Computed in the core's working coordinates — the fixed effects β_c of the centred
    X_c = X S, the random effects of the centred and scaled columns z̃ = z T, the
    covariance parameters the entries of Σ̃ — where the matrices stay well conditioned
    whatever the offsets of the columns. Φ_A is equivariant under both changes of basis
    and the df invariant, so Φ and Φ_A map back as S Φ S'.

    Attributes:
        phi: p × p unadjusted covariance of β̂.
        phi_adj: p × p adjusted covariance of β̂.
        P: the P_i matrices, one per covariance parameter (for β_c).
        W: 2 times the inverse expected information of the covariance parameters.
        S: p × p, β = S β_c.
        phi_c: p × p unadjusted covariance of β̂_c.
    """

    phi: np.ndarray
    phi_adj: np.ndarray
    P: list
    W: np.ndarray
    S: np.ndarray
    phi_c: np.ndarray


def kenward_roger_setup(res, progress: bool | None = None, verbose: bool = False) -> KenwardRoger:
    """pbkrtest's adjusted covariance of β̂ (``vcovAdj``) for a REML fit.

    Works with q × q, q × p and p × p dense matrices (q = number of random effects), not
    pbkrtest's n × n ones (nor n × q ones): with U = Λ(Λ'Z'ZΛ + I)⁻¹Λ', Σ⁻¹ = σ⁻²(I − Z U Z'),
    so every product with Σ⁻¹ is a polynomial in U and the sparse crossproducts Z'Z, Z'X and
    X'X. A few dense q × q products (O(q³)) take the most time, then one row of the expected
    information per covariance parameter.

    Args:
        res: the fitted result (REML).
        progress: show a progress bar, one step per stage (None: on a terminal, once the
            work has run two seconds).
        verbose: print a line per stage.

    Returns:
        KenwardRoger.

    Raises:
        ValueError: an ML fit, or q² exceeds ``KR_MAX_ELEMENTS``.
        NotImplementedError: a structured covariance term (cs, ar1, diag with hom, toep), weights or a
            known σ.
    """
    structured = [t.label for t in res.model.terms if not is_entry_structure(t)]
    if structured:
        raise NotImplementedError(f"Kenward-Roger's method is not implemented for structured covariance terms "
                                  f"({', '.join(structured)}); use ddf='Satterthwaite'")
    if res.model.design.weights is not None or res.model.sigma is not None:
        raise NotImplementedError("Kenward-Roger's method is not implemented for weighted fits or a known "
                                  "residual SD; use ddf='Satterthwaite'")
    if not res.REML:
        raise ValueError("Kenward-Roger's method is only available for REML fits; refit with REML=True")
    model = res.model
    Z = z_matrix(model, model.working_transforms())
    q = Z.shape[1]
    if q * q > KR_MAX_ELEMENTS:
        raise ValueError(f"Kenward-Roger needs dense {q} x {q} matrices here (q² = {q * q:.3g} > "
                         f"KR_MAX_ELEMENTS = {KR_MAX_ELEMENTS:.3g}); use ddf='Satterthwaite' for "
                         "models this size")
    # Steps: four stages of products, a row of the expected information per θ entry and σ², Φ_A.
    bar = Progress(4 + (model.ntheta + 1) + 1, progress, desc="Kenward-Roger",
                   delay=_SHOW_AFTER if progress is None else 0.0, verbose=verbose)
    with bar:
        return _setup(res, Z, bar)


def _setup(res, Z, bar: Progress) -> KenwardRoger:
    """kenward_roger_setup's work, advancing ``bar`` by one step per stage."""
    model = res.model
    terms = model.terms
    n, p, q = model.nobs, model.nfixed, Z.shape[1]
    S = model.fixed_basis()
    X = model.design.X @ S
    s2 = res.sigma**2
    Lam = lambda_matrix(lambdas_from_theta(model.working_from_theta(res.par), terms), terms)
    B = (Z @ Lam).tocsc()                         # n × q, sparse
    A = (B.T @ B).toarray() + np.eye(q)           # Λ'Z'ZΛ + I
    cho = sla.cho_factor(A, lower=True, overwrite_a=True)
    del A, B
    Ainv = sla.cho_solve(cho, np.eye(q))          # T = A⁻¹
    del cho
    bar.update(1, f"Λ'Z'ZΛ + I ({q} x {q}) factored")

    # Σ⁻¹ = σ⁻²(I − Z U Z') with U = Λ T Λ' (Woodbury); with G = Z'Z, F = Z'X and H = X'X
    # every product with powers of Σ⁻¹ below is a polynomial in U, G, F and H.
    trA, sumA2 = np.trace(Ainv), np.sum(Ainv * Ainv)
    U = Lam @ np.asarray(Lam @ Ainv).T            # Λ T Λ' (T symmetric)
    del Ainv
    U = (U + U.T) / 2
    G = np.asarray((Z.T @ Z).toarray())           # Z'Z
    F = np.asarray(Z.T @ X)                       # Z'X
    H = X.T @ X                                   # X'X
    bar.update(1, f"Z'Z, Z'X, U = ΛA⁻¹Λ' ({q} x {q})")
    GU = G @ U
    GUG = GU @ G
    S2 = GU @ GUG                                 # Z'W²Z = σ⁻⁴(G − 2GUG + GUGUG)
    S2 -= 2 * GUG
    S2 += G
    S2 /= s2**2
    M = GUG                                       # Z'WZ = σ⁻²(G − GUG), in GUG's place
    del GUG
    M *= -1
    M += G
    M /= s2
    bar.update(1, "Z'Σ⁻¹Z, Z'Σ⁻²Z")
    UF = U @ F
    GUF = G @ UF
    GUGUF = GU @ GUF
    del GU, G, U
    FUF = F.T @ UF
    FUGUF = UF.T @ GUF
    N = (F - GUF) / s2                            # Z'WX
    R = (F - 2 * GUF + GUGUF) / s2**2             # Z'W²X
    XWX = (H - FUF) / s2
    XW2X = (H - 2 * FUF + FUGUF) / s2**2
    XW3X = (H - 3 * FUF + 3 * FUGUF - UF.T @ GUGUF) / s2**3
    bar.update(1, "Z'Σ⁻¹X, Z'Σ⁻²X, X'Σ⁻¹X, X'Σ⁻²X, X'Σ⁻³X")
    trW2 = (n - 2 * (q - trA) + (q - 2 * trA + sumA2)) / s2**2
    phi = np.linalg.inv((XWX + XWX.T) / 2)

    # Covariance parameters: per term the entries (a, b), a >= b, of its covariance; then σ².
    pairs: list[tuple[np.ndarray, np.ndarray]] = []   # D_i = Σ e_r e_c' over (r, c) in the pair lists
    off = 0
    for t in terms:
        base = off + np.arange(t.nlevels) * t.p
        for a, b in theta_positions(t):
            ia, ib = base + a, base + b
            if a == b:
                pairs.append((ia, ia))
            else:
                pairs.append((np.concatenate([ia, ib]), np.concatenate([ib, ia])))
        off += t.nlevels * t.p
    g = len(pairs) + 1

    def d_times(i: int, V: np.ndarray) -> np.ndarray:
        """D_i V for a q × k array V."""
        r, c = pairs[i]
        out = np.zeros_like(V)
        np.add.at(out, r, V[c])
        return out

    DN = [d_times(i, N) for i in range(g - 1)]
    P = [-(N.T @ DN[i]) for i in range(g - 1)] + [-XW2X]
    P = [(m + m.T) / 2 for m in P]

    def Q(i: int, j: int) -> np.ndarray:
        res_i, res_j = i == g - 1, j == g - 1
        if not res_i and not res_j:
            return DN[i].T @ M @ DN[j]
        if not res_i and res_j:
            return DN[i].T @ R
        if res_i and not res_j:
            return R.T @ DN[j]
        return XW3X

    def ktrace(i: int, j: int) -> float:
        res_i, res_j = i == g - 1, j == g - 1
        if not res_i and not res_j:
            ri, ci = pairs[i]
            rj, cj = pairs[j]
            return float(np.sum(M[np.ix_(ci, rj)] * M[np.ix_(cj, ri)].T))
        if res_i and res_j:
            return float(trW2)
        r, c = pairs[j] if res_i else pairs[i]
        return float(np.sum(S2[c, r]))

    IE2 = np.zeros((g, g))
    Qs = {}
    for i in range(g):
        phiP = phi @ P[i]
        for j in range(i, g):
            Qs[i, j] = Q(i, j)
            IE2[i, j] = IE2[j, i] = ktrace(i, j) - 2 * np.sum(phi * Qs[i, j]) + np.sum(phiP * (P[j] @ phi))
        bar.update(1, f"expected information, row {i + 1} of {g}")
    condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
    W = 2 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
    W = (W + W.T) / 2
    U = np.zeros((p, p))
    for i in range(g - 1):
        for j in range(i + 1, g):
            U += W[i, j] * (Qs[i, j] - P[i] @ phi @ P[j])
    U = U + U.T
    for i in range(g):
        U += W[i, i] * (Qs[i, i] - P[i] @ phi @ P[i])
    phi_adj = phi + 2 * phi @ U @ phi
    bar.update(1, "adjusted covariance")
    return KenwardRoger(phi=S @ phi @ S.T, phi_adj=S @ phi_adj @ S.T, P=P, W=W, S=S, phi_c=phi)


def kr_adjust(kr: KenwardRoger, L: np.ndarray) -> dict:
    """pbkrtest's ``.KR_adjust`` (and ``Lb_ddf``) for the rows of L.

    Args:
        kr: the adjusted covariance of the fit.
        L: (m, p) contrasts.

    Returns:
        dict with ``q`` (rank of L), ``ddf`` and ``F.scaling``.
    """
    L = np.atleast_2d(L) @ kr.S   # the same contrasts of β_c
    phi = kr.phi_c
    Theta = L.T @ np.linalg.solve(L @ phi @ L.T, L)
    TP = Theta @ phi
    g = len(kr.P)
    u = [TP @ kr.P[i] @ phi for i in range(g)]
    A1 = A2 = 0.0
    for i in range(g):
        for j in range(i, g):
            e = 1.0 if i == j else 2.0
            A1 += e * kr.W[i, j] * np.trace(u[i]) * np.trace(u[j])
            A2 += e * kr.W[i, j] * np.sum(u[i] * u[j].T)
    q = np.linalg.matrix_rank(L)
    B = (A1 + 6 * A2) / (2 * q)
    gg = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    c1 = gg / (3 * q + 2 * (1 - gg))
    c2 = (q - gg) / (3 * q + 2 * (1 - gg))
    c3 = (q + 2 - gg) / (3 * q + 2 * (1 - gg))
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    ratio = 1.0 if (abs(1 - A2 / q) < 1e-14 and abs(V1) < 1e-14) else (1 - A2 / q) / V1
    rho = ratio**2 * V0 / (V2 * q)
    df2 = 4 + (q + 2) / (q * rho - 1)
    scaling = 1.0 if abs(df2 - 2) < 1e-2 else df2 * (1 - A2 / q) / (df2 - 2)
    return {"q": int(q), "ddf": float(df2), "F.scaling": float(scaling)}
