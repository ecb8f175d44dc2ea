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

/// Covariance structure of one random-effects term.
enum class Covariance {
  Unstructured,  ///< λ lower triangular, θ its lower triangle column by column (lme4's `(x | g)`)
  Diagonal,      ///< λ diagonal, θ its diagonal (lme4's `(x || g)`)
};

/// The map θ_k → λ_k of one covariance structure for a term with p columns.
/// Implementations are stateless; one instance per structure (see
/// parameterization()).
class Parameterization {
 public:
  virtual ~Parameterization() = default;

  /// Short name, as lme4 2.x spells the structure ("us", "diag").
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
};

/// The parameterization of a structure (a reference to a static instance).
const Parameterization& parameterization(Covariance covariance);

}  // namespace lmm
