// lmm::within_level_residual against the residual of the dense least squares on
// [X, Z] (Z built here, one block of columns per level), for a response with noise
// (a nonzero residual), one fitted exactly, and levels with fewer rows than columns;
// one column (the flat path) also as a slope that is zero on a level's rows.
#include <array>
#include <cstdio>
#include <random>
#include <string>

#include <Eigen/QR>

#include "check.hpp"
#include "lmm/exact_fit.hpp"

namespace {

using lmm_test::check;
using lmm_test::check_close;
using lmm_test::failures;

using lmm::Index;
using lmm::Matrix;
using lmm::Vector;

// The dense residual agrees to rounding; an exact fit leaves rounding only.
constexpr double kResidualRtol = 1e-10;
constexpr double kExactRel = 1e-12;

struct Case {
  lmm::IntVector codes;
  Matrix z, X;
  Index nlevels;
};

Case make_case(Index n, Index nlevels, Index p, Index k, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  Case c{lmm::IntVector(n), Matrix(n, p), Matrix(n, k), nlevels};
  for (Index i = 0; i < n; ++i) {
    c.codes(i) = static_cast<std::int32_t>(i % nlevels);
    c.z(i, 0) = 1.0;
    for (Index j = 1; j < p; ++j) c.z(i, j) = normal(rng);
    for (Index j = 0; j < k; ++j) c.X(i, j) = normal(rng);
  }
  return c;
}

// Residual norm of y on [X, Z] by a dense rank-revealing QR.
double dense_residual(const Case& c, const Vector& y) {
  const Index n = y.size(), p = c.z.cols(), k = c.X.cols();
  Matrix A = Matrix::Zero(n, k + c.nlevels * p);
  A.leftCols(k) = c.X;
  for (Index i = 0; i < n; ++i) A.block(i, k + c.codes(i) * p, 1, p) = c.z.row(i);
  Eigen::ColPivHouseholderQR<Matrix> qr(A);
  return (y - A * qr.solve(y)).norm();
}

double residual(const Case& c, const Vector& y) {
  Matrix V(y.size(), c.X.cols() + 1);
  V.col(0) = y;
  V.rightCols(c.X.cols()) = c.X;
  const lmm::TermData term{Eigen::Map<const lmm::IntVector>(c.codes.data(), c.codes.size()),
                           Eigen::Map<const Matrix>(c.z.data(), c.z.rows(), c.z.cols()), c.nlevels,
                           lmm::Covariance::Unstructured};
  return lmm::within_level_residual(term, V);
}

void test_against_dense() {
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  for (const auto& [n, nlevels, p, k] : {std::array<Index, 4>{60, 6, 2, 2}, {80, 20, 3, 1}, {30, 5, 1, 0}, {50, 7, 1, 2}}) {
    const Case c = make_case(n, nlevels, p, k, 11);
    Vector y(n);
    for (Index i = 0; i < n; ++i) y(i) = normal(rng);
    check_close("residual vs dense, n=" + std::to_string(n) + " p=" + std::to_string(p), residual(c, y),
                dense_residual(c, y), kResidualRtol);
    // y = X β + z b_level exactly: the residual is rounding.
    Vector exact = c.X * Vector::Constant(k, 2.0);
    for (Index i = 0; i < n; ++i) exact(i) += c.z.row(i).sum() * (1.0 + c.codes(i));
    check("exact fit, n=" + std::to_string(n), residual(c, exact) <= kExactRel * exact.norm());
  }
  // Two rows per level and three columns: every level is fitted exactly (a
  // pseudo-inverse of each rank-2 Gram matrix), whatever the response.
  const Case c = make_case(40, 20, 3, 1, 13);
  Vector y(40);
  for (Index i = 0; i < 40; ++i) y(i) = normal(rng);
  check("fewer rows than columns per level", residual(c, y) <= kExactRel * y.norm());

  // One column, a slope (not 1), zero on every row of level 0: that level
  // takes nothing out (G = 0, its pseudo-inverse 0).
  Case s1 = make_case(45, 5, 1, 1, 17);
  for (Index i = 0; i < 45; ++i) s1.z(i, 0) = s1.codes(i) == 0 ? 0.0 : normal(rng);
  Vector y1(45);
  for (Index i = 0; i < 45; ++i) y1(i) = normal(rng);
  check_close("a slope zero on a level, vs dense", residual(s1, y1), dense_residual(s1, y1), kResidualRtol);
}

}  // namespace

int main() {
  test_against_dense();
  if (failures) std::printf("%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
