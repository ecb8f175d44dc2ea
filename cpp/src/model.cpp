#include "lmm/model.hpp"

#include "small_blocks.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace lmm {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

// Observations plus random effects from which building a model returns freed memory to the system.
constexpr Index kTrimSize = Index{1} << 18;

// lme4's term order (mkReTrms): terms are reordered only when some term has
// more levels than the one before it, and then by decreasing number of levels
// with ties in reverse input order (R's rev(order(nl))). θ then compares with
// lme4's getME(fit, "theta") entry by entry.
template <typename Term>
std::vector<Index> lme4_term_order(const std::vector<Term>& terms) {
  std::vector<Index> order(terms.size());
  std::iota(order.begin(), order.end(), Index{0});
  bool increases = false;
  for (std::size_t k = 1; k < terms.size(); ++k) increases = increases || terms[k].nlevels > terms[k - 1].nlevels;
  if (!increases) return order;
  std::stable_sort(order.begin(), order.end(),
                   [&](Index a, Index b) { return terms[a].nlevels < terms[b].nlevels; });
  std::reverse(order.begin(), order.end());
  return order;
}

std::vector<TermData> reordered(const std::vector<TermData>& terms, const std::vector<Index>& order) {
  std::vector<TermData> out;
  out.reserve(terms.size());
  for (Index k : order) out.push_back(terms[static_cast<std::size_t>(k)]);
  return out;
}

// A of the terms' columns in their working coordinates (terms in model order).
Crossprod working_crossprod(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                            Eigen::Ref<const Vector> y, const Shift& shift, const Vector& weights) {
  std::vector<TermTransform> transforms;
  transforms.reserve(terms.size());
  for (const auto& t : terms) transforms.push_back(term_transform(t, weights));
  return form_crossprod(terms, X, y, shift, weights, transforms);
}

}  // namespace

Model::Model(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y,
             ModelOptions options, const Shift& shift)
    : order_(lme4_term_order(terms)),
      sigma_(options.sigma),
      A_(working_crossprod(reordered(terms, order_), X, y, shift, options.weights)),
      L_(A_, options.max_dense_bytes) {
  initialize(options.sigma);
}

namespace {

// The order given for a Crossprod's terms, checked (empty: the identity).
std::vector<Index> checked_order(std::vector<Index> order, std::size_t K) {
  if (K == 0) throw std::invalid_argument("the crossproducts have no random-effects terms");
  if (order.empty()) {
    order.resize(K);
    std::iota(order.begin(), order.end(), Index{0});
  }
  std::vector<char> seen(K, 0);
  bool ok = order.size() == K;
  for (std::size_t k = 0; ok && k < K; ++k) {
    ok = order[k] >= 0 && static_cast<std::size_t>(order[k]) < K && !seen[static_cast<std::size_t>(order[k])];
    if (ok) seen[static_cast<std::size_t>(order[k])] = 1;
  }
  if (!ok) throw std::invalid_argument("the term order must be a permutation of the " + std::to_string(K) + " terms");
  return order;
}

// A with a transform per term (the identity where it has none).
Crossprod with_transforms(Crossprod A) {
  if (A.transforms.size() == A.shapes.size()) return A;
  if (!A.transforms.empty())
    throw std::invalid_argument(std::to_string(A.transforms.size()) + " column transforms for " +
                                std::to_string(A.shapes.size()) + " random-effects terms");
  for (const auto& s : A.shapes) {
    TermTransform t;
    t.scale = Vector::Ones(s.p);
    t.offset = Vector::Zero(s.p);
    A.transforms.push_back(std::move(t));
  }
  return A;
}

}  // namespace

Model::Model(Crossprod A, std::vector<Index> order, ModelOptions options)
    : order_(checked_order(std::move(order), A.shapes.size())),
      sigma_(options.sigma),
      A_(with_transforms(std::move(A))),
      L_(A_, options.max_dense_bytes) {
  if (options.weights.size() != 0)
    throw std::invalid_argument("a model on crossproducts takes no weights: form the crossproducts with them");
  initialize(options.sigma);
}

std::vector<Index> Model::term_order(const std::vector<TermShape>& shapes) { return lme4_term_order(shapes); }

void Model::initialize(double sigma) {
  if (!(std::isfinite(sigma) && sigma >= 0.0))
    throw std::invalid_argument("sigma must be a positive number (a known residual SD) or 0 (estimated)");
  for (const auto& s : A_.shapes) lambda_.push_back(Matrix::Identity(s.p, s.p));
  user_lambda_.resize(A_.shapes.size());
  rotation_.resize(A_.shapes.size());
  working_theta_ = theta_start();
#ifdef __GLIBC__
  // Forming A and the patterns of L frees many buffers proportional to n or to
  // the number of level pairs; glibc keeps freed heap memory mapped (its mmap
  // threshold rises after large frees), which would otherwise stay in the
  // process's resident set for the whole fit. Hand it back to the system, when
  // there is much of it: for small models (a scan builds one per candidate) the
  // pages handed back would only fault in again.
  Index levels = 0;
  for (const auto& s : A_.shapes) levels += s.q();
  if (A_.n + levels > kTrimSize) malloc_trim(0);
#endif
}

void Model::set_response(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                         Eigen::Ref<const Vector> y) {
  if (terms.size() != order_.size())
    throw std::invalid_argument("set_response: " + std::to_string(terms.size()) + " terms for a model with " +
                                std::to_string(order_.size()));
  update_response(A_, reordered(terms, order_), X, y);
  factored_ = false;
  at_theta_ = AtTheta();
}

ResponseCrossprods Model::response_crossprods(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                                              Eigen::Ref<const Matrix> Y, Eigen::Ref<const Matrix> R) const {
  if (terms.size() != order_.size())
    throw std::invalid_argument("response_crossprods: " + std::to_string(terms.size()) +
                                " terms for a model with " + std::to_string(order_.size()));
  return lmm::response_crossprods(A_, reordered(terms, order_), X, Y, R);
}

void Model::set_response(const ResponseCrossprods& R, Index j) {
  lmm::set_response(A_, R, j);
  factored_ = false;
  at_theta_ = AtTheta();
}

Index Model::ntheta() const {
  Index n = 0;
  for (const auto& s : A_.shapes) n += s.ntheta();
  return n;
}

namespace {

// One vector over all terms, in model order, from a per-term vector.
Vector stack_terms(const std::vector<TermShape>& shapes, Vector (*per_term)(const TermShape&)) {
  Index n = 0;
  for (const auto& s : shapes) n += s.ntheta();
  Vector out(n);
  Index k = 0;
  for (const auto& s : shapes) {
    out.segment(k, s.ntheta()) = per_term(s);
    k += s.ntheta();
  }
  return out;
}

}  // namespace

Vector Model::theta_lower() const { return stack_terms(A_.shapes, lmm::theta_lower); }

Vector Model::theta_upper() const { return stack_terms(A_.shapes, lmm::theta_upper); }

Vector Model::theta_start() const { return stack_terms(A_.shapes, lmm::theta_start); }

Vector Model::working_start() const {
  Vector out(ntheta());
  Index k = 0;
  for (std::size_t t = 0; t < A_.shapes.size(); ++t) {
    lmm::working_start(A_.shapes[t], A_.transforms[t], out.data() + k);
    k += A_.shapes[t].ntheta();
  }
  return out;
}

namespace {

// Smallest SD of a moment start relative to σ: a start on the boundary would
// leave the optimizer a vanishing gradient there.
constexpr double kMomentFloor = 0.05;
// Levels of full rank per θ entry a term needs for a moment start.
constexpr Index kMomentLevelsPerTheta = 4;
// Block Gauss–Seidel sweeps of the levels' effects over the terms.
constexpr int kMomentSweeps = 3;

// Each level's block of F (a copy of A's) replaced by the inverse of its
// Cholesky factor where it has full rank (full[g] = 1), with the levels of
// full rank counted: moment_start's per-level solves become products.
Index invert_level_factors(BlockDiag& F, std::vector<char>& full) {
  full.assign(static_cast<std::size_t>(F.nblocks), 0);
  Index used = 0;
  with_small_size(F.p, [&](auto P) {
    for (Index g = 0; g < F.nblocks; ++g) {
      Eigen::Map<Eigen::Matrix<double, P, P>> blk(F.data.data() + g * F.p * F.p, F.p, F.p);
      if (!chol_small(blk)) continue;
      if (!(blk.diagonal().minCoeff() > 1e-6 * blk.diagonal().maxCoeff())) continue;
      invert_lower_small(blk);
      full[static_cast<std::size_t>(g)] = 1;
      ++used;
    }
  });
  return used;
}

// b_g = L_g⁻ᵀ L_g⁻¹ rhs_g for the levels of full rank (F from invert_level_factors).
void solve_levels(const BlockDiag& F, const std::vector<char>& full, const double* rhs, double* b) {
  with_small_size(F.p, [&](auto P) {
    const Index p = P == Eigen::Dynamic ? F.p : P;
    Eigen::Matrix<double, P, 1> y(p);
    for (Index g = 0; g < F.nblocks; ++g) {
      if (!full[static_cast<std::size_t>(g)]) continue;
      const double* li = F.data.data() + g * p * p;  // lower, column-major
      const double* r = rhs + g * p;
      for (Index i = 0; i < p; ++i) {
        double v = 0.0;
        for (Index m = 0; m <= i; ++m) v += li[m * p + i] * r[m];
        y[i] = v;
      }
      for (Index i = 0; i < p; ++i) {
        double v = 0.0;
        for (Index m = i; m < p; ++m) v += li[i * p + m] * y[m];
        b[g * p + i] = v;
      }
    }
  });
}

// Σ_g b_g b_g' − σ² Σ_g (Z_g'Z_g)⁻¹ over the levels of full rank, (Z_g'Z_g)⁻¹ = L_g⁻ᵀ L_g⁻¹.
Matrix moment_sum(const BlockDiag& F, const std::vector<char>& full, const double* b, double sigma2) {
  Matrix S = Matrix::Zero(F.p, F.p);
  with_small_size(F.p, [&](auto P) {
    const Index p = P == Eigen::Dynamic ? F.p : P;
    Eigen::Matrix<double, P, P> acc = Eigen::Matrix<double, P, P>::Zero(p, p);
    for (Index g = 0; g < F.nblocks; ++g) {
      if (!full[static_cast<std::size_t>(g)]) continue;
      const double* li = F.data.data() + g * p * p;  // lower, column-major
      const double* bg = b + g * p;
      for (Index j = 0; j < p; ++j)
        for (Index i = j; i < p; ++i) {
          double w = 0.0;
          for (Index m = i; m < p; ++m) w += li[i * p + m] * li[j * p + m];
          acc(i, j) += bg[i] * bg[j] - sigma2 * w;
        }
    }
    S = acc.template selfadjointView<Eigen::Lower>();
  });
  return S;
}

// Σ (p × p, symmetric) made positive definite: eigenvalues below floor² raised to it.
Matrix floored(const Matrix& S, double floor2) {
  Eigen::SelfAdjointEigenSolver<Matrix> eig(S);
  if (eig.info() != Eigen::Success) return Matrix::Identity(S.rows(), S.cols()) * floor2;
  const Vector d = eig.eigenvalues().cwiseMax(floor2);
  return eig.eigenvectors() * d.asDiagonal() * eig.eigenvectors().transpose();
}

}  // namespace

Vector Model::moment_start() const {
  Vector out = working_start();
  const Index p = A_.p, n = A_.n;
  const std::size_t K = A_.shapes.size();
  if (n <= p || K == 0) return out;
  // β of y on X and the residual sum of squares, from A's [X y] block.
  Vector beta = Vector::Zero(p);
  double rss = A_.XyXy(p, p);
  if (p > 0) {
    Eigen::LLT<Matrix> llt(A_.XyXy.topLeftCorner(p, p));
    if (llt.info() != Eigen::Success) return out;
    beta = llt.solve(A_.XyXy.col(p).head(p));
    rss -= beta.dot(A_.XyXy.col(p).head(p));
  }
  if (!(rss > 0.0)) return out;

  // The levels' effects b as fixed effects on the residual r of y on X, all
  // terms jointly: block Gauss–Seidel sweeps on Z'Z b = Z'r (Z'Z from A's
  // blocks; levels without a block of full rank keep b_g = 0). The sweeps
  // take the other terms' effects out of each term's (a crossed factor's
  // levels would otherwise carry the other's variance).
  // Each level's block is replaced by the inverse of its Cholesky factor,
  // in place in a copy of A's (levels are many and small: no per-level
  // solver objects, and solves become products).
  std::vector<Vector> zr(K), b(K);
  std::vector<BlockDiag> blocks(K);
  std::vector<std::vector<char>> full(K);
  std::vector<Index> used(K, 0);
  Index rank = 0;
  for (std::size_t t = 0; t < K; ++t) {
    const TermShape& s = A_.shapes[t];
    const Index pt = s.p;
    zr[t].resize(s.q());
    last_row_less(A_.XyZ[t], beta, zr[t].data());
    b[t].setZero(s.q());
    blocks[t] = A_.ZZ[t];
    used[t] = invert_level_factors(blocks[t], full[t]);
    rank += used[t] * pt;
  }
  // One term needs one sweep: no other term's effects to take out.
  const int sweeps = K == 1 ? 1 : kMomentSweeps;
  Vector rhs;
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    for (std::size_t t = 0; t < K; ++t) {
      const TermShape& s = A_.shapes[t];
      const Index pt = s.p;
      rhs = zr[t];
      // − Z_t'Z_k b_k for the other terms: blocks (t, k) with k < t stored as
      // ZZ_off[t][k], with k > t as the transpose of ZZ_off[k][t].
      for (std::size_t k = 0; k < K; ++k) {
        if (k == t) continue;
        const bool below = k < t;
        const SparseBlocks& S = below ? A_.ZZ_off[t][k] : A_.ZZ_off[k][t];
        if (S.pr == 1 && S.pc == 1) {
          scalar_blocks_less(S, !below, b[k].data(), rhs.data());
          continue;
        }
        for (Index c = 0; c < S.ncols; ++c)
          for (Index e = S.colptr[c]; e < S.colptr[c + 1]; ++e) {
            const Index r = S.rowidx[e];
            if (below) {
              rhs.segment(r * pt, pt).noalias() -= S.block(e) * b[k].segment(c * S.pc, S.pc);
            } else {
              rhs.segment(c * pt, pt).noalias() -= S.block(e).transpose() * b[k].segment(r * S.pr, S.pr);
            }
          }
      }
      solve_levels(blocks[t], full[t], rhs.data(), b[t].data());
    }
  }
  double explained = 0.0;
  for (std::size_t t = 0; t < K; ++t) explained += b[t].dot(zr[t]);
  const Index df = n - p - rank;
  double sigma2 = rss / static_cast<double>(n - p);
  if (df > 0 && rss - explained > 0.0) sigma2 = std::min(sigma2, (rss - explained) / static_cast<double>(df));
  if (!(sigma2 > 0.0) || !std::isfinite(sigma2)) return out;

  // Per term: Σ_g b_g b_g' less the sampling part σ² Σ_g (Z_g'Z_g)⁻¹, over the
  // levels of full rank, relative to σ².
  Index k = 0;
  for (std::size_t t = 0; t < K; ++t) {
    const TermShape& s = A_.shapes[t];
    const Index pt = s.p, m = s.ntheta();
    const bool us = s.covariance == Covariance::Unstructured;
    // Moments of a few levels per parameter are too noisy to start from (a
    // maximal model's 36 θ per term from 56 subjects started 60 % more
    // evaluations away from the optimum than λ̃ = I).
    const bool enough = used[t] >= kMomentLevelsPerTheta * m;
    if (enough && (us || s.covariance == Covariance::Diagonal)) {
      // S = Σ_g b_g b_g' − σ² Σ_g (Z_g'Z_g)⁻¹, (Z_g'Z_g)⁻¹ = L_g⁻ᵀ L_g⁻¹.
      Matrix S = moment_sum(blocks[t], full[t], b[t].data(), sigma2);
      S /= static_cast<double>(used[t]) * sigma2;
      S = floored(0.5 * (S + S.transpose()), kMomentFloor * kMomentFloor);
      if (us) {
        const Matrix lambda = Eigen::LLT<Matrix>(S).matrixL();
        const auto positions = s.parameterization().positions(pt);
        for (Index j = 0; j < m; ++j) out[k + j] = lambda(positions[j].first, positions[j].second);
      } else {
        for (Index j = 0; j < m; ++j) out[k + j] = std::sqrt(S(j, j));
      }
      if (!out.segment(k, m).allFinite()) out.segment(k, m) = working_start().segment(k, m);
    }
    k += m;
  }
  return out;
}

namespace {

void check_theta(Eigen::Ref<const Vector> theta, Index ntheta, const char* name) {
  if (theta.size() != ntheta)
    throw std::invalid_argument(std::string(name) + " has length " + std::to_string(theta.size()) +
                                ", the model needs " + std::to_string(ntheta));
  if (!theta.allFinite()) throw std::invalid_argument(std::string(name) + " has non-finite entries");
}

}  // namespace

namespace {

// θ̃ of θ or θ of θ̃, term by term (theta_to_working or theta_from_working).
using TermMap = void (*)(const TermShape&, const TermTransform&, const double*, double*, Matrix&);
Vector map_terms(const Crossprod& A, Eigen::Ref<const Vector> in, TermMap map) {
  Vector out(in.size());
  Matrix rotation;
  Index k = 0;
  for (std::size_t t = 0; t < A.shapes.size(); ++t) {
    map(A.shapes[t], A.transforms[t], in.data() + k, out.data() + k, rotation);
    k += A.shapes[t].ntheta();
  }
  return out;
}

}  // namespace

Vector Model::to_working(Eigen::Ref<const Vector> theta) const {
  check_theta(theta, ntheta(), "theta");
  return map_terms(A_, theta, theta_to_working);
}

Vector Model::to_user(Eigen::Ref<const Vector> working) const {
  check_theta(working, ntheta(), "the working theta");
  return map_terms(A_, working, theta_from_working);
}

void Model::set_theta(Eigen::Ref<const Vector> theta) {
  check_theta(theta, ntheta(), "theta");
  factored_ = false;
  user_current_ = false;
  Vector working(theta.size());
  Index k = 0;
  for (std::size_t t = 0; t < A_.shapes.size(); ++t) {
    theta_to_working(A_.shapes[t], A_.transforms[t], theta.data() + k, working.data() + k, rotation_[t]);
    theta_to_lambda(A_.shapes[t], theta.data() + k, user_lambda_[t]);
    k += A_.shapes[t].ntheta();
  }
  theta_ = theta;
  user_current_ = true;
  working_theta_ = std::move(working);
  factor_working();
}

void Model::set_working_theta(Eigen::Ref<const Vector> working) {
  check_theta(working, ntheta(), "the working theta");
  // The same θ̃ again (a summary's centre, the fit's optimum): the factor and
  // what was kept from it serve.
  if (factored_ && working == working_theta_) return;
  factored_ = false;
  user_current_ = false;
  working_theta_ = working;
  factor_working();
}

void Model::factor_working() {
  Index k = 0;
  for (std::size_t t = 0; t < A_.shapes.size(); ++t) {
    theta_to_lambda(A_.shapes[t], working_theta_.data() + k, lambda_[t]);
    k += A_.shapes[t].ntheta();
  }
  at_theta_ = AtTheta();
  L_.factor(A_, lambda_);
  factored_ = true;
}

void Model::update_user() const {
  if (user_current_) return;
  theta_.resize(working_theta_.size());
  Index k = 0;
  for (std::size_t t = 0; t < A_.shapes.size(); ++t) {
    theta_from_working(A_.shapes[t], A_.transforms[t], working_theta_.data() + k, theta_.data() + k, rotation_[t]);
    theta_to_lambda(A_.shapes[t], theta_.data() + k, user_lambda_[t]);
    k += A_.shapes[t].ntheta();
  }
  user_current_ = true;
}

const Vector& Model::theta() const {
  update_user();
  return theta_;
}

const Matrix& Model::lambda(Index k) const {
  update_user();
  return user_lambda_[k];
}

void Model::require_factored() const {
  if (!factored_) throw std::logic_error("set_theta() must succeed before results are read");
}

double Model::objective(bool reml) const {
  require_factored();
  const double n = static_cast<double>(A_.n);
  const double dof = reml ? n - static_cast<double>(A_.p) : n;
  const double logdet = reml ? L_.ldL2() + L_.ldRX2() : L_.ldL2();
  if (sigma_fixed()) {
    const double s2 = sigma_ * sigma_;
    return logdet - A_.sum_log_weights + L_.pwrss() / s2 + dof * (kLog2Pi + std::log(s2));
  }
  return logdet - A_.sum_log_weights + dof * (1.0 + kLog2Pi + std::log(L_.pwrss() / dof));
}

double Model::pwrss_weight(bool reml) const {
  if (sigma_fixed()) return 1.0 / (sigma_ * sigma_);
  return static_cast<double>(reml ? A_.n - A_.p : A_.n) / L_.pwrss();
}

namespace {

struct LevelTerms {
  const BlockDiag& Azz;  // A_kk
  const Matrix& Axy;     // A_[Xy],k
  const Matrix& lambda;  // λ_k
  const BlockDiag& Wd;   // diagonal blocks of W for term k
  const Matrix& WX;      // W at (X rows, term k), px × q_k
  Index px;              // X rows in W (0 for ML)
};

// G_j = W_jj λ'A_jj + W_Xj' A_Xj per level, for a prefix term with P columns
// known at compile time.
template <int P>
void level_terms(const LevelTerms& t, Matrix& G) {
  using Block = Eigen::Matrix<double, P, P>;
  using Rows = Eigen::Matrix<double, Eigen::Dynamic, P>;
  const Block lt = t.lambda.transpose();
  const Index rows = t.Axy.rows();
  for (Index j = 0; j < t.Azz.nblocks; ++j) {
    const Eigen::Map<const Block> a(t.Azz.data.data() + j * P * P);
    Eigen::Map<Block> g(G.data() + j * P * P);
    g.noalias() = Eigen::Map<const Block>(t.Wd.data.data() + j * P * P) * (lt * a);
    if (t.px > 0)
      g.noalias() += Eigen::Map<const Rows>(t.WX.data() + j * t.px * P, t.px, P).transpose().lazyProduct(
          Eigen::Map<const Rows>(t.Axy.data() + j * rows * P, rows, P).topRows(t.px));
  }
}

// Whether every λ is safely invertible: the log-determinant's gradient can
// then come from the diagonal blocks of Ω⁻¹ alone (Model::gradient). Below
// this ratio of the smallest diagonal entry to the largest entry, the
// identity's cancellation (ℓ λ⁻¹ − Σ W_jj λ⁻¹) would cost digits.
constexpr double kInvertibleRatio = 1e-3;

bool invertible(const Matrix& l) {
  return l.diagonal().minCoeff() >= kInvertibleRatio * std::max(1.0, l.cwiseAbs().maxCoeff());
}

// Whether every λ is invertible or zero (a term at the boundary, as the
// optimizer's line searches probe): the diagonal-sum identity then holds
// term by term (Model::logdet_terms_diagonal).
bool invertible_or_zero(const std::vector<Matrix>& lambda) {
  return std::all_of(lambda.begin(), lambda.end(), [](const Matrix& l) { return l.isZero(0.0) || invertible(l); });
}

}  // namespace

Vector Model::residual_crossprod(const Vector& beta, const Vector& bvec) const {
  const Index K = nterms();
  std::vector<Index> off(static_cast<std::size_t>(K) + 1, 0);
  for (Index k = 0; k < K; ++k) off[k + 1] = off[k] + A_.shapes[k].q();
  Vector ze(off[K]);
  for (Index k = 0; k < K; ++k) {
    last_row_less(A_.XyZ[k], beta, ze.data() + off[k]);
    block_diag_times(A_.ZZ[k], -1.0, bvec.data() + off[k], ze.data() + off[k]);
  }
  for (Index i = 1; i < K; ++i) {
    const Index pi = A_.shapes[i].p;
    for (Index k = 0; k < i; ++k) {
      const SparseBlocks& Aik = A_.ZZ_off[i][k];
      const Index pk = A_.shapes[k].p;
      if (pi == 1 && pk == 1) {
        scalar_blocks_less(Aik, false, bvec.data() + off[k], ze.data() + off[i]);
        scalar_blocks_less(Aik, true, bvec.data() + off[i], ze.data() + off[k]);
        continue;
      }
      for (Index j = 0; j < Aik.ncols; ++j)
        for (Index e = Aik.colptr[j]; e < Aik.colptr[j + 1]; ++e) {
          const Index r = Aik.rowidx[e];
          const double* B = Aik.data.data() + e * pi * pk;  // A at (term i level r, term k level j), pi × pk
          for (Index c = 0; c < pk; ++c)
            for (Index a = 0; a < pi; ++a) {
              ze[off[i] + r * pi + a] -= B[c * pi + a] * bvec[off[k] + j * pk + c];
              ze[off[k] + j * pk + c] -= B[c * pi + a] * bvec[off[i] + r * pi + a];
            }
        }
    }
  }
  return ze;
}

std::vector<Matrix> Model::logdet_terms_selected(bool reml) const {
  const Index K = nterms(), p = A_.p;
  SelectedInverse& W = W_;
  L_.selected_inverse(reml, W);
  // G[k] (p_k × q_k, one p_k × p_k block per level) = Σ_s W_{s,kj}' (Λ'A)_{s,kj}.
  std::vector<Matrix> G(static_cast<std::size_t>(K));
  Matrix w;
  for (Index k = 0; k < K; ++k) {
    const Index pk = A_.shapes[k].p;
    const Matrix& lk = lambda_[k];
    G[k].setZero(pk, A_.shapes[k].q());
    if (W.in_prefix(k) && pk <= 4) {
      const LevelTerms args{A_.ZZ[k], A_.XyZ[k], lk, W.diag(k), W.x(k), reml ? p : 0};
      if (pk == 1) level_terms<1>(args, G[k]);
      if (pk == 2) level_terms<2>(args, G[k]);
      if (pk == 3) level_terms<3>(args, G[k]);
      if (pk == 4) level_terms<4>(args, G[k]);
      continue;
    }
    for (Index j = 0; j < A_.shapes[k].nlevels; ++j) {
      const auto Akj = A_.ZZ[k].block(j);
      W.block(k, j, k, j, w);
      G[k].middleCols(j * pk, pk).noalias() = w * (lk.transpose() * Akj);
      if (reml && p > 0) {
        W.xblock(k, j, w);
        G[k].middleCols(j * pk, pk).noalias() += w.transpose() * A_.XyZ[k].topRows(p).middleCols(j * pk, pk);
      }
    }
  }
  for (Index i = 1; i < K; ++i) {
    const Index pi = A_.shapes[i].p;
    for (Index k = 0; k < i; ++k) {
      const SparseBlocks& Aik = A_.ZZ_off[i][k];
      const Index pk = A_.shapes[k].p;
      if (pi == 1 && pk == 1) {
        const double li = lambda_[i](0, 0), lk = lambda_[k](0, 0);
        for (Index j = 0; j < Aik.ncols; ++j)
          for (Index e = Aik.colptr[j]; e < Aik.colptr[j + 1]; ++e) {
            const Index r = Aik.rowidx[e];
            const double Wik = W.coeff(i, r, k, j) * Aik.data(0, e);
            G[k](0, j) += Wik * li;
            G[i](0, r) += Wik * lk;
          }
        continue;
      }
      for (Index j = 0; j < Aik.ncols; ++j)
        for (Index e = Aik.colptr[j]; e < Aik.colptr[j + 1]; ++e) {
          const Index r = Aik.rowidx[e];
          const auto B = Aik.block(e);  // A at (term i level r, term k level j), pi × pk
          W.block(i, r, k, j, w);
          G[k].middleCols(j * pk, pk).noalias() += w.transpose() * (lambda_[i].transpose() * B);
          G[i].middleCols(r * pi, pi).noalias() += w * (lambda_[k].transpose() * B.transpose());
        }
    }
  }
  L_.reclaim(W);
  // Σ over levels of each p_k × p_k block, transposed: entry (a, b) of the
  // result is ∂/∂λ_k[a, b] of log|Ω|, halved.
  std::vector<Matrix> D(static_cast<std::size_t>(K));
  for (Index k = 0; k < K; ++k) {
    const Index pk = A_.shapes[k].p;
    D[k].setZero(pk, pk);
    for (Index j = 0; j < A_.shapes[k].nlevels; ++j) D[k] += G[k].middleCols(j * pk, pk).transpose();
  }
  return D;
}

std::vector<Matrix> Model::logdet_terms_diagonal(bool reml) const {
  // Ω = P'GP + J (P = diag(Λ, I), block diagonal; J the identity on the Z
  // rows) gives the columns of term k of P'G as (Ω − J)_{·,k} λ_k⁻¹ when λ_k
  // is invertible (whatever the other terms' λ), so
  //   ∂ log|Ω| / ∂λ_k[a, b] = 2 tr((I − Ω⁻¹J) P⁻¹ ∂P) = 2 Σ_j ((I − W_jj) λ_k⁻¹)[b, a]:
  // only the sums over levels of the diagonal blocks W_jj of Ω⁻¹ are needed,
  // without the rest of the selected inverse. When λ_k = 0, term k's rows of
  // Ω are those of I, so Ω⁻¹ is I there and tr(Ω⁻¹ P'G ∂P) = tr(P_kk' G_kk ∂P_kk) = 0.
  const Index K = nterms();
  std::vector<Matrix> sums;
  L_.diagonal_block_sums(reml, sums);
  std::vector<Matrix> D(static_cast<std::size_t>(K));
  for (Index k = 0; k < K; ++k) {
    const Index pk = A_.shapes[k].p;
    if (lambda_[k].isZero(0.0)) {
      D[k].setZero(pk, pk);
      continue;
    }
    Matrix linv = Matrix::Identity(pk, pk);
    lambda_[k].triangularView<Eigen::Lower>().solveInPlace(linv);
    const Matrix m = (static_cast<double>(A_.shapes[k].nlevels) * Matrix::Identity(pk, pk) - sums[k]) * linv;
    D[k] = m.transpose();
  }
  return D;
}

Model::LambdaGradients Model::lambda_gradients(bool reml) const {
  require_factored();
  if (at_theta_.gradients && at_theta_.reml == reml) return at_theta_.G;
  const Index K = nterms();
  solve_working();
  factor();  // the log-determinant terms below use the factor's storage (refactored if a gradient used it)
  const Vector& u = at_theta_.u;
  const Vector ze = residual_crossprod(at_theta_.beta, working_b(u));
  const std::vector<Matrix> D = L_.prefix_independent() && invertible_or_zero(lambda_)
                                    ? logdet_terms_diagonal(reml)
                                    : logdet_terms_selected(reml);
  // ∂/∂λ̃_k(a, b) of the log-determinants and of r² for every entry, the upper
  // triangle included: the map to the caller's θ of a centred term
  // (gradient_from_working) needs them all.
  LambdaGradients G{std::vector<Matrix>(static_cast<std::size_t>(K)), std::vector<Matrix>(static_cast<std::size_t>(K))};
  Index off = 0;
  for (Index k = 0; k < K; ++k) {
    const TermShape& s = A_.shapes[k];
    const Index pk = s.p;
    G.logdet[k] = 2.0 * D[k];
    G.pwrss[k].resize(pk, pk);
    for (Index b = 0; b < pk; ++b)
      for (Index a = 0; a < pk; ++a) {
        double rss = 0.0;
        for (Index j = 0; j < s.nlevels; ++j) rss += ze[off + j * pk + a] * u[off + j * pk + b];
        G.pwrss[k](a, b) = -2.0 * rss;
      }
    off += s.q();
  }
  at_theta_.gradients = true;
  at_theta_.reml = reml;
  at_theta_.G = G;
  return G;
}

Vector Model::to_theta_gradient(const std::vector<Matrix>& G, bool working) const {
  if (!working) update_user();
  Vector grad(ntheta());
  Index t = 0;
  for (Index k = 0; k < nterms(); ++k) {
    const TermShape& s = A_.shapes[k];
    if (working)  // θ̃ through each term's parameterization (the chain rule through ∂λ̃/∂θ̃)
      s.parameterization().chain(s.p, working_theta_.data() + t, G[k], grad.data() + t);
    else
      gradient_from_working(s, A_.transforms[k], working_theta_.data() + t, G[k], rotation_[k], grad.data() + t);
    t += s.ntheta();
  }
  return grad;
}

Model::GradientParts Model::gradient_parts(bool reml, bool working) const {
  const LambdaGradients G = lambda_gradients(reml);
  return {to_theta_gradient(G.logdet, working), to_theta_gradient(G.pwrss, working)};
}

Vector Model::working_gradient(bool reml) const {
  const GradientParts parts = gradient_parts(reml, true);
  return parts.logdet + pwrss_weight(reml) * parts.pwrss;
}

Vector Model::gradient(bool reml) const {
  const GradientParts parts = gradient_parts(reml, false);
  return parts.logdet + pwrss_weight(reml) * parts.pwrss;
}

const BlockedCholesky& Model::factor() const {
  require_factored();
  if (!L_.factored()) L_.factor(A_, lambda_);
  return L_;
}

void Model::solve_working() const {
  require_factored();
  if (at_theta_.solved) return;
  const BlockedCholesky& L = factor();
  L.solve_u_beta(at_theta_.u, at_theta_.beta);
  at_theta_.LX = L.LX();
  at_theta_.solved = true;
}

void Model::solve(Vector& u, Vector& beta) const {
  solve_working();
  u = at_theta_.u;
  beta = at_theta_.beta;
  // b = T λ̃ ũ = λ Q' ũ per level (T⁻¹λ = λ̃Q): the caller's û is Q' ũ.
  update_user();
  Index off = 0;
  for (std::size_t t = 0; t < A_.shapes.size(); ++t) {
    const TermShape& s = A_.shapes[t];
    if (rotation_[t].size() > 0) {
      Eigen::Map<Matrix> levels(u.data() + off, s.p, s.nlevels);
      levels = rotation_[t].transpose() * levels;
    }
    off += s.q();
  }
}

namespace {

// Per level, Λ's block times u: out = (I ⊗ λ_k) u over the terms.
Vector times_lambda(const std::vector<TermShape>& shapes, const std::vector<Matrix>& lambda, const Vector& u) {
  Vector out(u.size());
  Index off = 0;
  for (std::size_t t = 0; t < shapes.size(); ++t) {
    levels_times_lower(lambda[t], shapes[t].nlevels, u.data() + off, out.data() + off);
    off += shapes[t].q();
  }
  return out;
}

}  // namespace

Vector Model::b(const Vector& u) const {
  update_user();
  return times_lambda(A_.shapes, user_lambda_, u);
}

Vector Model::working_b(const Vector& u) const { return times_lambda(A_.shapes, lambda_, u); }

double Model::sigma(bool reml) const {
  if (sigma_fixed()) return sigma_;
  require_factored();
  const double dof = static_cast<double>(reml ? A_.n - A_.p : A_.n);
  return std::sqrt(L_.pwrss() / dof);
}

Matrix Model::vcov_beta(bool reml) const {
  require_factored();
  const Index p = A_.p;
  Matrix Linv = Matrix::Identity(p, p);
  solve_working();
  at_theta_.LX.triangularView<Eigen::Lower>().solveInPlace(Linv);
  const double s = sigma(reml);
  return s * s * (Linv.transpose() * Linv);
}

std::vector<Matrix> Model::conditional_variances() const {
  factor();
  L_.selected_inverse(false, W_);
  std::vector<Matrix> out;
  out.reserve(A_.shapes.size());
  Matrix w;
  for (Index k = 0; k < nterms(); ++k) {
    const TermShape& s = A_.shapes[k];
    // The conditional covariance of b = T b̃ = T λ̃ ũ.
    const Matrix l = A_.transforms[k].matrix(s.p) * lambda_[k];
    Matrix& c = out.emplace_back(s.p, s.q());
    for (Index j = 0; j < s.nlevels; ++j) {
      W_.block(k, j, k, j, w);
      c.middleCols(j * s.p, s.p).noalias() = l * w * l.transpose();
    }
  }
  return out;
}

}  // namespace lmm
