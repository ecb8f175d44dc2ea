// Dense kernels of the trailing block of L: Cholesky factorization, inverse
// of a triangular factor, and the product L'L. Eigen implements all three; a
// LAPACK can take them over at run time (set_lapack), e.g. an optimized,
// multithreaded one. The Python module installs the LAPACK that SciPy carries.
#pragma once

#include <cstddef>
#include <utility>

#include "types.hpp"

namespace lmm {

/// Storage of a square column-major matrix of doubles in its own anonymous
/// memory map (POSIX; the heap elsewhere): pages never written take no memory
/// (the dense block of L is only ever touched in its lower triangle), and
/// freeing returns the memory to the system at once, whatever the allocator
/// would do with a block of that size.
class DenseBlock {
 public:
  DenseBlock() = default;
  /// A copy of the lower triangle (the part in use; the rest stays unmapped).
  DenseBlock(const DenseBlock& other) { copy_lower(other); }
  DenseBlock& operator=(const DenseBlock& other) {
    if (this != &other) copy_lower(other);
    return *this;
  }
  DenseBlock(DenseBlock&& other) noexcept { swap(other); }
  DenseBlock& operator=(DenseBlock&& other) noexcept {
    swap(other);
    return *this;
  }
  ~DenseBlock() { release(); }

  /// Make it n × n: new storage, all zeros (unless n is the current order: then unchanged).
  void resize(Index n);
  /// Free the storage (order 0).
  void release();
  Index order() const { return n_; }
  bool empty() const { return n_ == 0; }
  Eigen::Map<Matrix> matrix() { return {data_, n_, n_}; }
  Eigen::Map<const Matrix> matrix() const { return {data_, n_, n_}; }
  void swap(DenseBlock& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(n_, other.n_);
  }

 private:
  void copy_lower(const DenseBlock& other);

  double* data_ = nullptr;
  Index n_ = 0;
};

/// LAPACK and BLAS routines by pointer, with the reference arguments and no
/// hidden string lengths (as scipy.linalg.cython_lapack and cython_blas export
/// them):
///   potrf(uplo, n, a, lda, info): Cholesky factor of a symmetric matrix
///   trtri(uplo, diag, n, a, lda, info): inverse of a triangular matrix
///   lauum(uplo, n, a, lda, info): L'L (uplo = "L") of a triangular L
///   gemm, syrk, trsm, trmm: the BLAS-3 products the threaded kernels split
/// potrf, trtri and lauum are used together; a null pointer in any means "use
/// Eigen". Without all four BLAS routines the kernels run on one thread.
struct LapackKernels {
  using Potrf = void (*)(char* uplo, int* n, double* a, int* lda, int* info);
  using Trtri = void (*)(char* uplo, char* diag, int* n, double* a, int* lda, int* info);
  using Lauum = void (*)(char* uplo, int* n, double* a, int* lda, int* info);
  using Gemm = void (*)(char* ta, char* tb, int* m, int* n, int* k, double* alpha, double* a, int* lda, double* b,
                        int* ldb, double* beta, double* c, int* ldc);
  using Syrk = void (*)(char* uplo, char* trans, int* n, int* k, double* alpha, double* a, int* lda, double* beta,
                        double* c, int* ldc);
  using Trsm = void (*)(char* side, char* uplo, char* transa, char* diag, int* m, int* n, double* alpha, double* a,
                        int* lda, double* b, int* ldb);
  using Trmm = Trsm;
  Potrf potrf = nullptr;
  Trtri trtri = nullptr;
  Lauum lauum = nullptr;
  Gemm gemm = nullptr;
  Syrk syrk = nullptr;
  Trsm trsm = nullptr;
  Trmm trmm = nullptr;
};

/// Install LAPACK kernels for every later dense operation (process-wide; call
/// before fitting, not while another thread fits). Pass {} to go back to Eigen.
void set_lapack(const LapackKernels& kernels);

/// Whether dense operations currently go to an installed LAPACK.
bool using_lapack();

/// Give the whole pages inside [begin, begin + bytes) back to the system: the
/// caller no longer needs what is there (those pages read as zeros if touched
/// again, which only a later owner of the memory may do). The page holding
/// `begin` and the last page are kept: an allocator's bookkeeping may share
/// them. A no-op where the system cannot (not Linux or macOS).
void release_pages(const void* begin, std::size_t bytes);

/// Give the heap's free memory back to the system (glibc's malloc_trim; a
/// no-op elsewhere): after a pass that freed much, so that the pages the pass
/// used do not stay resident while the process goes on.
void trim_heap();

/// Threads for the dense kernels below (process-wide; at least 1). With more
/// than one, and the BLAS routines installed, blocks of order kThreadedOrder
/// and above are split into products that run on that many threads, each
/// calling the BLAS, which must then run on one thread itself (the Python
/// module pins it). Smaller blocks run on the calling thread: there the
/// threads would not pay for themselves.
void set_dense_threads(int threads);
int dense_threads();
constexpr Index kThreadedOrder = 512;

/// In place: the lower triangle of the symmetric A (n × n, lower triangle read)
/// becomes its Cholesky factor L with A = LL'. The strict upper triangle is
/// not referenced. Returns false when A is not positive definite.
bool cholesky_lower(Eigen::Ref<Matrix> A);

/// In place: the lower triangle of L (n × n, lower triangular) becomes that of
/// L⁻¹ (LAPACK's trtri on small blocks; above a few hundred columns, on any
/// number of threads, recursive halves joined by triangular products, which
/// run at gemm's rate). The strict upper triangle is not referenced.
void invert_lower(Eigen::Ref<Matrix> L);

/// In place: the lower triangle of L (n × n, lower triangular) becomes that of
/// the symmetric L'L (LAPACK's lauum). The strict upper triangle is not referenced.
void lauum_lower(Eigen::Ref<Matrix> L);
/// In place: the lower triangle of C (m × m) += alpha · P P' (P m × k; BLAS's
/// syrk, threaded as the kernels above from order kThreadedOrder).
void rank_update_lower(Eigen::Ref<Matrix> C, Eigen::Ref<Matrix> P, double alpha);
/// In place: B (m × k) ← L B, L (m × m) lower triangular (BLAS's trmm, threaded
/// as the kernels above from order kThreadedOrder). The strict upper triangle
/// of L is not referenced.
void lower_times(Eigen::Ref<Matrix> L, Eigen::Ref<Matrix> B);

}  // namespace lmm
