// A complete fit: minimize the profiled ML deviance or REML criterion over θ
// with a bounded quasi-Newton method and the exact gradient, then the
// estimates (β, σ, conditional modes, Var(β)) and lme4's summaries.
//
// Conventions (as in model.hpp): terms are ordered by decreasing number of
// levels (stable), as lme4 does; θ and every per-term result follow that
// model order, so θ compares with lme4's getME(fit, "theta") directly.
// FitResult::order maps model terms back to the caller's terms.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lbfgsb.hpp"
#include "model.hpp"
#include "terms.hpp"
#include "types.hpp"

namespace lmm {

/// Settings of a fit. With the defaults, fits of lme4's test problems end with
/// a projected gradient below 1e-7 and criteria within 1e-11 relative of lme4's.
struct FitOptions : LbfgsbOptions {
  /// true: REML criterion (lme4's default); false: maximum likelihood.
  bool reml = true;
  /// Starting θ (ntheta, model order, the caller's θ). Empty: the lower of
  /// Model::working_start() (lme4's λ = I, or λ̃ = I in the model's working
  /// coordinates for a term whose columns have extreme scales or offsets) and
  /// λ̃ = I. Diagonal entries of λ must be ≥ 0.
  Vector theta_start;
  /// Scale of each working θ̃ entry (ntheta, positive): the optimizer works on
  /// φ = θ̃ / theta_scale. Empty: 1 (the working columns have unit scale already).
  Vector theta_scale;
  // The stopping rules of each run of the optimizer (LbfgsbOptions, inherited):
  // gradient_tolerance(_rel) on the projected gradient in φ, relative to |f| at
  // the start of the run (the start or a restart; as SciPy's pgtol: the
  // criterion's rounding error, and with it the gradient's, grows with the
  // number of observations); relative_decrease_tolerance (SciPy's ftol; 0, the
  // default, disables it: the gradient is usually still informative when the
  // criterion is flat to rounding); the rounding floor (floor_*, with
  // floor_stalls_per_variable counting θ entries); memory (40: more than
  // SciPy's 20; on the 72-θ maximal model and five other simulations of it 40
  // takes 10–25 % fewer evaluations, to the same criterion). max_iterations and
  // max_evaluations count over all restarts here.
  /// FitResult::converged is set when the largest entry of the projected
  /// gradient at the optimum (in φ, the optimizer's coordinates) is at most
  /// max(convergence_tolerance, convergence_tolerance_rel · |criterion|).
  double convergence_tolerance = 1e-3;
  double convergence_tolerance_rel = 1e-6;
  /// Restarts off the boundary (see fit()); 0 disables them.
  Index max_restarts = 5;
  /// Options of the Model built by the array overload of fit().
  ModelOptions model;
  /// Called after each evaluation of the criterion with its count and value
  /// (empty: not called). Runs on the fitting thread.
  std::function<void(Index, double)> trace;
};

/// Outcome of a fit. Per-term entries are in model order (see `order`).
struct FitResult {
  bool reml = true;                   ///< REML fit (else ML)
  Index nobs = 0;                     ///< n, number of observations
  Index nfixed = 0;                   ///< p, number of fixed-effects columns
  std::vector<TermShape> shapes;      ///< term shapes, model order
  std::vector<Index> order;           ///< order[k]: index in the caller's terms of model term k

  Vector theta;                       ///< ntheta, θ at the optimum (model order, lme4's order)
  Vector working_theta;               ///< ntheta, θ̃ at the optimum (the model's working coordinates)
  Vector theta_lower;                 ///< ntheta, lower bounds of θ (0 or -inf for us/diag)
  Vector theta_upper;                 ///< ntheta, upper bounds of θ (+inf where unbounded)
  std::vector<Matrix> lambda;         ///< per term, p_k × p_k lower-triangular λ at the optimum
  Vector beta;                        ///< p, fixed effects β̂ (the columns of X)
  Matrix vcov_beta;                   ///< p × p, covariance of β̂: σ² (L_X L_X')⁻¹
  Vector se_beta;                     ///< p, standard errors: sqrt of the diagonal of vcov_beta
  double sigma = 0;                   ///< residual standard deviation σ̂ (units of y)
  /// Covariance matrices of the random effects of each term, σ² λ λ'
  /// (p_k × p_k, units of y² per unit of z², i.e. lme4's VarCorr).
  std::vector<Matrix> covariance;
  /// Conditional modes b̂ = Λû per term: ℓ_k × p_k, row j = level code j,
  /// column c = column c of the term's z (units of y per unit of z).
  std::vector<Matrix> b;
  /// Spherical random effects û (q: terms in model order, each level's p_k
  /// entries consecutive), b̂ = Λû.
  Vector u;

  double criterion = 0;               ///< REML criterion (REML) or deviance −2 log L (ML) at θ
  double loglik = 0;                  ///< −criterion / 2 (restricted log-likelihood for REML, as lme4)
  double aic = 0;                     ///< criterion + 2 · npar
  double bic = 0;                     ///< criterion + log(n) · npar
  Index npar = 0;                     ///< p + ntheta + 1 (β, θ and σ; σ not when known)

  Vector gradient;                    ///< ntheta, exact gradient of the criterion at θ (in θ)
  double max_projected_gradient = 0;  ///< largest |entry| of the gradient in φ not pushing against a bound
  bool converged = false;             ///< max_projected_gradient within FitOptions' convergence tolerance
  /// Some diagonal entry of λ̃ below 1e-4 (lme4's isSingular, in the working
  /// coordinates: a large column offset makes λ's last entry small whatever the covariance).
  bool singular = false;
  Index iterations = 0;               ///< quasi-Newton iterations, all restarts
  Index evaluations = 0;              ///< criterion evaluations (factorizations), all restarts
  Index gradient_evaluations = 0;     ///< gradient evaluations, all restarts
  Index restarts = 0;                 ///< restarts off the boundary
  double seconds = 0;                 ///< wall-clock time of the fit (checks, optimization, results)
  std::string message;                ///< why the optimizer stopped, and the convergence verdict
  std::string stop_reason;            ///< why the optimizer's last run stopped (the part of message in parentheses)
};

/// lme4's isSingular tolerance: a diagonal entry of λ below this is at the boundary.
constexpr double singular_tolerance = 1e-4;

/// Fit a model already built (its θ is changed; at return it is set to the optimum).
///
/// Minimizes the criterion over the model's working θ̃ (Model, transform.hpp)
/// within its bounds (lower bound 0 on diagonal entries of λ̃, free elsewhere
/// unless the parameterization bounds them) by L-BFGS-B (lbfgsb.hpp) using
/// Model::working_gradient; the result reports the caller's θ. Where a column of λ has no free entry but its diagonal
/// (the last column of an unstructured λ, every column of a diagonal one) the
/// criterion is even in that entry, so its gradient vanishes at 0 whether or
/// not 0 is the minimum. After convergence each diagonal entry of λ below
/// singular_tolerance is tried at 1e-3, 1e-2 and 1e-1 (in φ = θ̃ / theta_scale,
/// θ̃ itself unless theta_scale is set); if the criterion
/// decreases the optimizer restarts from there (at most
/// options.max_restarts times), as lme4's restart_edge.
///
/// Fits of distinct Model objects may run concurrently (no shared state).
///
/// Throws std::invalid_argument for invalid options (θ start of the wrong
/// length, below its bounds or non-finite; non-positive tolerances or limits)
/// or non-finite crossproducts (non-finite X, y or z), std::runtime_error for
/// an X not of full column rank (a column whose residual on the columns before
/// it is below 1e-7 of its norm, lme4's tolerance) or when the criterion cannot
/// be evaluated at the start.
FitResult fit(Model& model, const FitOptions& options = {});

/// Build the model from arrays and fit it.
///   terms: per-term level codes (n, in [0, nlevels)), z (n × p_k) and covariance type,
///          in any order (the model orders them, see FitResult::order)
///   X:     n × p fixed-effects model matrix (full column rank; include a column of
///          ones for an intercept)
///   y:     n response
/// Throws std::invalid_argument for mismatched sizes, out-of-range codes or
/// non-finite values in y, X or z (naming the row), and as fit(Model&, ...).
FitResult fit(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y,
              const FitOptions& options = {});

}  // namespace lmm
