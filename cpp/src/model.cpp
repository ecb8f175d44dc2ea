#include "lmm/model.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace lmm {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

std::vector<Index> decreasing_levels_order(const std::vector<TermData>& terms) {
  std::vector<Index> order(terms.size());
  std::iota(order.begin(), order.end(), Index{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](Index a, Index b) { return terms[a].nlevels > terms[b].nlevels; });
  return order;
}

std::vector<TermData> reordered(const std::vector<TermData>& terms, const std::vector<Index>& order) {
  std::vector<TermData> out;
  out.reserve(terms.size());
  for (Index k : order) out.push_back(terms[static_cast<std::size_t>(k)]);
  return out;
}

}  // namespace

Model::Model(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y,
             ModelOptions options)
    : order_(decreasing_levels_order(terms)),
      A_(form_crossprod(reordered(terms, order_), X, y)),
      L_(A_, options.max_dense_bytes) {
  for (const auto& s : A_.shapes) lambda_.push_back(Matrix::Identity(s.p, s.p));
  theta_ = theta_start();
}

Index Model::ntheta() const {
  Index n = 0;
  for (const auto& s : A_.shapes) n += s.ntheta();
  return n;
}

Vector Model::theta_lower() const {
  Vector lower(ntheta());
  Index k = 0;
  for (const auto& s : A_.shapes) {
    lower.segment(k, s.ntheta()) = lmm::theta_lower(s);
    k += s.ntheta();
  }
  return lower;
}

Vector Model::theta_start() const {
  Vector start(ntheta());
  Index k = 0;
  for (const auto& s : A_.shapes) {
    start.segment(k, s.ntheta()) = lmm::theta_start(s);
    k += s.ntheta();
  }
  return start;
}

void Model::set_theta(Eigen::Ref<const Vector> theta) {
  if (theta.size() != ntheta())
    throw std::invalid_argument("theta has length " + std::to_string(theta.size()) + ", the model needs " +
                                std::to_string(ntheta()));
  if (!theta.allFinite()) throw std::invalid_argument("theta has non-finite entries");
  factored_ = false;
  theta_ = theta;
  Index k = 0;
  for (std::size_t t = 0; t < A_.shapes.size(); ++t) {
    theta_to_lambda(A_.shapes[t], theta_.data() + k, lambda_[t]);
    k += A_.shapes[t].ntheta();
  }
  L_.factor(A_, lambda_);
  factored_ = true;
}

void Model::require_factored() const {
  if (!factored_) throw std::logic_error("set_theta() must succeed before results are read");
}

double Model::objective(bool reml) const {
  require_factored();
  const double n = static_cast<double>(A_.n);
  const double dof = reml ? n - static_cast<double>(A_.p) : n;
  const double logdet = reml ? L_.ldL2() + L_.ldRX2() : L_.ldL2();
  return logdet + dof * (1.0 + kLog2Pi + std::log(L_.pwrss() / dof));
}

void Model::solve(Vector& u, Vector& beta) const {
  require_factored();
  L_.solve_u_beta(u, beta);
}

Vector Model::b(const Vector& u) const {
  Vector out(u.size());
  Index off = 0;
  for (std::size_t t = 0; t < A_.shapes.size(); ++t) {
    const Index p = A_.shapes[t].p;
    for (Index c = 0; c < A_.shapes[t].nlevels; ++c, off += p)
      out.segment(off, p).noalias() = lambda_[t].triangularView<Eigen::Lower>() * u.segment(off, p);
  }
  return out;
}

double Model::sigma(bool reml) const {
  require_factored();
  const double dof = static_cast<double>(reml ? A_.n - A_.p : A_.n);
  return std::sqrt(L_.pwrss() / dof);
}

Matrix Model::vcov_beta(bool reml) const {
  require_factored();
  const Index p = A_.p;
  Matrix Linv = Matrix::Identity(p, p);
  L_.LX().triangularView<Eigen::Lower>().solveInPlace(Linv);
  const double s = sigma(reml);
  return s * s * (Linv.transpose() * Linv);
}

}  // namespace lmm
