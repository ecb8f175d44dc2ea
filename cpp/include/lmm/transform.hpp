// Working coordinates of a random-effects term: its columns centred against the
// term's intercept and scaled, z̃ = z T, and the exact maps between the caller's
// θ (the relative factor λ of the columns z) and the working θ̃ (λ̃ of z̃) that
// the model factors with and the optimizer moves.
//
// The model is the same in both: z b = z̃ b̃ with b̃ = T⁻¹ b, so the criterion at
// θ is the criterion at any θ̃ with λ̃λ̃' = T⁻¹ λλ' T⁻ᵀ. A column with a large
// offset (Days + 10⁵) makes λ of the caller's columns nearly singular at any
// sensible covariance and the crossproducts lose digits to cancellation; z̃ and
// θ̃ do not. Only where the structure survives the change of basis: any T for
// `us`, diagonal scalings for the others (a common one for homogeneous ones).
#pragma once

#include "terms.hpp"
#include "types.hpp"

namespace lmm {

/// The change of basis of one term's columns:
///   z̃_j = (z_j − center_j z_0) · scale_j,   T = (I − e_0 center') diag(scale).
struct TermTransform {
  /// p entries with center_0 = 0 (column 0 is the intercept, all ones), or empty:
  /// no centring.
  Vector center;
  /// p powers of two (scaling by them is exact in floating point), or empty: 1.
  Vector scale;
  /// Per column, |mean| / SD where the term has an intercept but its structure
  /// cannot be centred exactly (all but `us`), 0 elsewhere: how ill-conditioned
  /// the columns are where no exact reparameterization exists.
  Vector offset;

  bool centred() const { return center.size() > 0; }
  /// Whether z̃ = z (no centring, every scale 1).
  bool identity() const;
  /// T (p × p).
  Matrix matrix(Index p) const;
  /// The rows of z̃ for the rows z (m × p) of the term's columns, into out (m × p).
  void apply(const Eigen::Ref<const Matrix>& z, Matrix& out) const;
  /// Row r of z̃ for the term's columns z (n × p), into out (p entries).
  void apply_row(const Eigen::Ref<const Matrix>& z, Index r, double* out) const;
};

/// What the working transform of a term needs from its columns, mergeable
/// over row chunks: per column the (weighted) mean, the sum of squares about
/// it and the sum of squares, and whether column 0 is all ones. The merge is
/// Chan, Golub and LeVeque's pairwise update of the mean and the centred sum
/// of squares (no cancellation of Σz² − n·mean², which loses every digit of a
/// column with a large offset).
struct TermColumnStats {
  Index n = 0;             ///< rows
  double total = 0.0;      ///< Σ w (n without weights)
  Vector mean;             ///< p: Σ w z_j / Σ w
  Vector centred2;         ///< p: Σ w (z_j − mean_j)²
  Vector squares;          ///< p: Σ w z_j²
  bool first_ones = true;  ///< every row's z_0 is exactly 1 (true for no rows)

  /// The statistics of the rows z (m × p) with prior weights (m, or empty: 1).
  /// Throws std::invalid_argument for weights of the wrong length.
  static TermColumnStats of(const Eigen::Ref<const Matrix>& z, const Vector& weights);
  /// Merge another chunk's statistics of the same columns into these (either
  /// may have no rows). Throws std::invalid_argument for a different number of columns.
  void merge(const TermColumnStats& other);
  /// Append other's columns, statistics of the same rows (with the same weights): those of
  /// [z z_other] (a term whose columns are pieces, as the columns of a `||` term). Throws
  /// std::invalid_argument when other has other rows.
  void append_columns(const TermColumnStats& other);
};

/// The working transform of a term from the statistics of all its rows: the
/// same as term_transform of the rows themselves (equal to rounding: the
/// means and centred sums of squares are summed in another order; the scales,
/// powers of two, are equal unless a root mean square lies within rounding of
/// a midpoint between two of them).
TermTransform term_transform(const TermColumnStats& stats, Covariance covariance);

/// The working transform of a term, from its columns (weights: prior weights,
/// n, or empty): term_transform of TermColumnStats::of(term.z, weights). For a `us` term whose first column is all ones, every other
/// column that is not constant is centred at its (weighted) mean and scaled by
/// the power of two nearest its inverse SD; any other column whose root mean
/// square is outside [1e-2, 1e2] is scaled by the power of two nearest its
/// inverse (one scale for all columns of a homogeneous structure, from their
/// pooled root mean square).
TermTransform term_transform(const TermData& term, const Vector& weights);

/// The working θ̃ (ntheta) an optimizer starts from: lme4's start (λ = I for
/// the caller's columns) unless T⁻¹ has an entry beyond [1e-2, 1e2] in
/// magnitude (a column of extreme scale, or whose offset is far beyond its
/// SD), where lme4's start is far from any sensible covariance of the working
/// columns and λ̃ = I (their unit variances) is taken instead.
void working_start(const TermShape& shape, const TermTransform& t, double* working);

/// θ̃ (ntheta) of the term for the caller's θ, and, for a centred term, the
/// orthogonal p × p `rotation` Q with T⁻¹ λ(θ) = λ(θ̃) Q (empty otherwise).
/// A negative diagonal entry of λ (below its bound) is allowed: the model
/// depends on λλ' only.
void theta_to_working(const TermShape& shape, const TermTransform& t, const double* theta, double* working,
                      Matrix& rotation);

/// θ (ntheta, lme4's θ of the caller's columns: λ = chol(T λ̃λ̃' Tᵀ) for a
/// centred term) from θ̃, and the `rotation` as theta_to_working.
void theta_from_working(const TermShape& shape, const TermTransform& t, const double* working, double* theta,
                        Matrix& rotation);

/// ∂f/∂θ (ntheta) from G = ∂f/∂λ̃ (p × p, at θ̃; for a centred term every entry,
/// otherwise only the lower triangle is read) and the rotation of the two
/// functions above: ∂f/∂λ = T⁻ᵀ G Q, since f depends on λ̃ through λ̃λ̃' alone.
void gradient_from_working(const TermShape& shape, const TermTransform& t, const double* working, const Matrix& G,
                           const Matrix& rotation, double* grad);

}  // namespace lmm
