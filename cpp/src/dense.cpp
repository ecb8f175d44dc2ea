#include "lmm/dense.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <limits>
#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define LMM_HAVE_MMAP 1
#endif

namespace lmm {

namespace {

std::size_t block_bytes(Index n) {
  if (n > 0 && static_cast<double>(n) * static_cast<double>(n) * sizeof(double) >
                   static_cast<double>(std::numeric_limits<std::size_t>::max() / 2))
    throw std::length_error("dense block too large to allocate");
  return static_cast<std::size_t>(n) * static_cast<std::size_t>(n) * sizeof(double);
}

// The installed kernels. Each pointer is read once per call; set_lapack is
// documented as not concurrent with fits, the atomics only keep reads whole.
std::atomic<LapackKernels::Potrf> g_potrf{nullptr};
std::atomic<LapackKernels::Trtri> g_trtri{nullptr};
std::atomic<LapackKernels::Lauum> g_lauum{nullptr};

// Below this order Eigen's kernels beat a call into LAPACK (no threads, no
// blocking to amortize), and the recursive kernels switch to direct solves.
constexpr Index kSmallOrder = 96;

// Order n and leading dimension lda of A as LAPACK's int arguments. The dense
// block is bounded far below INT_MAX rows by ModelOptions::max_dense_bytes,
// but a library call must not wrap.
struct LapackSizes {
  int n, lda;
  explicit LapackSizes(const Eigen::Ref<Matrix>& A) {
    if (A.outerStride() > std::numeric_limits<int>::max())
      throw std::length_error("dense block too large for LAPACK's int sizes");
    n = static_cast<int>(A.rows());
    lda = static_cast<int>(A.outerStride());
  }
};

void eigen_invert_lower(Eigen::Ref<Matrix> L) {
  const Index n = L.rows();
  if (n <= kSmallOrder) {
    Matrix inv = Matrix::Identity(n, n);
    L.triangularView<Eigen::Lower>().solveInPlace(inv);
    L.triangularView<Eigen::Lower>() = inv;
    return;
  }
  // [[L11, 0], [L21, L22]]⁻¹ = [[L11⁻¹, 0], [−L22⁻¹ L21 L11⁻¹, L22⁻¹]]; about n³/3 flops.
  const Index h = n / 2;
  eigen_invert_lower(L.topLeftCorner(h, h));
  Matrix X21 = L.bottomLeftCorner(n - h, h) * L.topLeftCorner(h, h).triangularView<Eigen::Lower>();
  L.bottomRightCorner(n - h, n - h).triangularView<Eigen::Lower>().solveInPlace(X21);
  L.bottomLeftCorner(n - h, h) = -X21;
  eigen_invert_lower(L.bottomRightCorner(n - h, n - h));
}

void eigen_lauum_lower(Eigen::Ref<Matrix> A) {
  const Index n = A.rows();
  if (n <= kSmallOrder) {
    const Matrix lower = A.triangularView<Eigen::Lower>();
    const Matrix product = lower.transpose() * lower;
    A.triangularView<Eigen::Lower>() = product;
    return;
  }
  // With A = [[A11, 0], [A21, A22]]: A'A = [[A11'A11 + A21'A21, ·], [A22'A21, A22'A22]]; about n³/3 flops.
  const Index h = n / 2;
  eigen_lauum_lower(A.topLeftCorner(h, h));
  A.topLeftCorner(h, h).selfadjointView<Eigen::Lower>().rankUpdate(A.bottomLeftCorner(n - h, h).transpose());
  const Matrix W21 =
      A.bottomRightCorner(n - h, n - h).triangularView<Eigen::Lower>().transpose() * A.bottomLeftCorner(n - h, h);
  A.bottomLeftCorner(n - h, h) = W21;
  eigen_lauum_lower(A.bottomRightCorner(n - h, n - h));
}

}  // namespace

void DenseBlock::resize(Index n) {
  if (n == n_) return;
  release();
  if (n == 0) return;
  const std::size_t bytes = block_bytes(n);
#ifdef LMM_HAVE_MMAP
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<double*>(p);  // zero pages, mapped in when first written
#else
  data_ = static_cast<double*>(std::calloc(bytes / sizeof(double), sizeof(double)));
  if (data_ == nullptr) throw std::bad_alloc();
#endif
  n_ = n;
}

void DenseBlock::copy_lower(const DenseBlock& other) {
  release();
  resize(other.n_);
  for (Index j = 0; j < n_; ++j) std::copy(other.data_ + j * n_ + j, other.data_ + (j + 1) * n_, data_ + j * n_ + j);
}

void DenseBlock::release() {
  if (data_ != nullptr) {
#ifdef LMM_HAVE_MMAP
    munmap(data_, block_bytes(n_));
#else
    std::free(data_);
#endif
  }
  data_ = nullptr;
  n_ = 0;
}

void set_lapack(const LapackKernels& kernels) {
  const bool complete = kernels.potrf && kernels.trtri && kernels.lauum;
  g_potrf.store(complete ? kernels.potrf : nullptr);
  g_trtri.store(complete ? kernels.trtri : nullptr);
  g_lauum.store(complete ? kernels.lauum : nullptr);
}

bool using_lapack() { return g_potrf.load() != nullptr; }

bool cholesky_lower(Eigen::Ref<Matrix> A) {
  const auto potrf = g_potrf.load();
  if (potrf && A.rows() > kSmallOrder) {
    char uplo = 'L';
    LapackSizes s(A);
    int info = 0;
    potrf(&uplo, &s.n, A.data(), &s.lda, &info);
    return info == 0;
  }
  Eigen::LLT<Eigen::Ref<Matrix>> llt(A);
  return llt.info() == Eigen::Success;
}

void invert_lower(Eigen::Ref<Matrix> L) {
  const auto trtri = g_trtri.load();
  if (trtri && L.rows() > kSmallOrder) {
    char uplo = 'L', diag = 'N';
    LapackSizes s(L);
    int info = 0;
    trtri(&uplo, &diag, &s.n, L.data(), &s.lda, &info);
    // info > 0 is a zero diagonal entry, impossible for a factor that passed potrf.
    if (info != 0) throw std::runtime_error("triangular inverse failed (a zero pivot)");
    return;
  }
  eigen_invert_lower(L);
}

void lauum_lower(Eigen::Ref<Matrix> L) {
  const auto lauum = g_lauum.load();
  if (lauum && L.rows() > kSmallOrder) {
    char uplo = 'L';
    LapackSizes s(L);
    int info = 0;
    lauum(&uplo, &s.n, L.data(), &s.lda, &info);
    if (info != 0) throw std::runtime_error("LAPACK lauum failed");
    return;
  }
  eigen_lauum_lower(L);
}

}  // namespace lmm
