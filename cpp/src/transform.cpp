#include "lmm/transform.hpp"

#include "small_blocks.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace lmm {

namespace {

// Double-double numbers (hi + lo, about 32 significant digits) for the p × p
// maps of centred terms. With a column offset c the caller's λ holds entries
// of order c·s next to entries of order s/c (the SD of the slope beside that
// of the intercept at zero): the trailing entries of chol(T λ̃λ̃' Tᵀ) come from
// cancellations that cost log10(c²) digits. In double precision the last
// entry of λ is then wrong beyond c ≈ 10⁵; in double-double it keeps every
// digit of a double beyond c = 10⁸.
struct Dd {
  double hi = 0.0, lo = 0.0;
};

Dd quick_two_sum(double a, double b) {
  const double s = a + b;
  return {s, b - (s - a)};
}

Dd operator+(Dd a, Dd b) {
  const double s = a.hi + b.hi, bb = s - a.hi;
  double e = (a.hi - (s - bb)) + (b.hi - bb);
  const double t = a.lo + b.lo, bt = t - a.lo;
  const double f = (a.lo - (t - bt)) + (b.lo - bt);
  e += t;
  Dd h = quick_two_sum(s, e);
  h.lo += f;
  return quick_two_sum(h.hi, h.lo);
}

Dd operator-(Dd a) { return {-a.hi, -a.lo}; }
Dd operator-(Dd a, Dd b) { return a + (-b); }

Dd operator*(Dd a, Dd b) {
  const double p = a.hi * b.hi;
  double e = std::fma(a.hi, b.hi, -p);
  e += a.hi * b.lo + a.lo * b.hi;
  return quick_two_sum(p, e);
}

Dd operator/(Dd a, Dd b) {
  const double q1 = a.hi / b.hi;
  Dd r = a - b * Dd{q1};
  const double q2 = r.hi / b.hi;
  r = r - b * Dd{q2};
  const double q3 = r.hi / b.hi;
  return quick_two_sum(q1, q2) + Dd{q3};
}

Dd sqrt(Dd a) {
  if (!(a.hi > 0.0)) return {};
  const double x = std::sqrt(a.hi);
  // One Newton step from the double root, its residual formed in double-double.
  const Dd r = a - Dd{x} * Dd{x};
  return quick_two_sum(x, r.hi / (2.0 * x));
}

using DdMatrix = std::vector<Dd>;  // p × p, row-major

// N = L Q with L lower triangular (non-negative diagonal) and Q orthogonal, by
// Givens rotations of the columns: L in N (in place), Q (p × p) returned.
Matrix lq(Index p, DdMatrix& N) {
  DdMatrix R(static_cast<std::size_t>(p * p));  // product of the rotations, N_in R = L
  for (Index i = 0; i < p; ++i) R[i * p + i] = Dd{1.0};
  auto rotate = [p](DdMatrix& M, Index i, Index j, Dd c, Dd s) {
    for (Index k = 0; k < p; ++k) {
      const Dd x = M[k * p + i], y = M[k * p + j];
      M[k * p + i] = c * x + s * y;
      M[k * p + j] = c * y - s * x;
    }
  };
  for (Index i = 0; i < p; ++i)
    for (Index j = i + 1; j < p; ++j) {
      const Dd a = N[i * p + i], b = N[i * p + j];
      if (b.hi == 0.0) continue;
      const Dd r = sqrt(a * a + b * b);
      const Dd c = a / r, s = b / r;
      rotate(N, i, j, c, s);
      rotate(R, i, j, c, s);
    }
  Matrix Q(p, p);
  for (Index i = 0; i < p; ++i) {
    const double sign = N[i * p + i].hi < 0.0 ? -1.0 : 1.0;
    for (Index k = 0; k < p; ++k) {
      if (sign < 0.0) N[k * p + i] = -N[k * p + i];
      Q(i, k) = sign * R[k * p + i].hi;  // Q = R' with row i negated
    }
  }
  return Q;
}

// The power of two nearest 1 / rms; with `extreme_only`, 1 unless the scale is
// extreme (outside [1e-2, 1e2]: a factor of 100 either way costs the optimizer
// little, and units it keeps keep its path, and its answers on flat ridges,
// those of θ).
double inverse_power_of_two(double rms, bool extreme_only) {
  if (!(rms > 0.0) || !std::isfinite(rms) || (extreme_only && rms >= 1e-2 && rms <= 1e2)) return 1.0;
  return std::ldexp(1.0, -static_cast<int>(std::lround(std::log2(rms))));
}

// The per-θ factors f of a term with θ̃ = f ⊙ θ (a term that is scaled, not centred).
Vector theta_factors(const TermShape& shape, const TermTransform& t) {
  Vector f = Vector::Ones(shape.ntheta());
  if (t.scale.size() == 0) return f;
  const Vector d = t.scale.cwiseInverse();
  shape.parameterization().scale(shape.p, d.data(), f.data());
  return f;
}

}  // namespace

bool TermTransform::identity() const {
  return !centred() && (scale.size() == 0 || (scale.array() == 1.0).all());
}

Matrix TermTransform::matrix(Index p) const {
  Matrix T = Matrix::Identity(p, p);
  if (centred()) T.row(0) -= center.transpose();  // center_0 = 0
  if (scale.size() > 0) T = T * scale.asDiagonal();
  return T;
}

void TermTransform::apply_row(const Eigen::Ref<const Matrix>& z, Index r, double* out) const {
  for (Index j = 0; j < z.cols(); ++j) {
    const double v = centred() && j > 0 ? z(r, j) - center[j] * z(r, 0) : z(r, j);
    out[j] = scale.size() ? v * scale[j] : v;
  }
}

void TermTransform::apply(const Eigen::Ref<const Matrix>& z, Matrix& out) const {
  const Index p = z.cols();
  out.resize(z.rows(), p);
  for (Index j = 0; j < p; ++j) {
    const double s = scale.size() ? scale[j] : 1.0;
    if (centred() && j > 0 && center[j] != 0.0)
      out.col(j) = (z.col(j) - center[j] * z.col(0)) * s;
    else
      out.col(j) = z.col(j) * s;
  }
}

TermColumnStats TermColumnStats::of(const Eigen::Ref<const Matrix>& z, const Vector& weights) {
  const Index n = z.rows(), p = z.cols();
  if (weights.size() != 0 && weights.size() != n)
    throw std::invalid_argument(std::to_string(weights.size()) + " weights for " + std::to_string(n) + " rows");
  const bool weighted = weights.size() == n && n > 0;
  TermColumnStats s;
  s.n = n;
  s.mean = Vector::Zero(p);
  s.centred2 = Vector::Zero(p);
  s.squares = Vector::Zero(p);
  s.first_ones = p == 0 || (z.col(0).array() == 1.0).all();
  const double* w = weights.data();
  s.total = weighted ? lane_sum(n, [&](Index r) { return w[r]; }) : static_cast<double>(n);
  if (n == 0) return s;
  // Two passes per column (the mean, then squares about it), as one chunk.
  for (Index j = 0; j < p; ++j) {
    const double* zj = z.col(j).data();
    const double mean = (weighted ? lane_sum(n, [&](Index r) { return w[r] * zj[r]; })
                                  : lane_sum(n, [&](Index r) { return zj[r]; })) /
                        s.total;
    s.mean[j] = mean;
    if (weighted) {
      s.centred2[j] = lane_sum(n, [&](Index r) { return w[r] * (zj[r] - mean) * (zj[r] - mean); });
      s.squares[j] = lane_sum(n, [&](Index r) { return w[r] * zj[r] * zj[r]; });
    } else {
      s.centred2[j] = lane_sum(n, [&](Index r) { return (zj[r] - mean) * (zj[r] - mean); });
      s.squares[j] = lane_sum(n, [&](Index r) { return zj[r] * zj[r]; });
    }
  }
  return s;
}

void TermColumnStats::merge(const TermColumnStats& other) {
  if (other.n == 0) return;
  if (n == 0) {
    *this = other;
    return;
  }
  if (other.mean.size() != mean.size())
    throw std::invalid_argument("column statistics of " + std::to_string(other.mean.size()) + " columns merged into " +
                                std::to_string(mean.size()));
  const double t = total + other.total, fa = total / t, fb = other.total / t;
  for (Index j = 0; j < mean.size(); ++j) {
    const double delta = other.mean[j] - mean[j];
    // The weighted mean as a convex combination (stays within the chunks' means).
    mean[j] = fa * mean[j] + fb * other.mean[j];
    centred2[j] += other.centred2[j] + delta * delta * total * fb;
    squares[j] += other.squares[j];
  }
  n += other.n;
  total = t;
  first_ones = first_ones && other.first_ones;
}

void TermColumnStats::append_columns(const TermColumnStats& other) {
  if (other.n != n || other.total != total)
    throw std::invalid_argument("column statistics of " + std::to_string(other.n) + " rows appended to those of " +
                                std::to_string(n) + " rows (they must be of the same rows)");
  const Index p = mean.size(), q = other.mean.size();
  auto append = [p, q](Vector& a, const Vector& b) {
    Vector c(p + q);
    c << a, b;
    a = std::move(c);
  };
  append(mean, other.mean);
  append(centred2, other.centred2);
  append(squares, other.squares);
  if (p == 0) first_ones = other.first_ones;
}

TermTransform term_transform(const TermColumnStats& stats, Covariance covariance) {
  const Index n = stats.n, p = stats.mean.size();
  const Parameterization& par = parameterization(covariance);
  TermTransform t;
  t.scale = Vector::Ones(p);
  t.offset = Vector::Zero(p);
  if (n == 0 || p == 0) return t;
  const double total = stats.total;
  const bool intercept = p > 1 && stats.first_ones;
  Vector center = Vector::Zero(p), rms(p);
  for (Index j = 0; j < p; ++j) {
    const double mean = stats.mean[j];
    rms[j] = std::sqrt(stats.squares[j] / total);
    const double sd = std::sqrt(stats.centred2[j] / total);
    // A column constant to rounding is the intercept's multiple: centring would
    // leave only rounding noise, and no basis makes the term better determined.
    const bool varies = sd > 1e-12 * std::abs(mean);
    if (!intercept || j == 0 || !varies) continue;
    if (par.unstructured()) {
      center[j] = mean;
      rms[j] = sd;
    } else {
      t.offset[j] = std::abs(mean) / sd;
    }
  }
  if (par.unstructured() && intercept && (center.array() != 0.0).any()) t.center = center;
  // Centred columns (whose coordinates change anyway) get unit scale, so that
  // λ̃ = I is a sensible start (fit.hpp); the others only when extreme.
  if (par.homogeneous()) {
    t.scale.setConstant(inverse_power_of_two(std::sqrt(rms.squaredNorm() / static_cast<double>(p)), true));
  } else {
    for (Index j = 0; j < p; ++j) t.scale[j] = inverse_power_of_two(rms[j], center[j] == 0.0);
  }
  return t;
}

TermTransform term_transform(const TermData& term, const Vector& weights) {
  const Index n = term.z.rows();
  return term_transform(TermColumnStats::of(term.z, weights.size() == n ? weights : Vector()), term.covariance);
}

void working_start(const TermShape& shape, const TermTransform& t, double* working) {
  const Index p = shape.p;
  bool moderate = true;
  auto check = [&moderate](double v) { moderate = moderate && (v == 0.0 || (std::abs(v) >= 1e-2 && std::abs(v) <= 1e2)); };
  for (Index j = 0; j < p; ++j) {
    check(t.scale.size() ? 1.0 / t.scale[j] : 1.0);
    if (t.centred()) check(t.center[j] / t.scale[0]);
  }
  Vector start(shape.ntheta());
  shape.parameterization().start(p, start.data());
  if (!moderate) {
    std::copy(start.data(), start.data() + start.size(), working);
    return;
  }
  Matrix rotation;
  theta_to_working(shape, t, start.data(), working, rotation);
}

void theta_to_working(const TermShape& shape, const TermTransform& t, const double* theta, double* working,
                      Matrix& rotation) {
  const Index p = shape.p, m = shape.ntheta();
  if (!t.centred()) {
    const Vector f = theta_factors(shape, t);
    for (Index k = 0; k < m; ++k) working[k] = f[k] * theta[k];
    rotation.resize(0, 0);
    return;
  }
  // M = T⁻¹ λ = diag(1/scale) (I + e_0 center') λ: row 0 is λ_0 + Σ_j center_j λ_j,
  // a sum of large terms with a small result when the offsets are large.
  Matrix lambda;
  theta_to_lambda(shape, theta, lambda);
  DdMatrix M(static_cast<std::size_t>(p * p));
  for (Index c = 0; c < p; ++c) {
    Dd row0{lambda(0, c)};
    for (Index j = 1; j < p; ++j) row0 = row0 + Dd{t.center[j]} * Dd{lambda(j, c)};
    M[c] = row0 * Dd{1.0 / t.scale[0]};
    for (Index j = 1; j < p; ++j) M[j * p + c] = Dd{lambda(j, c) / t.scale[j]};
  }
  rotation = lq(p, M);
  Index k = 0;
  for (const auto& [row, col] : shape.parameterization().positions(p)) working[k++] = M[row * p + col].hi;
}

void theta_from_working(const TermShape& shape, const TermTransform& t, const double* working, double* theta,
                        Matrix& rotation) {
  const Index p = shape.p, m = shape.ntheta();
  if (!t.centred()) {
    const Vector f = theta_factors(shape, t);
    for (Index k = 0; k < m; ++k) theta[k] = working[k] / f[k];
    rotation.resize(0, 0);
    return;
  }
  // N = T λ̃ = (I − e_0 center') K with K = diag(scale) λ̃ (exact: powers of two):
  // row 0 is K_0 − Σ_j center_j K_j, the other rows those of K.
  Matrix lambda;
  theta_to_lambda(shape, working, lambda);
  DdMatrix N(static_cast<std::size_t>(p * p));
  for (Index c = 0; c < p; ++c) {
    Dd row0{lambda(0, c) * t.scale[0]};
    for (Index j = 1; j < p; ++j) row0 = row0 - Dd{t.center[j]} * Dd{lambda(j, c) * t.scale[j]};
    N[c] = row0;
    for (Index j = 1; j < p; ++j) N[j * p + c] = Dd{lambda(j, c) * t.scale[j]};
  }
  // T λ̃ = λ Q_N gives T⁻¹ λ = λ̃ Q_N'.
  rotation = lq(p, N).transpose();
  Index k = 0;
  for (const auto& [row, col] : shape.parameterization().positions(p)) theta[k++] = N[row * p + col].hi;
}

void gradient_from_working(const TermShape& shape, const TermTransform& t, const double* working, const Matrix& G,
                           const Matrix& rotation, double* grad) {
  const Index p = shape.p, m = shape.ntheta();
  if (!t.centred()) {
    shape.parameterization().chain(p, working, G, grad);
    const Vector f = theta_factors(shape, t);
    for (Index k = 0; k < m; ++k) grad[k] *= f[k];
    return;
  }
  // ∂f/∂λ = T⁻ᵀ G Q with T⁻ᵀ = (I + center e_0') diag(1/scale): row j of
  // H = diag(1/scale) G Q plus center_j times its row 0.
  Matrix H = t.scale.cwiseInverse().asDiagonal() * (G * rotation);
  for (Index j = 1; j < p; ++j) H.row(j) += t.center[j] * H.row(0);
  Index k = 0;
  for (const auto& [row, col] : shape.parameterization().positions(p)) grad[k++] = H(row, col);
}

}  // namespace lmm
