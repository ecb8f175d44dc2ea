#include "lmm/fit.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace lmm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Armijo (sufficient decrease) and weak Wolfe (curvature) constants.
constexpr double kArmijo = 1e-4;
constexpr double kWolfe = 0.9;
// δ of the approximate Wolfe conditions, and the relative change of the
// criterion taken as rounding.
constexpr double kApproxArmijo = 0.1;
constexpr double kRounding = 1e-11;
constexpr Index kMaxLineSearchTrials = 40;
constexpr Index kMaxFlatSteps = 10;
// Growth of a trial step that is too short (curvature condition not met, no
// upper bracket yet), and the largest fraction of the distance to a bound the
// first step (without curvature information) may cover.
constexpr double kExtrapolate = 4.0;
constexpr double kFirstStepToBound = 0.5;
// Fraction of the way to the bound of an interior entry a line search's first trial may go.
constexpr double kInterior = 0.9;
// Trial values for a diagonal entry of λ found at the boundary.
constexpr double kEdgeSteps[] = {1e-3, 1e-2, 1e-1};

std::string format_double(double x) {
  std::ostringstream s;
  s.precision(3);
  s << x;
  return s.str();
}

void check_options(const FitOptions& o, const Vector& lower, const Vector& upper) {
  auto positive = [](double v) { return std::isfinite(v) && v > 0.0; };
  if (!positive(o.gradient_tolerance))
    throw std::invalid_argument("gradient_tolerance must be positive and finite, got " +
                                format_double(o.gradient_tolerance));
  if (!(o.gradient_tolerance_rel >= 0.0 && std::isfinite(o.gradient_tolerance_rel)))
    throw std::invalid_argument("gradient_tolerance_rel must be non-negative and finite, got " +
                                format_double(o.gradient_tolerance_rel));
  if (!(o.convergence_tolerance_rel >= 0.0 && std::isfinite(o.convergence_tolerance_rel)))
    throw std::invalid_argument("convergence_tolerance_rel must be non-negative and finite, got " +
                                format_double(o.convergence_tolerance_rel));
  if (!positive(o.convergence_tolerance))
    throw std::invalid_argument("convergence_tolerance must be positive and finite, got " +
                                format_double(o.convergence_tolerance));
  if (o.max_iterations < 1)
    throw std::invalid_argument("max_iterations must be at least 1, got " + std::to_string(o.max_iterations));
  if (o.max_evaluations < 1)
    throw std::invalid_argument("max_evaluations must be at least 1, got " + std::to_string(o.max_evaluations));
  if (o.memory < 1) throw std::invalid_argument("memory must be at least 1, got " + std::to_string(o.memory));
  if (o.max_restarts < 0)
    throw std::invalid_argument("max_restarts must be non-negative, got " + std::to_string(o.max_restarts));
  if (o.theta_scale.size() != 0) {
    if (o.theta_scale.size() != lower.size())
      throw std::invalid_argument("theta_scale has length " + std::to_string(o.theta_scale.size()) +
                                  ", the model needs " + std::to_string(lower.size()));
    for (Index i = 0; i < o.theta_scale.size(); ++i)
      if (!positive(o.theta_scale[i]))
        throw std::invalid_argument("theta_scale[" + std::to_string(i) + "] must be positive and finite");
  }
  const Vector& t = o.theta_start;
  if (t.size() == 0) return;
  if (t.size() != lower.size())
    throw std::invalid_argument("theta_start has length " + std::to_string(t.size()) + ", the model needs " +
                                std::to_string(lower.size()));
  for (Index i = 0; i < t.size(); ++i) {
    if (!std::isfinite(t[i]))
      throw std::invalid_argument("theta_start[" + std::to_string(i) + "] is not finite");
    if (t[i] < lower[i])
      throw std::invalid_argument("theta_start[" + std::to_string(i) + "] = " + format_double(t[i]) +
                                  " is below its lower bound " + format_double(lower[i]) +
                                  (lower[i] == 0.0 ? " (a diagonal entry of lambda)" : ""));
    if (t[i] > upper[i])
      throw std::invalid_argument("theta_start[" + std::to_string(i) + "] = " + format_double(t[i]) +
                                  " is above its upper bound " + format_double(upper[i]));
  }
}

void check_crossprod(const Crossprod& A) {
  bool finite = A.XyXy.allFinite();
  for (const auto& D : A.ZZ) finite = finite && D.data.allFinite();
  for (const auto& M : A.XyZ) finite = finite && M.allFinite();
  for (const auto& row : A.ZZ_off)
    for (const auto& S : row) finite = finite && S.data.allFinite();
  if (!finite)
    throw std::invalid_argument(
        "the crossproducts of the data are not finite: X, y or a term's z has non-finite values");
}

void check_finite_rows(const std::string& what, Eigen::Ref<const Matrix> M) {
  for (Index j = 0; j < M.cols(); ++j)
    for (Index i = 0; i < M.rows(); ++i)
      if (!std::isfinite(M(i, j)))
        throw std::invalid_argument(what + " has a non-finite value (" + format_double(M(i, j)) + ") at row " +
                                    std::to_string(i) + (M.cols() > 1 ? ", column " + std::to_string(j) : ""));
}

// The box of θ (in the optimizer's scaled coordinates).
struct Bounds {
  Vector lower, upper;
};

// x − P(x − g): the gradient with the part that pushes against an active
// bound removed; its largest entry measures first-order optimality.
Vector projected_gradient(const Vector& x, const Vector& g, const Bounds& box) {
  Vector pg(x.size());
  for (Index i = 0; i < x.size(); ++i) pg[i] = x[i] - std::clamp(x[i] - g[i], box.lower[i], box.upper[i]);
  return pg;
}

Vector project(const Vector& x, const Bounds& box) { return x.cwiseMax(box.lower).cwiseMin(box.upper); }

// The criterion as the optimizer sees it: counted evaluations, failures of
// the factorization (only possible far from the start, e.g. overflow after a
// huge trial step) reported as +inf so that the line search backs off.
// The optimizer works on φ = θ / scale (entrywise), which is θ itself unless
// a term's columns have extreme scales (FitOptions::theta_scale).
class Objective {
 public:
  Objective(Model& model, const FitOptions& o)
      : model_(model),
        reml_(o.reml),
        scale_(o.theta_scale.size() ? o.theta_scale : Vector::Ones(model.ntheta())),
        trace_(o.trace) {}

  Vector theta(const Vector& phi) const { return phi.cwiseProduct(scale_); }
  Vector phi(const Vector& theta) const { return theta.cwiseQuotient(scale_); }

  double value(const Vector& phi) {
    ++evaluations;
    if (!phi.allFinite()) return kInf;
    try {
      model_.set_theta(theta(phi));
    } catch (const std::runtime_error&) {
      return kInf;
    }
    const double f = model_.objective(reml_);
    if (trace_) trace_(evaluations, f);
    return std::isfinite(f) ? f : kInf;
  }

  // Gradient in φ at the φ of the last successful value() call.
  Vector gradient() {
    ++gradient_evaluations;
    return model_.gradient(reml_).cwiseProduct(scale_);
  }

  Index evaluations = 0;
  Index gradient_evaluations = 0;

 private:
  Model& model_;
  bool reml_;
  Vector scale_;
  std::function<void(Index, double)> trace_;
};

// Largest projected gradient entry accepted, at criterion value f.
double tolerance(double absolute, double relative, double f) {
  return std::max(absolute, relative * std::abs(f));
}

// Limited-memory BFGS approximation H of the inverse Hessian.
class LbfgsMemory {
 public:
  explicit LbfgsMemory(Index m) : m_(m) {}

  bool empty() const { return s_.empty(); }
  void clear() {
    s_.clear();
    y_.clear();
    rho_.clear();
  }

  // Keep the pair only when the curvature s'y is safely positive; with
  // projected steps and a nonconvex criterion it need not be.
  void update(const Vector& s, const Vector& y) {
    const double sy = s.dot(y);
    if (!(sy > 1e-10 * y.squaredNorm())) return;
    if (static_cast<Index>(s_.size()) == m_) {
      s_.pop_front();
      y_.pop_front();
      rho_.pop_front();
    }
    s_.push_back(s);
    y_.push_back(y);
    rho_.push_back(1.0 / sy);
    gamma_ = sy / y.squaredNorm();
  }

  // H v by the two-loop recursion, H0 = γ I with γ = s'y / y'y of the newest pair.
  Vector apply(Vector v) const {
    const std::size_t k = s_.size();
    std::vector<double> alpha(k);
    for (std::size_t i = k; i-- > 0;) {
      alpha[i] = rho_[i] * s_[i].dot(v);
      v.noalias() -= alpha[i] * y_[i];
    }
    v *= gamma();
    for (std::size_t i = 0; i < k; ++i) {
      const double beta = rho_[i] * y_[i].dot(v);
      v.noalias() += (alpha[i] - beta) * s_[i];
    }
    return v;
  }

  double gamma() const { return s_.empty() ? 1.0 : gamma_; }

 private:
  Index m_;
  std::deque<Vector> s_, y_;
  std::deque<double> rho_;
  double gamma_ = 1.0;
};

struct Point {
  Vector x;
  double f = kInf;
  Vector g;
};

enum class Stop { Gradient, LineSearch, Iterations, Evaluations };

std::string describe(Stop s) {
  switch (s) {
    case Stop::Gradient: return "projected gradient below gradient_tolerance";
    case Stop::LineSearch: return "no further decrease along the search direction (criterion flat to rounding)";
    case Stop::Iterations: return "max_iterations reached";
    case Stop::Evaluations: return "max_evaluations reached";
  }
  return "";
}

// Search direction of the projected quasi-Newton method (Bertsekas' two-metric
// projection). Entries near their lower bound with a gradient pushing into it
// (the ε-active set) take a scaled steepest-descent step, which the projection
// clips at the bound; the others take the L-BFGS step restricted to them.
// g'd = −(P g)'H(P g) − γ|g_active|² < 0, so d is a descent direction.
Vector search_direction(const Point& pt, const Bounds& box, const LbfgsMemory& H) {
  const Index n = pt.x.size();
  const double eps = std::min(1e-3, projected_gradient(pt.x, pt.g, box).norm());
  std::vector<bool> active(static_cast<std::size_t>(n));
  Vector v = pt.g;
  for (Index i = 0; i < n; ++i) {
    active[i] = (std::isfinite(box.lower[i]) && pt.x[i] <= box.lower[i] + eps && pt.g[i] > 0.0) ||
                (std::isfinite(box.upper[i]) && pt.x[i] >= box.upper[i] - eps && pt.g[i] < 0.0);
    if (active[i]) v[i] = 0.0;
  }
  Vector d = -H.apply(v);
  for (Index i = 0; i < n; ++i)
    if (active[i]) d[i] = -H.gamma() * pt.g[i];
  return d;
}

// Line search along the projected path x(α) = P(x + α d). While the path
// stays feasible, bisection for the weak Wolfe conditions; once it bends at a
// bound, sufficient decrease g'(x(α) − x) alone. Near the optimum the
// criterion is flat to rounding while its exact gradient is still
// informative, so a trial whose criterion is within rounding of f(0) is also
// accepted under Hager and Zhang's approximate Wolfe conditions
// σ φ'(0) ≤ φ'(α) ≤ (2δ − 1) φ'(0). Returns false when no acceptable point
// is found.
bool line_search(Objective& obj, const Point& cur, const Vector& d, const Bounds& box, double alpha,
                 bool cautious, Index max_evaluations, Point& next) {
  const double dg = cur.g.dot(d);
  const double flat = kRounding * std::max(1.0, std::abs(cur.f));
  double alpha_feasible = kInf;  // largest α with x + α d feasible
  for (Index i = 0; i < d.size(); ++i) {
    if (d[i] < 0.0 && std::isfinite(box.lower[i]))
      alpha_feasible = std::min(alpha_feasible, (box.lower[i] - cur.x[i]) / d[i]);
    if (d[i] > 0.0 && std::isfinite(box.upper[i]))
      alpha_feasible = std::min(alpha_feasible, (box.upper[i] - cur.x[i]) / d[i]);
  }
  double lo = 0.0, hi = kInf;
  // Without curvature information (cautious), extrapolation stops short of the
  // bounds of entries that are still interior: the criterion is even in a
  // diagonal entry of λ whose column has no other free entry, so its gradient
  // is 0 at the bound, and an entry put there by a long steepest-descent step
  // would stay whatever the optimum.
  double alpha_interior = kInf;
  for (Index i = 0; i < d.size(); ++i) {
    if (d[i] < 0.0 && cur.x[i] > box.lower[i])
      alpha_interior = std::min(alpha_interior, (box.lower[i] - cur.x[i]) / d[i]);
    if (d[i] > 0.0 && cur.x[i] < box.upper[i])
      alpha_interior = std::min(alpha_interior, (box.upper[i] - cur.x[i]) / d[i]);
  }
  Point best;  // the last point with sufficient decrease but too little curvature
  auto shrink = [&](double f, bool bent) {
    hi = alpha;
    if (lo > 0.0) {
      alpha = 0.5 * (lo + hi);
    } else if (!bent && std::isfinite(f) && f > cur.f + dg * alpha) {
      // Minimizer of the quadratic through f(0), f'(0) and f(α), kept in [0.1α, 0.5α].
      const double q = -dg * alpha * alpha / (2.0 * (f - cur.f - dg * alpha));
      alpha = std::clamp(q, 0.1 * alpha, 0.5 * alpha);
    } else {
      alpha *= 0.25;
    }
  };
  for (Index trial = 0; trial < kMaxLineSearchTrials && obj.evaluations < max_evaluations; ++trial) {
    const Vector x = project(cur.x + alpha * d, box);
    const Vector s = x - cur.x;
    if (s.cwiseAbs().maxCoeff() <= 1e-16 * (1.0 + cur.x.cwiseAbs().maxCoeff())) break;
    const bool bent = alpha > alpha_feasible;
    const double gs = bent ? cur.g.dot(s) : alpha * dg;
    const double f = obj.value(x);
    const bool armijo = gs < 0.0 && f <= cur.f + kArmijo * gs;
    if (!armijo && (bent || !(f <= cur.f + flat))) {
      shrink(f, bent);
      continue;
    }
    Vector g = obj.gradient();
    if (!g.allFinite()) {
      shrink(kInf, bent);
      continue;
    }
    if (bent) {
      next = {x, f, std::move(g)};
      return true;
    }
    const double gd = g.dot(d);
    if (gd >= kWolfe * dg && (armijo || gd <= (2.0 * kApproxArmijo - 1.0) * dg)) {
      next = {x, f, std::move(g)};
      return true;
    }
    if (gd < kWolfe * dg) {
      if (armijo) best = {x, f, std::move(g)};
      lo = alpha;
      // Extrapolation, too, stops short of interior entries' bounds.
      alpha = std::isfinite(hi) ? 0.5 * (lo + hi)
              : cautious && alpha < alpha_interior ? std::min(kExtrapolate * alpha, alpha + kInterior * (alpha_interior - alpha))
                                       : kExtrapolate * alpha;
    } else {
      hi = alpha;
      alpha = 0.5 * (lo + hi);
    }
  }
  if (best.g.size() == 0) return false;
  next = std::move(best);
  return true;
}

struct MinimizeOutcome {
  Point pt;
  Stop stop = Stop::Gradient;
};

MinimizeOutcome minimize(Objective& obj, Point pt, const Bounds& box, const FitOptions& o, Index& iterations) {
  LbfgsMemory H(o.memory);
  Index flat_steps = 0;
  while (true) {
    const double pg = projected_gradient(pt.x, pt.g, box).cwiseAbs().maxCoeff();
    if (pg <= tolerance(o.gradient_tolerance, o.gradient_tolerance_rel, pt.f)) return {pt, Stop::Gradient};
    if (iterations >= o.max_iterations) return {pt, Stop::Iterations};
    if (obj.evaluations >= o.max_evaluations) return {pt, Stop::Evaluations};
    ++iterations;
    Vector d = search_direction(pt, box, H);
    // Without curvature information the first step moves θ by at most 1
    // (θ is of order 1: λ relative to σ) and at most half way to a bound: a
    // steepest-descent step dominated by one entry would otherwise pin that
    // entry at its bound, where the projected path bends and progress is slow.
    double alpha = 1.0;
    if (H.empty()) {
      alpha = std::min(1.0, 1.0 / d.cwiseAbs().maxCoeff());
      for (Index i = 0; i < d.size(); ++i) {
        if (d[i] < 0.0 && pt.x[i] > box.lower[i]) alpha = std::min(alpha, kFirstStepToBound * (box.lower[i] - pt.x[i]) / d[i]);
        if (d[i] > 0.0 && pt.x[i] < box.upper[i]) alpha = std::min(alpha, kFirstStepToBound * (box.upper[i] - pt.x[i]) / d[i]);
      }
    }
    Point next;
    if (!line_search(obj, pt, d, box, alpha, H.empty(), o.max_evaluations, next)) {
      if (H.empty()) return {pt, obj.evaluations >= o.max_evaluations ? Stop::Evaluations : Stop::LineSearch};
      // A stale quasi-Newton model can give a poor direction: retry once
      // from steepest descent before giving up.
      H.clear();
      continue;
    }
    // Steps accepted under the approximate Wolfe conditions need not lower
    // the criterion; a run of them means it is flat to rounding here.
    flat_steps = next.f < pt.f ? 0 : flat_steps + 1;
    H.update(next.x - pt.x, next.g - pt.g);
    pt = std::move(next);
    if (flat_steps >= kMaxFlatSteps) return {pt, Stop::LineSearch};
  }
}

// A point off the boundary with a lower criterion, or an empty vector when the
// boundary holds. The criterion is even in a diagonal entry of λ whose column
// has no other free entry, so its gradient vanishes at 0 whether or not 0 is
// the minimum; entries found at or very near 0 are tried at small values.
// Works on θ (the singular tolerance is in units of θ), evaluates in φ.
Vector escape_boundary(Objective& obj, const Point& pt, const Vector& theta_lower) {
  const double threshold = pt.f - 1e-10 * std::max(1.0, std::abs(pt.f));
  const Vector theta = obj.theta(pt.x);
  for (Index i = 0; i < theta.size(); ++i) {
    if (!(theta_lower[i] == 0.0 && theta[i] < singular_tolerance)) continue;
    for (double step : kEdgeSteps) {
      Vector trial = theta;
      trial[i] = step;
      trial = obj.phi(trial);
      if (obj.value(trial) < threshold) return trial;
    }
  }
  return Vector();
}

}  // namespace

// Entries with lower bound 0 left just above it (the line search approaches
// a bound geometrically) are set on it where that does not raise the
// criterion beyond rounding: singular fits end at θ = 0 exactly, as lme4's.
void snap_to_boundary(Objective& obj, Point& pt, const Vector& theta_lower) {
  const Vector theta = obj.theta(pt.x);
  for (Index i = 0; i < theta.size(); ++i) {
    if (!(theta_lower[i] == 0.0 && theta[i] > 0.0 && theta[i] < singular_tolerance)) continue;
    Vector trial = pt.x;
    trial[i] = 0.0;
    const double f = obj.value(trial);
    if (f <= pt.f + kRounding * std::max(1.0, std::abs(pt.f))) {
      pt.x = trial;
      pt.f = std::min(f, pt.f);
    }
  }
}

FitResult fit(Model& model, const FitOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const Vector lower = model.theta_lower(), upper = model.theta_upper();
  check_options(options, lower, upper);
  check_crossprod(model.crossprod());
  const Index n = model.nobs(), p = model.nfixed();
  if (n < 1) throw std::invalid_argument("the model has no observations");
  if (options.reml && n <= p)
    throw std::invalid_argument("REML needs more observations (" + std::to_string(n) +
                                ") than fixed-effects columns (" + std::to_string(p) + ")");

  Objective obj(model, options);
  const Bounds box{obj.phi(lower), obj.phi(upper)};
  Point pt;
  pt.x = obj.phi(options.theta_start.size() ? options.theta_start : model.theta_start());
  try {
    model.set_theta(obj.theta(pt.x));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("the criterion cannot be evaluated at the starting theta: ") + e.what() +
                             " (is X of full column rank?)");
  }
  ++obj.evaluations;
  pt.f = model.objective(options.reml);
  if (options.trace) options.trace(obj.evaluations, pt.f);
  pt.g = obj.gradient();
  if (!std::isfinite(pt.f) || !pt.g.allFinite())
    throw std::runtime_error("the criterion or its gradient is not finite at the starting theta");

  Index iterations = 0, restarts = 0;
  MinimizeOutcome out;
  while (true) {
    out = minimize(obj, pt, box, options, iterations);
    pt = out.pt;
    if (restarts >= options.max_restarts || obj.evaluations >= options.max_evaluations) break;
    const Vector escape = escape_boundary(obj, pt, lower);
    if (escape.size() == 0) break;
    ++restarts;
    pt.x = escape;
    pt.f = obj.value(pt.x);
    pt.g = obj.gradient();
  }
  snap_to_boundary(obj, pt, lower);

  FitResult r;
  r.reml = options.reml;
  r.nobs = n;
  r.nfixed = p;
  r.shapes = model.shapes();
  r.order = model.order();
  r.theta = obj.theta(pt.x);
  r.theta_lower = lower;
  r.theta_upper = upper;
  model.set_theta(r.theta);
  r.criterion = model.objective(options.reml);
  r.gradient = model.gradient(options.reml);
  r.max_projected_gradient = projected_gradient(r.theta, r.gradient, {lower, upper}).cwiseAbs().maxCoeff();
  r.converged = r.max_projected_gradient <=
                tolerance(options.convergence_tolerance, options.convergence_tolerance_rel, r.criterion);
  for (Index i = 0; i < lower.size(); ++i) r.singular = r.singular || (lower[i] == 0.0 && r.theta[i] < singular_tolerance);

  Vector u;
  model.solve(u, r.beta);
  const Vector b = model.b(u);
  r.sigma = model.sigma(options.reml);
  r.vcov_beta = model.vcov_beta(options.reml);
  r.se_beta = r.vcov_beta.diagonal().cwiseSqrt();
  Index off = 0;
  for (Index k = 0; k < model.nterms(); ++k) {
    const TermShape& s = r.shapes[k];
    const Matrix& lambda = model.lambda(k);
    r.lambda.push_back(lambda);
    r.covariance.push_back(r.sigma * r.sigma * lambda * lambda.transpose());
    r.b.push_back(Eigen::Map<const Matrix>(b.data() + off, s.p, s.nlevels).transpose());
    off += s.q();
  }

  r.npar = p + lower.size() + 1;
  r.loglik = -0.5 * r.criterion;
  r.aic = r.criterion + 2.0 * static_cast<double>(r.npar);
  r.bic = r.criterion + std::log(static_cast<double>(n)) * static_cast<double>(r.npar);
  r.iterations = iterations;
  r.evaluations = obj.evaluations + 1;
  r.gradient_evaluations = obj.gradient_evaluations + 1;
  r.restarts = restarts;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.message = std::string(r.converged ? "converged" : "not converged") + ": max |projected gradient| " +
              format_double(r.max_projected_gradient) + " (" + describe(out.stop) + ")";
  if (restarts) r.message += ", " + std::to_string(restarts) + " restart(s) off the boundary";
  return r;
}

FitResult fit(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y,
              const FitOptions& options) {
  if (X.rows() != y.size())
    throw std::invalid_argument("X has " + std::to_string(X.rows()) + " rows but y has " +
                                std::to_string(y.size()));
  check_finite_rows("y", y);
  check_finite_rows("X", X);
  for (std::size_t k = 0; k < terms.size(); ++k)
    if (terms[k].z.rows() == y.size()) check_finite_rows("z of random-effects term " + std::to_string(k), terms[k].z);
  Model model(terms, X, y, options.model);
  return fit(model, options);
}

}  // namespace lmm
