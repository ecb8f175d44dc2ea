// Matrix-free REML and ML for two crossed scalar terms (see matrix_free.hpp).
#include "lmm/matrix_free.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "lmm/dense.hpp"
#include "lmm/parallel.hpp"

namespace lmm {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;
// Newton's step in log θ is clipped to this (a factor e^1.5 per iteration).
constexpr double kMaxStep = 1.5;
// Forward-difference step in log θ of the score's Jacobian: the score is smooth
// (fixed probes) and accurate to the solves' 1e-10, so 1e-4 leaves an error
// of order 1e-4 relative in the Jacobian, which only slows Newton's last digits.
constexpr double kDifferenceStep = 1e-4;
// A θ entry below this (relative to 1, the start) means a variance tending to 0.
constexpr double kBoundary = 1e-6;
constexpr int kHalvings = 8;

// Blocks of vectors over the levels of one term, level-major: vector j is
// column j, and each level's m values are contiguous (a product with N reads
// one row per nonzero).
using Rows = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Row = Eigen::Matrix<double, 1, Eigen::Dynamic>;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Rademacher probes (±1), column j of stream `stream` a function of (seed, stream, j) alone.
Rows rademacher(Index n, Index m, std::uint64_t seed, std::uint64_t stream) {
  Rows Z(n, m);
  for (Index j = 0; j < m; ++j) {
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ULL ^ (stream + 1) * 0xBF58476D1CE4E5B9ULL ^
                      (static_cast<std::uint64_t>(j) + 1) * 0x94D049BB133111EBULL;
    std::uint64_t bits = 0;
    for (Index i = 0; i < n; ++i) {
      if (i % 64 == 0) {  // splitmix64
        s += 0x9E3779B97F4A7C15ULL;
        std::uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        bits = z ^ (z >> 31);
      }
      Z(i, j) = (bits >> (i % 64)) & 1 ? 1.0 : -1.0;
    }
  }
  return Z;
}

// Column sums of the entrywise product (one dot product per vector).
Row dots(const Rows& X, const Rows& Y) { return X.cwiseProduct(Y).colwise().sum(); }

// Mean and standard error of the entries of a sample.
std::pair<double, double> mean_se(const Row& x) {
  const double n = static_cast<double>(x.size());
  if (n == 0) return {0.0, 0.0};
  const double mean = x.mean();
  if (n < 2) return {mean, 0.0};
  const double var = (x.array() - mean).square().sum() / (n - 1);
  return {mean, std::sqrt(var / n)};
}

// The model's operators at one θ: D_a, D_b, S = D_b − c² N D_a⁻¹ N', its
// Jacobi preconditioner and the deflation of the vector of ones.
class Crossed {
 public:
  Crossed(const Crossprod& A, int threads)
      : A_(A), N_(A.ZZ_off[1][0]), la_(A.shapes[0].nlevels), lb_(A.shapes[1].nlevels), threads_(std::max(threads, 1)) {
    da_ = A.ZZ[0].data.row(0).transpose();
    db_ = A.ZZ[1].data.row(0).transpose();
    // Ranges of a's levels with equal shares of N's nonzeros, one per thread.
    const Index chunks = threads_;
    bounds_.assign(1, 0);
    const double per = static_cast<double>(N_.nnz()) / static_cast<double>(chunks);
    for (Index c = 0, k = 1; c < la_ && k < chunks; ++c)
      if (static_cast<double>(N_.colptr[c + 1]) >= per * static_cast<double>(k)) {
        bounds_.push_back(c + 1);
        ++k;
      }
    bounds_.push_back(la_);
    acc_.resize(bounds_.size() - 1);
  }

  Index la() const { return la_; }
  Index lb() const { return lb_; }

  void set_theta(double ta, double tb) {
    ta_ = ta;
    tb_ = tb;
    c_ = ta * tb;
    da_inv_ = (ta * ta * da_.array() + 1.0).inverse().matrix();
    Db_ = (tb * tb * db_.array() + 1.0).matrix();
    // diag(S)_i = D_b,i − c² Σ_j N_ij² / D_a,j
    Vector diag = Db_;
    for (Index j = 0; j < la_; ++j)
      for (Index e = N_.colptr[j]; e < N_.colptr[j + 1]; ++e) {
        const double v = N_.data(0, e);
        diag[N_.rowidx[e]] -= c_ * c_ * v * v * da_inv_[j];
      }
    jacobi_inv_ = diag.cwiseInverse();
    Rows ones = Rows::Ones(lb_, 1);
    Rows s1;
    times_S(ones, s1);
    S_ones_ = s1.col(0);
    ones_S_ones_ = S_ones_.sum();
  }

  const Vector& da_inv() const { return da_inv_; }
  const Vector& jacobi_inv() const { return jacobi_inv_; }
  double c() const { return c_; }
  double ta() const { return ta_; }
  double tb() const { return tb_; }
  Index products() const { return products_; }

  // Y = S X (ℓ_b × m), one pass over N: per level j of a, t = D_a,j⁻¹ Σ_i N_ij X_i,
  // then Y_i −= c² N_ij t.
  void times_S(const Rows& X, Rows& Y) const {
    ++products_;
    const Index m = X.cols();
    const double c2 = c_ * c_;
    scatter(m, [&](Index j, double* t) {
      for (Index e = N_.colptr[j]; e < N_.colptr[j + 1]; ++e) {
        const double v = N_.data(0, e);
        const double* x = X.data() + static_cast<Index>(N_.rowidx[e]) * m;
        for (Index k = 0; k < m; ++k) t[k] += v * x[k];
      }
      const double s = c2 * da_inv_[j];
      for (Index k = 0; k < m; ++k) t[k] *= s;
    });
    Y = Db_.asDiagonal() * X;
    for (const Rows& part : acc_) Y -= part;
  }

  // Y = N U (ℓ_b × m) for U (ℓ_a × m).
  void times_N(const Rows& U, Rows& Y) const {
    const Index m = U.cols();
    scatter(m, [&](Index j, double* t) {
      for (Index k = 0; k < m; ++k) t[k] = U(j, k);
    });
    Y = Rows::Zero(lb_, m);
    for (const Rows& part : acc_) Y += part;
  }

  // U = N' Y (ℓ_a × m) for Y (ℓ_b × m).
  void times_Nt(const Rows& Y, Rows& U) const {
    const Index m = Y.cols();
    U = Rows::Zero(la_, m);
    parallel_for(static_cast<long>(bounds_.size() - 1), threads_, [&](long part) {
      for (Index j = bounds_[part]; j < bounds_[part + 1]; ++j) {
        double* u = U.data() + j * m;
        for (Index e = N_.colptr[j]; e < N_.colptr[j + 1]; ++e) {
          const double v = N_.data(0, e);
          const double* y = Y.data() + static_cast<Index>(N_.rowidx[e]) * m;
          for (Index k = 0; k < m; ++k) u[k] += v * y[k];
        }
      }
    });
  }

  // X = S⁻¹ R by conjugate gradients, each column to a relative residual of
  // tol: Jacobi preconditioner, the vector of ones deflated (its part of the
  // solution first, every search direction S-orthogonal to it). Returns the
  // iterations (products with S).
  Index solve(const Rows& R, Rows& X, double tol, int max_iterations) const {
    const Index m = R.cols();
    const double mu = ones_S_ones_;
    const Row wR = R.colwise().sum() / mu;
    X = Rows::Ones(lb_, 1) * wR;
    Rows Res = R - S_ones_ * wR;
    const Row bnorm = R.colwise().norm();
    std::vector<bool> active(static_cast<std::size_t>(m));
    Index nactive = 0;
    for (Index j = 0; j < m; ++j) {
      active[j] = bnorm[j] > 0 && Res.col(j).norm() > tol * bnorm[j];
      nactive += active[j];
      if (bnorm[j] == 0) X.col(j).setZero();
    }
    Rows Z = jacobi_inv_.asDiagonal() * Res;
    Rows P = Z - Rows::Ones(lb_, 1) * ((S_ones_.transpose() * Z) / mu);
    Row rz = dots(Res, Z);
    Rows Q;
    Index it = 0;
    while (nactive > 0) {
      if (it == max_iterations)
        throw std::runtime_error("matrix-free fit: conjugate gradients did not reach a relative residual of " +
                                 std::to_string(tol) + " in " + std::to_string(max_iterations) + " iterations");
      ++it;
      times_S(P, Q);
      const Row pq = dots(P, Q);
      Row alpha = Row::Zero(m);
      for (Index j = 0; j < m; ++j)
        if (active[j]) {
          if (!(pq[j] > 0))
            throw std::runtime_error("matrix-free fit: the Schur complement is not positive definite");
          alpha[j] = rz[j] / pq[j];
        }
      X.noalias() += P * alpha.asDiagonal();
      Res.noalias() -= Q * alpha.asDiagonal();
      const Row rnorm = Res.colwise().norm();
      for (Index j = 0; j < m; ++j)
        if (active[j] && rnorm[j] <= tol * bnorm[j]) {
          active[j] = false;
          --nactive;
        }
      Z = jacobi_inv_.asDiagonal() * Res;
      const Row rz_new = dots(Res, Z);
      Row beta = Row::Zero(m);
      for (Index j = 0; j < m; ++j)
        if (active[j]) beta[j] = rz_new[j] / rz[j];
      rz = rz_new;
      P = Z + P * beta.asDiagonal();
      P.noalias() -= Rows::Ones(lb_, 1) * ((S_ones_.transpose() * Z) / mu);
    }
    return it;
  }

 private:
  // acc_[part] = Σ over a's levels j of the part of N_{:,j} t_j', with t_j from
  // fill(j, t) (t zeroed first): the scatter half of a product, per thread.
  template <class Fill>
  void scatter(Index m, const Fill& fill) const {
    parallel_for(static_cast<long>(bounds_.size() - 1), threads_, [&](long part) {
      Rows& out = acc_[part];
      out.setZero(lb_, m);
      std::vector<double> t(static_cast<std::size_t>(m));
      for (Index j = bounds_[part]; j < bounds_[part + 1]; ++j) {
        std::fill(t.begin(), t.end(), 0.0);
        fill(j, t.data());
        for (Index e = N_.colptr[j]; e < N_.colptr[j + 1]; ++e) {
          const double v = N_.data(0, e);
          double* y = out.data() + static_cast<Index>(N_.rowidx[e]) * m;
          for (Index k = 0; k < m; ++k) y[k] += v * t[k];
        }
      }
    });
  }

  const Crossprod& A_;
  const SparseBlocks& N_;
  Index la_, lb_;
  int threads_;
  std::vector<Index> bounds_;
  mutable std::vector<Rows> acc_;
  mutable Index products_ = 0;
  Vector da_, db_;
  double ta_ = 1, tb_ = 1, c_ = 1;
  Vector da_inv_, Db_, jacobi_inv_, S_ones_;
  double ones_S_ones_ = 1;
};

// The solution at θ: β, u, r², log|R_X|² from M⁻¹Λ'Z'[X y], and S⁻¹1.
struct Solution {
  Rows Fa, Fb;       // M⁻¹Λ'Z'[X y], the two terms' rows (p + 1 columns)
  Matrix K;          // [X y]'V⁻¹[X y] = A_[Xy][Xy] − (Λ'Z'[Xy])' M⁻¹ Λ'Z'[Xy]
  Matrix RtR_inv;    // (R_X'R_X)⁻¹
  Vector beta, ua, ub;
  double pwrss = 0, ldRX2 = 0;
  Vector S_inv_ones;
  Index iterations = 0;
};

class Evaluator {
 public:
  Evaluator(const Crossprod& A, const MatrixFreeOptions& o)
      : A_(A), o_(o), op_(A, o.threads > 0 ? o.threads : dense_threads()), p_(A.p) {
    dof_ = static_cast<double>(o.reml ? A.n - A.p : A.n);
  }

  Crossed& op() { return op_; }
  Index cg_iterations() const { return cg_; }
  double dof() const { return dof_; }

  // Solve M x = r for r given by its two parts (ℓ_a × m, ℓ_b × m), with extra
  // columns `more` (ℓ_b × m') solved with S alone; xs receives S⁻¹ more.
  void solve_M(const Rows& ra, const Rows& rb, Rows& xa, Rows& xb, const Rows* more = nullptr, Rows* xs = nullptr) {
    const double c = op_.c();
    Rows t = op_.da_inv().asDiagonal() * ra;
    Rows Nt;
    op_.times_N(t, Nt);
    const Index m = ra.cols(), extra = more ? more->cols() : 0;
    Rows rhs(op_.lb(), m + extra);
    rhs.leftCols(m) = rb - c * Nt;
    if (extra) rhs.rightCols(extra) = *more;
    Rows x;
    cg_ += op_.solve(rhs, x, o_.cg_tolerance, o_.max_cg_iterations);
    xb = x.leftCols(m);
    if (extra) *xs = x.rightCols(extra);
    Rows Ntx;
    op_.times_Nt(xb, Ntx);
    xa = op_.da_inv().asDiagonal() * (ra - c * Ntx);
  }

  Solution solution(double ta, double tb) {
    op_.set_theta(ta, tb);
    Solution s;
    const Rows ra = ta * A_.XyZ[0].transpose();
    const Rows rb = tb * A_.XyZ[1].transpose();
    const Rows ones = Rows::Ones(op_.lb(), 1);
    Rows s1;
    const Index before = cg_;
    solve_M(ra, rb, s.Fa, s.Fb, &ones, &s1);
    s.iterations = cg_ - before;
    s.S_inv_ones = s1.col(0);
    s.K = A_.XyXy - (ra.transpose() * s.Fa + rb.transpose() * s.Fb);
    s.K = 0.5 * (s.K + s.K.transpose()).eval();
    if (p_ > 0) {
      Eigen::LLT<Matrix> llt(s.K.topLeftCorner(p_, p_));
      if (llt.info() != Eigen::Success)
        throw std::runtime_error("matrix-free fit: X'V⁻¹X is not positive definite (X rank deficient?)");
      s.beta = llt.solve(s.K.col(p_).head(p_));
      s.RtR_inv = llt.solve(Matrix::Identity(p_, p_));
      const Matrix Lx = llt.matrixL();
      s.ldRX2 = 2.0 * Lx.diagonal().array().log().sum();
      s.pwrss = s.K(p_, p_) - s.K.col(p_).head(p_).dot(s.beta);
    } else {
      s.beta.resize(0);
      s.RtR_inv.resize(0, 0);
      s.pwrss = s.K(0, 0);
    }
    s.ua = s.Fa.col(p_);
    s.ub = s.Fb.col(p_);
    if (p_ > 0) {
      s.ua -= s.Fa.leftCols(p_) * s.beta;
      s.ub -= s.Fb.leftCols(p_) * s.beta;
    }
    if (!(s.pwrss > 0)) throw std::runtime_error("matrix-free fit: the penalized residual sum of squares is not positive");
    return s;
  }

  // The traces t_a = tr(M⁻¹)_a, t_b = tr(M⁻¹)_b and the SEs of their estimates.
  struct Traces {
    double a = 0, b = 0, a_se = 0, b_se = 0;
  };

  Traces traces(const Solution& s, int probes, std::uint64_t stream) {
    const Index la = op_.la(), lb = op_.lb();
    const double c = op_.c();
    const Vector& dinv = op_.da_inv();
    if (lb <= o_.exact_levels) return exact_traces();
    Traces t;
    // v = S⁻¹1 / ‖S⁻¹1‖, w = Bv / ‖Bv‖ (B = c D_a⁻¹ N')
    const Vector v = s.S_inv_ones.normalized();
    Rows vb = v;
    Rows Ntv;
    op_.times_Nt(vb, Ntv);
    Vector w = c * dinv.cwiseProduct(Ntv.col(0));
    w.normalize();
    // B' x = c N (D_a⁻¹ x) for users' vectors x (columns)
    auto Bt = [&](const Rows& x) {
      Rows scaled = dinv.asDiagonal() * x;
      Rows out;
      op_.times_N(scaled, out);
      return Rows(c * out);
    };
    Rows za = rademacher(la, probes, o_.seed, 2 * stream);
    Rows zb = rademacher(lb, probes, o_.seed, 2 * stream + 1);
    zb -= v * (v.transpose() * zb);
    za -= w * (w.transpose() * za);
    Rows rhs(lb, 2 + 2 * probes);
    rhs.col(0) = v;
    Rows wa = w;
    rhs.col(1) = Bt(wa).col(0);
    rhs.middleCols(2, probes) = zb;
    rhs.rightCols(probes) = Bt(za);
    Rows x;
    cg_ += op_.solve(rhs, x, o_.cg_tolerance, o_.max_cg_iterations);
    const Row d = dots(rhs, x);
    const auto [mb, seb] = mean_se(d.segment(2, probes));
    const auto [ma, sea] = mean_se(d.tail(probes));
    t.b = d[0] + mb;
    t.b_se = seb;
    t.a = dinv.sum() + d[1] + ma;
    t.a_se = sea;
    return t;
  }

  // Exact traces from S⁻¹ (ℓ_b unit vectors): tr S⁻¹ and tr D_a⁻¹ + tr(S⁻¹ B'B).
  Traces exact_traces() {
    const Index lb = op_.lb();
    const double c = op_.c();
    const Rows I = Rows::Identity(lb, lb);
    Rows Sinv;
    cg_ += op_.solve(I, Sinv, o_.cg_tolerance, o_.max_cg_iterations);
    Rows NtI;
    op_.times_Nt(I, NtI);  // N' (ℓ_a × ℓ_b)
    const Rows BtB = c * c * NtI.transpose() * op_.da_inv().cwiseAbs2().asDiagonal() * NtI;
    Traces t;
    t.b = Sinv.trace();
    t.a = op_.da_inv().sum() + Sinv.cwiseProduct(BtB).sum();
    return t;
  }

  // The score in log θ, s_k = θ_k ∂f/∂θ_k, and its SE.
  struct Score {
    Vector s, se;
    Solution sol;
  };

  Score score(const Vector& phi, int probes, std::uint64_t stream) {
    const double ta = std::exp(phi[0]), tb = std::exp(phi[1]);
    Score out;
    out.sol = solution(ta, tb);
    const Solution& s = out.sol;
    const Traces t = traces(s, probes, stream);
    const double wr = dof_ / s.pwrss;
    out.s.resize(2);
    out.se.resize(2);
    const double la = static_cast<double>(op_.la()), lb = static_cast<double>(op_.lb());
    out.s[0] = 2.0 * (la - t.a) - 2.0 * wr * s.ua.squaredNorm();
    out.s[1] = 2.0 * (lb - t.b) - 2.0 * wr * s.ub.squaredNorm();
    if (o_.reml && p_ > 0) {
      const Matrix Fa = s.Fa.leftCols(p_), Fb = s.Fb.leftCols(p_);
      out.s[0] -= 2.0 * (s.RtR_inv * (Fa.transpose() * Fa)).trace();
      out.s[1] -= 2.0 * (s.RtR_inv * (Fb.transpose() * Fb)).trace();
    }
    out.se << 2.0 * t.a_se, 2.0 * t.b_se;
    ++evaluations_;
    return out;
  }

  Index evaluations() const { return evaluations_; }

  // log|S| with its SE: Σ log diag(S) + log|S̃|, S̃ = J^{-1/2} S J^{-1/2}, by
  // stochastic Lanczos quadrature with the control variate log(μ̃)(ṽ'z)², ṽ
  // the Jacobi-scaled S⁻¹1 (S̃'s small eigenvector to first order), μ̃ = ṽ'S̃ṽ.
  // Exact (dense S) when ℓ_b ≤ exact_levels. Needs set_theta (solution()).
  std::pair<double, double> logdet_S(const Solution& s) {
    const Index lb = op_.lb();
    const Vector& jinv = op_.jacobi_inv();
    if (lb <= o_.exact_levels) {
      Rows S;
      op_.times_S(Rows::Identity(lb, lb), S);
      Eigen::LLT<Matrix> llt(Matrix(S).selfadjointView<Eigen::Lower>());
      if (llt.info() != Eigen::Success) throw std::runtime_error("matrix-free fit: S is not positive definite");
      const Matrix L = llt.matrixL();
      return {2.0 * L.diagonal().array().log().sum(), 0.0};
    }
    const Vector jh = jinv.cwiseSqrt();  // J^{-1/2}
    auto scaled = [&](const Rows& X, Rows& Y) {
      Rows t = jh.asDiagonal() * X;
      Rows u;
      op_.times_S(t, u);
      Y = jh.asDiagonal() * u;
    };
    const Vector vt = jinv.cwiseSqrt().cwiseInverse().cwiseProduct(s.S_inv_ones).normalized();
    Rows vb = vt, Svb;
    scaled(vb, Svb);
    const double mu = vt.dot(Svb.col(0));
    const int K = o_.logdet_probes, m = o_.lanczos_steps;
    const Rows Z = rademacher(lb, K, o_.seed, 1000);
    // K independent Lanczos recurrences sharing the products.
    Rows Qprev = Rows::Zero(lb, K), Qcur(lb, K), W;
    const Row znorm = Z.colwise().norm();
    Qcur = Z * znorm.cwiseInverse().asDiagonal();
    Matrix alpha = Matrix::Zero(m, K), beta = Matrix::Zero(m, K);
    std::vector<int> steps(static_cast<std::size_t>(K), m);
    Row bprev = Row::Zero(K);
    for (int i = 0; i < m; ++i) {
      scaled(Qcur, W);
      W -= Qprev * bprev.asDiagonal();
      const Row a = dots(Qcur, W);
      W -= Qcur * a.asDiagonal();
      const Row b = W.colwise().norm();
      for (int k = 0; k < K; ++k) {
        if (steps[k] <= i) continue;
        alpha(i, k) = a[k];
        beta(i, k) = b[k];
        if (b[k] <= 1e-12 * std::abs(a[k])) steps[k] = i + 1;  // an invariant subspace: exact
      }
      Row binv = Row::Zero(K);
      for (int k = 0; k < K; ++k)
        if (b[k] > 0) binv[k] = 1.0 / b[k];
      Qprev = Qcur;
      Qcur = W * binv.asDiagonal();
      bprev = b;
    }
    Row est(K);
    for (int k = 0; k < K; ++k) {
      const int n = steps[k];
      Matrix T = Matrix::Zero(n, n);
      for (int i = 0; i < n; ++i) {
        T(i, i) = alpha(i, k);
        if (i + 1 < n) T(i, i + 1) = T(i + 1, i) = beta(i, k);
      }
      Eigen::SelfAdjointEigenSolver<Matrix> eig(T);
      const Vector th = eig.eigenvalues();
      if (th.minCoeff() <= 0) throw std::runtime_error("matrix-free fit: S is not positive definite (Lanczos)");
      const Vector e0 = eig.eigenvectors().row(0).transpose();
      const double quad = znorm[k] * znorm[k] * (e0.array().square() * th.array().log()).sum();
      const double proj = vt.dot(Z.col(k));
      est[k] = quad - std::log(mu) * proj * proj;
    }
    const auto [mean, se] = mean_se(est);
    return {-jinv.array().log().sum() + std::log(mu) + mean, se};
  }

 private:
  const Crossprod& A_;
  const MatrixFreeOptions& o_;
  Crossed op_;
  Index p_;
  double dof_;
  Index cg_ = 0, evaluations_ = 0;
};

// The inverse of the symmetric part H of the score's Jacobian with H's
// eigenvalues replaced by their absolute values (bounded away from 0): −H⁻¹s
// is Newton's step, and a descent direction of the criterion where H is
// indefinite. `definite` says whether H was positive definite.
Matrix modified_inverse(const Matrix& J, bool* definite = nullptr) {
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(0.5 * (J + J.transpose()));
  if (definite) *definite = eig.eigenvalues().minCoeff() > 0;
  Vector lambda = eig.eigenvalues().cwiseAbs();
  const double floor = 1e-8 * std::max(lambda.maxCoeff(), 1e-300);
  lambda = lambda.cwiseMax(floor);
  const Matrix& V = eig.eigenvectors();
  return V * lambda.cwiseInverse().asDiagonal() * V.transpose();
}

// The score's Jacobian in log θ by forward differences (same probes).
Matrix jacobian(Evaluator& ev, const Vector& phi, const Vector& s, int probes) {
  Matrix J(2, 2);
  for (Index j = 0; j < 2; ++j) {
    Vector ph = phi;
    ph[j] += kDifferenceStep;
    J.col(j) = (ev.score(ph, probes, 0).s - s) / kDifferenceStep;
  }
  return J;
}

// The terms' column scales s of A's working columns z̃ = z s (θ = s θ̃), after
// refusing a model the method does not fit (std::invalid_argument).
Vector working_scale(const Crossprod& A) {
  const std::string why = matrix_free_unsupported(A);
  if (!why.empty()) throw std::invalid_argument(why);
  Vector scale = Vector::Ones(2);
  for (Index k = 0; k < 2 && k < static_cast<Index>(A.transforms.size()); ++k)
    if (A.transforms[k].scale.size()) scale[k] = A.transforms[k].scale[0];
  return scale;
}

}  // namespace

std::string matrix_free_unsupported(const Crossprod& A) {
  if (A.shapes.size() != 2)
    return "the matrix-free method fits two crossed random-effects terms; this model has " +
           std::to_string(A.shapes.size());
  for (const TermShape& s : A.shapes) {
    if (s.p != 1) return "the matrix-free method fits terms of one column each (e.g. (1 | a) + (1 | b))";
    if (s.covariance != Covariance::Unstructured && s.covariance != Covariance::Diagonal)
      return "the matrix-free method fits unstructured or diagonal terms only";
  }
  if (A.ZZ_off.size() < 2 || A.ZZ_off[1].empty()) return "the crossproducts lack the terms' cross block";
  for (const TermTransform& t : A.transforms)
    if (t.centred()) return "the matrix-free method needs terms without centring";
  return "";
}

MatrixFreeScore matrix_free_score(const Crossprod& A, Eigen::Ref<const Vector> theta, int probes,
                                  const MatrixFreeOptions& options, std::uint64_t stream) {
  const Vector scale = working_scale(A);
  if (theta.size() != 2 || !(theta.array() > 0).all() || !theta.allFinite())
    throw std::invalid_argument("the matrix-free score needs θ of two positive entries");
  Evaluator ev(A, options);
  // θ̃ of the working columns z̃ = z s: λ = s λ̃, so θ̃ = θ / s.
  const Vector phi = (theta.array() / scale.array()).log().matrix();
  const auto sc = ev.score(phi, probes, stream);
  MatrixFreeScore out;
  out.gradient = sc.s.cwiseQuotient(theta);  // s = θ̃ ∂f/∂θ̃ = θ ∂f/∂θ
  out.gradient_se = sc.se.cwiseQuotient(theta);
  out.pwrss = sc.sol.pwrss;
  out.ldRX2 = sc.sol.ldRX2;
  return out;
}

MatrixFreeFit fit_matrix_free(const Crossprod& A, const MatrixFreeOptions& o) {
  const Vector scale = working_scale(A);
  if (o.probes < 2 || o.final_probes < 2) throw std::invalid_argument("the matrix-free fit needs at least 2 probes");
  Vector phi = Vector::Zero(2);
  if (o.theta_start.size()) {
    if (o.theta_start.size() != 2 || !(o.theta_start.array() > 0).all())
      throw std::invalid_argument("theta_start of the matrix-free fit needs two positive entries");
    phi = (o.theta_start.array() / scale.array()).log().matrix();
  }
  Evaluator ev(A, o);
  MatrixFreeFit fit;
  const auto t0 = std::chrono::steady_clock::now();
  auto sc = ev.score(phi, o.probes, 0);
  Matrix J = jacobian(ev, phi, sc.s, o.probes);
  bool refreshed = true;         // J is a fresh difference Jacobian
  bool toward_boundary = false;  // a step was cut short above θ = kBoundary
  for (int it = 0; it < o.max_iterations; ++it) {
    Vector step = -modified_inverse(J) * sc.s;
    if (!step.allFinite()) throw std::runtime_error("Newton's step on the score is not finite");
    const bool last = step.cwiseAbs().maxCoeff() < o.step_tolerance;
    const double clip = step.cwiseAbs().maxCoeff();
    if (clip > kMaxStep) step *= kMaxStep / clip;
    // The criterion f along the step: f(t) − f(0) ≈ t (f'(0) + f'(t)) / 2 (f' = s·d),
    // its change estimated from the scores at both ends (f itself is not evaluated).
    const double slope0 = sc.s.dot(step);
    bool accepted = false;
    for (int h = 0; h <= kHalvings; ++h) {
      const Vector trial = phi + step;
      if ((trial.array().exp() < kBoundary).any()) {
        toward_boundary = true;
        step *= 0.5;
        continue;
      }
      auto next = ev.score(trial, o.probes, 0);
      if (slope0 + next.s.dot(step) < 0 || last) {
        // Broyden's update of the Jacobian along the step taken.
        J += (next.s - sc.s - J * step) * step.transpose() / step.squaredNorm();
        phi = trial;
        sc = std::move(next);
        accepted = true;
        refreshed = false;
        break;
      }
      step *= 0.5;
    }
    ++fit.newton_iterations;
    if (!accepted) {
      if (refreshed) {
        if (toward_boundary)
          throw std::runtime_error("a variance component tends to 0 (a boundary optimum, where the exact method is "
                                   "needed)");
        fit.message = "Newton's iterations on the score stopped without a decrease";
        break;
      }
      J = jacobian(ev, phi, sc.s, o.probes);
      refreshed = true;
      continue;
    }
    if (last) {
      fit.converged = true;
      break;
    }
  }
  if (!fit.converged && fit.message.empty()) fit.message = "Newton's iterations reached max_iterations";
  fit.seconds_iterations = seconds_since(t0);

  // The last step, from a score of independent and more probes; its spread is θ's.
  const auto t1 = std::chrono::steady_clock::now();
  const bool exact = ev.op().lb() <= o.exact_levels;
  fit.exact_traces = exact;
  Vector phi_se = Vector::Zero(2);
  if (!exact) {
    // A fresh Jacobian at the iterations' root (Broyden's is accurate along the
    // steps only): the last step's accuracy and θ's SEs are those of this H.
    if (!refreshed) J = jacobian(ev, phi, sc.s, o.probes);
    const auto last = ev.score(phi, o.final_probes, 1);
    bool definite = false;
    const Matrix Hinv = modified_inverse(J, &definite);
    if (!definite) {
      fit.converged = false;
      fit.message = "the criterion's Hessian (from the scores) is not positive definite at the end";
    }
    fit.last_step = -Hinv * last.s;
    phi += fit.last_step;
    const Matrix cov = Hinv * last.se.cwiseAbs2().asDiagonal() * Hinv;
    phi_se = cov.diagonal().cwiseSqrt();
  }
  const Vector theta_w = phi.array().exp().matrix();
  const Solution s = ev.solution(theta_w[0], theta_w[1]);
  fit.seconds_final = seconds_since(t1);

  const auto t2 = std::chrono::steady_clock::now();
  const double ld_a = -ev.op().da_inv().array().log().sum();
  double ld_S = 0, ld_se = 0;
  if (exact || o.logdet_probes > 1) std::tie(ld_S, ld_se) = ev.logdet_S(s);
  fit.seconds_logdet = seconds_since(t2);

  fit.theta = theta_w.cwiseProduct(scale);
  fit.theta_se = fit.theta.cwiseProduct(phi_se);
  fit.beta = s.beta;
  fit.pwrss = s.pwrss;
  fit.ldRX2 = s.ldRX2;
  fit.sigma = std::sqrt(s.pwrss / ev.dof());
  fit.vcov_beta = fit.sigma * fit.sigma * s.RtR_inv;
  fit.u.resize(s.ua.size() + s.ub.size());
  fit.u << s.ua, s.ub;
  fit.b.resize(fit.u.size());
  fit.b << fit.theta[0] * s.ua, fit.theta[1] * s.ub;  // b = λu, λ = s λ̃ of the working columns z̃ = z s
  const bool have_logdet = exact || o.logdet_probes > 1;
  fit.ldL2 = have_logdet ? ld_a + ld_S : std::numeric_limits<double>::quiet_NaN();
  fit.ldL2_se = ld_se;
  const double logdet = o.reml ? fit.ldL2 + fit.ldRX2 : fit.ldL2;
  fit.criterion = logdet - A.sum_log_weights + ev.dof() * (1.0 + kLog2Pi + std::log(s.pwrss / ev.dof()));
  fit.criterion_se = ld_se;
  fit.evaluations = ev.evaluations();
  fit.cg_iterations = ev.cg_iterations();
  fit.products = ev.op().products();
  return fit;
}

}  // namespace lmm
