// lmm::fit: complete fits from arrays against lme4 (sleepstudy, Dyestuff2),
// the restart off the boundary, the result's internal consistency, and the
// exceptions for invalid input. Reference values: tests/reference/lme4_reference.json
// (lme4 1.1.31 with tight BOBYQA settings).
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "sleepstudy.hpp"
#include "lmm/fit.hpp"

namespace {

using lmm_test::check;
using lmm_test::check_abs;
using lmm_test::check_throws;
using lmm_test::check_close;
using lmm_test::failures;

using lmm::Index;
using lmm::Matrix;
using lmm::Vector;
using lmm_test::kReaction;
using lmm_test::Sleepstudy;

// Named tolerances (relative): criteria and estimates at the optimum; lme4's
// own θ is accurate to about 1e-6 (its second entry differs from the exact
// optimum by 8.7e-7 relative), so θ is compared at the brief's 1e-6.
constexpr double kCriterionTol = 1e-6;
constexpr double kEstimateTol = 1e-6;
constexpr double kConditionalModeTol = 1e-5;

// The exception type E is thrown and its message contains `needle`.
// Dyestuff2 (lme4): 6 batches × 5, Yield; its REML and ML fits are singular.
const double kYield2[30] = {7.298, 3.846,  2.434,  9.566, 7.99,  5.22,  6.556, 0.608, 11.788, -0.892,
                            0.11,  10.386, 13.434, 5.51,  8.166, 2.212, 4.852, 7.092, 9.288,  4.98,
                            0.282, 9.014,  4.458,  9.446, 7.198, 1.722, 4.782, 8.106, 0.758,  3.758};

void check_sleepstudy_reml() {
  const Sleepstudy d;
  const lmm::FitResult r = lmm::fit(d.terms(), d.X, d.y);
  const std::string t = "sleepstudy REML";
  check_close(t + " criterion", r.criterion, 1743.6282719584906, kCriterionTol);
  const double theta[3] = {0.9667328935905414, 0.015169067546048834, 0.23090959201810426};
  check(t + " theta length", r.theta.size() == 3);
  for (Index i = 0; i < 3; ++i) check_close(t + " theta[" + std::to_string(i) + "]", r.theta[i], theta[i], kEstimateTol);
  check_close(t + " beta[0]", r.beta[0], 251.405104848484, kEstimateTol);
  check_close(t + " beta[1]", r.beta[1], 10.467285959596424, kEstimateTol);
  check_close(t + " sigma", r.sigma, 25.591815738629556, kEstimateTol);
  check_close(t + " se[0]", r.se_beta[0], 6.82455626155296, kEstimateTol);
  check_close(t + " se[1]", r.se_beta[1], 1.5457888928884913, kEstimateTol);
  check_close(t + " vcov[0,1]", r.vcov_beta(0, 1), -1.4510952837381519, kEstimateTol);
  check_close(t + " logLik", r.loglik, -871.8141359792453, kCriterionTol);
  check_close(t + " AIC", r.aic, 1755.6282719584906, kCriterionTol);
  check_close(t + " BIC", r.bic, 1774.786013063832, kCriterionTol);
  check(t + " npar", r.npar == 6);
  check_close(t + " VarCorr (Intercept)", r.covariance[0](0, 0), 612.0898702223931, kEstimateTol);
  check_close(t + " VarCorr Days", r.covariance[0](1, 1), 35.07166023933963, kEstimateTol);
  check_close(t + " VarCorr cov", r.covariance[0](1, 0), 9.60434122725561, 1e-5);
  check(t + " b shape", r.b.size() == 1 && r.b[0].rows() == 18 && r.b[0].cols() == 2);
  check_close(t + " b[308, (Intercept)]", r.b[0](0, 0), 2.2585661715956986, kConditionalModeTol);
  check_close(t + " b[309, (Intercept)]", r.b[0](1, 0), -40.398579278585984, kConditionalModeTol);
  check_close(t + " b[308, Days]", r.b[0](0, 1), 9.19897177661149, kConditionalModeTol);
  check(t + " converged", r.converged);
  check(t + " not singular", !r.singular);
  check(t + " restarts", r.restarts == 0);
  check(t + " gradient small", r.max_projected_gradient <= 1e-6 && r.gradient.cwiseAbs().maxCoeff() <= 1e-6);
  check(t + " counts", r.evaluations > r.iterations && r.gradient_evaluations > 0 && r.iterations > 0);
  check(t + " message", r.message.rfind("converged", 0) == 0);
  std::printf("sleepstudy REML: criterion %.10f, theta (%.10f, %.10f, %.10f), %ld evaluations, %ld iterations, "
              "%.2g s; %s\n",
              r.criterion, r.theta[0], r.theta[1], r.theta[2], static_cast<long>(r.evaluations),
              static_cast<long>(r.iterations), r.seconds, r.message.c_str());
}

void check_sleepstudy_ml_and_diagonal() {
  const Sleepstudy d;
  lmm::FitOptions ml;
  ml.reml = false;
  const lmm::FitResult r = lmm::fit(d.terms(), d.X, d.y, ml);
  check_close("sleepstudy ML deviance", r.criterion, 1751.9393444631976, kCriterionTol);
  check_close("sleepstudy ML theta[0]", r.theta[0], 0.9292253875951719, kEstimateTol);
  check_close("sleepstudy ML theta[2]", r.theta[2], 0.2226454240732623, kEstimateTol);
  check_close("sleepstudy ML sigma", r.sigma, 25.5918158320228, kEstimateTol);
  check_close("sleepstudy ML se[0]", r.se_beta[0], 6.632276421157222, kEstimateTol);
  check("sleepstudy ML flags", !r.reml && r.converged && !r.singular);

  const lmm::FitResult u = lmm::fit(d.terms(lmm::Covariance::Diagonal), d.X, d.y);
  check_close("sleepstudy (Days || Subject) REML criterion", u.criterion, 1743.669293581312, kCriterionTol);
  check("sleepstudy (Days || Subject) theta length", u.theta.size() == 2);
  check_close("sleepstudy (Days || Subject) theta[0]", u.theta[0], 0.9798963512503028, kEstimateTol);
  check_close("sleepstudy (Days || Subject) theta[1]", u.theta[1], 0.2342305899237957, kEstimateTol);
  check_close("sleepstudy (Days || Subject) sigma", u.sigma, 25.565285152828512, kEstimateTol);
  check_abs("sleepstudy (Days || Subject) lambda off-diagonal", u.lambda[0](1, 0), 0.0, 0.0);
}

// Starting on the boundary θ = (1, 0, 0): the criterion is even in the last
// entry, so its gradient is exactly 0 there and the optimizer cannot leave on
// its own; the restart off the boundary must find lme4's optimum.
void check_restart_off_boundary() {
  const Sleepstudy d;
  lmm::FitOptions o;
  o.theta_start = Vector(3);
  o.theta_start << 1.0, 0.0, 0.0;
  const lmm::FitResult r = lmm::fit(d.terms(), d.X, d.y, o);
  check("restart: at least one restart", r.restarts >= 1);
  check_close("restart: criterion", r.criterion, 1743.6282719584906, kCriterionTol);
  check_close("restart: theta[2]", r.theta[2], 0.23090959201810426, kEstimateTol);
  check("restart: not singular", !r.singular && r.converged);

  o.max_restarts = 0;
  const lmm::FitResult stuck = lmm::fit(d.terms(), d.X, d.y, o);
  check("no restart: stays at the boundary", stuck.restarts == 0 && stuck.theta[2] == 0.0 && stuck.singular);
  check("no restart: higher criterion", stuck.criterion > r.criterion + 1.0);
}

void check_singular_dyestuff2() {
  lmm::IntVector batch(30);
  for (Index i = 0; i < 30; ++i) batch[i] = static_cast<std::int32_t>(i / 5);
  const Matrix ones = Matrix::Ones(30, 1);
  const Vector y = Eigen::Map<const Vector>(kYield2, 30);
  const std::vector<lmm::TermData> terms{{Eigen::Map<const lmm::IntVector>(batch.data(), 30),
                                          Eigen::Map<const Matrix>(ones.data(), 30, 1), 6,
                                          lmm::Covariance::Unstructured}};
  for (bool reml : {true, false}) {
    lmm::FitOptions o;
    o.reml = reml;
    const lmm::FitResult r = lmm::fit(terms, ones, y, o);
    const std::string t = std::string("dyestuff2 ") + (reml ? "REML" : "ML");
    check_close(t + " criterion", r.criterion, reml ? 161.82827781228843 : 162.87303665382575, kCriterionTol);
    check_abs(t + " theta", r.theta[0], 0.0, 1e-6);
    check_close(t + " sigma", r.sigma, reml ? 3.7156842744757266 : 3.653231351374652, kEstimateTol);
    check_close(t + " beta", r.beta[0], 5.6656, kEstimateTol);
    check(t + " singular and converged", r.singular && r.converged);
  }
}

// Crossed random intercepts plus a correlated slope on simulated data: the fit
// converges to the same optimum from two starts, and the result is consistent
// with the model evaluated at the returned θ.
void check_crossed_consistency() {
  const Index n = 600;
  std::mt19937 rng(7);
  std::normal_distribution<double> nd;
  lmm::IntVector g1(n), g2(n);
  Matrix z1(n, 2), z2 = Matrix::Ones(n, 1), X(n, 2);
  Vector y(n);
  std::vector<double> a1(40), s1(40), a2(15);
  for (auto& v : a1) v = 2.0 * nd(rng);
  for (auto& v : s1) v = 0.5 * nd(rng);
  for (auto& v : a2) v = 1.0 * nd(rng);
  for (Index i = 0; i < n; ++i) {
    g1[i] = static_cast<std::int32_t>(i % 40);
    g2[i] = static_cast<std::int32_t>((i * 7 + i / 40) % 15);
    const double x = nd(rng);
    z1(i, 0) = X(i, 0) = 1.0;
    z1(i, 1) = X(i, 1) = x;
    y[i] = 1.0 + 0.3 * x + a1[g1[i]] + s1[g1[i]] * x + a2[g2[i]] + nd(rng);
  }
  // Terms given with the smaller factor first: the model puts the 40-level one first.
  const std::vector<lmm::TermData> terms{
      {Eigen::Map<const lmm::IntVector>(g2.data(), n), Eigen::Map<const Matrix>(z2.data(), n, 1), 15,
       lmm::Covariance::Unstructured},
      {Eigen::Map<const lmm::IntVector>(g1.data(), n), Eigen::Map<const Matrix>(z1.data(), n, 2), 40,
       lmm::Covariance::Unstructured}};
  lmm::Model model(terms, X, y);
  const lmm::FitResult r = lmm::fit(model);
  check("crossed: model order", r.order.size() == 2 && r.order[0] == 1 && r.order[1] == 0);
  check("crossed: b shapes", r.b[0].rows() == 40 && r.b[0].cols() == 2 && r.b[1].rows() == 15 && r.b[1].cols() == 1);
  check("crossed: converged", r.converged && r.max_projected_gradient <= 1e-6);
  std::printf("crossed: %s, %ld evaluations\n", r.message.c_str(), static_cast<long>(r.evaluations));

  lmm::FitOptions o;
  o.theta_start = Vector::Constant(4, 0.5);
  o.theta_start[1] = -0.3;
  const lmm::FitResult r2 = lmm::fit(terms, X, y, o);
  check_close("crossed: same criterion from another start", r2.criterion, r.criterion, 1e-10);
  for (Index i = 0; i < 4; ++i)
    check_close("crossed: same theta[" + std::to_string(i) + "] from another start", r2.theta[i], r.theta[i], 1e-5);

  check("crossed: model left at the optimum", model.theta() == r.theta);
  check_close("crossed: criterion", model.objective(true), r.criterion, 1e-14);
  check_close("crossed: loglik", r.loglik, -0.5 * r.criterion, 1e-14);
  check_close("crossed: AIC", r.aic, r.criterion + 2.0 * 7, 1e-14);
  check_close("crossed: BIC", r.bic, r.criterion + std::log(600.0) * 7, 1e-14);
  check_close("crossed: lambda", r.lambda[0](1, 0), r.theta[1], 1e-14);
  check_close("crossed: covariance", r.covariance[1](0, 0), r.sigma * r.sigma * r.theta[3] * r.theta[3], 1e-12);
  check_close("crossed: se", r.se_beta[1], std::sqrt(r.vcov_beta(1, 1)), 1e-14);
  Vector u, beta;
  model.solve(u, beta);
  const Vector b = model.b(u);
  check_close("crossed: b of term 0", r.b[0](3, 1), b[3 * 2 + 1], 1e-14);
  check_close("crossed: b of term 1", r.b[1](5, 0), b[80 + 5], 1e-14);

  // What the model keeps at its θ̃ (solution, L_X, λ gradients) serves after a
  // gradient used the factor's storage, and the same θ̃ set again keeps it:
  // the values of a fresh model at that θ̃, in either order of the calls.
  const Vector w = model.working_theta(), wf = w * 1.01;
  lmm::Model fresh(terms, X, y);
  fresh.set_working_theta(wf);
  const Vector gf = fresh.working_gradient(true);
  Vector uf, betaf;
  fresh.solve(uf, betaf);
  const Matrix vf = fresh.vcov_beta(true);
  model.set_working_theta(wf);
  const Vector gw = model.working_gradient(true);
  model.set_working_theta(wf);
  check_close("kept: criterion", model.objective(true), fresh.objective(true), 1e-14);
  check_close("kept: gradient", (model.working_gradient(true) - gf).norm(), 0.0, 1e-12 * gf.norm());
  check_close("kept: gradient twice", (gw - gf).norm(), 0.0, 1e-12 * gf.norm());
  check_close("kept: user gradient", (model.gradient(true) - fresh.gradient(true)).norm(), 0.0, 1e-12 * gf.norm());
  check_close("kept: ML gradient", (model.gradient(false) - fresh.gradient(false)).norm(), 0.0, 1e-12 * gf.norm());
  model.solve(u, beta);
  check_close("kept: u", (u - uf).norm(), 0.0, 1e-12 * uf.norm());
  check_close("kept: beta", (beta - betaf).norm(), 0.0, 1e-12 * betaf.norm());
  check_close("kept: vcov", (model.vcov_beta(true) - vf).norm(), 0.0, 1e-12 * vf.norm());
  model.set_working_theta(w);
  check_close("kept: criterion back at the optimum", model.objective(true), r.criterion, 1e-14);
}

// lme4's term order (mkReTrms): terms already in non-increasing order of
// levels keep it, ties included; otherwise decreasing levels with ties in
// reverse input order, R's rev(order(nl)).
void check_term_order() {
  const Index n = 240;
  std::mt19937 rng(11);
  std::normal_distribution<double> nd;
  auto codes = [&](Index nlevels, Index stride) {
    lmm::IntVector c(n);
    for (Index i = 0; i < n; ++i) c[i] = static_cast<std::int32_t>((i * stride + i / nlevels) % nlevels);
    return c;
  };
  const lmm::IntVector g10 = codes(10, 1), a12 = codes(12, 5), b12 = codes(12, 7);
  const Matrix one = Matrix::Ones(n, 1);
  Vector y(n);
  for (Index i = 0; i < n; ++i) y[i] = nd(rng) + 0.5 * g10[i] - 0.3 * a12[i] + 0.2 * b12[i];
  auto term = [&](const lmm::IntVector& c, Index nlevels) {
    return lmm::TermData{Eigen::Map<const lmm::IntVector>(c.data(), n), Eigen::Map<const Matrix>(one.data(), n, 1),
                         nlevels, lmm::Covariance::Unstructured};
  };
  // (1 | g10) + (1 | a12) + (1 | b12): lme4 orders b12, a12, g10.
  const lmm::FitResult up = lmm::fit({term(g10, 10), term(a12, 12), term(b12, 12)}, one, y);
  check("order: ties after an increase reversed",
        up.order.size() == 3 && up.order[0] == 2 && up.order[1] == 1 && up.order[2] == 0);
  // (1 | a12) + (1 | b12): equal levels, already non-increasing: kept, as lme4.
  const lmm::FitResult tie = lmm::fit({term(a12, 12), term(b12, 12)}, one, y);
  check("order: equal levels kept", tie.order.size() == 2 && tie.order[0] == 0 && tie.order[1] == 1);
  // (1 | b12) + (1 | a12) + (1 | g10): non-increasing: kept.
  const lmm::FitResult down = lmm::fit({term(b12, 12), term(a12, 12), term(g10, 10)}, one, y);
  check("order: non-increasing kept",
        down.order.size() == 3 && down.order[0] == 0 && down.order[1] == 1 && down.order[2] == 2);
  // The same model whichever way it is written: θ per factor agrees.
  check_close("order: same criterion", down.criterion, up.criterion, 1e-10);
  for (Index k = 0; k < 3; ++k) check_close("order: same theta", down.theta[k], up.theta[k], 1e-5);
}

// θ = scale · φ: the optimizer's scaling changes the path, not the optimum.
void check_theta_scale() {
  const Sleepstudy d;
  const lmm::FitResult r = lmm::fit(d.terms(), d.X, d.y);
  lmm::FitOptions o;
  o.theta_scale = Vector(3);
  o.theta_scale << 1.0, 0.1, 0.1;
  const lmm::FitResult s = lmm::fit(d.terms(), d.X, d.y, o);
  check_close("theta_scale: criterion", s.criterion, r.criterion, 1e-10);
  for (Index i = 0; i < 3; ++i) check_abs("theta_scale: theta", s.theta[i], r.theta[i], 1e-5);
  check("theta_scale: converged", s.converged);
  o.theta_scale[1] = 0.0;
  check_throws<std::invalid_argument>("theta_scale 0", [&] { lmm::fit(d.terms(), d.X, d.y, o); }, "theta_scale[1]");
}

void check_exceptions() {
  const Sleepstudy d;
  using IA = std::invalid_argument;
  lmm::FitOptions o;
  o.theta_start = Vector::Ones(2);
  check_throws<IA>("theta_start of the wrong length", [&] { lmm::fit(d.terms(), d.X, d.y, o); }, "length 2");
  o.theta_start = Vector::Ones(3);
  o.theta_start[2] = -0.5;
  check_throws<IA>("theta_start below its bound", [&] { lmm::fit(d.terms(), d.X, d.y, o); }, "lower bound");
  o.theta_start[2] = std::nan("");
  check_throws<IA>("non-finite theta_start", [&] { lmm::fit(d.terms(), d.X, d.y, o); }, "not finite");
  lmm::FitOptions bad;
  bad.max_iterations = 0;
  check_throws<IA>("max_iterations 0", [&] { lmm::fit(d.terms(), d.X, d.y, bad); }, "max_iterations");
  bad = {};
  bad.gradient_tolerance = -1.0;
  check_throws<IA>("negative gradient_tolerance", [&] { lmm::fit(d.terms(), d.X, d.y, bad); }, "gradient_tolerance");

  lmm::IntVector codes = d.subject;
  codes[17] = 18;
  const std::vector<lmm::TermData> bad_codes{{Eigen::Map<const lmm::IntVector>(codes.data(), 180),
                                              Eigen::Map<const Matrix>(d.z.data(), 180, 2), 18,
                                              lmm::Covariance::Unstructured}};
  check_throws<IA>("level code out of range", [&] { lmm::fit(bad_codes, d.X, d.y); }, "row 17");
  codes[17] = -1;
  check_throws<IA>("negative level code", [&] { lmm::fit(bad_codes, d.X, d.y); }, "level code -1");

  const std::vector<lmm::TermData> short_codes{{Eigen::Map<const lmm::IntVector>(d.subject.data(), 179),
                                                Eigen::Map<const Matrix>(d.z.data(), 180, 2), 18,
                                                lmm::Covariance::Unstructured}};
  check_throws<IA>("codes shorter than y", [&] { lmm::fit(short_codes, d.X, d.y); }, "179 level codes");
  check_throws<IA>("X rows differ from y", [&] { lmm::fit(d.terms(), d.X.topRows(170), d.y); }, "170 rows");
  check_throws<IA>("no terms", [&] { lmm::fit({}, d.X, d.y); }, "at least one random-effects term");

  Vector y = d.y;
  y[42] = std::nan("");
  check_throws<IA>("NaN in y", [&] { lmm::fit(d.terms(), d.X, y); }, "y has a non-finite value (nan) at row 42");
  y[42] = INFINITY;
  check_throws<IA>("inf in y", [&] { lmm::fit(d.terms(), d.X, y); }, "at row 42");
  Matrix X = d.X;
  X(7, 1) = -INFINITY;
  check_throws<IA>("inf in X", [&] { lmm::fit(d.terms(), X, d.y); }, "X has a non-finite value (-inf) at row 7, column 1");
  y = d.y;
  y[3] = std::nan("");
  check_throws<IA>("NaN in a model's y", [&] { lmm::Model nan_model(d.terms(), d.X, y); }, "y has non-finite values");

  Matrix rank_deficient(180, 3);
  rank_deficient << d.X, d.X.col(1) * 2.0;
  check_throws<std::runtime_error>("rank-deficient X", [&] { lmm::fit(d.terms(), rank_deficient, d.y); },
                                   "full column rank");
}

// lme4's θ of the columns [1, Days + c] for λ of [1, Days]: chol(A⁻¹ λλ' A⁻ᵀ),
// A = [[1, c], [0, 1]], in closed form (the last entry from the determinant).
Vector shifted_theta(const Vector& theta, double c) {
  const double s00 = theta[0] * theta[0], s01 = theta[0] * theta[1], s11 = theta[1] * theta[1] + theta[2] * theta[2];
  const double l11 = std::sqrt(s00 - 2 * c * s01 + c * c * s11);
  Vector out(3);
  out << l11, (s01 - c * s11) / l11, theta[0] * theta[2] / l11;
  return out;
}

// Days + c in z and X (X centred by the model's shift, as the Python layer
// does): the core fits in its working coordinates (the term's columns centred
// against the intercept), so every offset gives the unshifted optimum; before,
// c = 1e5 stopped 43 units higher, flagged converged.
void check_large_offsets() {
  const Sleepstudy d;
  const lmm::FitResult r0 = lmm::fit(d.terms(), d.X, d.y);
  for (double c : {1e2, 1e5, 1e8}) {
    Sleepstudy s;
    s.z.col(1).array() += c;
    s.X.col(1).array() += c;
    lmm::Shift shift;
    shift.center = Vector::Zero(2);
    shift.center[1] = s.X.col(1).mean();
    lmm::Model model(s.terms(), s.X, s.y, {}, shift);
    const lmm::TermTransform& t = model.transform(0);
    const std::string w = "offset " + std::to_string(c) + ": ";
    check(w + "the term is centred", t.centred() && std::abs(t.center[1] - (c + 4.5)) <= 1e-9 * c);
    const lmm::FitResult r = lmm::fit(model);
    check_close(w + "criterion", r.criterion, r0.criterion, 1e-10);
    check(w + "converged", r.converged && !r.singular);
    const Vector want = shifted_theta(r0.theta, c);
    for (Index i = 0; i < 3; ++i) check_close(w + "theta[" + std::to_string(i) + "]", r.theta[i], want[i], kEstimateTol);
    check_close(w + "beta Days", r.beta[1], r0.beta[1], kEstimateTol);
    check_close(w + "sigma", r.sigma, r0.sigma, kEstimateTol);
    check_close(w + "VarCorr Days", r.covariance[0](1, 1), r0.covariance[0](1, 1), kEstimateTol);
    for (Index j = 0; j < 18; ++j)
      check_abs(w + "b Days", r.b[0](j, 1), r0.b[0](j, 1), kConditionalModeTol);
    // θ ↦ θ̃ ↦ θ keeps every digit of the caller's θ (double-double LQ), the
    // last entry (of order 1/c) included.
    const Vector back = model.to_user(model.to_working(want));
    for (Index i = 0; i < 3; ++i) check_close(w + "theta round trip", back[i], want[i], 1e-13);
    // The criterion at the mapped θ (given, not fitted) is the unshifted optimum's.
    model.set_theta(want);
    check_close(w + "criterion at the mapped theta", model.objective(true), r0.criterion, 1e-10);
  }
  // The gradient in the caller's θ (the chain rule through θ ↦ θ̃) against
  // central differences, off the optimum, at an offset the user's θ resolves.
  Sleepstudy s;
  s.z.col(1).array() += 100.0;
  lmm::Model model(s.terms(), s.X, s.y);
  Vector theta(3);
  theta << 1.1, 0.05, 0.3;
  theta = shifted_theta(theta, 100.0);
  model.set_theta(theta);
  const Vector g = model.gradient(true);
  for (Index i = 0; i < 3; ++i) {
    const double h = 1e-6 * std::abs(theta[i]);
    Vector tp = theta, tm = theta;
    tp[i] += h;
    tm[i] -= h;
    model.set_theta(tp);
    const double fp = model.objective(true);
    model.set_theta(tm);
    const double fm = model.objective(true);
    check_close("offset gradient[" + std::to_string(i) + "] vs central differences", g[i], (fp - fm) / (2 * h), 1e-5);
  }
}

}  // namespace

int main() {
  check_sleepstudy_reml();
  check_sleepstudy_ml_and_diagonal();
  check_restart_off_boundary();
  check_singular_dyestuff2();
  check_crossed_consistency();
  check_term_order();
  check_theta_scale();
  check_exceptions();
  check_large_offsets();
  if (failures == 0) std::printf("all fit checks passed\n");
  return failures == 0 ? 0 : 1;
}
