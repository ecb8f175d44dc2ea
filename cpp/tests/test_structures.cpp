// Structured covariances (lmm/parameterization.hpp) and prior weights: λλ' against the
// covariance D R D built here from its definition, the criterion against a
// dense likelihood built from V = σ²(Z S Z' + I), the exact gradient against
// central differences in the interior and next to the bounds of ρ, and fits
// through lmm::fit with every structure (ML and REML).
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Cholesky>

#include "check.hpp"
#include "lmm/fit.hpp"

namespace {

using lmm_test::check;
using lmm_test::check_abs;
using lmm_test::failures;

using lmm::Covariance;
using lmm::Index;
using lmm::Matrix;
using lmm::Vector;

// Named tolerances: λλ' and the dense criterion agree to rounding; central
// differences (step 1e-6 relative) agree with the exact gradient to 1e-6
// relative to the gradient's scale.
constexpr double kCovarianceTol = 1e-12;
constexpr double kCriterionTol = 1e-10;
constexpr double kGradientTol = 1e-6;

struct Case {
  Covariance covariance;
  std::vector<double> theta;  // a point in the interior
};

std::string name(Covariance c) { return lmm::parameterization(c).name(); }

// The correlation matrix of each structure from its definition (not from
// the parameterization's code): cs, ar1 and Toeplitz from the lag
// correlations that the partial autocorrelations give by the
// Yule–Walker equations solved here densely.
Matrix correlation(Covariance c, Index p, const double* rho) {
  Matrix R = Matrix::Identity(p, p);
  switch (c) {
    case Covariance::CompoundSymmetry:
    case Covariance::CompoundSymmetryHomogeneous:
      for (Index i = 0; i < p; ++i)
        for (Index j = 0; j < p; ++j) R(i, j) = i == j ? 1.0 : rho[0];
      break;
    case Covariance::AR1:
    case Covariance::AR1Heterogeneous:
      for (Index i = 0; i < p; ++i)
        for (Index j = 0; j < p; ++j) R(i, j) = std::pow(rho[0], std::abs(static_cast<double>(i - j)));
      break;
    case Covariance::Toeplitz:
    case Covariance::ToeplitzHomogeneous: {
      // r_k from φ_1..φ_k: the last AR(k) coefficient of the Yule–Walker
      // system in r_1..r_k is φ_k; solve for r_k by bisection on that map.
      std::vector<double> r(static_cast<std::size_t>(p), 0.0);
      r[0] = 1.0;
      auto last_coefficient = [&](Index k) {
        Matrix T(k, k);
        Vector rhs(k);
        for (Index i = 0; i < k; ++i) {
          rhs[i] = r[i + 1];
          for (Index j = 0; j < k; ++j) T(i, j) = r[std::abs(i - j)];
        }
        return T.ldlt().solve(rhs)[k - 1];
      };
      for (Index k = 1; k < p; ++k) {
        double lo = -1.0, hi = 1.0;  // the last coefficient increases with r_k on the PD interval
        for (int it = 0; it < 200; ++it) {
          r[k] = 0.5 * (lo + hi);
          Matrix T(k + 1, k + 1);
          for (Index i = 0; i <= k; ++i)
            for (Index j = 0; j <= k; ++j) T(i, j) = r[std::abs(i - j)];
          const bool pd = T.llt().info() == Eigen::Success;
          if (!pd || last_coefficient(k) > rho[k - 1]) {
            // Outside the positive definite interval, or past φ_k: which side?
            if (!pd && r[k] < 0.0) lo = r[k]; else hi = r[k];
          } else {
            lo = r[k];
          }
        }
      }
      for (Index i = 0; i < p; ++i)
        for (Index j = 0; j < p; ++j) R(i, j) = r[std::abs(i - j)];
      break;
    }
    default: break;
  }
  return R;
}

Matrix covariance_from_definition(Covariance c, Index p, const std::vector<double>& theta) {
  const bool hom = c == Covariance::CompoundSymmetryHomogeneous || c == Covariance::AR1 ||
                   c == Covariance::ToeplitzHomogeneous || c == Covariance::DiagonalHomogeneous;
  const Index nsd = hom ? 1 : p;
  Vector sd(p);
  for (Index i = 0; i < p; ++i) sd[i] = theta[hom ? 0 : i];
  if (c == Covariance::DiagonalHomogeneous) return sd.cwiseAbs2().asDiagonal();
  const Matrix R = correlation(c, p, theta.data() + nsd);
  return sd.asDiagonal() * R * sd.asDiagonal();
}

// A two-level design: 40 groups, 3 columns of z (intercept and two covariates), n = 400.
struct Data {
  Index n = 400, nlevels = 40, p = 3;
  lmm::IntVector codes{400};
  Matrix z{400, 3}, X{400, 2};
  Vector y{400};
  Data() {
    std::mt19937 gen(7);
    std::normal_distribution<double> N(0.0, 1.0);
    for (Index i = 0; i < n; ++i) {
      codes[i] = static_cast<std::int32_t>(i % nlevels);
      z(i, 0) = X(i, 0) = 1.0;
      z(i, 1) = X(i, 1) = static_cast<double>((i / nlevels) % 5);
      z(i, 2) = N(gen);
    }
    Vector b(nlevels * p);
    for (Index j = 0; j < b.size(); ++j) b[j] = N(gen);
    for (Index i = 0; i < n; ++i) {
      const Index j = codes[i];
      y[i] = 1.0 + 0.5 * X(i, 1) + (1.0 + 0.6 * b[j * p + 1]) * z(i, 0) * b[j * p] + 0.4 * z(i, 1) * (b[j * p] + b[j * p + 1]) +
             0.3 * z(i, 2) * b[j * p + 2] + 0.8 * N(gen);
    }
  }
  std::vector<lmm::TermData> terms(Covariance c) const {
    return {{Eigen::Map<const lmm::IntVector>(codes.data(), n), Eigen::Map<const Matrix>(z.data(), n, p), nlevels, c}};
  }
};

// The profiled criterion from its definition: σ² profiled out of the dense
// likelihood with V/σ² = Z S Z' + W⁻¹ (S block diagonal over levels, W the
// prior weights, I without), β by GLS.
// With a known σ (> 0) nothing is profiled: the Gaussian −2 log-likelihood (or REML's)
// of y with covariance σ² V.
double dense_criterion(const Data& d, const Matrix& S, bool reml, const Vector& weights = Vector(),
                       double sigma = 0.0) {
  Matrix V = Matrix::Identity(d.n, d.n);
  if (weights.size()) V.diagonal() = weights.cwiseInverse();
  for (Index a = 0; a < d.n; ++a)
    for (Index b = 0; b < d.n; ++b)
      if (d.codes[a] == d.codes[b]) V(a, b) += d.z.row(a) * S * d.z.row(b).transpose();
  Eigen::LLT<Matrix> chol(V);
  const Matrix ViX = chol.solve(d.X);
  const Matrix XtViX = d.X.transpose() * ViX;
  const Vector beta = XtViX.ldlt().solve(ViX.transpose() * d.y);
  const Vector r = d.y - d.X * beta;
  const double rss = r.dot(chol.solve(r));
  auto logdet = [](const Eigen::LLT<Matrix>& c) { return 2.0 * Matrix(c.matrixL()).diagonal().array().log().sum(); };
  const double logdetV = logdet(chol);
  const double dof = static_cast<double>(reml ? d.n - d.X.cols() : d.n);
  double f = sigma > 0.0 ? logdetV + rss / (sigma * sigma) + dof * std::log(2.0 * M_PI * sigma * sigma)
                         : logdetV + dof * (1.0 + std::log(2.0 * M_PI * rss / dof));
  if (reml) f += logdet(Eigen::LLT<Matrix>(XtViX));
  return f;
}

void check_structure(const Data& d, const Case& c) {
  const std::string t = name(c.covariance);
  lmm::Model model(d.terms(c.covariance), d.X, d.y);
  const Index nt = model.ntheta();
  check(t + " ntheta", nt == static_cast<Index>(c.theta.size()));
  Vector theta = Eigen::Map<const Vector>(c.theta.data(), nt);
  model.set_theta(theta);
  const Matrix& l = model.lambda(0);
  const Matrix S = covariance_from_definition(c.covariance, d.p, c.theta);
  check_abs(t + " lambda lambda' = D R D", (l * l.transpose() - S).cwiseAbs().maxCoeff(), 0.0, kCovarianceTol);
  check(t + " lambda lower triangular", l.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().isZero(0.0));
  for (bool reml : {false, true}) {
    const std::string tr = t + (reml ? " REML" : " ML");
    const double f = model.objective(reml);
    const double dense = dense_criterion(d, S, reml);
    check_abs(tr + " criterion vs dense likelihood", f, dense, kCriterionTol * std::abs(dense));
    // Gradient at the interior point and with ρ next to each bound.
    const Vector lower = model.theta_lower(), upper = model.theta_upper();
    std::vector<Vector> points{theta};
    for (Index i = 0; i < nt; ++i)
      if (std::isfinite(lower[i]) && lower[i] != 0.0) {
        Vector near_lo = theta, near_hi = theta;
        near_lo[i] = lower[i] + 1e-3 * (upper[i] - lower[i]);
        near_hi[i] = upper[i] - 1e-3 * (upper[i] - lower[i]);
        points.push_back(near_lo);
        points.push_back(near_hi);
      }
    for (std::size_t k = 0; k < points.size(); ++k) {
      model.set_theta(points[k]);
      const Vector g = model.gradient(reml);
      for (Index i = 0; i < nt; ++i) {
        const double h = 1e-6 * std::max(1.0, std::abs(points[k][i]));
        Vector a = points[k], b = points[k];
        a[i] -= h;
        b[i] += h;
        if (b[i] > upper[i]) {  // one-sided next to an upper bound
          b[i] = points[k][i];
          a[i] = points[k][i] - 2.0 * h;
        }
        model.set_theta(b);
        const double fb = model.objective(reml);
        model.set_theta(a);
        const double fa = model.objective(reml);
        const double fd = (fb - fa) / (b[i] - a[i]);
        check_abs(tr + " point " + std::to_string(k) + " gradient[" + std::to_string(i) + "]", g[i], fd,
                  kGradientTol * std::max(1.0, std::abs(fd)) + 1e-5);
      }
    }
    // Criterion defined at the bounds of ρ (singular R): finite, and the limit from inside.
    for (Index i = 0; i < nt; ++i) {
      if (!(std::isfinite(lower[i]) && lower[i] != 0.0)) continue;
      for (double bound : {lower[i], upper[i]}) {
        Vector at = theta, near = theta;
        at[i] = bound;
        near[i] = bound - 1e-7 * (bound - lower[i] > 0 ? 1.0 : -1.0) * (upper[i] - lower[i]);
        model.set_theta(at);
        const double fa = model.objective(reml);
        model.set_theta(near);
        const double fn = model.objective(reml);
        check(tr + " criterion finite at bound " + std::to_string(bound), std::isfinite(fa));
        check_abs(tr + " criterion continuous at bound " + std::to_string(bound), fa, fn, 1e-4 * std::abs(fn));
      }
    }
    model.set_theta(theta);
  }
  // A fit: converges, θ within bounds, criterion no higher than at the true-ish start.
  for (bool reml : {false, true}) {
    lmm::FitOptions o;
    o.reml = reml;
    const lmm::FitResult r = lmm::fit(d.terms(c.covariance), d.X, d.y, o);
    check(t + (reml ? " REML" : " ML") + " fit converged (" + r.message + ")", r.converged);
    model.set_theta(theta);
    check(t + " fit criterion below an interior point's", r.criterion <= model.objective(reml) + 1e-8);
    for (Index i = 0; i < nt; ++i)
      check(t + " fit theta within bounds", r.theta[i] >= r.theta_lower[i] && r.theta[i] <= r.theta_upper[i]);
    std::printf("%-9s %s: criterion %.10f, %ld evaluations\n", t.c_str(), reml ? "REML" : "ML  ", r.criterion,
                static_cast<long>(r.evaluations));
  }
}

// A model with these options against the dense likelihood (cs at a fixed θ, ML and
// REML), and an unstructured fit with them; returns the fit.
lmm::FitResult check_against_dense(const std::string& what, const Data& d, const lmm::ModelOptions& mo) {
  const std::vector<double> theta{1.1, 0.7, 0.4, 0.3};
  lmm::Model model(d.terms(Covariance::CompoundSymmetry), d.X, d.y, mo);
  model.set_theta(Eigen::Map<const Vector>(theta.data(), 4));
  const Matrix S = covariance_from_definition(Covariance::CompoundSymmetry, d.p, theta);
  for (bool reml : {false, true}) {
    const double dense = dense_criterion(d, S, reml, mo.weights, mo.sigma);
    check_abs(what + (reml ? " REML" : " ML") + " criterion vs dense likelihood", model.objective(reml), dense,
              kCriterionTol * std::abs(dense));
  }
  lmm::FitOptions o;
  o.model = mo;
  const lmm::FitResult r = lmm::fit(d.terms(Covariance::Unstructured), d.X, d.y, o);
  check(what + " us fit converged (" + r.message + ")", r.converged);
  return r;
}

Vector prior_weights(const Data& d) {
  Vector w(d.n);
  for (Index i = 0; i < d.n; ++i) w[i] = 0.5 + static_cast<double>(i % 7) / 4.0;
  return w;
}

// Prior weights: the criterion is that of V/σ² = Z S Z' + W⁻¹ (lme4's, with its
// −Σ log w_i), for ML and REML, and fits run with them.
void check_weights(const Data& d) {
  lmm::ModelOptions mo;
  mo.weights = prior_weights(d);
  check_against_dense("weighted", d, mo);
  bool threw = false;
  try {
    lmm::ModelOptions bad;
    bad.weights = Vector::Constant(d.n, 1.0);
    bad.weights[3] = 0.0;
    lmm::Model m(d.terms(Covariance::Unstructured), d.X, d.y, bad);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("row 3") != std::string::npos;
  }
  check("a zero weight is refused, naming its row", threw);
}

// A known σ (with weights: a meta-analysis's known variances σ²/w_i): the criterion is
// the dense likelihood at that σ, not profiled; fits keep σ and do not count it.
void check_known_sigma(const Data& d) {
  lmm::ModelOptions mo;
  mo.weights = prior_weights(d);
  mo.sigma = 0.6;
  const lmm::FitResult r = check_against_dense("known sigma", d, mo);
  check("known sigma kept", r.sigma == 0.6);
  check("known sigma is not a parameter", r.npar == d.X.cols() + 6);
}

void check_names() {
  for (const char* n : {"us", "diag", "diag_hom", "cs", "cs_hom", "ar1", "ar1_het", "toep", "toep_hom"})
    check(std::string("covariance_from_name ") + n,
          lmm::parameterization(lmm::covariance_from_name(n)).name() == n);
  bool threw = false;
  try {
    lmm::covariance_from_name("nope");
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("known: us") != std::string::npos;
  }
  check("covariance_from_name refuses an unknown name", threw);
  // ρ outside its interval is refused, not clamped.
  const Data d;
  lmm::Model model(d.terms(Covariance::CompoundSymmetry), d.X, d.y);
  threw = false;
  try {
    model.set_theta(Vector::Constant(4, 1.5));
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check("cs: rho = 1.5 refused", threw);
}

}  // namespace

int main() {
  const Data d;
  const std::vector<Case> cases{
      {Covariance::DiagonalHomogeneous, {0.8}},
      {Covariance::CompoundSymmetry, {1.1, 0.7, 0.4, 0.3}},
      {Covariance::CompoundSymmetryHomogeneous, {0.9, -0.2}},
      {Covariance::AR1, {0.9, 0.5}},
      {Covariance::AR1Heterogeneous, {1.2, 0.6, 0.3, -0.4}},
      {Covariance::Toeplitz, {1.0, 0.7, 0.5, 0.4, -0.3}},
      {Covariance::ToeplitzHomogeneous, {0.8, 0.5, 0.2}},
  };
  for (const Case& c : cases) check_structure(d, c);
  check_names();
  check_weights(d);
  check_known_sigma(d);
  if (failures) {
    std::printf("%d failure(s)\n", failures);
    return 1;
  }
  std::printf("all structure checks passed\n");
  return 0;
}
