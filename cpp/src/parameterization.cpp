#include "lmm/parameterization.hpp"

#include <limits>
#include <stdexcept>

namespace lmm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Structures whose θ entries are entries of λ at fixed positions: bounds 0 on
// the diagonal, free elsewhere; start λ = I; ∂f/∂θ reads G at the positions.
class EntryParameterization : public Parameterization {
 public:
  void bounds(Index p, double* lower, double* upper) const override {
    Index k = 0;
    for (const auto& [row, col] : positions(p)) {
      lower[k] = row == col ? 0.0 : -kInf;
      upper[k++] = kInf;
    }
  }
  void start(Index p, double* theta) const override {
    Index k = 0;
    for (const auto& [row, col] : positions(p)) theta[k++] = row == col ? 1.0 : 0.0;
  }
  void lambda(Index p, const double* theta, Matrix& lambda) const override {
    lambda.setZero(p, p);
    Index k = 0;
    for (const auto& [row, col] : positions(p)) lambda(row, col) = theta[k++];
  }
  void chain(Index p, const double*, const Matrix& G, double* grad) const override {
    Index k = 0;
    for (const auto& [row, col] : positions(p)) grad[k++] = G(row, col);
  }
};

class Unstructured final : public EntryParameterization {
 public:
  std::string name() const override { return "us"; }
  Index ntheta(Index p) const override { return p * (p + 1) / 2; }
  std::vector<std::pair<Index, Index>> positions(Index p) const override {
    std::vector<std::pair<Index, Index>> pos;
    pos.reserve(static_cast<std::size_t>(ntheta(p)));
    for (Index col = 0; col < p; ++col)
      for (Index row = col; row < p; ++row) pos.emplace_back(row, col);
    return pos;
  }
};

class Diagonal final : public EntryParameterization {
 public:
  std::string name() const override { return "diag"; }
  Index ntheta(Index p) const override { return p; }
  std::vector<std::pair<Index, Index>> positions(Index p) const override {
    std::vector<std::pair<Index, Index>> pos;
    pos.reserve(static_cast<std::size_t>(p));
    for (Index col = 0; col < p; ++col) pos.emplace_back(col, col);
    return pos;
  }
};

}  // namespace

const Parameterization& parameterization(Covariance covariance) {
  static const Unstructured unstructured;
  static const Diagonal diagonal;
  switch (covariance) {
    case Covariance::Unstructured: return unstructured;
    case Covariance::Diagonal: return diagonal;
  }
  throw std::invalid_argument("unknown covariance structure");
}

}  // namespace lmm
