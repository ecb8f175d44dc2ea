#include "lmm/terms.hpp"

namespace lmm {

std::vector<std::pair<Index, Index>> theta_positions(const TermShape& shape) {
  return shape.parameterization().positions(shape.p);
}

void theta_to_lambda(const TermShape& shape, const double* theta, Matrix& lambda) {
  shape.parameterization().lambda(shape.p, theta, lambda);
}

Vector theta_lower(const TermShape& shape) {
  Vector lower(shape.ntheta()), upper(shape.ntheta());
  shape.parameterization().bounds(shape.p, lower.data(), upper.data());
  return lower;
}

Vector theta_upper(const TermShape& shape) {
  Vector lower(shape.ntheta()), upper(shape.ntheta());
  shape.parameterization().bounds(shape.p, lower.data(), upper.data());
  return upper;
}

Vector theta_start(const TermShape& shape) {
  Vector start(shape.ntheta());
  shape.parameterization().start(shape.p, start.data());
  return start;
}

}  // namespace lmm
