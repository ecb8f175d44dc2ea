#include "lmm/parameterization.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <Eigen/Cholesky>

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
  bool homogeneous() const override { return false; }
  void scale(Index p, const double* d, double* theta) const override {
    Index k = 0;
    for (const auto& [row, col] : positions(p)) theta[k++] *= d[row];
  }
};

class Unstructured final : public EntryParameterization {
 public:
  std::string name() const override { return "us"; }
  Index ntheta(Index p) const override { return p * (p + 1) / 2; }
  bool unstructured() const override { return true; }
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

// λ = s I: one relative SD shared by every column.
class DiagonalHomogeneous final : public Parameterization {
 public:
  std::string name() const override { return "diag_hom"; }
  Index ntheta(Index p) const override { return p > 0 ? 1 : 0; }
  void bounds(Index p, double* lower, double* upper) const override {
    if (p == 0) return;
    lower[0] = 0.0;
    upper[0] = kInf;
  }
  void start(Index p, double* theta) const override {
    if (p > 0) theta[0] = 1.0;
  }
  void lambda(Index p, const double* theta, Matrix& lambda) const override {
    lambda.setZero(p, p);
    if (p > 0) lambda.diagonal().setConstant(theta[0]);
  }
  void chain(Index p, const double*, const Matrix& G, double* grad) const override {
    if (p > 0) grad[0] = G.diagonal().sum();
  }
  bool homogeneous() const override { return true; }
  void scale(Index p, const double* d, double* theta) const override {
    if (p > 0) theta[0] *= d[0];
  }
  std::vector<std::pair<Index, Index>> positions(Index) const override { return {}; }
};

// Structures λ = D L_R: θ holds the relative SDs (D's diagonal, one per
// column or one for all), then the parameters ρ of the correlation matrix R,
// whose Cholesky factor is L_R. The chain rule needs ∂L_R/∂ρ_k, from
// ∂R/∂ρ_k by differentiating R = L L': ∂L = L Φ(L⁻¹ ∂R L⁻ᵀ), Φ taking the
// lower triangle with the diagonal halved. R is singular only at bounds of ρ;
// there ρ is evaluated correlation_bound_margin inside (see the header).
class Correlated : public Parameterization {
 public:
  explicit Correlated(bool homogeneous) : homogeneous_(homogeneous) {}

  Index ntheta(Index p) const override { return nsd(p) + ncorr(p); }
  void bounds(Index p, double* lower, double* upper) const override {
    for (Index i = 0; i < nsd(p); ++i) {
      lower[i] = 0.0;
      upper[i] = kInf;
    }
    for (Index k = 0; k < ncorr(p); ++k) {
      const auto [lo, hi] = corr_bounds(p);
      lower[nsd(p) + k] = lo;
      upper[nsd(p) + k] = hi;
    }
  }
  void start(Index p, double* theta) const override {
    for (Index i = 0; i < nsd(p); ++i) theta[i] = 1.0;
    for (Index k = 0; k < ncorr(p); ++k) theta[nsd(p) + k] = 0.0;
  }
  void lambda(Index p, const double* theta, Matrix& lambda) const override {
    Matrix R;
    correlation(p, inside(p, theta).data(), R, nullptr);
    lambda = R.llt().matrixL();
    scale_rows(p, theta, lambda);
  }
  void chain(Index p, const double* theta, const Matrix& G, double* grad) const override {
    Matrix R;
    std::vector<Matrix> dR;
    correlation(p, inside(p, theta).data(), R, &dR);
    const Matrix L = R.llt().matrixL();
    const Index s = nsd(p);
    for (Index i = 0; i < s; ++i) grad[i] = 0.0;
    for (Index b = 0; b < p; ++b)
      for (Index a = b; a < p; ++a) grad[homogeneous_ ? 0 : a] += G(a, b) * L(a, b);
    if (dR.empty()) return;
    Matrix Linv = Matrix::Identity(p, p);
    L.triangularView<Eigen::Lower>().solveInPlace(Linv);
    for (std::size_t k = 0; k < dR.size(); ++k) {
      Matrix phi = Linv * dR[k] * Linv.transpose();
      phi.diagonal() *= 0.5;
      Matrix dL = L * phi.triangularView<Eigen::Lower>().toDenseMatrix();
      scale_rows(p, theta, dL);
      double g = 0.0;
      for (Index b = 0; b < p; ++b)
        for (Index a = b; a < p; ++a) g += G(a, b) * dL(a, b);
      grad[s + static_cast<Index>(k)] = g;
    }
  }
  std::vector<std::pair<Index, Index>> positions(Index) const override { return {}; }
  bool homogeneous() const override { return homogeneous_; }
  void scale(Index p, const double* d, double* theta) const override {
    for (Index i = 0; i < nsd(p); ++i) theta[i] *= d[homogeneous_ ? 0 : i];
  }

 protected:
  Index nsd(Index p) const { return homogeneous_ ? (p > 0 ? 1 : 0) : p; }
  /// Number of correlation parameters for p columns.
  virtual Index ncorr(Index p) const = 0;
  /// The interval of each correlation parameter (R is singular at its ends).
  virtual std::pair<double, double> corr_bounds(Index p) const = 0;
  /// R (p × p) at ρ, and ∂R/∂ρ_k (one matrix per parameter) unless dR is null.
  virtual void correlation(Index p, const double* rho, Matrix& R, std::vector<Matrix>* dR) const = 0;

 private:
  // ρ moved inside its interval by the margin; a ρ outside it (or NaN) is refused.
  Vector inside(Index p, const double* theta) const {
    const Index m = ncorr(p);
    Vector rho(m);
    if (m == 0) return rho;
    const auto [lo, hi] = corr_bounds(p);
    const double margin = correlation_bound_margin * (hi - lo);
    for (Index k = 0; k < m; ++k) {
      const double r = theta[nsd(p) + k];
      if (!(r >= lo && r <= hi))
        throw std::invalid_argument("correlation parameter " + std::to_string(r) + " of a " + name() +
                                    " term is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      rho[k] = std::clamp(r, lo + margin, hi - margin);
    }
    return rho;
  }
  void scale_rows(Index p, const double* theta, Matrix& M) const {
    for (Index a = 0; a < p; ++a) M.row(a) *= theta[homogeneous_ ? 0 : a];
  }

  bool homogeneous_;
};

// Compound symmetry: R = (1 − ρ) I + ρ 11', positive definite for −1/(p − 1) < ρ < 1.
class CompoundSymmetry final : public Correlated {
 public:
  using Correlated::Correlated;
  std::string name() const override { return homogeneous() ? "cs_hom" : "cs"; }

 protected:
  Index ncorr(Index p) const override { return p > 1 ? 1 : 0; }
  std::pair<double, double> corr_bounds(Index p) const override {
    return {-1.0 / static_cast<double>(p - 1), 1.0};
  }
  void correlation(Index p, const double* rho, Matrix& R, std::vector<Matrix>* dR) const override {
    const double r = ncorr(p) ? rho[0] : 0.0;
    R = Matrix::Constant(p, p, r);
    R.diagonal().setOnes();
    if (dR && ncorr(p)) {
      Matrix d = Matrix::Ones(p, p);
      d.diagonal().setZero();
      dR->push_back(std::move(d));
    }
  }

};

// First-order autoregressive: R_ij = ρ^|i − j|, positive definite for |ρ| < 1.
class AR1 final : public Correlated {
 public:
  using Correlated::Correlated;
  std::string name() const override { return homogeneous() ? "ar1" : "ar1_het"; }

 protected:
  Index ncorr(Index p) const override { return p > 1 ? 1 : 0; }
  std::pair<double, double> corr_bounds(Index) const override { return {-1.0, 1.0}; }
  void correlation(Index p, const double* rho, Matrix& R, std::vector<Matrix>* dR) const override {
    const double r = ncorr(p) ? rho[0] : 0.0;
    R.resize(p, p);
    Matrix d(p, p);
    for (Index j = 0; j < p; ++j)
      for (Index i = 0; i < p; ++i) {
        const Index lag = i > j ? i - j : j - i;
        R(i, j) = std::pow(r, static_cast<double>(lag));
        d(i, j) = lag == 0 ? 0.0 : static_cast<double>(lag) * std::pow(r, static_cast<double>(lag - 1));
      }
    if (dR && ncorr(p)) dR->push_back(std::move(d));
  }
};

// Toeplitz: R_ij = r_|i − j| with r_0 = 1, parameterized by the partial
// autocorrelations φ_1 … φ_{p−1} ∈ (−1, 1) (Durbin–Levinson): every such φ
// gives a positive definite R and every positive definite Toeplitz R one φ.
class Toeplitz final : public Correlated {
 public:
  using Correlated::Correlated;
  std::string name() const override { return homogeneous() ? "toep_hom" : "toep"; }

 protected:
  Index ncorr(Index p) const override { return p > 1 ? p - 1 : 0; }
  std::pair<double, double> corr_bounds(Index) const override { return {-1.0, 1.0}; }
  void correlation(Index p, const double* phi, Matrix& R, std::vector<Matrix>* dR) const override {
    const Index m = ncorr(p);
    // r[k] and, column c, ∂r[k]/∂φ_c; a[j] the AR(k) coefficients a_1 … a_k.
    Vector r = Vector::Zero(p), a = Vector::Zero(p), a_next(p);
    Matrix dr = Matrix::Zero(p, std::max<Index>(m, 1)), da = dr, da_next = dr;
    r[0] = 1.0;
    for (Index k = 1; k < p; ++k) {
      const double f = phi[k - 1];
      for (Index j = 1; j < k; ++j) {
        a_next[j] = a[j] - f * a[k - j];
        da_next.row(j) = da.row(j) - f * da.row(k - j);
        da_next(j, k - 1) -= a[k - j];
      }
      a_next[k] = f;
      da_next.row(k).setZero();
      da_next(k, k - 1) = 1.0;
      for (Index j = 1; j <= k; ++j) {
        a[j] = a_next[j];
        da.row(j) = da_next.row(j);
      }
      double rk = 0.0;
      Eigen::RowVectorXd drk = Eigen::RowVectorXd::Zero(dr.cols());
      for (Index j = 1; j <= k; ++j) {
        rk += a[j] * r[k - j];
        drk += da.row(j) * r[k - j] + a[j] * dr.row(k - j);
      }
      r[k] = rk;
      dr.row(k) = drk;
    }
    R.resize(p, p);
    for (Index j = 0; j < p; ++j)
      for (Index i = 0; i < p; ++i) R(i, j) = r[i > j ? i - j : j - i];
    if (!dR) return;
    for (Index c = 0; c < m; ++c) {
      Matrix d(p, p);
      for (Index j = 0; j < p; ++j)
        for (Index i = 0; i < p; ++i) d(i, j) = dr(i > j ? i - j : j - i, c);
      dR->push_back(std::move(d));
    }
  }
};

}  // namespace

const Parameterization& parameterization(Covariance covariance) {
  static const Unstructured unstructured;
  static const Diagonal diagonal;
  static const DiagonalHomogeneous diagonal_hom;
  static const CompoundSymmetry cs(false), cs_hom(true);
  static const AR1 ar1(true), ar1_het(false);
  static const Toeplitz toep(false), toep_hom(true);
  switch (covariance) {
    case Covariance::Unstructured: return unstructured;
    case Covariance::Diagonal: return diagonal;
    case Covariance::DiagonalHomogeneous: return diagonal_hom;
    case Covariance::CompoundSymmetry: return cs;
    case Covariance::CompoundSymmetryHomogeneous: return cs_hom;
    case Covariance::AR1: return ar1;
    case Covariance::AR1Heterogeneous: return ar1_het;
    case Covariance::Toeplitz: return toep;
    case Covariance::ToeplitzHomogeneous: return toep_hom;
  }
  throw std::invalid_argument("unknown covariance structure");
}

namespace {
constexpr Covariance kAllCovariances[] = {
    Covariance::Unstructured,     Covariance::Diagonal, Covariance::DiagonalHomogeneous,
    Covariance::CompoundSymmetry, Covariance::CompoundSymmetryHomogeneous,
    Covariance::AR1,              Covariance::AR1Heterogeneous,
    Covariance::Toeplitz,         Covariance::ToeplitzHomogeneous};
}  // namespace

std::vector<std::string> covariance_names() {
  std::vector<std::string> names;
  for (Covariance c : kAllCovariances) names.push_back(parameterization(c).name());
  return names;
}

Covariance covariance_from_name(const std::string& name) {
  std::string known;
  for (Covariance c : kAllCovariances) {
    if (parameterization(c).name() == name) return c;
    known += (known.empty() ? "" : ", ") + parameterization(c).name();
  }
  throw std::invalid_argument("unknown covariance structure '" + name + "' (known: " + known + ")");
}

}  // namespace lmm
