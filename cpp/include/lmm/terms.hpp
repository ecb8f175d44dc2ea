// Random-effects terms: level codes, the columns z of the term's model matrix,
// and each term's covariance structure (its θ → λ map is in parameterization.hpp).
#pragma once

#include <vector>

#include "parameterization.hpp"
#include "types.hpp"

namespace lmm {

/// Shape of one term: number of levels ℓ, number of columns p, structure.
struct TermShape {
  Index nlevels = 0;
  Index p = 0;
  Covariance covariance = Covariance::Unstructured;

  /// The structure's parameterization (θ count, bounds, start, θ → λ, chain rule).
  const Parameterization& parameterization() const { return lmm::parameterization(covariance); }
  /// Number of θ entries of this term.
  Index ntheta() const { return parameterization().ntheta(p); }
  /// Number of random effects of this term, ℓ·p.
  Index q() const { return nlevels * p; }
};

/// Non-owning view of one term's per-row data, valid during model construction.
///   codes: n level codes in [0, nlevels)
///   z:     n × p columns of the term's model matrix (column-major)
struct TermData {
  Eigen::Map<const IntVector> codes;
  Eigen::Map<const Matrix> z;
  Index nlevels;
  Covariance covariance;

  TermShape shape() const { return {nlevels, z.cols(), covariance}; }
};

/// λ (p × p lower triangular) of a term from its θ segment.
void theta_to_lambda(const TermShape& shape, const double* theta, Matrix& lambda);

/// Lower bounds of a term's θ (0 for diagonal entries of λ, -inf for free entries).
Vector theta_lower(const TermShape& shape);

/// Upper bounds of a term's θ (+inf where unbounded).
Vector theta_upper(const TermShape& shape);

/// Starting θ of a term (lme4's: λ = I).
Vector theta_start(const TermShape& shape);

/// (row, col) of λ for each θ entry of the term, in θ order; empty for
/// structures whose θ entries are not entries of λ.
std::vector<std::pair<Index, Index>> theta_positions(const TermShape& shape);

}  // namespace lmm
