// The blocked Cholesky factor L of
//   Ω_θ = [[Λ'A_ZZΛ + I, Λ'A_Z,Xy], [A_Xy,ZΛ, A_Xy,Xy]] = L L'.
//
// Structure. Terms are split into a sparse prefix and a dense tail. The first
// term is always in the prefix. A later term joins the prefix while every
// block column of L[j,k] (k < j) holds at most one block, i.e. while its
// diagonal block receives no fill-in and stays block diagonal (nested and
// same-factor terms). From the first term that would fill in (crossed factors)
// on, the remaining terms and the [X y] columns form one dense trailing block T.
//
//   prefix j:  L[j,j] block diagonal;  L[i,j] sparse blocks (i > j, Z rows);
//              L[Xy,j] dense (p+1) × q_j
//   tail:      T dense (q_tail + p + 1)², factored in place (lower triangle)
//
// The last diagonal entry of L is r, with r² the penalized residual sum of squares.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "blocks.hpp"
#include "crossprod.hpp"
#include "dense.hpp"

namespace lmm {

class BlockedCholesky;

/// The dense trailing block would exceed ModelOptions::max_dense_bytes (or
/// LAPACK's int sizes): crossed factors with too many levels for the exact
/// method (matrix_free.hpp fits two crossed scalar terms without it).
class DenseLimitError : public std::length_error {
 public:
  using std::length_error::length_error;
};

/// Entries of W = Ω⁻¹ on the pattern of L (Takahashi's selected inverse), where
/// Ω is the [Z X] part of Ω_θ (REML) or its Z part alone (ML). Same layout as L.
class SelectedInverse {
 public:
  /// W at the block (term a, level ra; term b, level rb) into out (p_a × p_b).
  /// Defined for pairs inside the pattern of L (or of L') and for a == b, ra == rb.
  void block(Index a, Index ra, Index b, Index rb, Matrix& out) const;
  /// The same for two scalar terms (p_a = p_b = 1), without a copy.
  double coeff(Index a, Index ra, Index b, Index rb) const;
  /// W at (X rows, term k level r) into out (p × p_k); only when built with X.
  void xblock(Index k, Index r, Matrix& out) const;
  /// Whether term k is in the sparse prefix (then diag() and x() hold its blocks).
  bool in_prefix(Index k) const;
  /// Diagonal blocks of W for prefix term k (ℓ_k blocks of p_k × p_k).
  const BlockDiag& diag(Index k) const { return diag_[k]; }
  /// W at (X rows, prefix term k), p × q_k (0 rows when built without X).
  const Matrix& x(Index k) const { return X_[k]; }

 private:
  friend class BlockedCholesky;
  const BlockedCholesky* L_ = nullptr;
  Index px_ = 0;
  std::vector<BlockDiag> diag_;
  std::vector<std::vector<Matrix>> off_;  // values on the pattern of L's Loff_ (same layout as its data)
  std::vector<Matrix> X_;  // prefix: px × q_j
  DenseBlock T_;           // the factor's dense storage; its leading (q_tail + px) block, lower triangle
  std::vector<Matrix> WLt_;  // per prefix term: p_k × positions of its TailReach, rows of W_tail,tail L_tail,k
  std::vector<Matrix> WLx_;  // per prefix term: px × q_k, W_X,tail L_tail,k
};

/// The rows of the dense tail that the block columns of one prefix term reach
/// (L[tail terms, k]), in positions ordered by column, with the index
/// transposed: the updates between the prefix and the tail sweep T column by
/// column, so that each column of T stays in cache while every prefix column
/// touching it adds to it. Positions are 32-bit (checked at construction).
///
/// The row of T and the p_k values of L at each position are read through
/// BlockedCholesky::reach_rows()/reach_values(): with a single scalar tail
/// term they are that term's block of L itself (same order and layout, no
/// copy), otherwise the packed copies here, refreshed by each factorization.
struct TailReach {
  std::vector<Index> colptr;         ///< ℓ_k + 1: positions of column c are colptr[c] .. colptr[c+1]-1
  std::vector<Index> byrow_ptr;      ///< q_tail + 1: positions with row r are byrow[byrow_ptr[r] .. byrow_ptr[r+1]-1]
  std::vector<std::int32_t> byrow;   ///< positions grouped by row
  std::vector<std::int32_t> byrow_column;  ///< the column c of each position in byrow (same order)
  bool shared = false;               ///< rows and values are L's own block (see above)
  std::vector<std::int32_t> rows;    ///< packed: per position, its row of T (ascending within a column)
  Matrix V;                          ///< packed: p_k × positions, the rows of L there
  bool panels = false;               ///< T updated by dense panels of the levels' columns (see factor())

  Index size() const { return colptr.back(); }  ///< number of positions
};

class BlockedCholesky {
 public:
  /// Symbolic analysis: decide the prefix/tail split and the sparsity patterns.
  /// Throws DenseLimitError when the dense tail would exceed max_dense_bytes.
  BlockedCholesky(const Crossprod& A, double max_dense_bytes);

  /// Numeric factorization for the per-term λ (model order).
  /// Throws std::runtime_error when a pivot is not positive (e.g. rank-deficient X).
  void factor(const Crossprod& A, const std::vector<Matrix>& lambda);

  Index nprefix() const { return nprefix_; }          ///< number of prefix terms
  Index tail_size() const { return q_tail_ + p_ + 1; }  ///< order of the dense tail
  Index q_tail() const { return q_tail_; }             ///< random effects in the dense tail
  /// Bytes of the factor: the dense tail, the prefix's blocks and their patterns.
  double factor_bytes() const;

  /// r², log|L_Z|² and log|L_X|² of the last factorization (kept when the
  /// selected inverse reuses the factor's storage).
  double pwrss() const { return pwrss_; }
  double ldL2() const { return ldL2_; }
  double ldRX2() const { return ldRX2_; }

  /// Whether the factor itself is held (false after selected_inverse() until
  /// reclaim() and the next factor()).
  bool factored() const { return factored_; }

  /// Solve L'[u; β] = c where c is the y row of L (without r): gives the
  /// spherical random effects u (q, terms in model order) and β (p).
  /// Requires factored().
  void solve_u_beta(Vector& u, Vector& beta) const;

  /// The lower-triangular p × p block L_X of L (fixed-effects part). Requires factored().
  Matrix LX() const;

  /// Selected inverse of the [Z X] part (with_x, for REML) or the Z part (ML)
  /// of Ω_θ, from the current factor. Cost comparable to one factorization.
  /// The dense tail of the inverse is formed in the factor's own storage (no
  /// second matrix of that size): W takes it over and the factor is consumed
  /// (factored() turns false). Give the storage back with reclaim(W) when W
  /// is no longer needed; factor() then refills it.
  void selected_inverse(bool with_x, SelectedInverse& W);

  /// Return the dense storage W took over in selected_inverse().
  void reclaim(SelectedInverse& W);

  /// Whether no prefix term's columns reach a later prefix term (no nesting
  /// among the prefix terms): then diagonal_block_sums() applies.
  bool prefix_independent() const { return prefix_independent_; }

  /// Per term k, Σ over its levels of the p_k × p_k diagonal blocks of Ω⁻¹
  /// (Ω the [Z X] part with_x, for REML, or the Z part), from T⁻¹ alone: no
  /// selected inverse. Requires prefix_independent(). The dense tail's inverse
  /// is formed in the factor's storage, which consumes the factor.
  void diagonal_block_sums(bool with_x, std::vector<Matrix>& sums);

 private:
  friend class SelectedInverse;
  void require_factored() const;
  // Threads for the sweeps over the tail's columns and the prefix's levels
  // (dense_threads() when the tail is large enough, else 1).
  int sweep_threads() const;
  // Prefix term j's levels [c0, c1) (all of them unless j = 0): its diagonal
  // blocks, the blocks below them, its [X y] rows (less the fill from earlier
  // terms) and their rows in the tail packed in reach_[j] (tmp: workspace).
  void factor_columns(const Crossprod& A, const std::vector<Matrix>& lambda, Index j, Index c0, Index c1,
                      Matrix& tmp);
  // A's entries of a one-column tail term i (its diagonal, its blocks with
  // the tail terms before it, its [X y] rows) added to T by plain loops, when
  // those terms have one column too (else false: nothing done). A block
  // expression per entry cost InstEval 0.12 ms of each evaluation on one thread.
  bool scalar_tail_entries(const Crossprod& A, const std::vector<Matrix>& lambda, Index i);
  // Levels c0 .. c0 + w − 1 of prefix term k (p_k columns each, level j's at
  // columns j p_k ..) as a dense panel P (q_tail + xrows rows: the tail's,
  // then the first xrows of [X y]; P's columns beyond w p_k zero); returns
  // w = min(P.cols() / p_k, levels left).
  Index fill_panel(Index k, Index c0, Index xrows, Matrix& P) const;
  // Columns of a panel of prefix term k: whole levels, about kPanelColumns.
  Index panel_columns(Index k) const;
  Index K_ = 0;        // number of terms
  Index p_ = 0;        // fixed-effects columns
  Index nprefix_ = 0;  // terms 0..nprefix_-1 in the prefix
  Index q_tail_ = 0;
  std::vector<TermShape> shapes_;
  std::vector<Index> offset_;                  // offset of term j in u (all terms)
  std::vector<Index> tail_offset_;             // offset of tail term j in T (−1 for prefix)
  std::vector<BlockDiag> Ldiag_;               // prefix diagonal blocks
  std::vector<std::vector<SparseBlocks>> Loff_;  // Loff_[i][j], j < nprefix_, i > j
  std::vector<Matrix> LXy_;                    // prefix: (p+1) × q_j
  std::vector<TailReach> reach_;               // per prefix term: its rows in the dense tail
  // Row of T and values (p_k × positions, column-major) at the positions of reach_[k].
  const std::int32_t* reach_rows(Index k) const;
  const double* reach_values(Index k) const;
  DenseBlock T_;                               // dense tail (lower triangle)
  bool factored_ = false;
  bool prefix_independent_ = true;
  double pwrss_ = 0, ldL2_ = 0, ldRX2_ = 0;
};

}  // namespace lmm
