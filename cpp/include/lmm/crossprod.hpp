// The crossproduct blocks A = [Z X y]'[Z X y], formed in one pass over the rows.
// Nothing after this depends on the number of observations n.
#pragma once

#include <vector>

#include "blocks.hpp"
#include "terms.hpp"
#include "transform.hpp"

namespace lmm {

/// An exact reparametrization applied to the rows as A is formed:
///   X_c = X − 1 center',   y_c = y − X_c gamma.
/// With the column means as `center` (when X has an intercept) and the least-
/// squares coefficients of y on X_c as `gamma`, the crossproducts of X_c and
/// y_c lose no digits to large offsets, and neither copy is ever formed in
/// full. The model is the same: β̂ for X is S(β̂_c + γ) with X_c = X S. Empty
/// vectors mean no shift.
struct Shift {
  Vector center;  ///< p, or empty
  Vector gamma;   ///< p, or empty
};

/// Blocks of A for terms in model order (the order of `shapes`).
struct Crossprod {
  Index n = 0;                                 ///< number of observations
  Index p = 0;                                 ///< number of fixed-effects columns
  std::vector<TermShape> shapes;               ///< one per term
  std::vector<BlockDiag> ZZ;                   ///< A_kk: ℓ_k blocks of p_k × p_k
  std::vector<std::vector<SparseBlocks>> ZZ_off;  ///< ZZ_off[i][j], j < i: rows levels of i, columns levels of j
  std::vector<Matrix> XyZ;                     ///< A_[Xy],k: (p+1) × (ℓ_k·p_k)
  Matrix XyXy;                                 ///< A_[Xy],[Xy]: (p+1) × (p+1), full symmetric
  Shift shift;                                 ///< applied to X and y (also by update_response)
  /// Per term, the change of basis applied to its columns z as A is formed
  /// (transform.hpp; also by update_response), or empty: A is that of z itself.
  std::vector<TermTransform> transforms;
  Vector weights;                              ///< prior weights (n), or empty for all 1 (or summed: see add)
  double sum_log_weights = 0;                  ///< Σ log w_i (0 without weights)
  bool weighted = false;                       ///< formed with prior weights
  /// Whether the rows' own values are known (weights of every row): false for
  /// a sum of chunks' crossproducts (see add), which update_response and
  /// response_crossprods refuse.
  bool has_rows() const { return !weighted || weights.size() == n; }
};

/// Add the crossproducts `part` of other rows to `total`: A is a sum over rows,
/// so the blocks of row chunks (each formed by form_crossprod with the same
/// global level codes, shift and transforms, and the chunk's weights) add up to
/// the blocks of all rows. ZZ, XyZ, XyXy, n and Σ log w are summed; the sparse
/// blocks ZZ_off of crossed terms take the union of the chunks' patterns. A
/// `total` without terms (default-constructed) becomes a copy of `part`. The
/// sum keeps no per-row weights (`weights` is emptied). Throws
/// std::invalid_argument when the two do not describe the same model (terms'
/// shapes, p, shift or transforms differ, or one is weighted and the other not).
void add(Crossprod& total, const Crossprod& part);

/// Rows from which form_crossprod forms its blocks on dense_threads() threads.
constexpr Index kThreadedRows = Index{1} << 15;

/// Form A in one pass over the rows: its blocks (the [X y] pass, each pair of
/// terms, each term's diagonal) are independent, and with two terms or more
/// and kThreadedRows rows or more formed in parallel.
///   terms: per-term codes (n) and z (n × p_k), already in model order
///   X:     n × p fixed-effects model matrix
///   y:     n response
///   shift: applied to X and y row by row (see Shift)
///   weights: prior weights (n, positive), or empty: every crossproduct is then
///            weighted, [Z X y]' W [Z X y]
///   transforms: per term (model order) the change of basis of its columns,
///            applied row by row: A is that of z̃ = z T (never formed in full);
///            empty: none
/// Throws std::invalid_argument on mismatched lengths, out-of-range codes or
/// weights that are not positive and finite.
Crossprod form_crossprod(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                         Eigen::Ref<const Vector> y, const Shift& shift = {}, const Vector& weights = Vector(),
                         const std::vector<TermTransform>& transforms = {});

/// The response part of A for b responses at once (the columns of Y), each
/// shifted by its own least-squares fit on X_c: y_c = y − X_c γ. Used to fit
/// many responses on one design (many.hpp), where nothing else in A changes.
struct ResponseCrossprods {
  std::vector<Matrix> Zy;  ///< per term (model order), b × q_k: row j is Z̃_k' W y_c of response j
  Matrix Xy;               ///< p × b: X_c' W y_c
  Vector yy;               ///< b: y_c' W y_c
  Matrix gamma;            ///< p × b: γ of each response
  Vector norm2;            ///< b: y'y (unweighted)
  Vector residual2;        ///< b: y_c'y_c (unweighted), the residual of y on X
};

/// Form the response part of A for the columns of Y (n × b) in three passes
/// over the rows, by matrix products over the b responses: X_c'Y, then its
/// refinement (γ by the corrected semi-normal equations with R, the upper-
/// triangular factor of X_c = QR, unweighted, as the Shift's γ), then the
/// crossproducts of y_c. `terms` and `X` are the data A was formed from (model
/// order). Columns of Y with non-finite values give non-finite results in their
/// own column only.
ResponseCrossprods response_crossprods(const Crossprod& A, const std::vector<TermData>& terms,
                                       Eigen::Ref<const Matrix> X, Eigen::Ref<const Matrix> Y,
                                       Eigen::Ref<const Matrix> R);

/// Make response j of R the response of A (its y row and its shift's γ).
void set_response(Crossprod& A, const ResponseCrossprods& R, Index j);

/// Replace the response in A: recompute the y row of every A_[Xy],k and of
/// A_[Xy],[Xy] in one pass, with A's shift and transforms. `terms` and `X` must
/// be the data A was formed from (model order); only y changes. Used by refits
/// such as the bootstrap.
void update_response(Crossprod& A, const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                     Eigen::Ref<const Vector> y);

}  // namespace lmm
