// Parameterizations of a random-effects term's relative covariance factor λ:
// the one owner of each structure's parameter count, bounds, start, θ → λ and
// the chain rule from ∂/∂λ to ∂/∂θ. A new covariance structure (compound
// symmetry, AR(1), Toeplitz) is one more small Parameterization type here;
// the model, the gradient and the optimizer use only this interface.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "types.hpp"

namespace lmm {

/// Covariance structure of one random-effects term, as lme4 2.x names them.
/// For the structured ones (all but Unstructured and Diagonal) θ is lme4 2.x's
/// `par`: standard deviations relative to σ (one per column, or one shared by
/// all columns for the homogeneous variants), then the correlation parameters;
/// λ = D L_R, D the diagonal of SDs and L_R the Cholesky factor of the
/// correlation matrix R.
enum class Covariance {
  Unstructured,         ///< λ lower triangular, θ its lower triangle column by column (`us(x | g)`, `(x | g)`)
  Diagonal,             ///< λ diagonal, θ its diagonal (`diag(x | g)`, lme4's `(x || g)` on one factor)
  DiagonalHomogeneous,  ///< λ = s I, θ = s (`diag(x | g, hom = TRUE)`)
  CompoundSymmetry,     ///< SDs, then ρ: R = (1 − ρ) I + ρ 11', −1/(p − 1) ≤ ρ ≤ 1 (`cs(x | g)`)
  CompoundSymmetryHomogeneous,  ///< one SD, then ρ (`cs(x | g, hom = TRUE)`)
  AR1,                  ///< one SD, then ρ: R_ij = ρ^|i−j|, −1 ≤ ρ ≤ 1 (`ar1(x | g)`)
  AR1Heterogeneous,     ///< SDs, then ρ (`ar1(x | g, hom = FALSE)`)
  Toeplitz,             ///< SDs, then the p − 1 partial autocorrelations of R_ij = r_|i−j| (`toep(x | g)`)
  ToeplitzHomogeneous,  ///< one SD, then the p − 1 partial autocorrelations (`toep(x | g, hom = TRUE)`)
};

/// The map θ_k → λ_k of one covariance structure for a term with p columns.
/// Implementations are stateless; one instance per structure (see
/// parameterization()).
class Parameterization {
 public:
  virtual ~Parameterization() = default;

  /// Short name: lme4 2.x's spelling of the structure ("us", "diag", "cs",
  /// "ar1"; "toep" as glmmTMB), with "_hom" or "_het" for the variant that is
  /// not the structure's default ("diag_hom", "cs_hom", "ar1_het", "toep_hom").
  virtual std::string name() const = 0;
  /// Number of parameters for p columns.
  virtual Index ntheta(Index p) const = 0;
  /// Lower and upper bounds (ntheta each; ±inf where unbounded).
  virtual void bounds(Index p, double* lower, double* upper) const = 0;
  /// lme4's start (λ = I), ntheta entries.
  virtual void start(Index p, double* theta) const = 0;
  /// λ (p × p, lower triangular) from θ (ntheta).
  virtual void lambda(Index p, const double* theta, Matrix& lambda) const = 0;
  /// Chain rule: from G (p × p, G(a, b) = ∂f/∂λ(a, b) for a ≥ b; the strict upper
  /// triangle is not read) to ∂f/∂θ (ntheta) at θ.
  virtual void chain(Index p, const double* theta, const Matrix& G, double* grad) const = 0;
  /// For structures whose θ entries are entries of λ: the (row, col) of λ
  /// each θ entry is, in θ order (lme4 names θ by them). Empty otherwise.
  virtual std::vector<std::pair<Index, Index>> positions(Index p) const = 0;
  /// Whether every lower-triangular λ with a non-negative diagonal is some θ's
  /// (only `us`): then any change of basis of the term's columns keeps the
  /// structure, centring included (transform.hpp).
  virtual bool unstructured() const { return false; }
  /// Whether one SD is shared by all columns (diag_hom, cs_hom, ar1, toep_hom):
  /// then only a change of units common to all columns keeps the structure.
  virtual bool homogeneous() const = 0;
  /// θ of diag(d) λ(θ), in place (ntheta entries): the same structure for the
  /// columns divided by d (p positive factors, all equal for a homogeneous
  /// structure). Linear and diagonal in θ: SDs (entries of λ) scale with their
  /// row, correlation parameters do not change.
  virtual void scale(Index p, const double* d, double* theta) const = 0;
};

/// The parameterization of a structure (a reference to a static instance).
const Parameterization& parameterization(Covariance covariance);

/// Names of every structure (Parameterization::name()), in Covariance's order.
std::vector<std::string> covariance_names();

/// The structure called `name` (Parameterization::name()); throws
/// std::invalid_argument naming the known structures otherwise.
Covariance covariance_from_name(const std::string& name);

/// Correlation parameters nearer than this (relative to the width of their
/// interval) to a bound at which R is singular are evaluated at that distance
/// inside: λ and its derivative are then finite, and the criterion differs
/// from its limit at the bound by far less than its rounding error.
constexpr double correlation_bound_margin = 1e-10;

}  // namespace lmm
