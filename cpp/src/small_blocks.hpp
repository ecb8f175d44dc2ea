// Kernels on the small dense blocks of one level (p × p, p the columns of a
// term), by hand: Eigen's general products and solvers dispatch at run time,
// which costs more than their arithmetic when done once per level of a term
// with tens of thousands of levels. Private to the library's sources.
#pragma once

#include <cmath>

#include "lmm/blocks.hpp"
#include "lmm/types.hpp"

namespace lmm {

/// In-place lower Cholesky of a small symmetric block (lower triangle read,
/// upper set to zero). Returns false when a pivot is not positive.
template <typename Derived>
bool chol_small(Eigen::MatrixBase<Derived>& M) {
  const Index p = M.rows();
  for (Index j = 0; j < p; ++j) {
    double d = M(j, j);
    for (Index k = 0; k < j; ++k) d -= M(j, k) * M(j, k);
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    M(j, j) = d;
    for (Index i = j + 1; i < p; ++i) {
      double s = M(i, j);
      for (Index k = 0; k < j; ++k) s -= M(i, k) * M(j, k);
      M(i, j) = s / d;
    }
    for (Index i = 0; i < j; ++i) M(i, j) = 0.0;
  }
  return true;
}

/// L ← L⁻¹ in place for a lower-triangular block with a positive diagonal
/// (by columns from the last: column j of L⁻¹ needs L's column j and the
/// columns of L⁻¹ right of it).
template <typename Derived>
void invert_lower_small(Eigen::MatrixBase<Derived>& L) {
  const Index p = L.rows();
  for (Index j = p; j-- > 0;) {
    const double d = 1.0 / L(j, j);
    // (L⁻¹)[i, j] = −(Σ_{j<m≤i} (L⁻¹)[i, m] L[m, j]) / L[j, j], for i > j, from the bottom.
    for (Index i = p; i-- > j + 1;) {
      double s = 0.0;
      for (Index m = j + 1; m <= i; ++m) s += L(i, m) * L(m, j);
      L(i, j) = -s * d;
    }
    L(j, j) = d;
  }
}

/// S ← S + alpha · X X' on the lower triangle of S (R × R, column-major at s)
/// for X of R rows and ncols columns, column-major at x: a wide, short [X y]
/// block, whose few rows Eigen's general rank update pads to its panel width.
template <int R>
void wide_rank_update_lower(const double* x, Index ncols, double alpha, double* s, Index lds) {
  double acc[R * (R + 1) / 2] = {};
  for (Index c = 0; c < ncols; ++c, x += R) {
    int k = 0;
    for (int j = 0; j < R; ++j)
      for (int i = j; i < R; ++i) acc[k++] += x[i] * x[j];
  }
  int k = 0;
  for (int j = 0; j < R; ++j)
    for (int i = j; i < R; ++i) s[j * lds + i] += alpha * acc[k++];
}

/// out[c] = X(r, c) − Σ_{x<r} X(x, c) β[x] for every column c of a short, wide
/// X of r + 1 rows (an [X y] block: y's row less X's rows times β), by columns.
inline void last_row_less(const Matrix& X, const Vector& beta, double* out) {
  const Index r = X.rows() - 1;
  const double* x = X.data();
  for (Index c = 0; c < X.cols(); ++c, x += r + 1) {
    double v = x[r];
    for (Index i = 0; i < r; ++i) v -= x[i] * beta[i];
    out[c] = v;
  }
}

/// out_j ← out_j + alpha · D_j b_j for every block j of D (P × P, P fixed
/// when known at compile time: Eigen::Dynamic for any), b and out stacked
/// per block.
template <int P>
void block_diag_times_fixed(const BlockDiag& D, double alpha, const double* b, double* out) {
  const Index p = P == Eigen::Dynamic ? D.p : P;
  const double* d = D.data.data();
  for (Index j = 0; j < D.nblocks; ++j, d += p * p, b += p, out += p)
    for (Index c = 0; c < p; ++c)
      for (Index r = 0; r < p; ++r) out[r] += alpha * d[c * p + r] * b[c];
}

inline void block_diag_times(const BlockDiag& D, double alpha, const double* b, double* out) {
  switch (D.p) {
    case 1: return block_diag_times_fixed<1>(D, alpha, b, out);
    case 2: return block_diag_times_fixed<2>(D, alpha, b, out);
    case 3: return block_diag_times_fixed<3>(D, alpha, b, out);
    case 4: return block_diag_times_fixed<4>(D, alpha, b, out);
    default: return block_diag_times_fixed<Eigen::Dynamic>(D, alpha, b, out);
  }
}

/// out = (I_nlevels ⊗ λ) u for a lower-triangular p × p λ: per level, λ u_j.
template <int P>
void levels_times_lower_fixed(const Matrix& lambda, Index nlevels, const double* u, double* out) {
  const Index p = P == Eigen::Dynamic ? lambda.rows() : P;
  const double* l = lambda.data();
  for (Index j = 0; j < nlevels; ++j, u += p, out += p)
    for (Index i = 0; i < p; ++i) {
      double v = 0.0;
      for (Index k = 0; k <= i; ++k) v += l[k * p + i] * u[k];
      out[i] = v;
    }
}

inline void levels_times_lower(const Matrix& lambda, Index nlevels, const double* u, double* out) {
  switch (lambda.rows()) {
    case 1: return levels_times_lower_fixed<1>(lambda, nlevels, u, out);
    case 2: return levels_times_lower_fixed<2>(lambda, nlevels, u, out);
    case 3: return levels_times_lower_fixed<3>(lambda, nlevels, u, out);
    case 4: return levels_times_lower_fixed<4>(lambda, nlevels, u, out);
    default: return levels_times_lower_fixed<Eigen::Dynamic>(lambda, nlevels, u, out);
  }
}

}  // namespace lmm
