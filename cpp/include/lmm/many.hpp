// Many responses on one design: one model per gene, voxel or metric. The
// crossproducts of Z and X and the analysis of L are formed once; per response
// only Z'y, X'y and y'y (for a block of responses at a time, by matrix
// products) and the optimization differ. Each response is fitted as fit()
// fits it alone, in parallel threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fit.hpp"
#include "model.hpp"

namespace lmm {

struct ManyOptions {
  /// The fit of each response (with its theta_start, if any, the start of every
  /// response that is not warm-started).
  FitOptions fit;
  /// Worker threads (each fits on its own copy of the model).
  Index threads = 1;
  /// Responses whose crossproducts are formed together.
  Index block = 32;
  /// Start each response of a block after the first from the previous
  /// response's optimum (unless that fit was singular: then the default
  /// start). Fewer evaluations on similar responses, but the result then
  /// depends on the order of the responses: within the optimizer's tolerance,
  /// or, where the criterion has several local minima, another one. Off, each
  /// response is fitted exactly as fit() would fit it alone.
  bool warm_start = false;
  /// Called on the calling thread with the number of responses done, at most
  /// once per progress_interval seconds and at the end (empty: not called).
  std::function<void(Index)> progress;
  double progress_interval = 0.2;
};

/// Per-response outcomes of fit_many, one column (or entry) per response. A
/// response that could not be fitted has NaN estimates and its reason in error.
struct ManyResult {
  Matrix theta;          ///< ntheta × m, θ at each optimum (model order, as FitResult::theta)
  Matrix beta;           ///< p × m, β̂ for the columns of X as given (the shift mapped back)
  Matrix se;             ///< p × m, standard errors of β̂
  Vector sigma;          ///< m, σ̂
  Vector criterion;      ///< m, REML criterion or ML deviance at the optimum
  Vector max_projected_gradient;  ///< m, as FitResult
  Vector residual_ratio;          ///< m, |y − X_c γ| / |y|: 0 when X fits the response exactly
  Vector residual_ss;             ///< m, |y − X_c γ|², the residual sum of squares on X (unweighted)
  std::vector<std::uint8_t> converged, singular;  ///< m each
  std::vector<Index> evaluations, iterations, restarts;  ///< m each
  std::vector<std::string> error;  ///< m, empty where the response was fitted
  double seconds = 0;    ///< wall-clock time of the whole call
};

/// Fit each column of Y (n × m) as the response of `model`'s design.
///   model: built from `terms`, `X` and some response (its θ is not changed)
///   terms, X: the data the model was built from (the constructor's order)
///   R: p × p upper triangular, X_c = QR (unweighted; X_c = X − 1 center' with
///      the model's shift): each response's least-squares fit on X_c is
///      removed before its crossproducts are formed, as the model's shift does
/// Responses are independent: a failure (a non-finite value, a criterion that
/// cannot be evaluated) is recorded in ManyResult::error and the others go on.
/// Throws std::invalid_argument when the data do not match the model.
ManyResult fit_many(const Model& model, const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                    Eigen::Ref<const Matrix> Y, Eigen::Ref<const Matrix> R, const ManyOptions& options = {});

/// A scan: one fit per candidate column of G (n × c), each added to X as its
/// last column, with the response y. Each candidate's model is built from the
/// rows as Model's constructor builds it (its shift: X's and the candidate's
/// means when X's first column is an intercept, y's least-squares fit on them
/// removed) and fitted as fit() fits it; the results' β and SEs are those of
/// [X g] (the candidate's last). In threads, as fit_many.
/// Throws std::invalid_argument when the data do not match.
ManyResult fit_scan(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y,
                    Eigen::Ref<const Matrix> G, const ModelOptions& model_options = {},
                    const ManyOptions& options = {});

}  // namespace lmm
