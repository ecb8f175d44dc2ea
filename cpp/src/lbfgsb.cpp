// L-BFGS-B (Byrd, Lu, Nocedal, Zhu, SIAM J. Sci. Comput. 16, 1995; the
// subspace step as revised by Morales and Nocedal, ACM TOMS 38, 2011) with
// the line search of Moré and Thuente (ACM TOMS 20, 1994).
//
// The limited-memory BFGS matrix is kept in compact form (Byrd, Nocedal and
// Schnabel 1994): B = σ I − W M W', W = [Y σS] (n × 2k), M (2k × 2k) the
// inverse of [[−D, L'], [L, σ S'S]], D = diag(s_i'y_i), L the strictly lower
// triangle of S'Y, σ = y'y / s'y of the newest pair. n is small here (θ has
// tens of entries at most), so W and M are formed densely at each iteration,
// or B itself once there are at least n pairs.
#include "lmm/lbfgsb.hpp"

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace lmm {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = std::numeric_limits<double>::epsilon();
// Moré–Thuente constants (sufficient decrease, curvature, interval width) as
// L-BFGS-B uses them, and the bounds on extrapolation of an unbracketed step.
constexpr double kFtol = 1e-3;
constexpr double kGtol = 0.9;
constexpr double kXtol = 0.1;
constexpr double kExtrapolateLower = 1.1;
constexpr double kExtrapolateUpper = 4.0;
// Near the optimum f is flat to rounding while its exact gradient is still
// informative: a trial whose f is within this (relative) of f(0) is also
// accepted under Hager and Zhang's approximate Wolfe conditions
// σ φ'(0) ≤ φ'(α) ≤ (2δ − 1) φ'(0), which imply a decrease of a quadratic.
constexpr double kRounding = 1e-11;
constexpr double kApproxWolfeDelta = 0.1;
// Evaluations one line search may take before it gives up.
constexpr Index kMaxLineSearchEvaluations = 20;
// The largest step along a direction with no bound in the way.
constexpr double kBigStep = 1e10;

// The limited-memory BFGS matrix in compact form.
class CompactBfgs {
 public:
  CompactBfgs(Index n, Index m) : m_(m), S_(n, m), Y_(n, m) {}

  Index size() const { return k_; }
  bool empty() const { return k_ == 0; }
  double sigma() const { return sigma_; }
  const Matrix& W() const { return W_; }
  const Matrix& M() const { return M_; }
  void clear() { k_ = 0, sigma_ = 1.0; }

  // Add the pair (oldest dropped when full). The caller checks s'y > 0.
  void update(const Vector& s, const Vector& y) {
    if (k_ == m_) {
      // Columns stay oldest first: L (strictly lower triangle of S'Y) depends on the order.
      S_.leftCols(m_ - 1) = S_.rightCols(m_ - 1).eval();
      Y_.leftCols(m_ - 1) = Y_.rightCols(m_ - 1).eval();
      --k_;
    }
    S_.col(k_) = s;
    Y_.col(k_) = y;
    ++k_;
    sigma_ = y.squaredNorm() / s.dot(y);
  }

  // W and M for the current pairs; false when M cannot be formed (S'S
  // numerically singular: the steps have become linearly dependent).
  bool form() {
    const Index k = k_;
    if (S_.rows() <= k) return form_explicit();
    const auto S = S_.leftCols(k);
    const auto Y = Y_.leftCols(k);
    W_.resize(S.rows(), 2 * k);
    W_.leftCols(k) = Y;
    W_.rightCols(k) = sigma_ * S;
    const Matrix SY = S.transpose().lazyProduct(Y);  // (small: no blocked GEMM)
    Matrix L = SY.triangularView<Eigen::StrictlyLower>();
    const Vector D = SY.diagonal();
    if (!(D.minCoeff() > 0.0)) return false;
    // M = [[−D, L'], [L, σ S'S]]⁻¹ by its Schur complement T = σ S'S + L D⁻¹ L',
    // which is positive definite when S has full column rank; the middle
    // matrix itself is indefinite, so it is not factored directly.
    const Matrix LDinv = L * D.cwiseInverse().asDiagonal();
    Matrix T = sigma_ * S.transpose().lazyProduct(S);
    T.noalias() += LDinv.lazyProduct(L.transpose());
    Eigen::LLT<Matrix> llt(T);
    if (llt.info() != Eigen::Success) return false;
    const Matrix TinvLD = llt.solve(LDinv);  // T⁻¹ L D⁻¹
    M_.resize(2 * k, 2 * k);
    M_.topLeftCorner(k, k) = LDinv.transpose().lazyProduct(TinvLD);
    M_.topLeftCorner(k, k).diagonal() -= D.cwiseInverse();
    M_.bottomLeftCorner(k, k) = TinvLD;
    M_.topRightCorner(k, k) = TinvLD.transpose();
    M_.bottomRightCorner(k, k) = llt.solve(Matrix::Identity(k, k));
    return M_.allFinite();
  }

 private:
  // With at least as many pairs as variables, B itself (n × n) is the smaller object:
  // k BFGS updates of σI with the pairs, oldest first, give the same matrix as the
  // compact form (Byrd, Nocedal and Schnabel 1994, Theorem 2.3), kept as W = I,
  // M = σI − B so that the Cauchy point and the subspace step read it unchanged.
  bool form_explicit() {
    const Index n = S_.rows();
    Matrix B = sigma_ * Matrix::Identity(n, n);
    for (Index i = 0; i < k_; ++i) {
      const auto s = S_.col(i), y = Y_.col(i);
      const Vector Bs = B * s;
      const double sBs = s.dot(Bs), sy = s.dot(y);
      if (!(sBs > 0.0 && sy > 0.0)) return false;
      B.noalias() += (y / sy) * y.transpose();
      B.noalias() -= (Bs / sBs) * Bs.transpose();
    }
    W_ = Matrix::Identity(n, n);
    M_ = -B;
    M_.diagonal().array() += sigma_;
    return M_.allFinite();
  }

  Index m_, k_ = 0;
  Matrix S_, Y_;  // n × m, the first k_ columns in use, oldest first
  double sigma_ = 1.0;
  Matrix W_, M_;
};

// The generalized Cauchy point: the first local minimizer of the quadratic
// model m(x + z) = f + g'z + z'Bz/2 along the projected steepest-descent path
// P(x − t g), t ≥ 0, found segment by segment between the breakpoints where
// entries reach their bounds.
struct CauchyPoint {
  Vector xc;              // n, the point
  Vector c;               // 2k, W'(xc − x)
  std::vector<bool> free;  // entries not at a bound there (the subspace step moves them)
};

bool cauchy_point(const Vector& x, const Vector& g, const Vector& lower, const Vector& upper, const CompactBfgs& B,
                  CauchyPoint& cp) {
  const Index n = x.size();
  const double sigma = B.sigma();
  Vector t(n), d(n);
  for (Index i = 0; i < n; ++i) {
    t[i] = g[i] < 0.0 ? (x[i] - upper[i]) / g[i] : g[i] > 0.0 ? (x[i] - lower[i]) / g[i] : kInf;
    d[i] = t[i] == 0.0 ? 0.0 : -g[i];
  }
  std::vector<Index> breaks;
  for (Index i = 0; i < n; ++i)
    if (t[i] > 0.0 && t[i] < kInf) breaks.push_back(i);
  std::sort(breaks.begin(), breaks.end(), [&](Index a, Index b) { return t[a] < t[b]; });

  const Index k2 = B.empty() ? 0 : B.W().cols();
  Vector p = k2 ? Vector(B.W().transpose() * d) : Vector();
  cp.c = Vector::Zero(k2);
  cp.xc = x;
  // Slope and curvature of the model along the current segment.
  double slope = -d.squaredNorm();
  double curvature = -sigma * slope - (k2 ? p.dot(B.M() * p) : 0.0);
  const double curvature0 = curvature;
  if (!(curvature0 > 0.0)) return false;
  double dt_min = -slope / curvature;
  double t_old = 0.0;
  for (const Index b : breaks) {
    const double dt = t[b] - t_old;
    if (dt_min < dt) break;
    // Entry b reaches its bound: it leaves the path, and slope and curvature
    // change by its share.
    cp.xc[b] = d[b] > 0.0 ? upper[b] : lower[b];
    const double zb = cp.xc[b] - x[b], gb = g[b];
    slope += dt * curvature + gb * gb + sigma * gb * zb;
    curvature -= sigma * gb * gb;
    if (k2) {
      cp.c += dt * p;
      const Vector wb = B.W().row(b).transpose();
      const Vector Mwb = B.M() * wb;
      slope -= gb * Mwb.dot(cp.c);
      curvature -= 2.0 * gb * Mwb.dot(p) + gb * gb * wb.dot(Mwb);
      p += gb * wb;
    }
    // Cancellation can leave a curvature of the wrong sign; it stays a
    // small positive fraction of the first.
    curvature = std::max(kEps * curvature0, curvature);
    d[b] = 0.0;
    dt_min = -slope / curvature;
    t_old = t[b];
  }
  dt_min = std::max(dt_min, 0.0);
  t_old += dt_min;
  for (Index i = 0; i < n; ++i)
    if (d[i] != 0.0) cp.xc[i] = std::clamp(x[i] + t_old * d[i], lower[i], upper[i]);
  if (k2) cp.c += dt_min * p;
  cp.free.assign(static_cast<std::size_t>(n), false);
  for (Index i = 0; i < n; ++i)
    cp.free[i] = d[i] != 0.0 || (g[i] == 0.0 && x[i] > lower[i] && x[i] < upper[i]);
  return true;
}

// The subspace step: minimize the quadratic model over the entries free at
// the Cauchy point (the others fixed there), by the direct primal method —
// the reduced matrix B̂ = σI − A M A' (A = rows of W of the free entries) is
// factored when it is the smaller system, else inverted with the
// Sherman–Morrison–Woodbury formula, a 2k × 2k solve.
// Then as in L-BFGS-B 3.0: the minimizer projected on the box is taken if it
// gives a descent direction from x; otherwise the step is cut back to the
// box along the segment from the Cauchy point.
Vector subspace_step(const Vector& x, const Vector& g, const Vector& lower, const Vector& upper, const CompactBfgs& B,
                     const CauchyPoint& cp) {
  std::vector<Index> F;
  for (Index i = 0; i < x.size(); ++i)
    if (cp.free[i]) F.push_back(i);
  if (F.empty() || B.empty()) return cp.xc;
  const Index nf = static_cast<Index>(F.size());
  const double sigma = B.sigma();
  const Vector grad = g + sigma * (cp.xc - x) - B.W() * (B.M() * cp.c);  // ∇m at the Cauchy point
  Matrix A(nf, B.W().cols());
  Vector r(nf);
  for (Index j = 0; j < nf; ++j) {
    A.row(j) = B.W().row(F[j]);
    r[j] = grad[F[j]];
  }
  Vector du;
  if (nf <= A.cols()) {
    // Fewer free entries than pairs' columns (θ is short): B̂ itself (nf × nf, positive
    // definite as a principal block of B) is factored, a smaller system than Woodbury's.
    Matrix Bhat = -(A.lazyProduct(B.M()).lazyProduct(A.transpose()));
    Bhat.diagonal().array() += sigma;
    const Eigen::LLT<Matrix> llt(Bhat);
    if (llt.info() != Eigen::Success) return cp.xc;
    du = -llt.solve(r);
  } else {
    // B̂⁻¹ = I/σ + A (I − M A'A/σ)⁻¹ M A' / σ².
    Matrix K = -(B.M() * (A.transpose() * A)) / sigma;
    K.diagonal().array() += 1.0;
    const Vector v = K.partialPivLu().solve(B.M() * (A.transpose() * r));
    du = -(r / sigma + A * v / (sigma * sigma));
  }
  if (!du.allFinite()) return cp.xc;

  Vector xbar = cp.xc;
  for (Index j = 0; j < nf; ++j) xbar[F[j]] = std::clamp(cp.xc[F[j]] + du[j], lower[F[j]], upper[F[j]]);
  if (g.dot(xbar - x) < 0.0) return xbar;
  double alpha = 1.0;
  for (Index j = 0; j < nf; ++j) {
    const Index i = F[j];
    if (du[j] < 0.0) alpha = std::min(alpha, std::max(0.0, (lower[i] - cp.xc[i]) / du[j]));
    if (du[j] > 0.0) alpha = std::min(alpha, std::max(0.0, (upper[i] - cp.xc[i]) / du[j]));
  }
  xbar = cp.xc;
  for (Index j = 0; j < nf; ++j) xbar[F[j]] = std::clamp(cp.xc[F[j]] + alpha * du[j], lower[F[j]], upper[F[j]]);
  return xbar;
}

// Moré and Thuente's line search for the strong Wolfe conditions
//   φ(α) ≤ φ(0) + ftol α φ'(0),  |φ'(α)| ≤ gtol |φ'(0)|
// on [0, α_max], in reverse communication: the caller evaluates φ and φ' at
// step() and reports them to next().
class MoreThuente {
 public:
  enum class Status { Evaluate, Converged, Warning };

  MoreThuente(double f0, double g0, double stp, double stpmax)
      : stp_(stp), stpmax_(stpmax), finit_(f0), ginit_(g0), gtest_(kFtol * g0), width_(stpmax), width1_(2.0 * stpmax),
        fx_(f0), gx_(g0), fy_(f0), gy_(g0), stmax_(stp + kExtrapolateUpper * stp) {}

  double step() const { return stp_; }
  double best_step() const { return stx_; }  // the step with the least (modified) φ so far

  Status next(double f, double g) {
    const double ftest = finit_ + stp_ * gtest_;
    if (stage1_ && f <= ftest && g >= 0.0) stage1_ = false;
    // Rounding, the interval's width, or a bound of [0, α_max] stops the search.
    if (brackt_ && (stp_ <= stmin_ || stp_ >= stmax_)) return Status::Warning;
    if (brackt_ && stmax_ - stmin_ <= kXtol * stmax_) return Status::Warning;
    if (stp_ == stpmax_ && f <= ftest && g <= gtest_) return Status::Warning;
    if (stp_ == 0.0 && (f > ftest || g >= gtest_)) return Status::Warning;
    if (f <= ftest && std::abs(g) <= kGtol * -ginit_) return Status::Converged;
    if (stage1_ && f <= fx_ && f > ftest) {
      // The first stage works on ψ(α) = φ(α) − φ(0) − ftol α φ'(0) until a
      // step with ψ ≤ 0 and φ' ≥ 0 is found: a lower φ than at the best
      // step but no sufficient decrease is treated as an increase of ψ.
      double fxm = fx_ - stx_ * gtest_, fym = fy_ - sty_ * gtest_, gxm = gx_ - gtest_, gym = gy_ - gtest_;
      cstep(stx_, fxm, gxm, sty_, fym, gym, stp_, f - stp_ * gtest_, g - gtest_);
      fx_ = fxm + stx_ * gtest_, fy_ = fym + sty_ * gtest_, gx_ = gxm + gtest_, gy_ = gym + gtest_;
    } else {
      cstep(stx_, fx_, gx_, sty_, fy_, gy_, stp_, f, g);
    }
    // Bisection when the bracket does not shrink fast enough.
    if (brackt_) {
      if (std::abs(sty_ - stx_) >= 0.66 * width1_) stp_ = stx_ + 0.5 * (sty_ - stx_);
      width1_ = width_;
      width_ = std::abs(sty_ - stx_);
    }
    set_interval();
    stp_ = std::clamp(stp_, 0.0, stpmax_);
    // No acceptable step is left: fall back on the best one.
    if (brackt_ && (stp_ <= stmin_ || stp_ >= stmax_ || stmax_ - stmin_ <= kXtol * stmax_)) stp_ = stx_;
    return Status::Evaluate;
  }

  // φ is not finite at step(): f's domain ends before it. Back off towards
  // the best step, and never go as far again.
  void back_off() {
    stpmax_ = std::min(stpmax_, stp_);
    if (brackt_ && std::abs(sty_ - stx_) > std::abs(stp_ - stx_)) sty_ = stp_;
    stp_ = stx_ + 0.5 * (stp_ - stx_);
    stmax_ = std::min(stmax_, stpmax_);
  }

 private:
  void set_interval() {
    if (brackt_) {
      stmin_ = std::min(stx_, sty_);
      stmax_ = std::max(stx_, sty_);
    } else {
      stmin_ = stp_ + kExtrapolateLower * (stp_ - stx_);
      stmax_ = stp_ + kExtrapolateUpper * (stp_ - stx_);
    }
  }

  // One safeguarded step: a new trial from cubic and quadratic interpolants
  // of the best step (stx), the other end of the interval (sty) and the
  // trial (stp), and the updated interval. The four cases of Moré and
  // Thuente: higher φ; opposite slopes; same sign, slope decreasing in
  // magnitude; same sign, not decreasing.
  void cstep(double& stx, double& fx, double& dx, double& sty, double& fy, double& dy, double& stp, double fp,
             double dp) {
    const double smin = stmin_, smax = stmax_;
    const double sgnd = dp * (dx / std::abs(dx));
    auto cubic_gamma = [](double theta, double a, double b) {
      const double s = std::max({std::abs(theta), std::abs(a), std::abs(b)});
      return s * std::sqrt(std::max(0.0, (theta / s) * (theta / s) - (a / s) * (b / s)));
    };
    double stpf;
    if (fp > fx) {
      const double theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
      double gamma = cubic_gamma(theta, dx, dp);
      if (stp < stx) gamma = -gamma;
      const double p = (gamma - dx) + theta, q = ((gamma - dx) + gamma) + dp;
      const double stpc = stx + (p / q) * (stp - stx);
      const double stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx);
      stpf = std::abs(stpc - stx) < std::abs(stpq - stx) ? stpc : stpc + (stpq - stpc) / 2.0;
      brackt_ = true;
    } else if (sgnd < 0.0) {
      const double theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
      double gamma = cubic_gamma(theta, dx, dp);
      if (stp > stx) gamma = -gamma;
      const double p = (gamma - dp) + theta, q = ((gamma - dp) + gamma) + dx;
      const double stpc = stp + (p / q) * (stx - stp);
      const double stpq = stp + (dp / (dp - dx)) * (stx - stp);
      stpf = std::abs(stpc - stp) > std::abs(stpq - stp) ? stpc : stpq;
      brackt_ = true;
    } else if (std::abs(dp) < std::abs(dx)) {
      const double theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
      double gamma = cubic_gamma(theta, dx, dp);
      if (stp > stx) gamma = -gamma;
      const double p = (gamma - dp) + theta, q = (gamma + (dx - dp)) + gamma, r = p / q;
      const double stpc = (r < 0.0 && gamma != 0.0) ? stp + r * (stx - stp) : stp > stx ? smax : smin;
      const double stpq = stp + (dp / (dp - dx)) * (stx - stp);
      if (brackt_) {
        stpf = std::abs(stpc - stp) < std::abs(stpq - stp) ? stpc : stpq;
        stpf = stp > stx ? std::min(stp + 0.66 * (sty - stp), stpf) : std::max(stp + 0.66 * (sty - stp), stpf);
      } else {
        stpf = std::abs(stpc - stp) > std::abs(stpq - stp) ? stpc : stpq;
        stpf = std::clamp(stpf, smin, smax);
      }
    } else if (brackt_) {
      const double theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp;
      double gamma = cubic_gamma(theta, dy, dp);
      if (stp > sty) gamma = -gamma;
      const double p = (gamma - dp) + theta, q = ((gamma - dp) + gamma) + dy;
      stpf = stp + (p / q) * (sty - stp);
    } else {
      stpf = stp > stx ? smax : smin;
    }
    if (fp > fx) {
      sty = stp, fy = fp, dy = dp;
    } else {
      if (sgnd < 0.0) sty = stx, fy = fx, dy = dx;
      stx = stp, fx = fp, dx = dp;
    }
    stp = stpf;
  }

  double stp_, stpmax_;
  double finit_, ginit_, gtest_, width_, width1_;
  double stx_ = 0.0, fx_, gx_, sty_ = 0.0, fy_, gy_;
  double stmin_ = 0.0, stmax_;
  bool brackt_ = false, stage1_ = true;
};

struct Point {
  Vector x;
  double f = kInf;
  Vector g;
};

// Evaluations, the best point seen, and the rounding-floor rule.
class Evaluator {
 public:
  Evaluator(const LbfgsbFunction& fg, const Point& start, const Vector& lower, const Vector& upper,
            const LbfgsbOptions& o)
      : fg_(fg), lower_(lower), upper_(upper), o_(o), best_(start),
        stalls_allowed_(o.floor_stalls + start.x.size() / std::max<Index>(o.floor_stalls_per_variable, 1)) {
    small_gradient_ = floor_gradient(best_);
  }

  // f and g at x; non-finite values (outside f's domain) reported as f = +inf.
  Point operator()(const Vector& x) {
    Point pt{x, kInf, Vector()};
    ++evaluations;
    const double f = fg_(x, pt.g);
    if (std::isfinite(f) && pt.g.size() == x.size() && pt.g.allFinite()) pt.f = f;
    stalls_ = pt.f < best_.f - o_.floor_rel * std::abs(best_.f) ? 0 : stalls_ + 1;
    if (pt.f < best_.f) {
      best_ = pt;
      small_gradient_ = floor_gradient(best_);
    }
    return pt;
  }

  bool at_floor() const { return o_.floor_stalls > 0 && small_gradient_ && stalls_ >= stalls_allowed_; }
  bool out_of_evaluations() const { return evaluations >= o_.max_evaluations; }
  const Point& best() const { return best_; }

  Index evaluations = 0;

 private:
  bool floor_gradient(const Point& pt) const {
    return projected_gradient(pt.x, pt.g, lower_, upper_).cwiseAbs().maxCoeff() <=
           o_.floor_gradient_rel * std::max(1.0, std::abs(pt.f));
  }

  const LbfgsbFunction& fg_;
  const Vector &lower_, &upper_;
  const LbfgsbOptions& o_;
  Point best_;
  Index stalls_ = 0, stalls_allowed_;
  bool small_gradient_ = false;
};

enum class Search { Accepted, Failed, Floor, Evaluations };

// The line search along the feasible segment x + α d, α ∈ [0, stpmax], from
// the trial step stp. A step accepted by the strong Wolfe conditions, or when
// the search ends early (rounding, the interval's width, α_max), the best
// trial if it lowers f.
Search line_search(Evaluator& evaluate, const Point& cur, const Vector& d, const Vector& xbar, double stp,
                   double stpmax, const Vector& lower, const Vector& upper, Point& next) {
  const double gd = cur.g.dot(d);
  MoreThuente ls(cur.f, gd, stp, stpmax);
  const double flat = kRounding * std::max(1.0, std::abs(cur.f));
  Point best;
  for (Index trial = 0; trial < kMaxLineSearchEvaluations; ++trial) {
    const double a = ls.step();
    // Asked for the best step again (no better one is left to try): it is known.
    if (trial > 0 && a == ls.best_step()) break;
    const Vector x = a == 1.0 ? xbar : Vector((cur.x + a * d).cwiseMax(lower).cwiseMin(upper));
    Point pt = evaluate(x);
    const bool finite = std::isfinite(pt.f);
    const double g = finite ? pt.g.dot(d) : 0.0;
    if (finite && pt.f < best.f) best = pt;
    if (evaluate.at_floor()) return Search::Floor;
    MoreThuente::Status status = MoreThuente::Status::Evaluate;
    if (finite) {
      status = ls.next(pt.f, g);
      if (status != MoreThuente::Status::Converged && pt.f <= cur.f + flat && g >= kGtol * gd &&
          g <= (2.0 * kApproxWolfeDelta - 1.0) * gd)
        status = MoreThuente::Status::Converged;
    } else {
      ls.back_off();
    }
    if (status == MoreThuente::Status::Converged) {
      next = std::move(pt);
      return Search::Accepted;
    }
    if (status == MoreThuente::Status::Warning) break;
    if (evaluate.out_of_evaluations()) return Search::Evaluations;
  }
  if (!(best.f < cur.f)) return Search::Failed;
  next = std::move(best);
  return Search::Accepted;
}

double tolerance(double absolute, double relative, double f) { return std::max(absolute, relative * std::abs(f)); }

}  // namespace

std::string describe(LbfgsbStop stop) {
  switch (stop) {
    case LbfgsbStop::Gradient: return "projected gradient below gradient_tolerance";
    case LbfgsbStop::RelativeDecrease: return "relative decrease of the criterion below relative_decrease_tolerance";
    case LbfgsbStop::Floor: return "no progress beyond the criterion's rounding floor";
    case LbfgsbStop::LineSearch: return "no decrease along the steepest-descent path (criterion flat to rounding)";
    case LbfgsbStop::Iterations: return "max_iterations reached";
    case LbfgsbStop::Evaluations: return "max_evaluations reached";
  }
  return "";
}

Vector projected_gradient(const Vector& x, const Vector& g, const Vector& lower, const Vector& upper) {
  Vector pg(x.size());
  for (Index i = 0; i < x.size(); ++i) pg[i] = x[i] - std::clamp(x[i] - g[i], lower[i], upper[i]);
  return pg;
}

LbfgsbResult minimize_lbfgsb(const LbfgsbFunction& fg, const Vector& x0, double f0, const Vector& g0,
                             const Vector& lower, const Vector& upper, const LbfgsbOptions& o) {
  const Index n = x0.size();
  Point cur{x0, f0, g0};
  Evaluator evaluate(fg, cur, lower, upper, o);
  CompactBfgs B(n, o.memory);
  LbfgsbResult r;
  auto finish = [&](LbfgsbStop stop) {
    // The iterate, unless a point evaluated before it (an approximate Wolfe
    // step may go up by rounding) or after it (a trial of an unfinished line
    // search) is lower beyond the rounding floor; at the floor, the best
    // point. On the gradient test, the iterate that passed it: a line search
    // can end on a bound where the gradient vanishes (λ's diagonal entries,
    // in which the criterion is even) above a lower trial, and the caller's
    // restart off the boundary needs to see that point.
    const Point& best = evaluate.best();
    const double slack = stop == LbfgsbStop::Floor ? 0.0 : o.floor_rel * std::max(1.0, std::abs(cur.f));
    const Point& pick = stop != LbfgsbStop::Gradient && best.f < cur.f - slack ? best : cur;
    r.x = pick.x, r.f = pick.f, r.g = pick.g;
    r.stop = stop;
    r.evaluations = evaluate.evaluations;
    return r;
  };
  // Relative to f at the start, as SciPy's pgtol: the scale of f's rounding error for the run.
  const double gtol = tolerance(o.gradient_tolerance, o.gradient_tolerance_rel, f0);
  auto converged = [&](const Point& pt) {
    return projected_gradient(pt.x, pt.g, lower, upper).cwiseAbs().maxCoeff() <= gtol;
  };
  if (converged(cur)) return finish(LbfgsbStop::Gradient);
  CauchyPoint cp;
  while (true) {
    if (r.iterations >= o.max_iterations) return finish(LbfgsbStop::Iterations);
    if (evaluate.out_of_evaluations()) return finish(LbfgsbStop::Evaluations);
    if (!B.empty() && !B.form()) B.clear();
    if (!cauchy_point(cur.x, cur.g, lower, upper, B, cp)) {
      // Only a corrupted memory gives a model without positive curvature.
      if (B.empty()) return finish(LbfgsbStop::LineSearch);
      B.clear();
      continue;
    }
    const Vector xbar = subspace_step(cur.x, cur.g, lower, upper, B, cp);
    const Vector d = xbar - cur.x;
    if (!(cur.g.dot(d) < 0.0)) {
      if (B.empty()) return finish(LbfgsbStop::LineSearch);
      B.clear();
      continue;
    }
    // The segment to x̄ is feasible; beyond it, up to the first bound. The
    // first iteration has no curvature information: its step is at most
    // first_step in norm and does not go past x̄ (L-BFGS-B's rule, with 1).
    double stpmax = 1.0, stp = 1.0;
    if (r.iterations == 0) {
      stp = std::min(o.first_step / d.norm(), 1.0);
    } else {
      stpmax = kBigStep;
      for (Index i = 0; i < n; ++i) {
        if (d[i] < 0.0 && std::isfinite(lower[i])) stpmax = std::min(stpmax, (lower[i] - cur.x[i]) / d[i]);
        if (d[i] > 0.0 && std::isfinite(upper[i])) stpmax = std::min(stpmax, (upper[i] - cur.x[i]) / d[i]);
      }
      stpmax = std::max(stpmax, 1.0);
    }
    Point next;
    const Search s = line_search(evaluate, cur, d, xbar, stp, stpmax, lower, upper, next);
    if (s == Search::Floor) return finish(LbfgsbStop::Floor);
    if (s == Search::Evaluations) return finish(LbfgsbStop::Evaluations);
    if (s == Search::Failed) {
      // A stale quasi-Newton model can give a poor direction: retry from
      // steepest descent before giving up.
      if (B.empty()) return finish(evaluate.out_of_evaluations() ? LbfgsbStop::Evaluations : LbfgsbStop::LineSearch);
      B.clear();
      continue;
    }
    ++r.iterations;
    const Vector step = next.x - cur.x, dg = next.g - cur.g;
    const double f_old = cur.f, gs = cur.g.dot(step);
    cur = std::move(next);
    if (converged(cur)) return finish(LbfgsbStop::Gradient);
    if (o.relative_decrease_tolerance > 0.0 &&
        f_old - cur.f <= o.relative_decrease_tolerance * std::max({std::abs(f_old), std::abs(cur.f), 1.0}))
      return finish(LbfgsbStop::RelativeDecrease);
    // Keep the pair only with positive curvature s'y, relative to the
    // decrease predicted along s (a line search ended early need not give it).
    if (step.dot(dg) > kEps * -gs) B.update(step, dg);
  }
}

}  // namespace lmm
