#include "lmm/cholesky.hpp"

#include "lmm/dense.hpp"
#include "lmm/parallel.hpp"
#include "small_blocks.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace lmm {

namespace {

// Chunks of the threaded sweeps over tail columns and prefix levels (each
// takes every kSweepChunks-th one), whatever the number of threads.
constexpr long kSweepChunks = 8;
// A prefix term's update of T goes by dense panels of kPanelColumns columns
// when its scattered updates number at least 1/kPanelAdvantage of the panels'
// multiply-adds (a BLAS-3 multiply-add costs that much less than a scattered one).
constexpr double kPanelAdvantage = 32.0;
constexpr Index kPanelColumns = 256;
// Entries (of its diagonal blocks and the blocks below them) from which the
// leading prefix term is factored by ranges of levels on the threads.
constexpr Index kThreadedEntries = Index{1} << 15;

using RowLists = std::vector<std::vector<Index>>;

RowLists pattern_of(const SparseBlocks& S) {
  RowLists rows(static_cast<std::size_t>(S.ncols));
  for (Index c = 0; c < S.ncols; ++c) rows[c].assign(S.rowidx.begin() + S.colptr[c], S.rowidx.begin() + S.colptr[c + 1]);
  return rows;
}

bool at_most_one_per_column(const RowLists& rows) {
  return std::all_of(rows.begin(), rows.end(), [](const auto& r) { return r.size() <= 1; });
}

// B ← B L⁻ᵀ for a lower-triangular L: the right division of a block row by a
// factored diagonal block.
template <typename Derived, typename LDerived>
void rdiv_lower_t(Eigen::MatrixBase<Derived>&& B, const Eigen::MatrixBase<LDerived>& Lc) {
  if (Lc.rows() == 1) {
    B /= Lc(0, 0);
    return;
  }
  auto Bt = B.transpose();
  Lc.template triangularView<Eigen::Lower>().solveInPlace(Bt);
}

// out = λ_i' B λ_j (Add: out += λ_i' B λ_j) for lower-triangular λ (tmp:
// workspace, no allocation once sized).
template <bool Add = false, typename Out, typename Derived>
void set_congruence(Out&& out, const Matrix& li, const Eigen::MatrixBase<Derived>& B, const Matrix& lj, Matrix& tmp) {
  if (li.size() == 1 && lj.size() == 1) {
    const double v = li(0, 0) * B(0, 0) * lj(0, 0);
    out(0, 0) = Add ? out(0, 0) + v : v;
    return;
  }
  tmp.noalias() = B * lj;
  if constexpr (Add) {
    out.noalias() += li.transpose() * tmp;
  } else {
    out.noalias() = li.transpose() * tmp;
  }
}

std::string pivot_message(const char* where);

// S ← S − X X' on the lower triangle, X the [X y] rows of a prefix term (p + 1
// of them, few, over all its levels' columns).
void xy_rank_update(const Matrix& X, Eigen::Ref<Matrix> S) {
  const Index r = X.rows(), n = X.cols(), ld = S.outerStride();
  double* s = S.data();
  switch (r) {
    case 1: return wide_rank_update_lower<1>(X.data(), n, -1.0, s, ld);
    case 2: return wide_rank_update_lower<2>(X.data(), n, -1.0, s, ld);
    case 3: return wide_rank_update_lower<3>(X.data(), n, -1.0, s, ld);
    case 4: return wide_rank_update_lower<4>(X.data(), n, -1.0, s, ld);
    case 5: return wide_rank_update_lower<5>(X.data(), n, -1.0, s, ld);
    case 6: return wide_rank_update_lower<6>(X.data(), n, -1.0, s, ld);
    default: S.selfadjointView<Eigen::Lower>().rankUpdate(X, -1.0);
  }
}

// Levels [c0, c1) of the leading term (no fill from earlier terms) with P
// columns known at compile time: per level, D_c = chol(λ'A_cλ + I) and the [X y] rows
// (A_[Xy],c λ) D_c⁻ᵀ, with fixed-size kernels (no per-level dispatch cost,
// which dominates for many levels of a small term).
template <int P>
void factor_leading_term(const BlockDiag& Azz, const Matrix& Axy, const Matrix& lambda, BlockDiag& D, Matrix& LX,
                         Index c0, Index c1) {
  using Block = Eigen::Matrix<double, P, P>;
  const Block l = lambda;
  const Index rows = LX.rows();
  Block d;
  if constexpr (P == 2) {
    // Two columns (a random intercept and slope), the commonest: written out,
    // with one reciprocal square root per pivot and no division per row.
    const double l00 = l(0, 0), l10 = l(1, 0), l11 = l(1, 1);
    for (Index c = c0; c < c1; ++c) {
      const double* A = Azz.data.data() + c * 4;  // [a00 a10 a01 a11]
      const double al00 = A[0] * l00 + A[2] * l10, al10 = A[1] * l00 + A[3] * l10;
      const double d00 = l00 * al00 + l10 * al10 + 1.0, d10 = l11 * al10, d11 = l11 * A[3] * l11 + 1.0;
      if (!(d00 > 0.0)) throw std::runtime_error(pivot_message("a random-effects block"));
      const double r0 = 1.0 / std::sqrt(d00), L00 = d00 * r0, L10 = d10 * r0, s11 = d11 - L10 * L10;
      if (!(s11 > 0.0)) throw std::runtime_error(pivot_message("a random-effects block"));
      const double r1 = 1.0 / std::sqrt(s11), L11 = s11 * r1;
      double* out = D.data.data() + c * 4;
      out[0] = L00, out[1] = L10, out[2] = 0.0, out[3] = L11;
      const double* a = Axy.data() + c * rows * 2;
      double* x = LX.data() + c * rows * 2;
      for (Index i = 0; i < rows; ++i) {
        const double a0 = a[i], a1 = a[rows + i];
        const double x0 = (a0 * l00 + a1 * l10) * r0;
        x[i] = x0;
        x[rows + i] = (a1 * l11 - L10 * x0) * r1;
      }
    }
    return;
  }
  for (Index c = c0; c < c1; ++c) {
    d.noalias() = l.transpose() * Eigen::Map<const Block>(Azz.data.data() + c * P * P) * l;
    d.diagonal().array() += 1.0;
    if (!chol_small(d)) throw std::runtime_error(pivot_message("a random-effects block"));
    Eigen::Map<Block>(D.data.data() + c * P * P) = d;
    // x = (A_[Xy],c λ) d⁻ᵀ row by row, by hand: a general product or
    // triangular solve per level would cost more in dispatch than in arithmetic.
    const double* a = Axy.data() + c * rows * P;
    double* x = LX.data() + c * rows * P;
    for (Index i = 0; i < rows; ++i) {
      double xi[P];
      for (int k = 0; k < P; ++k) {
        double v = 0.0;
        for (int m = k; m < P; ++m) v += a[m * rows + i] * l(m, k);
        for (int m = 0; m < k; ++m) v -= d(k, m) * xi[m];
        xi[k] = v / d(k, k);
      }
      for (int k = 0; k < P; ++k) x[k * rows + i] = xi[k];
    }
  }
}

// L_cc⁻¹ of a level's P × P lower-triangular block (column-major at d), by
// forward substitution: fixed size, no solver dispatch per level.
template <int P>
Eigen::Matrix<double, P, P> lower_inverse(const double* d) {
  Eigen::Matrix<double, P, P> inv = Eigen::Matrix<double, P, P>::Zero();
  for (int j = 0; j < P; ++j) inv(j, j) = 1.0 / d[j * P + j];  // (one division per pivot)
  for (int j = 0; j < P; ++j)
    for (int i = j + 1; i < P; ++i) {
      double s = 0.0;
      for (int m = j; m < i; ++m) s += d[m * P + i] * inv(m, j);
      inv(i, j) = -s * inv(i, i);
    }
  return inv;
}

// Takahashi for block column c of a prefix term whose structure is only the X
// rows (px of them, possibly none), with P columns known at compile time:
//   W_Xc = −W_XX L_Xc L_cc⁻¹,   W_cc = (L_cc⁻ᵀ − (L_Xc' W_Xc)') L_cc⁻¹.
template <int P>
void selected_inverse_leaf(const BlockDiag& Ld, const Matrix& LXy, const Matrix& WXX, Index c, BlockDiag& Wd,
                           Matrix& WX) {
  using Block = Eigen::Matrix<double, P, P>;
  using Rows = Eigen::Matrix<double, Eigen::Dynamic, P>;
  const Index px = WXX.rows();
  const Block Linv = lower_inverse<P>(Ld.data.data() + c * P * P);
  Eigen::Map<Block> wcc(Wd.data.data() + c * P * P);
  if (px == 0) {
    wcc.noalias() = Linv.transpose() * Linv;
    return;
  }
  const auto LXc = Eigen::Map<const Rows>(LXy.data() + c * LXy.rows() * P, LXy.rows(), P).topRows(px);
  Eigen::Map<Rows> wxc(WX.data() + c * px * P, px, P);
  // Coefficient-wise products: px is small, and a general product's dispatch
  // would cost more than the arithmetic, once per level.
  wxc.noalias() = -(WXX.lazyProduct(LXc)).lazyProduct(Linv);
  const Block LtW = LXc.transpose().lazyProduct(wxc);
  wcc.noalias() = (Linv.transpose() - LtW.transpose()) * Linv;
}

// diagonal_block_sums() for block column c of a prefix term whose rows below
// the diagonal are only X rows (px of them, possibly none), with P columns
// known at compile time: acc += L_cc⁻ᵀ (I + L_Xc' W_XX L_Xc) L_cc⁻¹, with
// W_XX = T_XX⁻ᵀ T_XX⁻¹, as Σ of z'z over the rows z of Y_c L_cc⁻¹ beside
// L_cc⁻ᵀ L_cc⁻¹, with Y = T_XX⁻¹ L_X (px rows, formed once for the term).
// Returns the level's term (lower triangle), which the caller sums: a sum
// through a reference would chain every level's adds through memory.
template <int P>
Eigen::Matrix<double, P, P> diagonal_sum_leaf(const BlockDiag& Ld, const Matrix& Y, Index c) {
  using Block = Eigen::Matrix<double, P, P>;
  const Block Dinv = lower_inverse<P>(Ld.data.data() + c * P * P);
  Block acc = Block::Zero();
  for (int b = 0; b < P; ++b)
    for (int a = b; a < P; ++a) {
      double sum = 0.0;
      for (int m = a; m < P; ++m) sum += Dinv(m, a) * Dinv(m, b);
      acc(a, b) += sum;
    }
  const Index px = Y.rows();
  const double* y = Y.data() + c * P * px;  // column a of Y_c at y + a·px
  for (Index x = 0; x < px; ++x) {
    double z[P];
    for (int b = 0; b < P; ++b) {
      double sum = 0.0;
      for (int m = b; m < P; ++m) sum += y[m * px + x] * Dinv(m, b);
      z[b] = sum;
    }
    for (int b = 0; b < P; ++b)
      for (int a = b; a < P; ++a) acc(a, b) += z[a] * z[b];
  }
  return acc;
}

// Σ log of the diagonal entries of every block, as the log of their product:
// one logarithm instead of one per entry (which dominates for many small
// blocks). The running product is renormalized by its binary exponent every
// few factors, so it neither overflows nor underflows.
double sum_log_diagonal(const BlockDiag& D) {
  constexpr int kRenormalize = 8;
  double mantissa = 1.0;
  long exponent = 0;
  int count = 0;
  for (Index c = 0; c < D.nblocks; ++c) {
    const double* d = D.data.data() + c * D.p * D.p;
    for (Index i = 0; i < D.p; ++i) {
      mantissa *= d[i * D.p + i];
      if (++count == kRenormalize) {
        int e = 0;
        mantissa = std::frexp(mantissa, &e);
        exponent += e;
        count = 0;
      }
    }
  }
  return std::log(mantissa) + static_cast<double>(exponent) * 0.69314718055994530941723212145818;
}

std::string pivot_message(const char* where) {
  return std::string("Cholesky factorization failed: a pivot of ") + where +
         " is not positive (X may be rank deficient, or the response is fitted exactly)";
}

}  // namespace

BlockedCholesky::BlockedCholesky(const Crossprod& A, double max_dense_bytes)
    : K_(static_cast<Index>(A.shapes.size())), p_(A.p), shapes_(A.shapes) {
  if (K_ < 1) throw std::invalid_argument("at least one random-effects term is required");
  offset_.assign(static_cast<std::size_t>(K_) + 1, 0);
  for (Index k = 0; k < K_; ++k) offset_[k + 1] = offset_[k] + shapes_[k].q();

  // Patterns of L[i][j] for prefix columns j: the pattern of A_ij plus the
  // fill from L[i][k] L[j][k]' (k < j). Because L[j][k] has at most one block
  // per column when j is in the prefix, the fill of column c of term k is
  // the rows of L[i][k](:, c) moved to column r2 = the single row of L[j][k](:, c).
  std::vector<std::vector<RowLists>> pat(static_cast<std::size_t>(K_));
  auto compute_row = [&](Index i, Index ncols) {
    pat[i].resize(static_cast<std::size_t>(ncols));
    for (Index j = 0; j < ncols; ++j) {
      RowLists rows = pattern_of(A.ZZ_off[i][j]);
      for (Index k = 0; k < j; ++k) {
        const RowLists& ljk = pat[j][k];
        const RowLists& lik = pat[i][k];
        for (std::size_t c = 0; c < ljk.size(); ++c) {
          if (ljk[c].empty()) continue;
          auto& dest = rows[ljk[c][0]];
          dest.insert(dest.end(), lik[c].begin(), lik[c].end());
        }
      }
      for (auto& r : rows) {
        std::sort(r.begin(), r.end());
        r.erase(std::unique(r.begin(), r.end()), r.end());
      }
      pat[i][j] = std::move(rows);
    }
  };
  nprefix_ = 1;
  for (Index i = 1; i < K_; ++i) {
    compute_row(i, nprefix_);
    const bool nested = nprefix_ == i && std::all_of(pat[i].begin(), pat[i].end(), at_most_one_per_column);
    if (nested) ++nprefix_;
  }

  tail_offset_.assign(static_cast<std::size_t>(K_), -1);
  for (Index k = nprefix_; k < K_; ++k) {
    tail_offset_[k] = q_tail_;
    q_tail_ += shapes_[k].q();
  }
  const double tail = static_cast<double>(q_tail_ + p_ + 1);
  if (tail * tail * 8.0 > max_dense_bytes)
    throw DenseLimitError("the crossed random-effects terms need a dense block of " + std::to_string(q_tail_ + p_ + 1) +
                            " x " + std::to_string(q_tail_ + p_ + 1) + " (" +
                            std::to_string(tail * tail * 8.0 / (1 << 20)) + " MiB), above the limit of " +
                            std::to_string(max_dense_bytes / (1 << 20)) + " MiB");
  // Rows of the tail are stored as 32-bit integers (and LAPACK takes int sizes).
  if (q_tail_ + p_ + 1 > std::numeric_limits<std::int32_t>::max())
    throw DenseLimitError("the crossed random-effects terms have too many levels for one dense block");

  Ldiag_.resize(static_cast<std::size_t>(nprefix_));
  LXy_.resize(static_cast<std::size_t>(nprefix_));
  for (Index j = 0; j < nprefix_; ++j) {
    Ldiag_[j] = BlockDiag(shapes_[j].nlevels, shapes_[j].p);
    LXy_[j].setZero(p_ + 1, shapes_[j].q());
  }
  Loff_.resize(static_cast<std::size_t>(K_));
  for (Index i = 1; i < K_; ++i) {
    Loff_[i].resize(pat[i].size());
    for (std::size_t j = 0; j < pat[i].size(); ++j) {
      SparseBlocks& Lij = Loff_[i][j];
      const SparseBlocks& Aij = A.ZZ_off[i][j];
      Lij.set_pattern(shapes_[i].nlevels, shapes_[i].p, shapes_[j].p, pat[i][j]);
      if (Lij.colptr == Aij.colptr && std::equal(Lij.rowidx.begin(), Lij.rowidx.end(), Aij.rowidx.begin()))
        Lij.rowidx.share(Aij.rowidx);  // no fill: A's pattern serves
    }
  }
  // T_ is allocated by the first factor(), not here: its q_tail² doubles come
  // after the construction's temporaries are released.

  for (Index i = 1; i < nprefix_; ++i)
    for (Index t = 0; t < i; ++t) prefix_independent_ = prefix_independent_ && Loff_[i][t].nnz() == 0;

  // One scalar tail term: the positions of a prefix term are the entries of
  // its block of L in that term, in the same order, so L's storage serves.
  const bool shared = K_ - nprefix_ == 1 && shapes_[nprefix_].p == 1;
  reach_.resize(static_cast<std::size_t>(nprefix_));
  for (Index k = 0; k < nprefix_; ++k) {
    TailReach& R = reach_[k];
    R.shared = shared;
    R.colptr.assign(static_cast<std::size_t>(shapes_[k].nlevels) + 1, 0);
    std::vector<std::int32_t>& rows = R.rows;  // the packed rows; handed back below when shared
    std::size_t positions = 0;
    for (Index i = nprefix_; i < K_; ++i) positions += static_cast<std::size_t>(Loff_[i][k].nnz() * Loff_[i][k].pr);
    rows.reserve(positions);
    for (Index c = 0; c < shapes_[k].nlevels; ++c) {
      for (Index i = nprefix_; i < K_; ++i) {
        const SparseBlocks& Lik = Loff_[i][k];
        for (Index e = Lik.colptr[c]; e < Lik.colptr[c + 1]; ++e)
          for (Index a = 0; a < Lik.pr; ++a)
            rows.push_back(static_cast<std::int32_t>(tail_offset_[i] + Lik.rowidx[e] * Lik.pr + a));
      }
      if (rows.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw std::length_error("the crossed random-effects terms have too many pairs of levels (over 2^31)");
      R.colptr[c + 1] = static_cast<Index>(rows.size());
    }
    R.byrow_ptr.assign(static_cast<std::size_t>(q_tail_) + 1, 0);
    for (const std::int32_t r : rows) ++R.byrow_ptr[r + 1];
    for (Index r = 0; r < q_tail_; ++r) R.byrow_ptr[r + 1] += R.byrow_ptr[r];
    R.byrow.resize(rows.size());
    R.byrow_column.resize(rows.size());
    std::vector<Index> next(R.byrow_ptr.begin(), R.byrow_ptr.end() - 1);
    for (Index c = 0; c < shapes_[k].nlevels; ++c)
      for (Index g = R.colptr[c]; g < R.colptr[c + 1]; ++g) {
        const Index b = next[rows[g]]++;
        R.byrow[b] = static_cast<std::int32_t>(g);
        R.byrow_column[b] = static_cast<std::int32_t>(c);
      }
    if (shared) {
      std::vector<std::int32_t>().swap(R.rows);
    } else {
      R.V.setZero(shapes_[k].p, R.size());
    }
    // A term whose columns reach much of the tail (crossed factors with many
    // observations per level, or fully crossed designs): Σ_c k_c² p_k
    // scattered updates of T cost more than the panels' q_tail² ℓ_k p_k / 2
    // multiply-adds at BLAS speed (the maximal kb07-like model, 8 columns per
    // level reaching all of the tail: 26 -> 2.9 ms per evaluation, 42 -> 5.2
    // with the gradient).
    double scattered = 0.0;
    for (Index c = 0; c < shapes_[k].nlevels; ++c) {
      const double kc = static_cast<double>(R.colptr[c + 1] - R.colptr[c]);
      scattered += kc * kc;
    }
    R.panels = scattered > 0.0 && scattered * kPanelAdvantage >= static_cast<double>(q_tail_) *
                                                                   static_cast<double>(q_tail_) *
                                                                   static_cast<double>(shapes_[k].nlevels);
  }
}

const std::int32_t* BlockedCholesky::reach_rows(Index k) const {
  return reach_[k].shared ? Loff_[nprefix_][k].rowidx.data() : reach_[k].rows.data();
}

const double* BlockedCholesky::reach_values(Index k) const {
  return reach_[k].shared ? Loff_[nprefix_][k].data.data() : reach_[k].V.data();
}

void BlockedCholesky::factor_columns(const Crossprod& A, const std::vector<Matrix>& lambda, Index j, Index c0,
                                     Index c1, Matrix& tmp) {
  const Matrix& lj = lambda[j];
  const Index pj = shapes_[j].p;
  BlockDiag& D = Ldiag_[j];

  // The leading term with 2–4 columns: diagonal and [X y] rows by fixed-size kernels.
  const bool leading_fixed = j == 0 && pj >= 2 && pj <= 4;
  if (leading_fixed) {
    if (pj == 2) factor_leading_term<2>(A.ZZ[0], A.XyZ[0], lj, D, LXy_[0], c0, c1);
    if (pj == 3) factor_leading_term<3>(A.ZZ[0], A.XyZ[0], lj, D, LXy_[0], c0, c1);
    if (pj == 4) factor_leading_term<4>(A.ZZ[0], A.XyZ[0], lj, D, LXy_[0], c0, c1);
  } else {
    // Diagonal block: λ'A_jjλ + I minus the (block-diagonal) fill from earlier terms.
    for (Index c = c0; c < c1; ++c) {
      set_congruence(D.block(c), lj, A.ZZ[j].block(c), lj, tmp);
      D.block(c).diagonal().array() += 1.0;
    }
    for (Index k = 0; k < j; ++k) {
      const SparseBlocks& Ljk = Loff_[j][k];
      for (Index c = 0; c < Ljk.ncols; ++c)
        for (Index e = Ljk.colptr[c]; e < Ljk.colptr[c + 1]; ++e)
          D.block(Ljk.rowidx[e]).noalias() -= Ljk.block(e) * Ljk.block(e).transpose();
    }
    for (Index c = c0; c < c1; ++c) {
      auto blk = D.block(c);
      if (!chol_small(blk)) throw std::runtime_error(pivot_message("a random-effects block"));
    }
  }

  // Off-diagonal blocks below, in every later term.
  for (Index i = j + 1; i < K_; ++i) {
    SparseBlocks& Lij = Loff_[i][j];
    const SparseBlocks& Aij = A.ZZ_off[i][j];
    const Matrix& li = lambda[i];
    const bool scalar = li.size() == 1 && lj.size() == 1;  // (crossed intercepts: one entry per block)
    if (scalar && j == 0) {
      // Nothing fills the leading term's blocks (L's pattern is A's): each
      // entry set and divided by its level's pivot in one pass.
      const double* a = Aij.data.data();
      double* v = Lij.data.data();
      for (Index c = c0; c < c1; ++c) {
        const double f = li(0, 0) * lj(0, 0) / D.data.data()[c];
        for (Index e = Aij.colptr[c]; e < Aij.colptr[c + 1]; ++e) v[e] = f * a[e];
      }
      continue;
    }
    const Index e0 = Lij.colptr[c0], e1 = Lij.colptr[c1];
    Lij.data.middleCols(e0 * Lij.pc, (e1 - e0) * Lij.pc).setZero();
    for (Index c = c0; c < c1; ++c) {
      Index dst = Lij.colptr[c];
      for (Index e = Aij.colptr[c]; e < Aij.colptr[c + 1]; ++e) {
        while (Lij.rowidx[dst] != Aij.rowidx[e]) ++dst;
        if (scalar) {
          Lij.data.data()[dst] = li(0, 0) * Aij.data.data()[e] * lj(0, 0);
        } else {
          set_congruence(Lij.block(dst), li, Aij.block(e), lj, tmp);
        }
      }
    }
    for (Index k = 0; k < j; ++k) {
      const SparseBlocks& Ljk = Loff_[j][k];
      const SparseBlocks& Lik = Loff_[i][k];
      for (Index c = 0; c < Ljk.ncols; ++c) {
        if (Ljk.colptr[c] == Ljk.colptr[c + 1]) continue;
        const Index e2 = Ljk.colptr[c];
        const Index r2 = Ljk.rowidx[e2];
        for (Index e1 = Lik.colptr[c]; e1 < Lik.colptr[c + 1]; ++e1)
          Lij.block(Lij.find(Lik.rowidx[e1], r2)).noalias() -= Lik.block(e1) * Ljk.block(e2).transpose();
      }
    }
    if (Lij.pr == 1 && Lij.pc == 1) {
      double* v = Lij.data.data();
      for (Index c = c0; c < c1; ++c)
        for (Index e = Lij.colptr[c]; e < Lij.colptr[c + 1]; ++e) v[e] /= D.data.data()[c];
    } else {
      for (Index c = c0; c < c1; ++c)
        for (Index e = Lij.colptr[c]; e < Lij.colptr[c + 1]; ++e) rdiv_lower_t(Lij.block(e), D.block(c));
    }
  }

  // The [X y] rows.
  if (!leading_fixed) {
    auto LX = LXy_[j].middleCols(c0 * pj, (c1 - c0) * pj);
    const auto Axy = A.XyZ[j].middleCols(c0 * pj, (c1 - c0) * pj);
    if (pj == 1) {
      LX = Axy * lj(0, 0);
    } else {
      for (Index c = 0; c < c1 - c0; ++c) LX.middleCols(c * pj, pj).noalias() = Axy.middleCols(c * pj, pj) * lj;
    }
    for (Index k = 0; k < j; ++k) {
      const SparseBlocks& Ljk = Loff_[j][k];
      const Index pk = shapes_[k].p;
      for (Index c = 0; c < Ljk.ncols; ++c)
        for (Index e = Ljk.colptr[c]; e < Ljk.colptr[c + 1]; ++e)
          LXy_[j].middleCols(Ljk.rowidx[e] * pj, pj).noalias() -=
              LXy_[k].middleCols(c * pk, pk) * Ljk.block(e).transpose();
    }
    if (pj == 1) {
      LX.array().rowwise() /= D.data.row(0).segment(c0, c1 - c0).array();
    } else {
      for (Index c = 0; c < c1 - c0; ++c) rdiv_lower_t(LX.middleCols(c * pj, pj), D.block(c0 + c));
    }
  }

  // The columns' rows in the tail, packed for the sweeps (reach_[j].V).
  TailReach& R = reach_[j];
  if (R.shared) return;
  Index g = R.colptr[c0];
  for (Index c = c0; c < c1; ++c)
    for (Index i = nprefix_; i < K_; ++i) {
      const SparseBlocks& Lij = Loff_[i][j];
      if (Lij.pr == 1 && Lij.pc == 1) {
        const double* v = Lij.data.data();
        for (Index e = Lij.colptr[c]; e < Lij.colptr[c + 1]; ++e, ++g) R.V.data()[g] = v[e];
        continue;
      }
      for (Index e = Lij.colptr[c]; e < Lij.colptr[c + 1]; ++e)
        for (Index a = 0; a < Lij.pr; ++a, ++g)
          for (Index b = 0; b < Lij.pc; ++b) R.V(b, g) = Lij.data(a, e * Lij.pc + b);
    }
}

bool BlockedCholesky::scalar_tail_entries(const Crossprod& A, const std::vector<Matrix>& lambda, Index i) {
  for (Index j = nprefix_; j < i; ++j)
    if (shapes_[j].p != 1) return false;
  const Index oi = tail_offset_[i], ld = T_.matrix().outerStride(), rows = p_ + 1;
  const double li = lambda[i](0, 0);
  double* T = T_.matrix().data();
  const double* zz = A.ZZ[i].data.data();
  const double* xyz = A.XyZ[i].data();
  for (Index c = 0; c < shapes_[i].nlevels; ++c) {
    double* col = T + (oi + c) * ld;
    col[oi + c] += li * zz[c] * li + 1.0;
    for (Index x = 0; x < rows; ++x) col[q_tail_ + x] += xyz[c * rows + x] * li;
  }
  for (Index j = nprefix_; j < i; ++j) {
    const SparseBlocks& Aij = A.ZZ_off[i][j];
    const double f = li * lambda[j](0, 0);
    const double* v = Aij.data.data();
    for (Index c = 0; c < Aij.ncols; ++c) {
      double* col = T + (tail_offset_[j] + c) * ld + oi;
      for (Index e = Aij.colptr[c]; e < Aij.colptr[c + 1]; ++e) col[Aij.rowidx[e]] += f * v[e];
    }
  }
  return true;
}

void BlockedCholesky::factor(const Crossprod& A, const std::vector<Matrix>& lambda) {
  factored_ = false;
  Matrix tmp;
  const int threads = sweep_threads();
  for (Index j = 0; j < nprefix_; ++j) {
    const Index levels = shapes_[j].nlevels;
    // The leading term's levels are independent (no fill from earlier
    // terms): with threads, ranges of them are factored in parallel when
    // its blocks are many (InstEval's 2,972 levels and 90,000 blocks below:
    // 0.5 ms of each evaluation on one thread).
    Index entries = levels * shapes_[j].p * shapes_[j].p;
    for (Index i = j + 1; i < K_; ++i) entries += Loff_[i][j].data.size();
    if (j > 0 || threads < 2 || entries < kThreadedEntries) {
      factor_columns(A, lambda, j, 0, levels, tmp);
      continue;
    }
    const long chunks = kSweepChunks;
    parallel_for_rethrow(chunks, threads, [&](long chunk) {
      Matrix work;
      factor_columns(A, lambda, j, levels * chunk / chunks, levels * (chunk + 1) / chunks, work);
    });
  }

  // Dense tail: the remaining terms and [X y], minus the updates from the prefix.
  // Only the lower triangle of T is written or read (the dense kernels take
  // uplo = 'L'), so the pages of its upper triangle are never touched and take
  // no memory. Reallocated only if W kept the storage.
  const Index m = q_tail_ + p_ + 1;
  if (T_.order() != m) T_.resize(m);
  const Index xo = q_tail_;
  // Each block column c of a prefix term k updates T by −C C', C its rows in
  // the tail and [X y] (packed in reach_[k].V by factor_columns()): T is swept
  // column by column, column r receiving, from every block column reaching
  // row r, the products with its rows at and below r. Columns r are
  // independent: with threads, each chunk zeroes and sweeps every chunks-th
  // one (a column is zeroed while in cache for its sweep, by both threads:
  // zeroing the whole triangle first cost InstEval's evaluation 0.3-0.4 ms on
  // one thread, and 4 ms of page faults the first time).
  const long chunks = threads > 1 ? kSweepChunks : 1;
  parallel_for(chunks, threads, [&](long chunk) {
    for (Index r = chunk; r < q_tail_; r += chunks) {
      double* Tcol = T_.matrix().col(r).data();
      std::fill(Tcol + r, Tcol + m, 0.0);
      for (Index k = 0; k < nprefix_; ++k) {
        if (reach_[k].panels) continue;
        const TailReach& R = reach_[k];
        const Index pk = shapes_[k].p;
        const double* V = reach_values(k);
        const std::int32_t* rows = reach_rows(k);
        const Index ldx = LXy_[k].rows();
        for (Index b = R.byrow_ptr[r]; b < R.byrow_ptr[r + 1]; ++b) {
          const Index g = R.byrow[b], c = R.byrow_column[b], end = R.colptr[c + 1];
          const double* vg = V + g * pk;
          if (pk == 1) {
            const double v0 = vg[0];
            for (Index h = g; h < end; ++h) Tcol[rows[h]] -= V[h] * v0;
          } else {
            for (Index h = g; h < end; ++h) {
              const double* vh = V + h * pk;
              double dot = 0.0;
              for (Index a = 0; a < pk; ++a) dot += vh[a] * vg[a];
              Tcol[rows[h]] -= dot;
            }
          }
          // The [X y] rows of column r: −(L[Xy, c]) v_g.
          const double* lx = LXy_[k].data() + c * pk * ldx;
          for (Index a = 0; a < pk; ++a, lx += ldx)
            for (Index x = 0; x <= p_; ++x) Tcol[xo + x] -= lx[x] * vg[a];
        }
      }
    }
  });
  // A's entries in the tail's columns, added to the sweep's sums; the [X y]
  // corner (the rest of the lower triangle) set.
  for (Index i = nprefix_; i < K_; ++i) {
    const Index oi = tail_offset_[i], pi = shapes_[i].p;
    const Matrix& li = lambda[i];
    if (pi == 1 && scalar_tail_entries(A, lambda, i)) continue;
    for (Index c = 0; c < shapes_[i].nlevels; ++c) {
      set_congruence<true>(T_.matrix().block(oi + c * pi, oi + c * pi, pi, pi), li, A.ZZ[i].block(c), li, tmp);
      T_.matrix().block(oi + c * pi, oi + c * pi, pi, pi).diagonal().array() += 1.0;
    }
    for (Index j = nprefix_; j < i; ++j) {
      const SparseBlocks& Aij = A.ZZ_off[i][j];
      const Index oj = tail_offset_[j], pj = shapes_[j].p;
      for (Index c = 0; c < Aij.ncols; ++c)
        for (Index e = Aij.colptr[c]; e < Aij.colptr[c + 1]; ++e)
          set_congruence<true>(T_.matrix().block(oi + Aij.rowidx[e] * pi, oj + c * pj, pi, pj), li, Aij.block(e),
                               lambda[j], tmp);
    }
    for (Index c = 0; c < shapes_[i].nlevels; ++c)
      T_.matrix().block(xo, oi + c * pi, p_ + 1, pi).noalias() += A.XyZ[i].middleCols(c * pi, pi) * li;
  }
  T_.matrix().bottomRightCorner(p_ + 1, p_ + 1) = A.XyXy;

  // Terms whose columns reach much of the tail (TailReach::panels) update T
  // by products of dense panels of their columns (BLAS-3).
  const Index mt = q_tail_ + p_ + 1;
  for (Index k = 0; k < nprefix_; ++k) {
    if (!reach_[k].panels) continue;
    Matrix P(mt, panel_columns(k));
    const Index pk = shapes_[k].p;
    for (Index c0 = 0; c0 < shapes_[k].nlevels; c0 += P.cols() / pk) {
      const Index w = fill_panel(k, c0, p_ + 1, P);
      rank_update_lower(T_.matrix(), P.leftCols(w * pk), -1.0);
    }
  }
  for (Index k = 0; k < nprefix_; ++k)
    if (!reach_[k].panels) xy_rank_update(LXy_[k], T_.matrix().bottomRightCorner(p_ + 1, p_ + 1));

  if (!cholesky_lower(T_.matrix())) throw std::runtime_error(pivot_message("the dense trailing block"));
  factored_ = true;

  const double r = T_.matrix()(m - 1, m - 1);
  pwrss_ = r * r;
  double s = 0.0;
  for (const BlockDiag& D : Ldiag_) s += sum_log_diagonal(D);
  s += T_.matrix().diagonal().head(q_tail_).array().log().sum();
  ldL2_ = 2.0 * s;
  ldRX2_ = 2.0 * T_.matrix().diagonal().segment(q_tail_, p_).array().log().sum();
}

double BlockedCholesky::factor_bytes() const {
  const double tail = static_cast<double>(q_tail_ + p_ + 1);
  double bytes = tail * tail * sizeof(double);
  for (const BlockDiag& D : Ldiag_) bytes += static_cast<double>(D.data.size()) * sizeof(double);
  for (const Matrix& M : LXy_) bytes += static_cast<double>(M.size()) * sizeof(double);
  for (const auto& row : Loff_)
    for (const SparseBlocks& S : row)
      bytes += static_cast<double>(S.data.size()) * sizeof(double) +
               static_cast<double>(S.rowidx.size()) * sizeof(std::int32_t) +  // (maybe shared with A)
               static_cast<double>(S.colptr.size()) * sizeof(Index);
  return bytes;
}

void BlockedCholesky::require_factored() const {
  if (!factored_)
    throw std::logic_error("the factor was consumed by selected_inverse() or diagonal_block_sums(); factor again first");
}

Matrix BlockedCholesky::LX() const {
  require_factored();
  return T_.matrix().block(q_tail_, q_tail_, p_, p_).triangularView<Eigen::Lower>();
}

void BlockedCholesky::solve_u_beta(Vector& u, Vector& beta) const {
  require_factored();
  const Index m = q_tail_ + p_;
  Vector xt = T_.matrix().row(m).head(m).transpose();
  T_.matrix().topLeftCorner(m, m).transpose().triangularView<Eigen::Upper>().solveInPlace(xt);
  beta = xt.tail(p_);
  u.resize(offset_[K_]);
  for (Index i = nprefix_; i < K_; ++i) u.segment(offset_[i], shapes_[i].q()) = xt.segment(tail_offset_[i], shapes_[i].q());
  for (Index j = nprefix_ - 1; j >= 0; --j) {
    const Index pj = shapes_[j].p;
    auto rhs = u.segment(offset_[j], shapes_[j].q());  // solved in place
    last_row_less(LXy_[j], beta, rhs.data());
    for (Index i = j + 1; i < K_; ++i) {
      const SparseBlocks& Lij = Loff_[i][j];
      const Index pi = shapes_[i].p;
      if (pi == 1 && pj == 1) {
        scalar_blocks_less(Lij, true, u.data() + offset_[i], rhs.data());
        continue;
      }
      for (Index c = 0; c < Lij.ncols; ++c)
        for (Index e = Lij.colptr[c]; e < Lij.colptr[c + 1]; ++e)
          rhs.segment(c * pj, pj).noalias() -= Lij.block(e).transpose() * u.segment(offset_[i] + Lij.rowidx[e] * pi, pi);
    }
    // Back substitution with each level's L_cc', by hand: p_j is small.
    for (Index c = 0; c < shapes_[j].nlevels; ++c) {
      const double* D = Ldiag_[j].data.data() + c * pj * pj;
      double* x = rhs.data() + c * pj;
      for (Index i = pj - 1; i >= 0; --i) {
        double v = x[i];
        for (Index k = i + 1; k < pj; ++k) v -= D[i * pj + k] * x[k];
        x[i] = v / D[i * pj + i];
      }
    }
  }
}

}  // namespace lmm

namespace lmm {

namespace {

// One block row of the structure of a prefix column: a later prefix or tail
// term's level, or the X rows (term −1).
struct StructEntry {
  Index term;
  Index level;
  Index size;
  Index loff_index;  // index of the block in Loff_[term][t] (−1 for X rows)
  ConstColBlock Lblk;
};

}  // namespace

void SelectedInverse::block(Index a, Index ra, Index b, Index rb, Matrix& out) const {
  const BlockedCholesky& L = *L_;
  const Index np = L.nprefix_;
  const Index pa = L.shapes_[a].p, pb = L.shapes_[b].p;
  if (a >= np && b >= np) {
    // Only the lower triangle of the tail inverse is stored. Blocks of two
    // levels never straddle its diagonal; a level's own block sits on it.
    const Index ia = L.tail_offset_[a] + ra * pa, ib = L.tail_offset_[b] + rb * pb;
    if (ia > ib) {
      out = T_.matrix().block(ia, ib, pa, pb);
    } else if (ia < ib) {
      out = T_.matrix().block(ib, ia, pb, pa).transpose();
    } else {
      out = T_.matrix().block(ia, ia, pa, pa).selfadjointView<Eigen::Lower>();
    }
  } else if (a == b) {
    if (ra != rb) throw std::logic_error("selected inverse: off-diagonal block of a prefix term requested");
    out = diag_[a].block(ra);
  } else if (a < b) {
    block(b, rb, a, ra, out);
    out.transposeInPlace();
  } else {
    const SparseBlocks& pattern = L.Loff_[a][b];
    const Index k = pattern.find(ra, rb);
    if (k < 0) throw std::logic_error("selected inverse: block outside the pattern of L requested");
    out = off_[a][b].middleCols(k * pattern.pc, pattern.pc);
  }
}

double SelectedInverse::coeff(Index a, Index ra, Index b, Index rb) const {
  const BlockedCholesky& L = *L_;
  const Index np = L.nprefix_;
  if (a >= np && b >= np) {
    const Index ia = L.tail_offset_[a] + ra, ib = L.tail_offset_[b] + rb;
    return ia >= ib ? T_.matrix()(ia, ib) : T_.matrix()(ib, ia);
  }
  if (a == b) return diag_[a].data(0, ra);
  if (a < b) return coeff(b, rb, a, ra);
  const Index k = L.Loff_[a][b].find(ra, rb);
  if (k < 0) throw std::logic_error("selected inverse: block outside the pattern of L requested");
  return off_[a][b](0, k);
}

bool SelectedInverse::in_prefix(Index k) const { return k < L_->nprefix_; }

void SelectedInverse::xblock(Index k, Index r, Matrix& out) const {
  const BlockedCholesky& L = *L_;
  const Index pk = L.shapes_[k].p;
  if (k >= L.nprefix_) {
    out = T_.matrix().block(L.q_tail_, L.tail_offset_[k] + r * pk, px_, pk);
  } else {
    out = X_[k].middleCols(r * pk, pk);
  }
}

void BlockedCholesky::diagonal_block_sums(bool with_x, std::vector<Matrix>& sums) {
  require_factored();
  if (!prefix_independent_) throw std::logic_error("diagonal_block_sums: prefix terms are nested");
  const Index px = with_x ? p_ : 0;
  const Index mt = q_tail_ + px;
  // With L = [[D, 0], [B, T]] (D the block-diagonal prefix, T the tail's
  // leading mt rows), L⁻¹ = [[D⁻¹, 0], [−T⁻¹BD⁻¹, T⁻¹]] and Ω⁻¹ = L⁻ᵀL⁻¹:
  //   tail level block:   Σ_{r ≥ a} T⁻¹[r, a..]' T⁻¹[r, a..]
  //   prefix level c:     D_c⁻ᵀ (I + H_c'H_c) D_c⁻¹,  H_c = T⁻¹ B_c
  // with B_c the column's few rows in the tail and X, so H_c costs one column
  // of T⁻¹ per row of B_c.
  invert_lower(T_.matrix().topLeftCorner(mt, mt));
  factored_ = false;
  const auto Tinv = T_.matrix().topLeftCorner(mt, mt);
  sums.assign(static_cast<std::size_t>(K_), Matrix());
  for (Index k = 0; k < K_; ++k) sums[k].setZero(shapes_[k].p, shapes_[k].p);
  const Matrix TXXinv = Tinv.bottomRightCorner(px, px).triangularView<Eigen::Lower>();
  // Terms updated by panels in factor(): H = T⁻¹ B for a panel of levels at
  // once (BLAS-3), level c adding L_cc⁻ᵀ (I + H_c'H_c) L_cc⁻¹ (a scalar
  // term: (1 + |H_c|²) / L_cc²).
  std::vector<Matrix> panel_sums(static_cast<std::size_t>(nprefix_));
  for (Index t = 0; t < nprefix_; ++t) {
    if (!reach_[t].panels) continue;
    const Index pt = shapes_[t].p;
    panel_sums[t].setZero(pt, pt);
    Matrix P(mt, panel_columns(t)), G, Dinv;
    for (Index c0 = 0; c0 < shapes_[t].nlevels; c0 += P.cols() / pt) {
      const Index w = fill_panel(t, c0, px, P);
      lower_times(T_.matrix().topLeftCorner(mt, mt), P.leftCols(w * pt));
      for (Index j = 0; j < w; ++j) {
        if (pt == 1) {
          const double d = Ldiag_[t].data(0, c0 + j);
          panel_sums[t](0, 0) += (1.0 + P.col(j).squaredNorm()) / (d * d);
          continue;
        }
        const auto H = P.middleCols(j * pt, pt);
        G.noalias() = H.transpose() * H;
        G.diagonal().array() += 1.0;
        Dinv.setIdentity(pt, pt);
        Ldiag_[t].block(c0 + j).triangularView<Eigen::Lower>().solveInPlace(Dinv);
        panel_sums[t].noalias() += Dinv.transpose() * G * Dinv;
      }
    }
  }
  // Y = T_XX⁻¹ L_X for the levels with no rows in the tail (diagonal_sum_leaf).
  std::vector<Matrix> Y(static_cast<std::size_t>(nprefix_));
  for (Index t = 0; t < nprefix_; ++t) {
    if (reach_[t].panels || shapes_[t].p > 4) continue;
    // By columns: px is a few rows, which Eigen's general products pad to their panel width.
    Y[t].resize(px, LXy_[t].cols());
    lower_times_leading_rows(TXXinv, LXy_[t].data(), LXy_[t].rows(), LXy_[t].cols(), Y[t].data());
  }
  // Levels are independent: with threads, each chunk sums every chunks-th
  // one of every term (the tail's too), and the chunks' sums are added in order.
  const int threads = sweep_threads();
  const long chunks = threads > 1 ? kSweepChunks : 1;
  std::vector<std::vector<Matrix>> part_sums(static_cast<std::size_t>(chunks));
  parallel_for(chunks, threads, [&](long part) {
    std::vector<Matrix>& out = part_sums[static_cast<std::size_t>(part)];
    out.resize(static_cast<std::size_t>(K_));
    for (Index k = nprefix_; k < K_; ++k) {
      const Index pk = shapes_[k].p;
      out[k].setZero(pk, pk);
      for (Index j = part; j < shapes_[k].nlevels; j += chunks) {
        const Index a = tail_offset_[k] + j * pk;
        if (pk == 1) {
          const double* tc = Tinv.data() + a * Tinv.outerStride() + a;
          out[k](0, 0) += lane_sum(mt - a, [&](Index x) { return tc[x] * tc[x]; });
        } else {
          // The level's diagonal block of T⁻¹ is lower triangular; the storage
          // above its diagonal holds stale values of T.
          const Matrix top = Tinv.block(a, a, pk, pk).triangularView<Eigen::Lower>();
          const auto rest = Tinv.block(a + pk, a, mt - a - pk, pk);
          out[k].noalias() += top.transpose() * top;
          out[k].noalias() += rest.transpose() * rest;
        }
      }
    }
    Matrix H, Dinv, G;
    for (Index t = 0; t < nprefix_; ++t) {
      const Index pt = shapes_[t].p;
      out[t].setZero(pt, pt);
      if (reach_[t].panels) continue;
      const TailReach& R = reach_[t];
      const std::int32_t* rows = reach_rows(t);
      const double* V = reach_values(t);
      const Index ldx = LXy_[t].rows();
      H.resize(mt, pt);
      Eigen::Matrix<double, 1, 1> acc1 = Eigen::Matrix<double, 1, 1>::Zero();
      Eigen::Matrix<double, 2, 2> acc2 = Eigen::Matrix<double, 2, 2>::Zero();
      Eigen::Matrix<double, 3, 3> acc3 = Eigen::Matrix<double, 3, 3>::Zero();
      Eigen::Matrix<double, 4, 4> acc4 = Eigen::Matrix<double, 4, 4>::Zero();
      for (Index c = part; c < shapes_[t].nlevels; c += chunks) {
        // Columns with no rows in the tail (every level of a lone prefix term, say).
        if (R.colptr[c] == R.colptr[c + 1] && pt <= 4) {
          if (pt == 1) acc1 += diagonal_sum_leaf<1>(Ldiag_[t], Y[t], c);
          if (pt == 2) acc2 += diagonal_sum_leaf<2>(Ldiag_[t], Y[t], c);
          if (pt == 3) acc3 += diagonal_sum_leaf<3>(Ldiag_[t], Y[t], c);
          if (pt == 4) acc4 += diagonal_sum_leaf<4>(Ldiag_[t], Y[t], c);
          continue;
        }
        // H = T⁻¹ B_c, nonzero from the first row of B_c down.
        Index first = mt;
        if (R.colptr[c] < R.colptr[c + 1]) {
          first = rows[R.colptr[c]];
        } else if (px > 0) {
          first = q_tail_;
        }
        const Index m = mt - first;
        auto h = H.bottomRows(m);
        h.setZero();
        Index g = R.colptr[c];
        // Raw loops over the columns of T⁻¹ (ld: its leading dimension; hc: row
        // `first` of column a of H): the compiler vectorizes them, where Eigen
        // expressions on the mapped storage were not always inlined.
        const double* T = Tinv.data();
        const Index ld = Tinv.outerStride();
        auto add_column = [&](Index a, double w, Index r) {  // H[r.., a] += w T⁻¹[r.., r]
          double* hc = h.col(a).data() - first;
          const double* tc = T + r * ld;
          for (Index x = r; x < mt; ++x) hc[x] += w * tc[x];
        };
        if (pt == 1) {
          // Four columns of T⁻¹ at a time: h is read and written once for four
          // of them on the rows all four reach (rows come in ascending order).
          double* hc = h.col(0).data() - first;
          for (; g + 3 < R.colptr[c + 1]; g += 4) {
            const Index r0 = rows[g], r1 = rows[g + 1], r2 = rows[g + 2], r3 = rows[g + 3];
            const double w0 = V[g], w1 = V[g + 1], w2 = V[g + 2], w3 = V[g + 3];
            const double *c0 = T + r0 * ld, *c1 = T + r1 * ld, *c2 = T + r2 * ld, *c3 = T + r3 * ld;
            for (Index x = r0; x < r1; ++x) hc[x] += w0 * c0[x];
            for (Index x = r1; x < r2; ++x) hc[x] += w0 * c0[x] + w1 * c1[x];
            for (Index x = r2; x < r3; ++x) hc[x] += w0 * c0[x] + w1 * c1[x] + w2 * c2[x];
            for (Index x = r3; x < mt; ++x) hc[x] += w0 * c0[x] + w1 * c1[x] + w2 * c2[x] + w3 * c3[x];
          }
        }
        for (; g < R.colptr[c + 1]; ++g)
          for (Index a = 0; a < pt; ++a) add_column(a, V[g * pt + a], rows[g]);
        const double* lx = LXy_[t].data() + c * pt * ldx;
        for (Index x = 0; x < px; ++x)
          for (Index a = 0; a < pt; ++a) add_column(a, lx[a * ldx + x], q_tail_ + x);
        G.noalias() = h.transpose() * h;
        G.diagonal().array() += 1.0;
        Dinv.setIdentity(pt, pt);
        Ldiag_[t].block(c).triangularView<Eigen::Lower>().solveInPlace(Dinv);
        out[t].noalias() += Dinv.transpose() * G * Dinv;
      }
      // The leaf kernels sum the lower triangles.
      if (pt == 1) out[t](0, 0) += acc1(0, 0);
      if (pt == 2) out[t] += acc2.selfadjointView<Eigen::Lower>();
      if (pt == 3) out[t] += acc3.selfadjointView<Eigen::Lower>();
      if (pt == 4) out[t] += acc4.selfadjointView<Eigen::Lower>();
    }
  });
  for (const auto& out : part_sums)
    for (Index t = 0; t < K_; ++t) sums[t] += out[t];
  for (Index t = 0; t < nprefix_; ++t)
    if (reach_[t].panels) sums[t] += panel_sums[t];
}

Index BlockedCholesky::fill_panel(Index k, Index c0, Index xrows, Matrix& P) const {
  const TailReach& R = reach_[k];
  const double* V = reach_values(k);
  const std::int32_t* rows = reach_rows(k);
  const Index pk = shapes_[k].p;
  const Index w = std::min<Index>(P.cols() / pk, shapes_[k].nlevels - c0);
  P.setZero();
  for (Index j = 0; j < w; ++j) {
    const Index c = c0 + j;
    for (Index g = R.colptr[c]; g < R.colptr[c + 1]; ++g)
      for (Index a = 0; a < pk; ++a) P(rows[g], j * pk + a) = V[g * pk + a];
    for (Index a = 0; a < pk; ++a) P.col(j * pk + a).segment(q_tail_, xrows) = LXy_[k].col(c * pk + a).head(xrows);
  }
  return w;
}

Index BlockedCholesky::panel_columns(Index k) const {
  const Index pk = shapes_[k].p;
  return std::min(std::max<Index>(1, kPanelColumns / pk), shapes_[k].nlevels) * pk;
}

int BlockedCholesky::sweep_threads() const {
  return q_tail_ >= kThreadedOrder && !parallel_paused() ? std::max(1, dense_threads()) : 1;
}

void BlockedCholesky::reclaim(SelectedInverse& W) {
  if (T_.empty()) T_.swap(W.T_);
}

void BlockedCholesky::selected_inverse(bool with_x, SelectedInverse& W) {
  require_factored();
  W.L_ = this;
  W.px_ = with_x ? p_ : 0;
  const Index px = W.px_;
  const Index mt = q_tail_ + px;

  // Dense tail: the tail is last, so its part of Ω⁻¹ is (T T')⁻¹ = T⁻ᵀT⁻¹,
  // formed in place in the factor's storage (LAPACK's potri steps: trtri,
  // then lauum), lower triangle; only the leading mt × mt block is used. The
  // [X y] rows and the prefix blocks of L (read below) are not touched.
  W.T_.swap(T_);
  T_.release();  // what W held before, if it was not reclaimed
  factored_ = false;
  invert_lower(W.T_.matrix().topLeftCorner(mt, mt));
  lauum_lower(W.T_.matrix().topLeftCorner(mt, mt));

  // Same layout as L; every stored block is overwritten below, so storage
  // from an earlier call on this factor is reused as it is.
  if (W.diag_.size() != Ldiag_.size() || W.off_.size() != Loff_.size() || W.X_.size() != Ldiag_.size() ||
      (nprefix_ > 0 && W.X_[0].rows() != px)) {
    W.diag_ = Ldiag_;
    W.off_.assign(Loff_.size(), {});
    for (std::size_t i = 0; i < Loff_.size(); ++i)
      for (const SparseBlocks& Lij : Loff_[i]) W.off_[i].push_back(Matrix::Zero(Lij.data.rows(), Lij.data.cols()));
    W.X_.assign(static_cast<std::size_t>(nprefix_), Matrix());
    for (Index j = 0; j < nprefix_; ++j) W.X_[j].setZero(px, shapes_[j].q());
  }

  // The part of W_SS L_Sj (below) with both W indices in the dense tail, for
  // every prefix column at once: one sweep over the columns of the tail
  // inverse, each column staying in cache while every prefix column reaching
  // it reads from it (a gather per prefix column would not).
  W.WLt_.resize(static_cast<std::size_t>(nprefix_));
  W.WLx_.resize(static_cast<std::size_t>(nprefix_));
  for (Index t = 0; t < nprefix_; ++t) {
    W.WLt_[t].setZero(shapes_[t].p, reach_[t].size());
    W.WLx_[t].setZero(px, shapes_[t].q());
  }
  // Terms updated by panels in factor() (their levels reach much of the
  // tail): the same products for a panel of levels at once, Y = W_SS P by a
  // symmetric product (BLAS-3), read at each level's rows; Y's X rows hold
  // W_XX L_X besides, which the X part takes later.
  for (Index t = 0; t < nprefix_; ++t) {
    if (!reach_[t].panels) continue;
    const Index pt = shapes_[t].p;
    const TailReach& R = reach_[t];
    const std::int32_t* rows = reach_rows(t);
    const auto Wss = W.T_.matrix().topLeftCorner(mt, mt).selfadjointView<Eigen::Lower>();
    const Matrix Wxx = W.T_.matrix().block(q_tail_, q_tail_, px, px).selfadjointView<Eigen::Lower>();
    Matrix P(mt, panel_columns(t)), Y;
    for (Index c0 = 0; c0 < shapes_[t].nlevels; c0 += P.cols() / pt) {
      const Index w = fill_panel(t, c0, px, P);
      Y.noalias() = Wss * P.leftCols(w * pt);
      for (Index j = 0; j < w; ++j) {
        const Index c = c0 + j;
        for (Index g = R.colptr[c]; g < R.colptr[c + 1]; ++g)
          for (Index a = 0; a < pt; ++a) W.WLt_[t](a, g) = Y(rows[g], j * pt + a);
        if (px > 0)
          W.WLx_[t].middleCols(c * pt, pt).noalias() =
              Y.block(q_tail_, j * pt, px, pt) - Wxx * P.block(q_tail_, j * pt, px, pt);
      }
    }
  }
  for (Index r = 0; r < q_tail_; ++r) {
    const double* Wcol = W.T_.matrix().col(r).data();
    for (Index t = 0; t < nprefix_; ++t) {
      if (reach_[t].panels) continue;
      const TailReach& R = reach_[t];
      Matrix& WL = W.WLt_[t];
      const Index pt = shapes_[t].p;
      const double* V = reach_values(t);
      const std::int32_t* rows = reach_rows(t);
      double* out = WL.data();
      for (Index b = R.byrow_ptr[r]; b < R.byrow_ptr[r + 1]; ++b) {
        const Index g = R.byrow[b], c = R.byrow_column[b], end = R.colptr[c + 1];
        const double* vg = V + g * pt;
        double* og = out + g * pt;
        for (Index a = 0; a < pt; ++a) og[a] += Wcol[r] * vg[a];
        for (Index h = g + 1; h < end; ++h) {
          const double w = Wcol[rows[h]];
          const double* vh = V + h * pt;
          double* oh = out + h * pt;
          for (Index a = 0; a < pt; ++a) {
            oh[a] += w * vg[a];
            og[a] += w * vh[a];
          }
        }
        if (px > 0) {
          // X rows of W at column r against the X rows of L (p_t columns of c), and back.
          const double* wx = Wcol + q_tail_;
          const double* lx = LXy_[t].data() + c * pt * LXy_[t].rows();
          double* ox = W.WLx_[t].data() + c * pt * px;
          for (Index a = 0; a < pt; ++a, lx += LXy_[t].rows(), ox += px) {
            double dot = 0.0;
            for (Index x = 0; x < px; ++x) {
              dot += lx[x] * wx[x];
              ox[x] += wx[x] * vg[a];
            }
            og[a] += dot;
          }
        }
      }
    }
  }

  // Prefix columns from last to first (Takahashi): for column j with
  // structure S below the diagonal,
  //   W_Sj = −W_SS L_Sj L_jj⁻¹,   W_jj = L_jj⁻ᵀ L_jj⁻¹ − W_Sj' L_Sj L_jj⁻¹.
  // S lists later prefix terms' blocks first (sp rows), then the rows in the
  // dense tail (tail terms, then X). W_SS L_Sj is the tail-by-tail part
  // from the sweep above plus the products with the prefix rows of S.
  const Matrix WXX = W.T_.matrix().block(q_tail_, q_tail_, px, px).selfadjointView<Eigen::Lower>();
  std::vector<StructEntry> S;
  Matrix WSp, LS, wab, Ljj_inv, WL, WSj, LtW;
  for (Index t = nprefix_ - 1; t >= 0; --t) {
    const Index pt = shapes_[t].p;
    const TailReach& R = reach_[t];
    for (Index c = 0; c < shapes_[t].nlevels; ++c) {
      S.clear();
      Index sp = 0;
      for (Index i = t + 1; i < K_; ++i) {
        const SparseBlocks& Lit = Loff_[i][t];
        for (Index e = Lit.colptr[c]; e < Lit.colptr[c + 1]; ++e) {
          S.push_back({i, Lit.rowidx[e], Lit.pr, e, Lit.block(e)});
          if (i < nprefix_) sp += Lit.pr;
        }
      }
      if (px > 0) S.push_back({-1, 0, px, -1, std::as_const(LXy_[t]).middleCols(c * pt, pt)});
      // A column whose structure is only the X rows (every level of a single
      // term, say), with a small fixed number of columns.
      if (S.size() == (px > 0 ? 1u : 0u) && pt <= 4) {
        if (pt == 1) selected_inverse_leaf<1>(Ldiag_[t], LXy_[t], WXX, c, W.diag_[t], W.X_[t]);
        if (pt == 2) selected_inverse_leaf<2>(Ldiag_[t], LXy_[t], WXX, c, W.diag_[t], W.X_[t]);
        if (pt == 3) selected_inverse_leaf<3>(Ldiag_[t], LXy_[t], WXX, c, W.diag_[t], W.X_[t]);
        if (pt == 4) selected_inverse_leaf<4>(Ldiag_[t], LXy_[t], WXX, c, W.diag_[t], W.X_[t]);
        continue;
      }
      const Index g0 = R.colptr[c], st = R.colptr[c + 1] - g0;
      const Index s = sp + st + px;
      LS.resize(s, pt);
      for (std::size_t a = 0, ra = 0; a < S.size(); ra += S[a].size, ++a)
        LS.middleRows(ra, S[a].size) = S[a].Lblk.topRows(S[a].size);  // X rows: [X y] block without y
      WL.resize(s, pt);
      WL.topRows(sp).setZero();
      WL.middleRows(sp, st) = W.WLt_[t].middleCols(g0, st).transpose();
      if (px > 0) WL.bottomRows(px).noalias() = W.WLx_[t].middleCols(c * pt, pt) + WXX * LS.bottomRows(px);
      if (sp > 0) {
        // Rows of W_SS for the prefix entries of S, against all of S.
        WSp.resize(sp, s);
        for (std::size_t a = 0, ra = 0; a < S.size() && S[a].term >= 0 && S[a].term < nprefix_;
             ra += S[a].size, ++a) {
          for (std::size_t b = 0, rb = 0; b < S.size(); rb += S[b].size, ++b) {
            if (S[b].term < 0) {
              W.xblock(S[a].term, S[a].level, wab);
              WSp.block(ra, rb, S[a].size, S[b].size) = wab.transpose();
            } else {
              W.block(S[a].term, S[a].level, S[b].term, S[b].level, wab);
              WSp.block(ra, rb, S[a].size, S[b].size) = wab;
            }
          }
        }
        WL.topRows(sp).noalias() = WSp * LS;
        WL.bottomRows(s - sp).noalias() += WSp.rightCols(s - sp).transpose() * LS.topRows(sp);
      }
      Ljj_inv.setIdentity(pt, pt);
      Ldiag_[t].block(c).triangularView<Eigen::Lower>().solveInPlace(Ljj_inv);
      WSj.noalias() = -WL * Ljj_inv;
      LtW.noalias() = LS.transpose() * WSj;
      W.diag_[t].block(c).noalias() = (Ljj_inv.transpose() - LtW.transpose()) * Ljj_inv;
      for (std::size_t a = 0, ra = 0; a < S.size(); ra += S[a].size, ++a) {
        if (S[a].term < 0) {
          W.X_[t].middleCols(c * pt, pt) = WSj.middleRows(ra, S[a].size);
        } else {
          W.off_[S[a].term][t].middleCols(S[a].loff_index * pt, pt) = WSj.middleRows(ra, S[a].size);
        }
      }
    }
  }
}

}  // namespace lmm
