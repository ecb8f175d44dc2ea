// L-BFGS-B: minimization of a smooth function subject to box bounds
// l ≤ x ≤ u (entries of l may be -inf, of u +inf), by the limited-memory BFGS
// method of Byrd, Lu, Nocedal and Zhu (1995) with the subspace step of
// Morales and Nocedal (2011): at each iteration the generalized Cauchy point
// of the quadratic model along the projected steepest-descent path, then a
// minimization of the model over the variables free there, then a line
// search for the strong Wolfe conditions (Moré and Thuente 1994) along the
// feasible segment to that point.
//
// lmm::fit minimizes the profiled criterion over θ with it; it is generic
// (any f and gradient) so that it can be tested on analytic problems.
#pragma once

#include <functional>
#include <string>

#include "types.hpp"

namespace lmm {

/// Settings and stopping rules of minimize_lbfgsb.
struct LbfgsbOptions {
  /// Correction pairs (s, y) kept by the limited-memory BFGS matrix.
  Index memory = 40;
  /// Stop when the largest entry of the projected gradient x − P(x − g) is at
  /// most max(gradient_tolerance, gradient_tolerance_rel · |f0|), f0 = f(x0).
  double gradient_tolerance = 1e-7;
  double gradient_tolerance_rel = 0.0;
  /// Stop when an iteration lowers f by at most this, relative to
  /// max(|f_old|, |f_new|, 1) (L-BFGS-B's factr · machine epsilon); 0 disables the rule.
  double relative_decrease_tolerance = 0.0;
  /// The rounding floor: once the projected gradient at the best point is at
  /// most floor_gradient_rel · max(1, |f|), a run of floor_stalls +
  /// n / floor_stalls_per_variable evaluations in a row that do not lower the best f by
  /// more than floor_rel · |f| ends the run at the best point (the line search would
  /// otherwise spend its evaluations on rounding noise). floor_stalls = 0 disables it.
  double floor_rel = 1e-13;
  double floor_gradient_rel = 1e-7;
  Index floor_stalls = 3;
  Index floor_stalls_per_variable = 4;
  /// Largest norm of the first iteration's step, which has no curvature to go
  /// by (L-BFGS-B's rule: 1).
  double first_step = 1.0;
  /// Largest number of iterations and of evaluations of f (the start's excluded).
  Index max_iterations = 1000;
  Index max_evaluations = 10000;
};

/// Why minimize_lbfgsb stopped.
enum class LbfgsbStop {
  Gradient,          ///< projected gradient within tolerance
  RelativeDecrease,  ///< an iteration lowered f by less than relative_decrease_tolerance
  Floor,             ///< no progress beyond the rounding floor
  LineSearch,        ///< no acceptable step even along the steepest-descent path
  Iterations,        ///< max_iterations reached
  Evaluations,       ///< max_evaluations reached
};

/// A sentence for the stop reason (as in FitResult::message).
std::string describe(LbfgsbStop stop);

/// Outcome of minimize_lbfgsb.
struct LbfgsbResult {
  Vector x;                  ///< n, the point found (feasible; see minimize_lbfgsb)
  double f = 0;              ///< f(x)
  Vector g;                  ///< n, gradient at x
  LbfgsbStop stop = LbfgsbStop::Gradient;
  Index iterations = 0;      ///< iterations done
  Index evaluations = 0;     ///< evaluations of f (and its gradient) done
};

/// f and gradient at x (n): returns f(x) and sets g (n). A non-finite value
/// (or gradient) means x is outside f's domain; the line search backs off.
using LbfgsbFunction = std::function<double(const Vector& x, Vector& g)>;

/// Minimize fg over the box [lower, upper] (n each, lower ≤ upper) from x0
/// (n, feasible), given f0 = f(x0) and g0 (n) its gradient, both finite.
/// Every call of fg counts as an evaluation. The point returned is the last
/// iterate: on the gradient test always, otherwise unless the best point
/// evaluated is lower by more than floor_rel (relative); at the rounding floor
/// the best point.
LbfgsbResult minimize_lbfgsb(const LbfgsbFunction& fg, const Vector& x0, double f0, const Vector& g0,
                             const Vector& lower, const Vector& upper, const LbfgsbOptions& options = {});

/// x − P(x − g) (n): the gradient with the part that pushes against an active
/// bound removed; its largest |entry| measures first-order optimality.
Vector projected_gradient(const Vector& x, const Vector& g, const Vector& lower, const Vector& upper);

}  // namespace lmm
