// The matrix-free fit of two crossed scalar terms (lmm::fit_matrix_free) against
// the exact fit (lmm::fit) of the same crossproducts: with exact traces (the
// smaller factor has few levels) the same optimum; with estimated traces within
// the method's tolerance and its reported Monte Carlo SEs; reproducible from the
// seed; refusals of models it does not fit.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.hpp"
#include "lmm/fit.hpp"
#include "lmm/matrix_free.hpp"

namespace {

using lmm_test::check;
using lmm_test::check_close;
using lmm_test::check_throws;
using lmm_test::failures;

using lmm::Covariance;
using lmm::Index;
using lmm::IntVector;
using lmm::Matrix;
using lmm::Vector;

// Named tolerances.
constexpr double kExactTheta = 1e-6;   // exact traces: both methods' optimum to their stopping rules
constexpr double kExactCriterion = 1e-10;
constexpr double kTheta = 1e-3;        // estimated traces: the method's goal
constexpr double kBeta = 1e-5;
constexpr double kSes = 5.0;           // an estimate against its Monte Carlo SE

struct Data {
  Index n, la, lb;
  IntVector ga, gb;
  Matrix za, zb, X;
  Vector y;
};

// Crossed data with skewed level counts: y = 2 + 0.5 x + a_i + b_j + e.
Data simulate(Index n, Index la, Index lb, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> N;
  std::exponential_distribution<double> E(1.0);
  Data d{n, la, lb, IntVector(n), IntVector(n), Matrix::Ones(n, 1), Matrix::Ones(n, 1), Matrix::Ones(n, 2), Vector(n)};
  Vector a(la), b(lb), wa(la), wb(lb);
  for (Index j = 0; j < la; ++j) a[j] = 0.6 * N(gen), wa[j] = std::exp(1.5 * E(gen));
  for (Index j = 0; j < lb; ++j) b[j] = 0.8 * N(gen), wb[j] = std::exp(1.5 * E(gen));
  std::discrete_distribution<int> Pa(wa.data(), wa.data() + la), Pb(wb.data(), wb.data() + lb);
  for (Index r = 0; r < n; ++r) {
    d.ga[r] = Pa(gen);
    d.gb[r] = Pb(gen);
    const double x = N(gen);
    d.X(r, 1) = x;
    d.y[r] = 2.0 + 0.5 * x + a[d.ga[r]] + b[d.gb[r]] + N(gen);
  }
  // every level used at least once
  for (Index j = 0; j < la && j < n; ++j) d.ga[j] = static_cast<int>(j);
  for (Index j = 0; j < lb && j < n; ++j) d.gb[j] = static_cast<int>(j);
  return d;
}

std::vector<lmm::TermData> terms(const Data& d) {
  return {{Eigen::Map<const IntVector>(d.ga.data(), d.n), Eigen::Map<const Matrix>(d.za.data(), d.n, 1), d.la,
           Covariance::Unstructured},
          {Eigen::Map<const IntVector>(d.gb.data(), d.n), Eigen::Map<const Matrix>(d.zb.data(), d.n, 1), d.lb,
           Covariance::Unstructured}};
}

void test_against_exact(Index la, Index lb, bool reml) {
  const Data d = simulate(20 * la, la, lb, 3u + static_cast<unsigned>(lb));
  const std::string tag = " (" + std::to_string(la) + " x " + std::to_string(lb) + (reml ? ", REML)" : ", ML)");
  lmm::FitOptions fo;
  fo.reml = reml;
  const lmm::FitResult exact = lmm::fit(terms(d), d.X, d.y, fo);
  const lmm::Crossprod A = lmm::form_crossprod(terms(d), d.X, d.y);
  lmm::MatrixFreeOptions mo;
  mo.reml = reml;
  const lmm::MatrixFreeFit mf = lmm::fit_matrix_free(A, mo);
  check("converged" + tag + ": " + mf.message, mf.converged);
  const bool exact_traces = lb <= mo.exact_levels;
  check("exact traces when the smaller factor is small" + tag, mf.exact_traces == exact_traces);
  for (Index k = 0; k < 2; ++k) {
    const std::string what = "theta " + std::to_string(k) + tag;
    if (exact_traces) {
      check_close(what, mf.theta[k], exact.theta[k], kExactTheta);
    } else {
      check_close(what, mf.theta[k], exact.theta[k], kTheta);
      check(what + " within its Monte Carlo SEs", std::abs(mf.theta[k] - exact.theta[k]) <= kSes * mf.theta_se[k]);
    }
  }
  const Vector beta = A.shift.gamma.size() ? Vector(mf.beta + A.shift.gamma) : mf.beta;
  for (Index j = 0; j < 2; ++j)
    check_close("beta " + std::to_string(j) + tag, beta[j], exact.beta[j], exact_traces ? 1e-7 : kBeta);
  check_close("sigma" + tag, mf.sigma, exact.sigma, exact_traces ? 1e-7 : kBeta);
  if (exact_traces)
    check_close("criterion" + tag, mf.criterion, exact.criterion, kExactCriterion);
  else
    check("criterion within its SEs" + tag, std::abs(mf.criterion - exact.criterion) <= kSes * mf.criterion_se);
}

void test_reproducible() {
  const Data d = simulate(6000, 400, 150, 5u);
  const lmm::Crossprod A = lmm::form_crossprod(terms(d), d.X, d.y);
  lmm::MatrixFreeOptions o;
  const lmm::MatrixFreeFit a = lmm::fit_matrix_free(A, o), b = lmm::fit_matrix_free(A, o);
  check("same seed, same θ", a.theta == b.theta && a.criterion == b.criterion);
  o.seed = 12;
  const lmm::MatrixFreeFit c = lmm::fit_matrix_free(A, o);
  check("another seed, another estimate", a.theta != c.theta);
  // the score at θ̂ with many probes is 0 within its SEs
  const lmm::MatrixFreeScore s = lmm::matrix_free_score(A, a.theta, 128, o, 7);
  for (Index k = 0; k < 2; ++k)
    check("score at the optimum within its SEs", std::abs(s.gradient[k]) <= kSes * s.gradient_se[k] + 1e-6);
}

void test_refusals() {
  const Data d = simulate(500, 50, 20, 9u);
  std::vector<lmm::TermData> t = terms(d);
  const Matrix z2 = Matrix::Ones(d.n, 2);
  std::vector<lmm::TermData> slopes = {t[0], {t[1].codes, Eigen::Map<const Matrix>(z2.data(), d.n, 2), d.lb,
                                              Covariance::Unstructured}};
  check_throws<std::invalid_argument>("a term of two columns",
                                      [&] { lmm::fit_matrix_free(lmm::form_crossprod(slopes, d.X, d.y)); },
                                      "one column each");
  std::vector<lmm::TermData> one = {t[0]};
  check_throws<std::invalid_argument>("one term", [&] { lmm::fit_matrix_free(lmm::form_crossprod(one, d.X, d.y)); },
                                      "two crossed");
  check("unsupported says why", !lmm::matrix_free_unsupported(lmm::form_crossprod(one, d.X, d.y)).empty());
  check("supported says nothing", lmm::matrix_free_unsupported(lmm::form_crossprod(t, d.X, d.y)).empty());
}

}  // namespace

int main() {
  test_against_exact(300, 40, true);
  test_against_exact(300, 40, false);
  test_against_exact(1500, 300, true);
  test_against_exact(1500, 300, false);
  test_reproducible();
  test_refusals();
  if (failures) std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
