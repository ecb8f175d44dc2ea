// lmm::fit_many: each response fitted as lmm::fit fits it alone (sleepstudy-
// shaped responses; crossed terms with weights), the same results on any number
// of threads, failures kept to their own response, warm starts, bad input.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/QR>

#include "check.hpp"
#include "lmm/many.hpp"
#include "sleepstudy.hpp"

namespace {

using lmm_test::check;
using lmm_test::check_close;
using lmm_test::check_throws;
using lmm_test::failures;

using lmm::Index;
using lmm::Matrix;
using lmm::Vector;

// Named tolerances (relative) against separate fits: the same optimizer from the
// same start on crossproducts equal to rounding (the shift's γ is found another
// way here), run to a tight gradient tolerance as the Python package runs it.
constexpr double kCriterionTol = 1e-11;
constexpr double kEstimateTol = 1e-8;

// R of X_c = X − 1 center' (upper triangular, R'R = X_c'X_c).
Matrix centred_r(const Matrix& X, const Vector& center) {
  Matrix Xc = X;
  if (center.size()) Xc.rowwise() -= center.transpose();
  Eigen::HouseholderQR<Matrix> qr(Xc);
  return qr.matrixQR().topRows(X.cols()).triangularView<Eigen::Upper>();
}

// Column j of out against lmm::fit of the model built for response y.
void check_against_fit(const std::string& t, const lmm::ManyResult& out, Index j,
                       const std::vector<lmm::TermData>& terms, const Matrix& X, const Vector& y,
                       const lmm::FitOptions& fo, const lmm::Shift& shift) {
  lmm::Model alone(terms, X, y, {}, shift);
  const lmm::FitResult r = lmm::fit(alone, fo);
  // β of X as given: the model's shift (centred X, y's fit removed) mapped back.
  Vector beta = r.beta + shift.gamma;
  beta[0] -= shift.center.dot(beta);
  const std::string w = t + " response " + std::to_string(j);
  check(w + " fitted", out.error[j].empty());
  check_close(w + " criterion", out.criterion[j], r.criterion, kCriterionTol);
  for (Index i = 0; i < r.theta.size(); ++i)
    check_close(w + " theta[" + std::to_string(i) + "]", out.theta(i, j), r.theta[i], kEstimateTol);
  for (Index i = 0; i < beta.size(); ++i) check_close(w + " beta[" + std::to_string(i) + "]", out.beta(i, j), beta[i], kEstimateTol);
  // The slope's SE does not depend on the centring; the intercept's does (checked in Python).
  check_close(w + " se[1]", out.se(1, j), r.se_beta[1], kEstimateTol);
  check_close(w + " sigma", out.sigma[j], r.sigma, kEstimateTol);
  check(w + " converged", out.converged[j] == r.converged);
}

// The Python package's stopping rule (lmm.optimize: tol 1e-8).
lmm::FitOptions tight() {
  lmm::FitOptions fo;
  fo.gradient_tolerance = fo.gradient_tolerance_rel = 1e-9;
  return fo;
}

// The least-squares coefficients of y on X_c (the design's shift).
Vector least_squares(const Matrix& X, const Vector& center, const Vector& y) {
  Matrix Xc = X;
  Xc.rowwise() -= center.transpose();
  return Xc.colPivHouseholderQr().solve(y);
}

void check_sleepstudy_responses() {
  const lmm_test::Sleepstudy d;
  const Index m = 40;
  std::mt19937 rng(3);
  std::normal_distribution<double> nd;
  Matrix Y(180, m);
  for (Index j = 0; j < m; ++j)
    for (Index i = 0; i < 180; ++i) Y(i, j) = d.y[i] + 30.0 * nd(rng) + (j == 5 ? 1e8 : 0.0);
  Y(17, 9) = std::numeric_limits<double>::quiet_NaN();
  Vector center(2);
  center << 0.0, 4.5;
  lmm::Shift shift{center, least_squares(d.X, center, d.y)};
  const lmm::Model model(d.terms(), d.X, d.y, {}, shift);
  const Matrix R = centred_r(d.X, center);

  lmm::ManyOptions o;
  o.fit = tight();
  o.threads = 3;
  o.block = 7;
  const lmm::ManyResult out = lmm::fit_many(model, d.terms(), d.X, Y, R, o);
  for (Index j = 0; j < m; ++j) {
    if (j == 9) continue;
    const Vector y = Y.col(j);
    check_against_fit("sleepstudy", out, j, d.terms(), d.X, y, o.fit, {center, least_squares(d.X, center, y)});
  }
  check("non-finite response: its error", out.error[9].find("non-finite") != std::string::npos);
  check("non-finite response: NaN estimates", std::isnan(out.criterion[9]) && std::isnan(out.beta(0, 9)));
  check("residual ratio", out.residual_ratio[0] > 0.05 && out.residual_ratio[5] < 1e-6);

  o.threads = 1;
  Index reported = -1;
  o.progress = [&reported](Index done) { reported = done; };
  const lmm::ManyResult one = lmm::fit_many(model, d.terms(), d.X, Y, R, o);
  bool same = true;
  for (Index j = 0; j < m; ++j)
    same = same && (j == 9 || (one.criterion[j] == out.criterion[j] && one.theta.col(j) == out.theta.col(j) &&
                               one.beta.col(j) == out.beta.col(j) && one.se.col(j) == out.se.col(j)));
  check("one thread: the same results", same);
  check("progress: reports every response at the end", reported == m);

  o.warm_start = true;
  o.progress = {};
  const lmm::ManyResult warm = lmm::fit_many(model, d.terms(), d.X, Y, R, o);
  Index cold_evals = 0, warm_evals = 0;
  for (Index j = 0; j < m; ++j) {
    if (j == 9) continue;
    check_close("warm start: criterion " + std::to_string(j), warm.criterion[j], out.criterion[j], 1e-10);
    cold_evals += out.evaluations[j];
    warm_evals += warm.evaluations[j];
  }
  std::printf("sleepstudy, %ld responses: %.3g s (%ld evaluations; %ld with warm starts)\n", static_cast<long>(m),
              out.seconds, static_cast<long>(cold_evals), static_cast<long>(warm_evals));

  check_throws<std::invalid_argument>("Y rows", [&] { lmm::fit_many(model, d.terms(), d.X, Y.topRows(10), R); },
                                      "rows");
  lmm::ManyOptions bad;
  bad.threads = 0;
  check_throws<std::invalid_argument>("threads", [&] { lmm::fit_many(model, d.terms(), d.X, Y, R, bad); }, "threads");
  check_throws<std::invalid_argument>("R size", [&] { lmm::fit_many(model, d.terms(), d.X, Y, Matrix::Identity(3, 3)); },
                                      "R must be");
  const lmm::ManyResult none = lmm::fit_many(model, d.terms(), d.X, Matrix(180, 0), R);
  check("no responses", none.criterion.size() == 0 && none.theta.cols() == 0);
}

void check_crossed_weighted() {
  const Index n = 400, m = 6;
  std::mt19937 rng(11);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.5, 2.0);
  lmm::IntVector g1(n), g2(n);
  Matrix z1 = Matrix::Ones(n, 1), z2 = Matrix::Ones(n, 1), X(n, 2), Y(n, m);
  lmm::ModelOptions mo;
  mo.weights.resize(n);
  for (Index i = 0; i < n; ++i) {
    g1[i] = static_cast<std::int32_t>(i % 25);
    g2[i] = static_cast<std::int32_t>((i * 3 + i / 25) % 12);
    X(i, 0) = 1.0;
    X(i, 1) = nd(rng);
    mo.weights[i] = ud(rng);
  }
  for (Index j = 0; j < m; ++j) {
    Vector a1(25), a2(12);
    for (auto& v : a1) v = nd(rng);
    for (auto& v : a2) v = 0.7 * nd(rng);
    for (Index i = 0; i < n; ++i) Y(i, j) = 2.0 + X(i, 1) + a1[g1[i]] + a2[g2[i]] + nd(rng) / std::sqrt(mo.weights[i]);
  }
  const std::vector<lmm::TermData> terms{
      {Eigen::Map<const lmm::IntVector>(g2.data(), n), Eigen::Map<const Matrix>(z2.data(), n, 1), 12,
       lmm::Covariance::Unstructured},
      {Eigen::Map<const lmm::IntVector>(g1.data(), n), Eigen::Map<const Matrix>(z1.data(), n, 1), 25,
       lmm::Covariance::Unstructured}};
  Vector center(2);
  center << 0.0, X.col(1).mean();
  const Vector y0 = Y.col(0);
  const lmm::Model model(terms, X, y0, mo, {center, least_squares(X, center, y0)});
  lmm::ManyOptions o;
  o.fit = tight();
  o.threads = 2;
  o.fit.reml = false;
  const lmm::ManyResult out = lmm::fit_many(model, terms, X, Y, centred_r(X, center), o);
  for (Index j = 0; j < m; ++j) {
    const Vector y = Y.col(j);
    lmm::Model alone(terms, X, y, mo, {center, least_squares(X, center, y)});
    const lmm::FitResult r = lmm::fit(alone, o.fit);
    const std::string w = "crossed weighted ML response " + std::to_string(j);
    check_close(w + " criterion", out.criterion[j], r.criterion, kCriterionTol);
    for (Index i = 0; i < r.theta.size(); ++i)
      check_close(w + " theta[" + std::to_string(i) + "]", out.theta(i, j), r.theta[i], kEstimateTol);
    check_close(w + " slope", out.beta(1, j), r.beta[1] + least_squares(X, center, y)[1], kEstimateTol);
  }
}

// fit_scan: each candidate's fit equals lmm::fit of the model with the candidate added to X.
void check_scan() {
  const lmm_test::Sleepstudy d;
  const Index m = 9;
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  Matrix G(180, m);
  for (Index j = 0; j < m; ++j)
    for (Index i = 0; i < 180; ++i) G(i, j) = nd(rng) + (j == 2 ? 1e6 : 0.0);
  G.col(4).setConstant(3.0);  // collinear with the intercept
  G(7, 6) = std::numeric_limits<double>::infinity();
  lmm::ManyOptions o;
  o.fit = tight();
  o.threads = 2;
  o.block = 2;
  const lmm::ManyResult out = lmm::fit_scan(d.terms(), d.X, d.y, G, {}, o);
  for (Index j = 0; j < m; ++j) {
    const std::string w = "scan candidate " + std::to_string(j);
    if (j == 4) {
      check(w + ": collinear, refused", out.error[j].find("full column rank") != std::string::npos);
      continue;
    }
    if (j == 6) {
      check(w + ": non-finite, refused", out.error[j].find("non-finite") != std::string::npos);
      continue;
    }
    Matrix Xa(180, 3);
    Xa << d.X, G.col(j);
    Vector center(3);
    center << 0.0, 4.5, G.col(j).mean();
    check_against_fit("scan", out, j, d.terms(), Xa, d.y, o.fit, {center, least_squares(Xa, center, d.y)});
    check(w + ": 3 coefficients", out.beta.rows() == 3 && std::isfinite(out.se(2, j)));
  }
}

}  // namespace

int main() {
  check_sleepstudy_responses();
  check_crossed_weighted();
  check_scan();
  if (failures == 0) std::printf("all fit_many checks passed\n");
  return failures == 0 ? 0 : 1;
}
