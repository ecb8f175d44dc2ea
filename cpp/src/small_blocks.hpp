// Kernels on the small dense blocks of one level (p × p, p the columns of a
// term), by hand: Eigen's general products and solvers dispatch at run time,
// which costs more than their arithmetic when done once per level of a term
// with tens of thousands of levels. Private to the library's sources.
#pragma once

#include <cmath>
#include <type_traits>

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

/// Σ_{i<n} f(i) in eight interleaved partial sums, added in a fixed order:
/// vectorizable, and the same rounding wherever the data lie (Eigen's
/// reductions start their packets at the first aligned entry, so their sums
/// depend on the address, and equal inputs could give results differing in
/// the last bit from one allocation to the next).
template <typename F>
double lane_sum(Index n, F&& f) {
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  Index i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] += f(i + k);
  double sum = 0.0;
  for (int k = 0; k < kLanes; ++k) sum += lanes[k];
  for (; i < n; ++i) sum += f(i);
  return sum;
}

/// f(std::integral_constant<int, N>{}) for n = N in 1..4, else with N =
/// Eigen::Dynamic: a kernel templated on a small size, instantiated for the
/// sizes that dominate (a term's few columns, [X y]'s few rows) and a general one.
template <typename F>
void with_small_size(Index n, F&& f) {
  switch (n) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return f(std::integral_constant<int, Eigen::Dynamic>{});
  }
}

/// out[c] = X(r, c) − Σ_{x<r} X(x, c) β[x] for every column c of a short, wide
/// X of r + 1 rows (an [X y] block: y's row less X's rows times β), by columns.
inline void last_row_less(const Matrix& X, const Vector& beta, double* out) {
  with_small_size(X.rows() - 1, [&](auto R) {
    const Index r = R == Eigen::Dynamic ? X.rows() - 1 : R;
    const Eigen::Matrix<double, R, 1> b = beta.head(r);  // (held in registers: out may alias beta)
    const double* x = X.data();
    for (Index c = 0; c < X.cols(); ++c, x += r + 1) {
      double v = x[r];
      for (Index i = 0; i < r; ++i) v -= x[i] * b[i];
      out[c] = v;
    }
  });
}

/// Y = M X[0:r, :] for a lower-triangular r × r M and the leading r rows of
/// each column of X (leading dimension ldx, ncols columns); Y is r × ncols.
inline void lower_times_leading_rows(const Matrix& M, const double* x, Index ldx, Index ncols, double* y) {
  with_small_size(M.rows(), [&](auto R) {
    const Index r = R == Eigen::Dynamic ? M.rows() : R;
    const Eigen::Matrix<double, R, R> m_ = M;
    for (Index c = 0; c < ncols; ++c, x += ldx, y += r)
      for (Index i = 0; i < r; ++i) {
        double sum = 0.0;
        for (Index m = 0; m <= i; ++m) sum += m_(i, m) * x[m];
        y[i] = sum;
      }
  });
}

/// out_j ← out_j + alpha · D_j b_j for every block j of D, b and out stacked per block.
inline void block_diag_times(const BlockDiag& D, double alpha, const double* b, double* out) {
  with_small_size(D.p, [&](auto P) {
    const Index p = P == Eigen::Dynamic ? D.p : P;
    const double* d = D.data.data();
    for (Index j = 0; j < D.nblocks; ++j, d += p * p, b += p, out += p)
      for (Index c = 0; c < p; ++c)
        for (Index r = 0; r < p; ++r) out[r] += alpha * d[c * p + r] * b[c];
  });
}

/// out −= S x (rows: S's rows, x by column), or out −= S'x (transposed: x by
/// row, out by column), for a sparse matrix of 1 × 1 blocks (crossed
/// intercepts), by plain loops: a general product per entry cost InstEval's
/// moment start 1.6 of its 1.9 ms (90,000 entries).
inline void scalar_blocks_less(const SparseBlocks& S, bool transposed, const double* x, double* out) {
  const double* v = S.data.data();
  for (Index c = 0; c < S.ncols; ++c)
    for (Index e = S.colptr[c]; e < S.colptr[c + 1]; ++e) {
      if (transposed) {
        out[c] -= v[e] * x[S.rowidx[e]];
      } else {
        out[S.rowidx[e]] -= v[e] * x[c];
      }
    }
}

/// out = (I_nlevels ⊗ λ) u for a lower-triangular p × p λ: per level, λ u_j.
inline void levels_times_lower(const Matrix& lambda, Index nlevels, const double* u, double* out) {
  lower_times_leading_rows(lambda, u, lambda.rows(), nlevels, out);
}

}  // namespace lmm
