// lmm::minimize_lbfgsb on analytic problems: Rosenbrock, bounded convex
// quadratics checked by their optimality conditions (dense KKT), one
// variable with and without a finite upper bound, starts on the bounds,
// everything held at its bound, a function that is +inf past its domain,
// and the evaluation limit.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>

#include "check.hpp"
#include "lmm/lbfgsb.hpp"

namespace {

using lmm_test::check;
using lmm_test::check_abs;
using lmm_test::failures;

using lmm::Index;
using lmm::Matrix;
using lmm::Vector;

constexpr double kInf = std::numeric_limits<double>::infinity();
// Solutions are checked to this (absolute, in x) and the projected gradient to kGradientTol.
constexpr double kSolutionTol = 1e-6;
constexpr double kGradientTol = 1e-7;

lmm::LbfgsbResult run(const lmm::LbfgsbFunction& fg, const Vector& x0, const Vector& lower, const Vector& upper,
                      const lmm::LbfgsbOptions& o = {}) {
  Vector g0;
  const double f0 = fg(x0, g0);
  return lmm::minimize_lbfgsb(fg, x0, f0, g0, lower, upper, o);
}

double max_projected_gradient(const lmm::LbfgsbResult& r, const Vector& lower, const Vector& upper) {
  return lmm::projected_gradient(r.x, r.g, lower, upper).cwiseAbs().maxCoeff();
}

void check_rosenbrock() {
  const lmm::LbfgsbFunction fg = [](const Vector& x, Vector& g) {
    g.resize(2);
    g[0] = -400.0 * x[0] * (x[1] - x[0] * x[0]) - 2.0 * (1.0 - x[0]);
    g[1] = 200.0 * (x[1] - x[0] * x[0]);
    return 100.0 * std::pow(x[1] - x[0] * x[0], 2) + std::pow(1.0 - x[0], 2);
  };
  const Vector lower = Vector::Constant(2, -kInf), upper = Vector::Constant(2, kInf);
  Vector x0(2);
  x0 << -1.2, 1.0;
  lmm::LbfgsbOptions o;
  o.gradient_tolerance = 1e-9;
  const lmm::LbfgsbResult r = run(fg, x0, lower, upper, o);
  check("rosenbrock: stops on the gradient", r.stop == lmm::LbfgsbStop::Gradient);
  check_abs("rosenbrock: x[0]", r.x[0], 1.0, kSolutionTol);
  check_abs("rosenbrock: x[1]", r.x[1], 1.0, kSolutionTol);
  check("rosenbrock: evaluations", r.evaluations > 0 && r.evaluations < 100);
  std::printf("rosenbrock: %ld iterations, %ld evaluations\n", static_cast<long>(r.iterations),
              static_cast<long>(r.evaluations));

  // With the optimum cut off by x[0] ≤ 0.5: the minimizer of the second
  // term on that edge, x = (0.5, 0.25).
  Vector up = upper;
  up[0] = 0.5;
  const lmm::LbfgsbResult b = run(fg, x0, lower, up, o);
  check_abs("rosenbrock bounded: x[0] on its bound", b.x[0], 0.5, 0.0);
  check_abs("rosenbrock bounded: x[1]", b.x[1], 0.25, kSolutionTol);
  check("rosenbrock bounded: projected gradient", max_projected_gradient(b, lower, up) <= 1e-9);
}

// ½ x'Ax − b'x over a box, A = D + V V' (well conditioned, dense): the
// answer satisfies the KKT conditions, checked entry by entry.
void check_bounded_quadratic(unsigned seed, Index n, Index memory) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  Matrix V(n, 3);
  for (Index j = 0; j < 3; ++j)
    for (Index i = 0; i < n; ++i) V(i, j) = nd(rng);
  Matrix A = V * V.transpose();
  Vector b(n), lower(n), upper(n);
  for (Index i = 0; i < n; ++i) {
    A(i, i) += 1.0 + 0.5 * i;
    b[i] = 3.0 * nd(rng);
    // Mixed bounds: [0, ∞), (−∞, ∞), [−1, 1], (−∞, 0.2].
    lower[i] = i % 4 == 0 ? 0.0 : i % 4 == 2 ? -1.0 : -kInf;
    upper[i] = i % 4 == 2 ? 1.0 : i % 4 == 3 ? 0.2 : kInf;
  }
  const lmm::LbfgsbFunction fg = [&](const Vector& x, Vector& g) {
    g = A * x - b;
    return 0.5 * x.dot(A * x) - b.dot(x);
  };
  const Vector x0 = lower.cwiseMax(Vector::Zero(n)).cwiseMin(upper);
  lmm::LbfgsbOptions o;
  o.memory = memory;
  // Beyond f's rounding floor: the approximate Wolfe steps go on on the gradient alone.
  o.gradient_tolerance = 1e-10;
  o.floor_stalls = 0;
  const lmm::LbfgsbResult r = run(fg, x0, lower, upper, o);
  const std::string t = "quadratic seed " + std::to_string(seed) + " n " + std::to_string(n) + " memory " +
                        std::to_string(memory);
  check(t + ": feasible", (r.x.array() >= lower.array()).all() && (r.x.array() <= upper.array()).all());
  check(t + ": converged", r.stop == lmm::LbfgsbStop::Gradient);
  const Vector g = A * r.x - b;
  bool kkt = true;
  for (Index i = 0; i < n; ++i) {
    const bool at_lower = r.x[i] == lower[i], at_upper = r.x[i] == upper[i];
    kkt = kkt && (at_lower ? g[i] >= -kGradientTol : at_upper ? g[i] <= kGradientTol : std::abs(g[i]) <= kGradientTol);
  }
  check(t + ": KKT conditions", kkt);
  if (n > 4) check(t + ": some bounds active", (r.x.array() == lower.array()).any() || (r.x.array() == upper.array()).any());
}

void check_one_variable() {
  // (x − 2)² on [0, ∞): interior minimum; on [0, 1]: at the upper bound.
  const lmm::LbfgsbFunction fg = [](const Vector& x, Vector& g) {
    g = Vector::Constant(1, 2.0 * (x[0] - 2.0));
    return (x[0] - 2.0) * (x[0] - 2.0);
  };
  const Vector lower = Vector::Zero(1), x0 = Vector::Constant(1, 0.5);
  const lmm::LbfgsbResult r = run(fg, x0, lower, Vector::Constant(1, kInf));
  check_abs("one variable: interior", r.x[0], 2.0, kSolutionTol);
  const lmm::LbfgsbResult u = run(fg, x0, lower, Vector::Constant(1, 1.0));
  check("one variable: at the upper bound", u.x[0] == 1.0 && u.stop == lmm::LbfgsbStop::Gradient);
  check("one variable: few evaluations at the bound", u.evaluations <= 2);
}

void check_starts_on_bounds() {
  // Σ (x_i + 1)² + x_0 x_1 on [0, ∞)²: the minimum is the corner 0, where
  // the start already is (no evaluation needed) ...
  const lmm::LbfgsbFunction corner = [](const Vector& x, Vector& g) {
    g = 2.0 * (x.array() + 1.0).matrix();
    g[0] += x[1], g[1] += x[0];
    return (x.array() + 1.0).square().sum() + x[0] * x[1];
  };
  const Vector lower = Vector::Zero(2), upper = Vector::Constant(2, kInf);
  const lmm::LbfgsbResult stuck = run(corner, Vector::Zero(2), lower, upper);
  check("all at the bound: no evaluation", stuck.evaluations == 0 && stuck.x == Vector::Zero(2));
  // ... and from inside it is reached exactly.
  const lmm::LbfgsbResult back = run(corner, Vector::Constant(2, 3.0), lower, upper);
  check("all at the bound: reached from inside", back.x == Vector::Zero(2));

  // x_0 starts on its bound and must leave it: (x_0 − 1)² + (x_1 − x_0)² on [0, ∞) × ℝ.
  const lmm::LbfgsbFunction leave = [](const Vector& x, Vector& g) {
    g.resize(2);
    g[0] = 2.0 * (x[0] - 1.0) - 2.0 * (x[1] - x[0]);
    g[1] = 2.0 * (x[1] - x[0]);
    return (x[0] - 1.0) * (x[0] - 1.0) + (x[1] - x[0]) * (x[1] - x[0]);
  };
  Vector lo(2);
  lo << 0.0, -kInf;
  const lmm::LbfgsbResult r = run(leave, Vector::Zero(2), lo, upper);
  check_abs("leaves its bound: x[0]", r.x[0], 1.0, kSolutionTol);
  check_abs("leaves its bound: x[1]", r.x[1], 1.0, kSolutionTol);
}

void check_infinite_trial() {
  // −log(1 − x) − 2x: defined for x < 1 (+inf beyond), minimum at x = 1/2.
  // The first step (to the Cauchy point x − g = 1) lands outside the domain.
  Index outside = 0;
  const lmm::LbfgsbFunction fg = [&](const Vector& x, Vector& g) {
    if (!(x[0] < 1.0)) {
      ++outside;
      return kInf;
    }
    g = Vector::Constant(1, 1.0 / (1.0 - x[0]) - 2.0);
    return -std::log(1.0 - x[0]) - 2.0 * x[0];
  };
  const lmm::LbfgsbResult r = run(fg, Vector::Zero(1), Vector::Constant(1, -kInf), Vector::Constant(1, kInf));
  check("infinite trial: one outside the domain", outside >= 1);
  check_abs("infinite trial: minimum", r.x[0], 0.5, kSolutionTol);
  check("infinite trial: finite result", std::isfinite(r.f));
}

void check_evaluation_limit() {
  const lmm::LbfgsbFunction fg = [](const Vector& x, Vector& g) {
    g.resize(2);
    g[0] = -400.0 * x[0] * (x[1] - x[0] * x[0]) - 2.0 * (1.0 - x[0]);
    g[1] = 200.0 * (x[1] - x[0] * x[0]);
    return 100.0 * std::pow(x[1] - x[0] * x[0], 2) + std::pow(1.0 - x[0], 2);
  };
  Vector x0(2);
  x0 << -1.2, 1.0;
  lmm::LbfgsbOptions o;
  o.max_evaluations = 5;
  const lmm::LbfgsbResult r = run(fg, x0, Vector::Constant(2, -kInf), Vector::Constant(2, kInf), o);
  check("evaluation limit: stop", r.stop == lmm::LbfgsbStop::Evaluations && r.evaluations == 5);
  check("evaluation limit: progress kept", r.f < 24.2);
  o.max_evaluations = 10000;
  o.max_iterations = 3;
  const lmm::LbfgsbResult it = run(fg, x0, Vector::Constant(2, -kInf), Vector::Constant(2, kInf), o);
  check("iteration limit", it.stop == lmm::LbfgsbStop::Iterations && it.iterations == 3);
}

}  // namespace

int main() {
  check_rosenbrock();
  for (unsigned seed : {1u, 2u, 3u})
    for (Index memory : {1, 5, 40}) check_bounded_quadratic(seed, 24, memory);
  check_bounded_quadratic(4, 1, 5);
  check_one_variable();
  check_starts_on_bounds();
  check_infinite_trial();
  check_evaluation_limit();
  if (failures == 0) std::printf("all lbfgsb checks passed\n");
  return failures == 0 ? 0 : 1;
}
