#include "lmm/fit.hpp"

#include "lmm/lbfgsb.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace lmm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// The change of the criterion, relative to it, taken as rounding (snap_to_boundary).
constexpr double kRounding = 1e-11;
// The first step from the moments' start, relative to its norm (see fit()).
constexpr double kMomentFirstStep = 0.1;
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
  if (!(o.relative_decrease_tolerance >= 0.0 && std::isfinite(o.relative_decrease_tolerance)))
    throw std::invalid_argument("relative_decrease_tolerance must be non-negative and finite, got " +
                                format_double(o.relative_decrease_tolerance));
  if (!(o.floor_rel >= 0.0 && std::isfinite(o.floor_rel)))
    throw std::invalid_argument("floor_rel must be non-negative and finite, got " + format_double(o.floor_rel));
  if (!(o.floor_gradient_rel >= 0.0 && std::isfinite(o.floor_gradient_rel)))
    throw std::invalid_argument("floor_gradient_rel must be non-negative and finite, got " +
                                format_double(o.floor_gradient_rel));
  if (o.floor_stalls < 0)
    throw std::invalid_argument("floor_stalls must be non-negative, got " + std::to_string(o.floor_stalls));
  if (o.floor_stalls_per_variable < 1)
    throw std::invalid_argument("floor_stalls_per_variable must be at least 1, got " +
                                std::to_string(o.floor_stalls_per_variable));
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

// X of full column rank, as lme4 requires (its rank test: the residual of each
// column on the columns before it is at least kRankTol of the column's norm),
// from X'X in A (after the shift). Exact collinearity would otherwise show only
// as a failed or, by rounding, a barely positive pivot of L.
constexpr double kRankTol = 1e-7;

void check_rank(const Crossprod& A) {
  const Index p = A.p;
  Matrix L = A.XyXy.topLeftCorner(p, p);
  for (Index j = 0; j < p; ++j) {
    const double norm2 = L(j, j);
    double d = norm2;
    for (Index k = 0; k < j; ++k) d -= L(j, k) * L(j, k);
    if (!(d > kRankTol * kRankTol * norm2))
      throw std::runtime_error("X is not of full column rank: its column " + std::to_string(j) +
                               " is a linear combination of the columns before it; drop it (X must have full "
                               "column rank)");
    d = std::sqrt(d);
    L(j, j) = d;
    for (Index i = j + 1; i < p; ++i) {
      double s = L(i, j);
      for (Index k = 0; k < j; ++k) s -= L(i, k) * L(j, k);
      L(i, j) = s / d;
    }
  }
}

void check_finite_rows(const std::string& what, Eigen::Ref<const Matrix> M) {
  for (Index j = 0; j < M.cols(); ++j)
    for (Index i = 0; i < M.rows(); ++i)
      if (!std::isfinite(M(i, j)))
        throw std::invalid_argument(what + " has a non-finite value (" + format_double(M(i, j)) + ") at row " +
                                    std::to_string(i) + (M.cols() > 1 ? ", column " + std::to_string(j) : ""));
}

// The criterion as the optimizer sees it: counted evaluations, failures of
// the factorization (only possible far from the start, e.g. overflow after a
// huge trial step) reported as +inf so that the line search backs off.
// The optimizer works on φ = θ̃ / scale (entrywise), θ̃ the model's working
// coordinates (centred and scaled columns, transform.hpp); φ = θ̃ unless
// FitOptions::theta_scale is set.
class Objective {
 public:
  Objective(Model& model, const FitOptions& o)
      : model_(model),
        reml_(o.reml),
        scale_(o.theta_scale.size() ? o.theta_scale : Vector::Ones(model.ntheta())),
        trace_(o.trace) {}

  Vector theta(const Vector& phi) const { return phi.cwiseProduct(scale_); }
  Vector phi(const Vector& theta) const { return theta.cwiseQuotient(scale_); }

  // The criterion at φ. A failed factorization gives +inf, or at the start
  // (where there is nothing to back off to) is rethrown.
  double value(const Vector& phi, bool start = false) {
    ++evaluations;
    last_theta_.resize(0);
    if (!phi.allFinite()) return kInf;
    const Vector t = theta(phi);
    try {
      model_.set_working_theta(t);
    } catch (const std::runtime_error&) {
      if (start) throw;
      return kInf;
    }
    const double f = model_.objective(reml_);
    if (trace_) trace_(evaluations, f);
    last_theta_ = t;
    last_gradient_.resize(0);
    return std::isfinite(f) ? f : kInf;
  }

  // Gradient in φ at the φ of the last successful value() call.
  Vector gradient() { return theta_gradient().cwiseProduct(scale_); }

  // Gradient in θ̃ there, computed at most once per evaluation.
  const Vector& theta_gradient() {
    if (last_gradient_.size() == 0) {
      ++gradient_evaluations;
      last_gradient_ = model_.working_gradient(reml_);
    }
    return last_gradient_;
  }

  // Whether the model is factored at θ̃ (the last value() call was there and succeeded).
  bool at(const Vector& theta) const { return last_theta_.size() == theta.size() && last_theta_ == theta; }

  Index evaluations = 0;
  Index gradient_evaluations = 0;

 private:
  Model& model_;
  bool reml_;
  Vector scale_;
  std::function<void(Index, double)> trace_;
  Vector last_theta_, last_gradient_;
};

// Runs of the optimizer started again without memory after stalling (see fit()).
constexpr Index kMaxFreshStarts = 5;

// Largest projected gradient entry accepted, at criterion value f.
double tolerance(double absolute, double relative, double f) {
  return std::max(absolute, relative * std::abs(f));
}

struct Point {
  Vector x;
  double f = kInf;
  Vector g;
};

// The settings of the bounded quasi-Newton method, from the fit's, with the
// limits left over from earlier runs (restarts).
LbfgsbOptions lbfgsb_options(const FitOptions& o, Index iterations, Index evaluations) {
  LbfgsbOptions l = o;
  l.max_iterations = std::max<Index>(o.max_iterations - iterations, 0);
  l.max_evaluations = std::max<Index>(o.max_evaluations - evaluations, 0);
  return l;
}

// A point off the boundary with a lower criterion (the model factored there),
// or false when the boundary holds. The criterion is even in a diagonal entry
// of λ whose column has no other free entry, so its gradient vanishes at 0
// whether or not 0 is the minimum; entries found at or very near 0 are tried
// at small values. Works on φ, where a term's scale is one whatever the units
// of its columns (as optimize.py's rule for SciPy's methods).
bool escape_boundary(Objective& obj, const Point& pt, const Vector& lower, Point& escape) {
  const double threshold = pt.f - 1e-10 * std::max(1.0, std::abs(pt.f));
  for (Index i = 0; i < pt.x.size(); ++i) {
    if (!(lower[i] == 0.0 && pt.x[i] < singular_tolerance)) continue;
    for (double step : kEdgeSteps) {
      Vector trial = pt.x;
      trial[i] = step;
      const double f = obj.value(trial);
      if (f < threshold) {
        escape = {trial, f, obj.gradient()};
        return escape.g.allFinite();
      }
    }
  }
  return false;
}

// Entries with lower bound 0 left just above it (the line search approaches
// a bound geometrically) are set on it where that does not raise the
// criterion beyond rounding: singular fits end at θ = 0 exactly, as lme4's.
// In φ, as escape_boundary.
void snap_to_boundary(Objective& obj, Point& pt, const Vector& lower) {
  for (Index i = 0; i < pt.x.size(); ++i) {
    if (!(lower[i] == 0.0 && pt.x[i] > 0.0 && pt.x[i] < singular_tolerance)) continue;
    Vector trial = pt.x;
    trial[i] = 0.0;
    const double f = obj.value(trial);
    if (f <= pt.f + kRounding * std::max(1.0, std::abs(pt.f))) {
      pt.x = trial;
      pt.f = std::min(f, pt.f);
    }
  }
}

}  // namespace

FitResult fit(Model& model, const FitOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const Vector lower = model.theta_lower(), upper = model.theta_upper();
  check_options(options, lower, upper);
  check_crossprod(model.crossprod());
  check_rank(model.crossprod());
  const Index n = model.nobs(), p = model.nfixed();
  if (n < 1) throw std::invalid_argument("the model has no observations");
  if (options.reml && n <= p)
    throw std::invalid_argument("REML needs more observations (" + std::to_string(n) +
                                ") than fixed-effects columns (" + std::to_string(p) + ")");

  Objective obj(model, options);
  // Bounds are the same for θ and θ̃ (transform.hpp).
  const Vector lower_phi = obj.phi(lower), upper_phi = obj.phi(upper);
  // Without a given start, λ̃ = I (unit variances of the working columns) and
  // the moments' start (Model::moment_start) are tried beside lme4's start and
  // the lowest kept: lme4's start is a covariance of the caller's columns, as
  // far from the optimum in the working coordinates as their offsets make it
  // (sleepstudy: 12 evaluations from λ̃ = I where lme4's start takes 38), and
  // the moments' is near the optimum of most models (InstEval: 13 evaluations
  // where λ̃ = I takes 23). The moments' start goes last, so that the model is
  // factored there, the usual choice, when the run begins there.
  Point pt, unit, moments;
  const bool given = options.theta_start.size() != 0;
  pt.x = obj.phi(given ? model.to_working(options.theta_start) : model.working_start());
  unit.x = obj.phi(model.theta_start());
  if (!given) moments.x = obj.phi(model.moment_start());
  const bool try_unit = !given && unit.x != pt.x;
  const bool try_moments = !given && moments.x != pt.x && moments.x != unit.x;
  if (try_unit) unit.f = obj.value(unit.x);
  try {
    pt.f = obj.value(pt.x, true);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("the criterion cannot be evaluated at the starting theta: ") + e.what() +
                             " (is X of full column rank?)");
  }
  if (try_moments) moments.f = obj.value(moments.x);
  if (try_unit && unit.f < pt.f) pt = unit;
  if (try_moments && moments.f < pt.f) pt = moments;
  if (!obj.at(obj.theta(pt.x))) obj.value(pt.x);
  pt.g = obj.gradient();
  if (!std::isfinite(pt.f) || !pt.g.allFinite())
    throw std::runtime_error("the criterion or its gradient is not finite at the starting theta");

  // The criterion and its gradient in φ; a non-finite value tells the line search to back off.
  const LbfgsbFunction fg = [&obj](const Vector& x, Vector& g) {
    const double f = obj.value(x);
    if (std::isfinite(f)) g = obj.gradient();
    return f;
  };
  Index iterations = 0, restarts = 0, fresh_starts = 0;
  LbfgsbStop stop = LbfgsbStop::Gradient;
  // From the moments' start, near the optimum, the first step is at most a
  // tenth of its norm (InstEval REML + ML: 30 → 26 evaluations; over eight of
  // lme4's test models 222 → 209).
  const double first_step = try_moments && pt.x == moments.x ? kMomentFirstStep * pt.x.norm() : 1.0;
  while (true) {
    LbfgsbOptions lo = lbfgsb_options(options, iterations, obj.evaluations);
    if (iterations == 0) lo.first_step = first_step;
    const LbfgsbResult run = minimize_lbfgsb(fg, pt.x, pt.f, pt.g, lower_phi, upper_phi, lo);
    iterations += run.iterations;
    stop = run.stop;
    pt = {run.x, run.f, run.g};
    if (obj.evaluations >= options.max_evaluations) break;
    // A run that stalls far from a stationary point starts again from there
    // without its memory: near a bound the quasi-Newton step can keep pointing
    // at the same projected point, far uphill, which the line search then cuts
    // to nothing (sleepstudy-like responses with a strongly correlated slope:
    // 0.5 % of them stopped 2–9 units of REML above the optimum).
    const bool stalled = stop == LbfgsbStop::RelativeDecrease || stop == LbfgsbStop::LineSearch;
    if (stalled && fresh_starts < kMaxFreshStarts &&
        projected_gradient(pt.x, pt.g, lower_phi, upper_phi).cwiseAbs().maxCoeff() >
            tolerance(options.convergence_tolerance, options.convergence_tolerance_rel, pt.f)) {
      ++fresh_starts;
      continue;
    }
    if (restarts >= options.max_restarts) break;
    Point escape;
    if (!escape_boundary(obj, pt, lower_phi, escape)) break;
    ++restarts;
    pt = std::move(escape);
  }
  snap_to_boundary(obj, pt, lower_phi);

  FitResult r;
  r.reml = options.reml;
  r.nobs = n;
  r.nfixed = p;
  r.shapes = model.shapes();
  r.order = model.order();
  r.working_theta = obj.theta(pt.x);
  r.theta_lower = lower;
  r.theta_upper = upper;
  // The model is usually factored at the optimum already (its last evaluation).
  if (!obj.at(r.working_theta)) obj.value(pt.x);
  if (!obj.at(r.working_theta)) throw std::runtime_error("the criterion cannot be evaluated at the optimum");
  r.criterion = model.objective(options.reml);
  r.theta = model.theta();
  // The verdict is the optimizer's, in φ: in the caller's θ a large column
  // offset makes the gradient large (or small) by the offset's factors alone.
  r.max_projected_gradient = projected_gradient(pt.x, obj.gradient(), lower_phi, upper_phi).cwiseAbs().maxCoeff();
  r.converged = r.max_projected_gradient <=
                tolerance(options.convergence_tolerance, options.convergence_tolerance_rel, r.criterion);
  for (Index i = 0; i < lower.size(); ++i)
    r.singular = r.singular || (lower[i] == 0.0 && r.working_theta[i] < singular_tolerance);

  model.solve(r.u, r.beta);
  const Vector b = model.b(r.u);
  r.sigma = model.sigma(options.reml);
  r.vcov_beta = model.vcov_beta(options.reml);
  // Last: the gradient's selected inverse uses the factor's storage (solve() and
  // vcov_beta() before it need no second factorization).
  r.gradient = model.gradient(options.reml);
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

  r.npar = p + lower.size() + (model.sigma_fixed() ? 0 : 1);
  r.loglik = -0.5 * r.criterion;
  r.aic = r.criterion + 2.0 * static_cast<double>(r.npar);
  r.bic = r.criterion + std::log(static_cast<double>(n)) * static_cast<double>(r.npar);
  r.iterations = iterations;
  r.evaluations = obj.evaluations;
  r.gradient_evaluations = obj.gradient_evaluations;
  r.restarts = restarts;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.message = std::string(r.converged ? "converged" : "not converged") + ": max |projected gradient| " +
              format_double(r.max_projected_gradient) + " (" + describe(stop) + ")";
  r.stop_reason = describe(stop);
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
