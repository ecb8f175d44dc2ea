#include "lmm/exact_fit.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <limits>
#include <stdexcept>
#include <vector>

namespace lmm {

namespace {

// Moore–Penrose inverse of a symmetric positive semidefinite p × p matrix, with
// NumPy's pinv cutoff (eigenvalues below p·ε times the largest count as zero).
Matrix pseudo_inverse(const Matrix& G) {
  Eigen::SelfAdjointEigenSolver<Matrix> eig(G);
  const Vector& d = eig.eigenvalues();
  const double cutoff = d.cwiseAbs().maxCoeff() * std::numeric_limits<double>::epsilon() * G.rows();
  Vector inv = Vector::Zero(d.size());
  for (Index i = 0; i < d.size(); ++i)
    if (d(i) > cutoff) inv(i) = 1.0 / d(i);
  return eig.eigenvectors() * inv.asDiagonal() * eig.eigenvectors().transpose();
}

// Residual of y on the columns of X (any rank), refined once.
Vector residual_on(const Matrix& X, const Vector& y) {
  if (X.cols() == 0) return y;
  Eigen::ColPivHouseholderQR<Matrix> qr(X);
  Vector r = y - X * qr.solve(y);
  return r - X * qr.solve(r);
}

}  // namespace

double within_level_residual(const TermData& term, Eigen::Ref<Matrix> V) {
  const Index n = V.rows(), m = V.cols(), p = term.z.cols(), L = term.nlevels;
  if (term.codes.size() != n || term.z.rows() != n)
    throw std::invalid_argument("within_level_residual: codes, z and V need the same number of rows");
  if (m < 1) throw std::invalid_argument("within_level_residual: V needs the response column");
  for (Index i = 0; i < n; ++i)
    if (term.codes(i) < 0 || term.codes(i) >= L)
      throw std::invalid_argument("within_level_residual: a level code is out of range");
  if (p == 1) {
    // One column (an intercept, the commonest): the same by column of V, with
    // the levels' sums in flat arrays (G⁺ of a scalar: 1/G, or 0 for G = 0).
    const auto z = term.z.col(0);
    Vector G = Vector::Zero(L);
    for (Index i = 0; i < n; ++i) G[term.codes(i)] += z[i] * z[i];
    for (Index l = 0; l < L; ++l) G[l] = G[l] > 0.0 ? 1.0 / G[l] : 0.0;
    Vector B(L);
    for (Index j = 0; j < m; ++j) {
      auto v = V.col(j);
      B.setZero();
      for (Index i = 0; i < n; ++i) B[term.codes(i)] += z[i] * v[i];
      B.array() *= G.array();
      for (Index i = 0; i < n; ++i) v[i] -= z[i] * B[term.codes(i)];
    }
    return residual_on(V.rightCols(m - 1), V.col(0)).norm();
  }
  // Per level: G = z'z (p × p) and R = z'V (p × m), then B = G⁺ R.
  std::vector<Matrix> G(L, Matrix::Zero(p, p)), R(L, Matrix::Zero(p, m));
  for (Index i = 0; i < n; ++i) {
    const Index l = term.codes(i);
    const auto zi = term.z.row(i).transpose();
    G[l].selfadjointView<Eigen::Lower>().rankUpdate(zi);
    R[l].noalias() += zi * V.row(i);
  }
  for (Index l = 0; l < L; ++l) {
    Matrix full = G[l].selfadjointView<Eigen::Lower>();
    R[l] = pseudo_inverse(full) * R[l];
  }
  for (Index i = 0; i < n; ++i) V.row(i).noalias() -= term.z.row(i) * R[term.codes(i)];
  return residual_on(V.rightCols(m - 1), V.col(0)).norm();
}

}  // namespace lmm
