// Blocked Cholesky, objective pieces and solves against dense Eigen on small
// random designs with nested, crossed and same-factor terms.
#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "lmm/lmm.hpp"

namespace {

using lmm::Index;
using lmm::Matrix;
using lmm::Vector;

int failures = 0;

void check_close(const std::string& what, double got, double want, double tol) {
  const double err = std::abs(got - want) / std::max(1.0, std::abs(want));
  if (!(err <= tol)) {
    std::printf("FAIL %s: got %.15g want %.15g (rel err %.3g)\n", what.c_str(), got, want, err);
    ++failures;
  }
}

struct OwnedTerm {
  lmm::IntVector codes;
  Matrix z;
  Index nlevels;
  lmm::Covariance cov;
};

struct Design {
  std::string name;
  std::vector<OwnedTerm> terms;
  Matrix X;
  Vector y;
  Index expected_prefix;
};

std::mt19937 rng(20261125);

Matrix random_columns(Index n, Index p, bool intercept) {
  std::normal_distribution<double> nd;
  Matrix z(n, p);
  for (Index j = 0; j < p; ++j)
    for (Index i = 0; i < n; ++i) z(i, j) = (intercept && j == 0) ? 1.0 : nd(rng);
  return z;
}

lmm::IntVector random_codes(Index n, Index nlevels) {
  std::uniform_int_distribution<int> ud(0, static_cast<int>(nlevels) - 1);
  lmm::IntVector c(n);
  for (Index i = 0; i < n; ++i) c[i] = i < nlevels ? static_cast<int>(i) : ud(rng);
  return c;
}

Design base(const std::string& name, Index n, Index p) {
  Design d;
  d.name = name;
  d.X = random_columns(n, p, true);
  d.y = random_columns(n, 1, false).col(0) * 2.0 + d.X.rowwise().sum();
  return d;
}

std::vector<Design> designs() {
  std::vector<Design> out;
  const Index n = 240;
  {
    Design d = base("single vector term", n, 2);
    d.terms.push_back({random_codes(n, 30), random_columns(n, 2, true), 30, lmm::Covariance::Unstructured});
    d.expected_prefix = 1;
    out.push_back(d);
  }
  {
    Design d = base("nested a/b with vector outer term", n, 2);
    lmm::IntVector inner = random_codes(n, 24);
    lmm::IntVector outer(n);
    for (Index i = 0; i < n; ++i) outer[i] = inner[i] / 4;  // 6 outer levels
    d.terms.push_back({outer, random_columns(n, 2, true), 6, lmm::Covariance::Unstructured});
    d.terms.push_back({inner, random_columns(n, 1, true), 24, lmm::Covariance::Unstructured});
    d.expected_prefix = 2;
    out.push_back(d);
  }
  {
    Design d = base("three-level nesting", n, 1);
    lmm::IntVector c3 = random_codes(n, 40), c2(n), c1(n);
    for (Index i = 0; i < n; ++i) {
      c2[i] = c3[i] / 4;
      c1[i] = c2[i] / 5;
    }
    d.terms.push_back({c1, random_columns(n, 1, true), 2, lmm::Covariance::Unstructured});
    d.terms.push_back({c2, random_columns(n, 1, true), 10, lmm::Covariance::Unstructured});
    d.terms.push_back({c3, random_columns(n, 1, true), 40, lmm::Covariance::Unstructured});
    d.expected_prefix = 3;
    out.push_back(d);
  }
  {
    Design d = base("crossed vector and scalar terms", n, 3);
    d.terms.push_back({random_codes(n, 15), random_columns(n, 2, true), 15, lmm::Covariance::Unstructured});
    d.terms.push_back({random_codes(n, 7), random_columns(n, 1, true), 7, lmm::Covariance::Unstructured});
    d.terms.push_back({random_codes(n, 4), random_columns(n, 3, true), 4, lmm::Covariance::Diagonal});
    d.expected_prefix = 1;
    out.push_back(d);
  }
  {
    Design d = base("same factor twice, then crossed", n, 2);
    lmm::IntVector g = random_codes(n, 20);
    d.terms.push_back({g, random_columns(n, 1, true), 20, lmm::Covariance::Unstructured});
    d.terms.push_back({g, random_columns(n, 1, false), 20, lmm::Covariance::Unstructured});
    d.terms.push_back({random_codes(n, 9), random_columns(n, 2, true), 9, lmm::Covariance::Unstructured});
    d.expected_prefix = 2;
    out.push_back(d);
  }
  {
    // A dense tail above the recursion leaf of the tail inverse (trtri/lauum).
    const Index nbig = 1200;
    Design d = base("crossed with a large dense tail", nbig, 2);
    d.terms.push_back({random_codes(nbig, 300), random_columns(nbig, 1, true), 300, lmm::Covariance::Unstructured});
    d.terms.push_back({random_codes(nbig, 200), random_columns(nbig, 1, true), 200, lmm::Covariance::Unstructured});
    d.expected_prefix = 1;
    out.push_back(d);
  }
  return out;
}

// Dense Z (n × q) in model order.
Matrix dense_Z(const Design& d, const lmm::Model& m) {
  Index q = 0;
  for (const auto& s : m.shapes()) q += s.q();
  Matrix Z = Matrix::Zero(d.y.size(), q);
  Index off = 0;
  for (Index k = 0; k < m.nterms(); ++k) {
    const OwnedTerm& t = d.terms[m.order()[k]];
    const Index p = t.z.cols();
    for (Index i = 0; i < d.y.size(); ++i) Z.block(i, off + t.codes[i] * p, 1, p) = t.z.row(i);
    off += t.nlevels * p;
  }
  return Z;
}

Matrix dense_Lambda(const lmm::Model& m) {
  Index q = 0;
  for (const auto& s : m.shapes()) q += s.q();
  Matrix Lam = Matrix::Zero(q, q);
  Index off = 0;
  for (Index k = 0; k < m.nterms(); ++k) {
    const Index p = m.shapes()[k].p;
    for (Index c = 0; c < m.shapes()[k].nlevels; ++c, off += p) Lam.block(off, off, p, p) = m.lambda(k);
  }
  return Lam;
}

// Analytic gradient against central differences of the objective, ML and REML.
void check_gradient(lmm::Model& m, const Vector& theta, const std::string& tag) {
  for (bool reml : {false, true}) {
    m.set_theta(theta);
    const Vector g = m.gradient(reml);
    for (Index i = 0; i < theta.size(); ++i) {
      const double h = 1e-6 * std::max(1.0, std::abs(theta[i]));
      Vector tp = theta, tm = theta;
      tp[i] += h;
      tm[i] -= h;
      m.set_theta(tp);
      const double fp = m.objective(reml);
      m.set_theta(tm);
      const double fm = m.objective(reml);
      const double fd = (fp - fm) / (2 * h);
      const double err = std::abs(g[i] - fd) / std::max(1.0, std::abs(fd));
      if (!(err <= 1e-5)) {
        std::printf("FAIL %s gradient[%ld] (%s): analytic %.10g, central difference %.10g\n", tag.c_str(),
                    static_cast<long>(i), reml ? "REML" : "ML", g[i], fd);
        ++failures;
      }
    }
  }
  m.set_theta(theta);
}

void check_design(const Design& d) {
  std::vector<lmm::TermData> data;
  for (const auto& t : d.terms)
    data.push_back({Eigen::Map<const lmm::IntVector>(t.codes.data(), t.codes.size()),
                    Eigen::Map<const Matrix>(t.z.data(), t.z.rows(), t.z.cols()), t.nlevels, t.cov});
  lmm::Model m(data, d.X, d.y);
  if (m.cholesky().nprefix() != d.expected_prefix) {
    std::printf("FAIL %s: nprefix %ld, expected %ld\n", d.name.c_str(), static_cast<long>(m.cholesky().nprefix()),
                static_cast<long>(d.expected_prefix));
    ++failures;
  }
  std::uniform_real_distribution<double> ud(-0.8, 1.5);
  for (int rep = 0; rep < 3; ++rep) {
    Vector theta = m.theta_start();
    const Vector lower = m.theta_lower();
    for (Index i = 0; i < theta.size(); ++i) theta[i] = lower[i] == 0.0 ? std::abs(ud(rng)) + 0.05 : ud(rng);
    m.set_theta(theta);
    const Matrix Z = dense_Z(d, m);
    const Matrix ZL = Z * dense_Lambda(m);
    const Index q = Z.cols(), p = d.X.cols(), n = d.y.size();
    Matrix W(n, q + p + 1);
    W << ZL, d.X, d.y;
    Matrix Omega = W.transpose() * W;
    Omega.topLeftCorner(q, q).diagonal().array() += 1.0;
    const Matrix L = Omega.llt().matrixL();
    const std::string tag = d.name + " rep " + std::to_string(rep);
    check_close(tag + " ldL2", m.ldL2(), 2.0 * L.diagonal().head(q).array().log().sum(), 1e-10);
    check_close(tag + " ldRX2", m.ldRX2(), 2.0 * L.diagonal().segment(q, p).array().log().sum(), 1e-10);
    check_close(tag + " pwrss", m.pwrss(), L(q + p, q + p) * L(q + p, q + p), 1e-10);

    // Penalized least squares solved densely and independently of L.
    const Matrix M = Omega.topLeftCorner(q + p, q + p);
    const Vector sol = M.ldlt().solve(Omega.col(q + p).head(q + p));
    Vector u, beta;
    m.solve(u, beta);
    check_close(tag + " |u - u_dense|", (u - sol.head(q)).norm(), 0.0, 1e-9);
    check_close(tag + " |beta - beta_dense|", (beta - sol.tail(p)).norm(), 0.0, 1e-9);
    const double rss = (d.y - ZL * u - d.X * beta).squaredNorm() + u.squaredNorm();
    check_close(tag + " pwrss from solution", m.pwrss(), rss, 1e-10);
    const Matrix LX = L.block(q, q, p, p);
    const Matrix vcov = (LX * LX.transpose()).inverse() * (m.pwrss() / static_cast<double>(n));
    check_close(tag + " vcov", (m.vcov_beta(false) - vcov).norm(), 0.0, 1e-10);

    // Conditional variances: the diagonal blocks of Λ (Λ'Z'ZΛ + I)⁻¹ Λ'.
    Matrix OmegaZ = ZL.transpose() * ZL;
    OmegaZ.diagonal().array() += 1.0;
    const Matrix Lam = dense_Lambda(m);
    const Matrix C = Lam * OmegaZ.llt().solve(Matrix(Lam.transpose()));
    const std::vector<Matrix> cv = m.conditional_variances();
    Index off = 0;
    double cv_err = 0.0;
    for (Index k = 0; k < m.nterms(); ++k) {
      const Index pk = m.shapes()[k].p;
      for (Index j = 0; j < m.shapes()[k].nlevels; ++j, off += pk)
        cv_err = std::max(cv_err, (cv[k].middleCols(j * pk, pk) - C.block(off, off, pk, pk)).cwiseAbs().maxCoeff());
    }
    check_close(tag + " conditional variances", cv_err, 0.0, 1e-10);
    check_gradient(m, theta, tag);
  }
}

// A model given a Shift equals one given the shifted arrays X_c = X − 1 center',
// y_c = y − X_c gamma (formed here in full), also after a new response.
void check_shift(const Design& d) {
  std::vector<lmm::TermData> data;
  for (const auto& t : d.terms)
    data.push_back({Eigen::Map<const lmm::IntVector>(t.codes.data(), t.codes.size()),
                    Eigen::Map<const Matrix>(t.z.data(), t.z.rows(), t.z.cols()), t.nlevels, t.cov});
  const Index p = d.X.cols();
  lmm::Shift shift{Vector::LinSpaced(p, 0.5, 2.0), Vector::LinSpaced(p, -1.0, 3.0)};
  const Matrix Xc = d.X.rowwise() - shift.center.transpose();
  const Vector yc = d.y - Xc * shift.gamma;
  lmm::Model shifted(data, d.X, d.y, {}, shift), plain(data, Xc, yc);
  const Vector y2 = d.y.reverse();
  for (int pass = 0; pass < 2; ++pass) {
    const std::string tag = d.name + (pass ? " shift, new response" : " shift");
    const lmm::Crossprod &a = shifted.crossprod(), &b = plain.crossprod();
    check_close(tag + " |XyXy|", (a.XyXy - b.XyXy).norm(), 0.0, 1e-10 * b.XyXy.norm());
    for (std::size_t k = 0; k < a.XyZ.size(); ++k)
      check_close(tag + " |XyZ|", (a.XyZ[k] - b.XyZ[k]).norm(), 0.0, 1e-10 * b.XyZ[k].norm());
    const Vector theta = shifted.theta_start() * 0.7;
    shifted.set_theta(theta);
    plain.set_theta(theta);
    check_close(tag + " objective", shifted.objective(true), plain.objective(true), 1e-12);
    shifted.set_response(data, d.X, y2);
    plain.set_response(data, Xc, y2 - Xc * shift.gamma);
  }
}

// A leading term with enough blocks is factored by ranges of levels on the
// threads (with a dense tail of kThreadedOrder columns or more): the criterion,
// gradient and solution equal one thread's to rounding, for one-column (set and
// divided in one pass), two-column (fixed-size kernels) and five-column leading terms.
void check_threaded_factor() {
  const Index n = 40000, lead = 4000, tail = 600;
  const lmm::IntVector tail_codes = random_codes(n, tail);
  for (Index p : {1, 2, 5}) {
    Design d = base("threaded leading term, " + std::to_string(p) + " column(s)", n, 2);
    d.terms.push_back({random_codes(n, lead), random_columns(n, p, true), lead, lmm::Covariance::Unstructured});
    d.terms.push_back({tail_codes, random_columns(n, 1, true), tail, lmm::Covariance::Unstructured});
    std::vector<lmm::TermData> data;
    for (const auto& t : d.terms)
      data.push_back({Eigen::Map<const lmm::IntVector>(t.codes.data(), t.codes.size()),
                      Eigen::Map<const Matrix>(t.z.data(), t.z.rows(), t.z.cols()), t.nlevels, t.cov});
    const int before = lmm::dense_threads();
    lmm::set_dense_threads(1);
    lmm::Model m(data, d.X, d.y);
    const Vector theta = m.theta_start() * 0.8;
    m.set_theta(theta);
    const double f1 = m.objective(true);
    const Vector g1 = m.gradient(true);
    Vector u1, b1;
    m.solve(u1, b1);
    for (int threads : {2, 3}) {
      lmm::set_dense_threads(threads);
      lmm::Model mt(data, d.X, d.y);  // (its own factor: nothing kept from one thread's)
      mt.set_theta(theta * 1.1);
      mt.set_theta(theta);
      const std::string tag = d.name + " on " + std::to_string(threads) + " threads";
      check_close(tag + " objective", mt.objective(true), f1, 1e-12);
      check_close(tag + " |gradient - one thread's|", (mt.gradient(true) - g1).norm(), 0.0, 1e-10 * g1.norm());
      Vector u, beta;
      mt.solve(u, beta);
      check_close(tag + " |u - one thread's|", (u - u1).norm(), 0.0, 1e-11 * u1.norm());
      check_close(tag + " |beta - one thread's|", (beta - b1).norm(), 0.0, 1e-11 * b1.norm());
    }
    lmm::set_dense_threads(before);
  }
}

void check_errors() {
  lmm::IntVector codes(3);
  codes << 0, 1, 5;
  Matrix z = Matrix::Ones(3, 1), X = Matrix::Ones(3, 1);
  Vector y = Vector::Ones(3);
  std::vector<lmm::TermData> data{{Eigen::Map<const lmm::IntVector>(codes.data(), 3),
                                   Eigen::Map<const Matrix>(z.data(), 3, 1), 2, lmm::Covariance::Unstructured}};
  bool thrown = false;
  try {
    lmm::Model m(data, X, y);
  } catch (const std::invalid_argument&) {
    thrown = true;
  }
  if (!thrown) {
    std::printf("FAIL out-of-range level code was accepted\n");
    ++failures;
  }
}

}  // namespace

int main() {
  for (const auto& d : designs()) {
    check_design(d);
    check_shift(d);
  }
  check_threaded_factor();
  check_errors();
  if (failures == 0) std::printf("all blocked Cholesky checks passed\n");
  return failures == 0 ? 0 : 1;
}
