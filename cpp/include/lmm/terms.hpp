// Random-effects terms: level codes, the columns z of the term's model matrix,
// and the map θ → λ for unstructured and diagonal covariance.
#pragma once

#include <vector>

#include "types.hpp"

namespace lmm {

/// Covariance structure of one random-effects term.
enum class Covariance { Unstructured, Diagonal };

/// Shape of one term: number of levels ℓ, number of columns p, structure.
struct TermShape {
  Index nlevels = 0;
  Index p = 0;
  Covariance covariance = Covariance::Unstructured;

  /// Number of θ entries of this term: p(p+1)/2 unstructured, p diagonal.
  Index ntheta() const {
    return covariance == Covariance::Diagonal ? p : p * (p + 1) / 2;
  }
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

/// Fill the p × p lower-triangular λ of a term from its θ segment
/// (column-major lower triangle for unstructured, the diagonal for diagonal).
void theta_to_lambda(const TermShape& shape, const double* theta, Matrix& lambda);

/// Lower bounds of a term's θ: 0 for diagonal entries of λ, -inf otherwise.
Vector theta_lower(const TermShape& shape);

/// Starting θ of a term (λ = I): 1 on the diagonal, 0 elsewhere.
Vector theta_start(const TermShape& shape);

/// (row, col) of λ for each θ entry of the term, in θ order.
std::vector<std::pair<Index, Index>> theta_positions(const TermShape& shape);

}  // namespace lmm
