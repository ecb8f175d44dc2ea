// The threaded dense kernels (dense.hpp): with reference BLAS/LAPACK routines
// written on Eigen installed by set_lapack, the recursive splits and the
// panels over 1, 2 and 3 threads give the factor, inverse and product Eigen
// gives, on orders that split unevenly; a matrix that is not positive definite
// is reported wherever its failing pivot lies. The pool behind them
// (parallel.hpp) runs every chunk once, also when loops of several threads use
// it at the same time (and when chunks throw: the first one's exception surfaces), and backs off to the calling thread after a loop whose
// worker held it up.
#include <Eigen/Dense>
#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "lmm/dense.hpp"
#include "lmm/parallel.hpp"

namespace {

using lmm::Index;
using lmm::Matrix;
using Map = Eigen::Map<Matrix, 0, Eigen::OuterStride<>>;

Map view(double* a, int rows, int cols, int ld) { return Map(a, rows, cols, Eigen::OuterStride<>(ld)); }

// Work of `seconds` on this thread's CPU (a busy wait: a caller's chunk that
// sleeps would look to the pool like a thread that lost its core).
void spin(double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
  }
}

// Reference routines with LAPACK's arguments, lower triangle and non-unit
// diagonal only (all the kernels ask for).
void potrf(char*, int* n, double* a, int* lda, int* info) {
  Map A = view(a, *n, *n, *lda);
  Eigen::LLT<Eigen::Ref<Matrix>> llt(A);
  *info = llt.info() == Eigen::Success ? 0 : 1;
}
void trtri(char*, char*, int* n, double* a, int* lda, int* info) {
  Map A = view(a, *n, *n, *lda);
  Matrix inv = Matrix::Identity(*n, *n);
  A.triangularView<Eigen::Lower>().solveInPlace(inv);
  A.triangularView<Eigen::Lower>() = inv;
  *info = 0;
}
void lauum(char*, int* n, double* a, int* lda, int* info) {
  Map A = view(a, *n, *n, *lda);
  const Matrix L = A.triangularView<Eigen::Lower>();
  A.triangularView<Eigen::Lower>() = L.transpose() * L;
  *info = 0;
}
Matrix op(const Map& M, char t) { return t == 'N' ? Matrix(M) : Matrix(M.transpose()); }
void gemm(char* ta, char* tb, int* m, int* n, int* k, double* alpha, double* a, int* lda, double* b, int* ldb,
          double* beta, double* c, int* ldc) {
  const Map A = view(a, *ta == 'N' ? *m : *k, *ta == 'N' ? *k : *m, *lda);
  const Map B = view(b, *tb == 'N' ? *k : *n, *tb == 'N' ? *n : *k, *ldb);
  Map C = view(c, *m, *n, *ldc);
  C = *beta * C + *alpha * op(A, *ta) * op(B, *tb);
}
void syrk(char*, char* trans, int* n, int* k, double* alpha, double* a, int* lda, double* beta, double* c, int* ldc) {
  const Map A = view(a, *trans == 'N' ? *n : *k, *trans == 'N' ? *k : *n, *lda);
  Map C = view(c, *n, *n, *ldc);
  const Matrix P = op(A, *trans);
  const Matrix full = *beta * Matrix(C) + *alpha * P * P.transpose();
  C.triangularView<Eigen::Lower>() = full;
}
// op(L) of the lower triangle of a (k × k, the side's order): L or L'.
Matrix op_lower(char side, char transa, int m, int n, double* a, int lda) {
  const int k = side == 'L' ? m : n;
  const Matrix L = view(a, k, k, lda).triangularView<Eigen::Lower>();
  return transa == 'N' ? L : Matrix(L.transpose());
}
void trsm(char* side, char*, char* transa, char*, int* m, int* n, double* alpha, double* a, int* lda, double* b,
          int* ldb) {
  const Matrix T = op_lower(*side, *transa, *m, *n, a, *lda);
  Map B = view(b, *m, *n, *ldb);
  // op(L) is lower (N) or upper (T) triangular; B op(L)⁻¹ = (op(L)ᵀ⁻¹ Bᵀ)ᵀ.
  if (*side == 'L') {
    const Matrix X = *transa == 'N' ? Matrix(T.triangularView<Eigen::Lower>().solve(B))
                                    : Matrix(T.triangularView<Eigen::Upper>().solve(B));
    B = *alpha * X;
  } else {
    const Matrix Bt = B.transpose();
    const Matrix Tt = T.transpose();
    const Matrix X = *transa == 'N' ? Matrix(Tt.triangularView<Eigen::Upper>().solve(Bt))
                                    : Matrix(Tt.triangularView<Eigen::Lower>().solve(Bt));
    B = *alpha * X.transpose();
  }
}
void trmm(char* side, char*, char* transa, char*, int* m, int* n, double* alpha, double* a, int* lda, double* b,
          int* ldb) {
  const Matrix T = op_lower(*side, *transa, *m, *n, a, *lda);
  Map B = view(b, *m, *n, *ldb);
  B = *side == 'L' ? Matrix(*alpha * T * B) : Matrix(*alpha * B * T);
}

double lower_diff(const Matrix& a, const Matrix& b) {
  return (Matrix(a.triangularView<Eigen::Lower>()) - Matrix(b.triangularView<Eigen::Lower>())).norm() /
         Matrix(b.triangularView<Eigen::Lower>()).norm();
}

}  // namespace

int main() {
  using lmm_test::check;
  lmm::set_lapack({potrf, trtri, lauum, gemm, syrk, trsm, trmm});
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  for (const Index n : {lmm::kThreadedOrder - 1, lmm::kThreadedOrder + 77, Index{1201}}) {
    Matrix B(n, n);
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < n; ++i) B(i, j) = normal(rng);
    const Matrix S = B * B.transpose() / static_cast<double>(n) + Matrix::Identity(n, n);
    const Matrix L = S.llt().matrixL();
    Matrix Linv = Matrix::Identity(n, n);
    L.triangularView<Eigen::Lower>().solveInPlace(Linv);
    const Matrix LtL = L.transpose() * L;
    for (const int threads : {1, 2, 3}) {
      lmm::set_dense_threads(threads);
      const std::string at = " (n " + std::to_string(n) + ", threads " + std::to_string(threads) + ")";
      Matrix A = S;
      A.triangularView<Eigen::StrictlyUpper>().setConstant(-7.0);  // never read
      check("cholesky succeeds" + at, lmm::cholesky_lower(A));
      check("cholesky equals Eigen's" + at, lower_diff(A, L) < 1e-13);
      Matrix I = L;
      lmm::invert_lower(I);
      check("inverse equals Eigen's" + at, lower_diff(I, Linv) < 1e-12);
      Matrix P = L;
      lmm::lauum_lower(P);
      check("L'L equals Eigen's" + at, lower_diff(P, LtL) < 1e-13);
      // A negative pivot in the first panel, in one factored ahead, in the last.
      for (const Index bad : {Index{5}, n / 3, n - 3}) {
        Matrix N = S;
        N(bad, bad) = -1.0;
        check("not positive definite is reported" + at + " at " + std::to_string(bad), !lmm::cholesky_lower(N));
      }
    }
  }
  lmm::set_dense_threads(1);
  lmm::set_lapack({});

  // Every chunk once, for any number of threads, and from loops started by
  // four threads at once (all but one then run on their own thread).
  for (const int threads : {1, 2, 3, 8}) {
    std::vector<std::atomic<int>> hits(1000);
    lmm::parallel_for(1000, threads, [&](long c) { hits[static_cast<std::size_t>(c)]++; });
    bool once = true;
    for (auto& h : hits) once = once && h.load() == 1;
    check("parallel_for runs every chunk once (threads " + std::to_string(threads) + ")", once);
  }
  // parallel_for_rethrow: every chunk runs, the first chunk's exception in
  // chunk order surfaces after them.
  for (const int threads : {1, 2}) {
    std::vector<std::atomic<int>> hits(100);
    std::string message;
    try {
      lmm::parallel_for_rethrow(100, threads, [&](long c) {
        hits[static_cast<std::size_t>(c)]++;
        if (c == 70 || c == 30) throw std::runtime_error("chunk " + std::to_string(c));
      });
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    bool once = true;
    for (auto& h : hits) once = once && h.load() == 1;
    const std::string at = " (threads " + std::to_string(threads) + ")";
    check("parallel_for_rethrow runs every chunk once" + at, once);
    check("parallel_for_rethrow rethrows the first chunk's exception" + at, message == "chunk 30");
  }
  std::vector<long> sums(4, 0);
  std::vector<std::thread> callers;
  for (std::size_t i = 0; i < 4; ++i)
    callers.emplace_back([&sums, i] {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<long>> part(64);
        lmm::parallel_for(64, 2, [&](long c) { part[static_cast<std::size_t>(c)] += c; });
        for (auto& v : part) sums[i] += v.load();
      }
    });
  for (auto& t : callers) t.join();
  for (std::size_t i = 0; i < 4; ++i)
    check("concurrent parallel_for loops each run all their chunks", sums[i] == 50L * (63L * 64L / 2));

  // A worker that holds its chunk without running, far longer than the
  // caller's run of all chunks (as a worker descheduled by another process
  // does), makes the pool run the next loops on the calling thread, every
  // chunk still once, for a while.
  // (Loops above may have left the pool backed off, on a loaded machine: each
  // attempt starts after the back-off, at most a second, has ended.)
  const std::thread::id caller = std::this_thread::get_id();
  auto wait_unpaused = [] {
    for (int ms = 0; ms < 2000 && lmm::parallel_paused(); ++ms) spin(1e-3);
  };
  bool worker_came = false;
  for (int attempt = 0; attempt < 20 && !worker_came; ++attempt) {
    wait_unpaused();
    std::atomic<bool> came{false};
    lmm::parallel_for(8, 2, [&](long) {
      if (std::this_thread::get_id() == caller) {
        spin(5e-3);
      } else {
        came = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    worker_came = came.load();
  }
  check("a worker took a chunk of the slow loop", worker_came);
  const bool paused = lmm::parallel_paused();
  std::vector<std::atomic<int>> hits(64);
  std::atomic<bool> elsewhere{false};
  lmm::parallel_for(64, 2, [&](long c) {
    hits[static_cast<std::size_t>(c)]++;
    if (std::this_thread::get_id() != caller) elsewhere = true;
  });
  check("after it the pool runs loops on the calling thread", paused);
  bool once = true;
  for (auto& h : hits) once = once && h.load() == 1;
  check("backed off, every chunk runs once on the calling thread", once && !elsewhere.load());
  // The back-off is at most a second (twice that covers a scheduler's delays).
  wait_unpaused();
  check("the back-off ends", !lmm::parallel_paused());
  lmm_test::check_throws<std::invalid_argument>("threads below 1", [] { lmm::set_dense_threads(0); }, "at least 1");
  return lmm_test::failures == 0 ? 0 : 1;
}
