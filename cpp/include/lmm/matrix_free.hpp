// Matrix-free REML and ML for two crossed scalar terms, (1 | a) + (1 | b) or
// one column each: the fit of data whose dense trailing block of L (ℓ_b² doubles)
// cannot be afforded, e.g. MovieLens ml-25m with 162,541 users × 59,047 items.
//
// With Λ = diag(θ_a I, θ_b I) and A's blocks d_a = diag(Z_a'Z_a), d_b, N = Z_b'Z_a
// (sparse, ℓ_b × ℓ_a), M = Λ'Z'ZΛ + I = [[D_a, C], [C', D_b]], D = θ²d + 1,
// C = θ_aθ_b N'. Every solve with M goes through the Schur complement of the
// larger term's diagonal block, S = D_b − θ_a²θ_b² N D_a⁻¹ N' (ℓ_b × ℓ_b, never
// formed: a product with S is one pass over N's nonzeros), by conjugate
// gradients preconditioned with diag(S) and deflated by the vector of ones
// (the direction "a up, b down", S's one small eigenvalue for intercepts).
//
// The criterion's gradient is exact except for two traces: with P_k the
// projection on term k, ∂log|M|/∂θ_k = (2/θ_k)(ℓ_k − tr(P_k M⁻¹ P_k)), and the
// derivatives of r² and log|R_X|² follow from the solves (−(2/θ_k)‖P_k û‖², and
// −(2/θ_k) tr((R_X'R_X)⁻¹ F'P_k F) with F = M⁻¹Λ'Z'X). The traces are
//   tr(M⁻¹)_b = tr S⁻¹ = v'S⁻¹v + tr(Q_v S⁻¹ Q_v),
//   tr(M⁻¹)_a = tr D_a⁻¹ + w'B S⁻¹ B'w + tr(Q_w B S⁻¹ B' Q_w),
// B = D_a⁻¹C, v = S⁻¹1/‖S⁻¹1‖, w = Bv/‖Bv‖, Q_x = I − xx': the parts along v and w
// (where the variance would be) exactly, the rest by Hutchinson's estimator with
// Rademacher probes — unbiased, the decompositions being exact. The criterion
// is then minimized by Newton's method on its score in log θ with the same
// probes at every θ (a smooth function: its Jacobian by differences, then
// Broyden's updates), and one last Newton step from a score with independent
// and more probes, whose spread gives θ's Monte Carlo standard errors.
// log|M| = log|D_a| + log|S| (for the criterion's value only) is estimated by
// stochastic Lanczos quadrature on diag(S)^{-1/2} S diag(S)^{-1/2}, with the
// small eigenvalue's part as a control variate. Everything is reproducible
// from the seed. When ℓ_b is at most `exact_levels`, traces and log|S| are
// computed exactly instead (unit vectors, and a dense S), and the method is
// deterministic.
#pragma once

#include <cstdint>
#include <string>

#include "crossprod.hpp"
#include "types.hpp"

namespace lmm {

struct MatrixFreeOptions {
  bool reml = true;
  /// Hutchinson probes per trace in the Newton iterations (the same at every θ).
  int probes = 8;
  /// Probes per trace of the last score, from an independent stream.
  int final_probes = 32;
  /// Probes and Lanczos steps of the estimate of log|S|; 0 probes: not estimated.
  int logdet_probes = 16;
  int lanczos_steps = 30;
  /// Relative residual of every conjugate-gradient solve.
  double cg_tolerance = 1e-10;
  int max_cg_iterations = 2000;
  /// Newton stops when no entry of its step in log θ exceeds this.
  double step_tolerance = 1e-7;
  int max_iterations = 60;
  /// Exact traces and log|S| when the smaller term has at most this many levels.
  Index exact_levels = 64;
  std::uint64_t seed = 0;
  /// Starting θ (2, model order); empty: 1.
  Vector theta_start;
  /// Threads of the products with N (0: dense_threads()).
  int threads = 0;
};

/// What the fit found. θ is lme4's (of the terms' own columns, model order:
/// the term with more levels first).
struct MatrixFreeFit {
  Vector theta;
  Vector theta_se;      ///< Monte Carlo SE of θ (0 with exact traces)
  Vector beta;          ///< p, the fixed effects of A's (shifted) X
  Matrix vcov_beta;     ///< p × p, σ² (R_X'R_X)⁻¹
  Vector u;             ///< ℓ_a + ℓ_b spherical random effects (b = θ u per term)
  Vector b;             ///< conditional modes b = Λu
  double sigma = 0;
  double pwrss = 0;     ///< r²
  double ldRX2 = 0;     ///< log|R_X|²
  double ldL2 = 0;      ///< log|M| (estimated unless exact)
  double ldL2_se = 0;   ///< its Monte Carlo SE
  double criterion = 0; ///< REML criterion or ML deviance with that log|M|
  double criterion_se = 0;
  /// The last Newton step in log θ (2), from the score of independent probes
  /// (empty with exact traces): how far the iterations' probes left θ.
  Vector last_step;
  bool converged = false;
  bool exact_traces = false;
  Index evaluations = 0;      ///< scores evaluated (differences included)
  Index newton_iterations = 0;
  Index cg_iterations = 0;    ///< total over all block solves (one product with S per iteration)
  Index products = 0;         ///< products with S (CG and Lanczos), each one pass over N
  double seconds_iterations = 0, seconds_final = 0, seconds_logdet = 0;
  std::string message;
};

/// Why the matrix-free method cannot fit A ("" when it can): exactly two terms,
/// one column each, unstructured or diagonal (λ = θ), crossed.
std::string matrix_free_unsupported(const Crossprod& A);

/// Fit the model of A (terms in model order) by matrix-free REML or ML.
/// Throws std::invalid_argument when matrix_free_unsupported(A) says why,
/// std::runtime_error when the iterations fail (a variance tending to 0, where
/// the exact method is needed; conjugate gradients not converging).
MatrixFreeFit fit_matrix_free(const Crossprod& A, const MatrixFreeOptions& options = {});

/// The score at θ (2, model order) with `probes` probes from stream `stream` of
/// the seed: the gradient of the criterion (estimated traces; exact when the
/// smaller term has at most options.exact_levels levels) and its Monte Carlo SE.
struct MatrixFreeScore {
  Vector gradient, gradient_se;
  double pwrss = 0, ldRX2 = 0;
};
MatrixFreeScore matrix_free_score(const Crossprod& A, Eigen::Ref<const Vector> theta, int probes,
                                  const MatrixFreeOptions& options = {}, std::uint64_t stream = 0);

}  // namespace lmm
