#include "lmm/terms.hpp"

#include <limits>

namespace lmm {

std::vector<std::pair<Index, Index>> theta_positions(const TermShape& shape) {
  std::vector<std::pair<Index, Index>> pos;
  pos.reserve(static_cast<std::size_t>(shape.ntheta()));
  for (Index col = 0; col < shape.p; ++col) {
    if (shape.covariance == Covariance::Diagonal) {
      pos.emplace_back(col, col);
      continue;
    }
    for (Index row = col; row < shape.p; ++row) pos.emplace_back(row, col);
  }
  return pos;
}

void theta_to_lambda(const TermShape& shape, const double* theta, Matrix& lambda) {
  lambda.setZero(shape.p, shape.p);
  Index k = 0;
  for (const auto& [row, col] : theta_positions(shape)) lambda(row, col) = theta[k++];
}

Vector theta_lower(const TermShape& shape) {
  Vector lower(shape.ntheta());
  Index k = 0;
  for (const auto& [row, col] : theta_positions(shape))
    lower[k++] = row == col ? 0.0 : -std::numeric_limits<double>::infinity();
  return lower;
}

Vector theta_start(const TermShape& shape) {
  Vector start(shape.ntheta());
  Index k = 0;
  for (const auto& [row, col] : theta_positions(shape)) start[k++] = row == col ? 1.0 : 0.0;
  return start;
}

}  // namespace lmm
