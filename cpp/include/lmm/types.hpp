// Scalar, index and array types shared by the whole library, and the glossary.
//
// Glossary (see DESIGN.md):
//   theta  relative covariance parameters, one vector for the whole model
//   lambda per-term lower-triangular relative covariance factor (p_k × p_k)
//   A      crossproduct blocks of [Z X y]
//   L      blocked lower Cholesky factor of [[Λ'A_ZZΛ + I, Λ'A_ZXy], [A_XyZΛ, A_XyXy]]
//   pwrss  penalized weighted residual sum of squares, r² (last diagonal of L squared)
//   ldL2   log|L_Z|², ldRX2 log|L_X|²
//   u      spherical random effects, b = Λu conditional modes, beta fixed effects
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace lmm {

using Index = Eigen::Index;
using Matrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;
using IntVector = Eigen::Matrix<std::int32_t, Eigen::Dynamic, 1>;
/// A range of whole columns of a Matrix (what middleCols returns).
using ColBlock = Eigen::Block<Matrix, Eigen::Dynamic, Eigen::Dynamic, true>;
using ConstColBlock = Eigen::Block<const Matrix, Eigen::Dynamic, Eigen::Dynamic, true>;

}  // namespace lmm
