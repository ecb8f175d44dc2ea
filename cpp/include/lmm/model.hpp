// A linear mixed model on its crossproducts: set θ → update L → objective,
// solves for β and u, the fixed-effects covariance.
//
// The model works in each term's working coordinates (transform.hpp): the
// crossproducts are those of the centred and scaled columns z̃ = z T, and L is
// factored with λ̃. Its interface speaks the caller's θ (lme4's θ of the
// columns z: set_theta, theta, lambda, gradient, b, conditional_variances)
// and, for optimizers, the working θ̃ (set_working_theta, working_gradient):
// the same model in better-conditioned coordinates. Bounds and the start
// (λ = I) are the same vectors in both.
#pragma once

#include <vector>

#include "cholesky.hpp"
#include "crossprod.hpp"
#include "terms.hpp"

namespace lmm {

struct ModelOptions {
  /// Largest dense trailing block of L allowed, in bytes. Crossed factors with
  /// very many levels would otherwise exhaust memory; exceeding it throws.
  double max_dense_bytes = 4.0 * 1024 * 1024 * 1024;
  /// Prior weights (n, positive and finite; empty: all 1): the residual variance
  /// of observation i is σ²/w_i, as lme4's `weights`. The criterion is lme4's,
  /// including its −Σ log w_i.
  Vector weights;
  /// A known residual SD σ (> 0, as MixedModels.jl's σ=; 0: estimated, profiled
  /// out of the criterion). With weights 1/v_i and σ = 1 the residual variances
  /// are the known v_i of a meta-analysis.
  double sigma = 0.0;
};

class Model {
 public:
  /// Build the model: order the terms as lme4 does (by decreasing number of
  /// levels when they are not already, ties in reverse input order), choose
  /// each term's working coordinates (term_transform), form the crossproducts
  /// in one pass and analyse L.
  ///   terms: per-term codes (n) and z (n × p_k), in any order
  ///   X:     n × p fixed-effects model matrix (full column rank)
  ///   y:     n response
  ///   shift: a reparametrization of X and y applied as A is formed (see
  ///          Shift); β̂ and Var(β̂) are then those of X_c and y_c
  /// The data are not kept: after construction nothing depends on n.
  Model(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y,
        ModelOptions options = {}, const Shift& shift = {});

  /// Build the model on finished crossproducts (e.g. the sum over row chunks of
  /// form_crossprod, see lmm::add), whose terms are already in model order:
  /// analyse L as the other constructor does. `order[k]` is the caller's index
  /// of model term k (empty: the identity; see order()); per-term transforms
  /// that A lacks are the identity. options.weights must be empty (A carries
  /// the weights' effect and Σ log w). set_response and response_crossprods
  /// need the rows and are refused when A does not keep them (Crossprod::has_rows).
  /// Throws std::invalid_argument for an A without terms or an order that is
  /// not a permutation of its terms.
  explicit Model(Crossprod A, std::vector<Index> order = {}, ModelOptions options = {});

  /// The order lme4 gives terms of these shapes (see order()): order[k] is the
  /// input index of model term k.
  static std::vector<Index> term_order(const std::vector<TermShape>& shapes);

  /// Replace the response: same terms and X as at construction (in the
  /// constructor's order), a new y (shifted as at construction). One pass over
  /// the rows; the structure of L is kept. θ must be set again afterwards.
  void set_response(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y);

  /// The response part of A for the columns of Y (n × b) at once, each with
  /// its own shift γ (see lmm::response_crossprods): `terms` and `X` as at
  /// construction (the constructor's order), R the upper-triangular factor of
  /// X_c = QR. Then set_response(R, j) makes column j the model's response.
  ResponseCrossprods response_crossprods(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                                         Eigen::Ref<const Matrix> Y, Eigen::Ref<const Matrix> R) const;
  /// Make response j of R the model's response; θ must be set again afterwards.
  void set_response(const ResponseCrossprods& R, Index j);

  Index nobs() const { return A_.n; }
  Index nfixed() const { return A_.p; }
  Index nterms() const { return static_cast<Index>(A_.shapes.size()); }
  /// Term shapes in model order.
  const std::vector<TermShape>& shapes() const { return A_.shapes; }
  /// order()[k] is the index, in the constructor's `terms`, of model term k.
  const std::vector<Index>& order() const { return order_; }
  const Crossprod& crossprod() const { return A_; }
  const BlockedCholesky& cholesky() const { return L_; }

  Index ntheta() const;
  /// ntheta lower bounds (from each term's parameterization; the same for θ and θ̃)
  Vector theta_lower() const;
  Vector theta_upper() const;  ///< ntheta upper bounds (+inf where unbounded)
  Vector theta_start() const;  ///< ntheta starting values (λ = I, or λ̃ = I as a working θ̃)
  /// The working θ̃ an optimizer starts from by default (lme4's start unless a
  /// column's scale or offset is extreme, see lmm::working_start).
  Vector working_start() const;
  /// A working θ̃ from moments of A, near the optimum for most models: the
  /// levels' effects as fixed effects on the residual of y on X (all terms
  /// jointly, a few block Gauss–Seidel sweeps), per term their covariance less
  /// its sampling part, relative to the residual variance, as λ̃ (kept above
  /// kMomentFloor). Terms with fewer than kMomentLevelsPerTheta levels of full
  /// rank per θ entry, and structures other than us and diag, keep
  /// working_start()'s values.
  Vector moment_start() const;

  /// The change of basis of term k's columns (model order): z̃ = z T.
  const TermTransform& transform(Index k) const { return A_.transforms[k]; }
  /// θ̃ (ntheta) of the caller's θ, and θ of a θ̃ (see transform.hpp).
  Vector to_working(Eigen::Ref<const Vector> theta) const;
  Vector to_user(Eigen::Ref<const Vector> working) const;

  /// Set θ (ntheta, model order; lme4's θ of the caller's columns) and factor
  /// L. Throws std::invalid_argument for a θ of the wrong length or non-finite
  /// entries, std::runtime_error when the factorization fails.
  void set_theta(Eigen::Ref<const Vector> theta);
  /// Set the working θ̃ (ntheta) and factor L; as set_theta otherwise.
  void set_working_theta(Eigen::Ref<const Vector> working);
  /// θ at the current parameters (from θ̃ when they were set by set_working_theta).
  const Vector& theta() const;
  const Vector& working_theta() const { return working_theta_; }
  /// λ of term k (p_k × p_k lower triangular, for the caller's columns) at the current θ.
  const Matrix& lambda(Index k) const;
  /// λ̃ of term k, the factor L is formed with.
  const Matrix& working_lambda(Index k) const { return lambda_[k]; }

  double pwrss() const { return L_.pwrss(); }
  double ldL2() const { return L_.ldL2(); }
  double ldRX2() const { return L_.ldRX2(); }

  /// Profiled deviance (ML) or REML criterion at the current θ (at the known σ,
  /// when there is one: ldL2 [+ ldRX2] − Σ log w + r²/σ² + dof · log(2πσ²)).
  double objective(bool reml) const;

  /// Exact gradient of objective(reml) with respect to θ at the current θ
  /// (ntheta): selected inverse for the log-determinants, envelope theorem for
  /// the penalized residual sum of squares, then the chain rule from λ̃ to θ.
  /// Cost a small multiple of one evaluation, independent of the length of θ.
  /// The inverse reuses the factor's storage, so a solve() or vcov_beta()
  /// after it factors again.
  Vector gradient(bool reml) const;
  /// The same gradient with respect to θ̃.
  Vector working_gradient(bool reml) const;

  /// The two parts of the gradient at the current θ: of the log-determinants
  /// (log|L_Z|², plus log|L_X|² when reml) and of the penalized residual sum of
  /// squares r², so that gradient(reml) = logdet + (dof / r²) pwrss (logdet +
  /// pwrss / σ² for a known σ). The
  /// deviance at a given σ (not profiled), ldL2 [+ ldRX2] + r²/σ² + ..., has the
  /// gradient logdet + pwrss / σ² in θ: what second derivatives in (θ, σ) need.
  /// With respect to θ̃ when working.
  struct GradientParts {
    Vector logdet, pwrss;
  };
  GradientParts gradient_parts(bool reml, bool working = false) const;

  /// β̂ (p) and û (q, terms in model order, levels within terms, columns
  /// within levels; b = Λu for the caller's λ).
  void solve(Vector& u, Vector& beta) const;
  /// Conditional modes b = Λu (q, same layout as u; the caller's columns).
  Vector b(const Vector& u) const;
  /// Residual standard deviation: sqrt(r²/n) (ML) or sqrt(r²/(n − p)) (REML), or
  /// the known σ of ModelOptions.
  double sigma(bool reml) const;
  /// Whether σ is known (ModelOptions::sigma): the criterion is then not profiled.
  bool sigma_fixed() const { return sigma_ > 0.0; }
  /// Covariance of β̂ (p × p): σ² (L_X L_X')⁻¹.
  Matrix vcov_beta(bool reml) const;
  /// Conditional covariances of the random effects at the current θ, relative
  /// to σ² (lme4's condVar divided by σ²): per term (model order), a
  /// p_k × (p_k ℓ_k) matrix whose block j is T_k λ̃_k W_jj λ̃_k' T_k' (= λ_k W_jj λ_k'
  /// in the caller's coordinates), W = (Λ̃'Z̃'Z̃Λ̃ + I)⁻¹
  /// on the pattern of L (selected inverse; any number of levels). Like
  /// gradient(), it uses the factor's storage.
  std::vector<Matrix> conditional_variances() const;

 private:
  void require_factored() const;
  // The state every constructor sets up once A_ and L_ exist.
  void initialize(double sigma);
  // Factor L at working_theta_ (λ̃ from θ̃).
  void factor_working();
  // θ, the rotations and λ of the caller's coordinates from θ̃, when stale.
  void update_user() const;
  // Per term at the current θ̃, ∂/∂λ̃_k of the log-determinants and of r² (p_k × p_k, every entry).
  struct LambdaGradients {
    std::vector<Matrix> logdet, pwrss;
  };
  LambdaGradients lambda_gradients(bool reml) const;
  // θ̃'s (working) or θ's gradient from per-term λ̃ gradients.
  Vector to_theta_gradient(const std::vector<Matrix>& G, bool working) const;
  // b̃ = Λ̃ũ (working coordinates).
  Vector working_b(const Vector& u) const;
  // Z'e = Z'y − Z'Xβ − Z'ZΛu (q) from the crossproduct blocks, for β and b = Λu.
  Vector residual_crossprod(const Vector& beta, const Vector& bvec) const;
  // Per term, the p_k × p_k matrix whose (a, b) entry is half of ∂ log|Ω| / ∂λ_k[a, b]
  // (Ω the [Z X] part for REML, the Z part for ML): from the selected inverse, or,
  // when every λ is invertible or zero, from the sums of the diagonal blocks of Ω⁻¹ alone.
  std::vector<Matrix> logdet_terms_selected(bool reml) const;
  std::vector<Matrix> logdet_terms_diagonal(bool reml) const;
  // The factor at the current θ, recomputed when gradient() used its storage.
  const BlockedCholesky& factor() const;
  // ũ, β̂ and L_X at the current θ̃, from the factor once per θ̃ (at_theta_).
  void solve_working() const;

  // The weight of r²'s gradient in the criterion's: dof / r², or 1/σ² for a known σ.
  double pwrss_weight(bool reml) const;

  std::vector<Index> order_;
  double sigma_ = 0.0;  // known σ, or 0
  Crossprod A_;
  // gradient() forms the inverse of the dense block in L's own storage (no
  // second matrix of that size); what solve() and vcov_beta() need is kept
  // before (at_theta_), other uses of the factor refactor afterwards.
  mutable BlockedCholesky L_;
  std::vector<Matrix> lambda_;  // λ̃ per term (working coordinates)
  mutable SelectedInverse W_;  // workspace of gradient(), reused between calls
  Vector working_theta_;
  // The caller's coordinates, derived from θ̃ on demand: θ, λ, and per centred
  // term the rotation Q with T⁻¹λ = λ̃Q (transform.hpp).
  mutable Vector theta_;
  mutable std::vector<Matrix> user_lambda_;
  mutable std::vector<Matrix> rotation_;
  mutable bool user_current_ = false;
  bool factored_ = false;
  // What the current θ̃'s factor gave before a gradient used its storage: the
  // fit's results at its optimum (solve(), vcov_beta(), gradient() after the
  // optimizer's working gradient there) then need no second factorization and
  // no second inverse of the dense block. Cleared with every new θ̃ or response.
  struct AtTheta {
    bool solved = false;
    Vector u, beta;  // ũ and β̂
    Matrix LX;       // the X rows' diagonal block of L (p × p, lower)
    bool gradients = false;
    bool reml = false;
    LambdaGradients G;
  };
  mutable AtTheta at_theta_;
};

}  // namespace lmm
