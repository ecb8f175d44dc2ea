#include "lmm/dense.hpp"

#include "lmm/parallel.hpp"

#include <Eigen/Cholesky>
#include <functional>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <limits>
#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define LMM_HAVE_MMAP 1
#endif
#ifdef __GLIBC__
#include <malloc.h>
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
std::atomic<LapackKernels::Gemm> g_gemm{nullptr};
std::atomic<LapackKernels::Syrk> g_syrk{nullptr};
std::atomic<LapackKernels::Trsm> g_trsm{nullptr};
std::atomic<LapackKernels::Trmm> g_trmm{nullptr};
std::atomic<int> g_threads{1};

// Dense blocks of these sizes are mapped in huge pages (DenseBlock::resize):
// smaller ones hold none, larger ones would double their memory.
constexpr std::size_t kHugePageMinBytes = std::size_t{2} << 20;
constexpr std::size_t kHugePageBytes = std::size_t{16} << 20;

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

// Threaded kernels: the inverse and lauum by recursive 2 × 2 splits of the
// block down to leaves of kInverseLeafOrder and kLeafOrder (LAPACK's
// recursions), the Cholesky
// factor by panels with a look-ahead; each step's BLAS-3 product divided into
// kChunksPerThread × threads independent parts of equal flops, which the
// threads take as they come free (parallel_for; the BLAS itself on one thread).
constexpr Index kLeafOrder = 256;
// LAPACK's trtri runs at 2-7 GF/s on orders 32-143 (trmm at 15-38): small
// leaves leave it less of the inverse (1,145 columns, the gradient on two
// threads 21.45 -> 21.2 ms and 35.4 -> 35.1 on one with leaves of 64 and 32).
constexpr Index kInverseLeafOrder = 64;
constexpr int kChunksPerThread = 3;
// Columns of a panel of the threaded Cholesky.
constexpr Index kPanelWidth = 128;
// Leaves of the one-thread recursive inverse (invert_lower).
constexpr Index kSerialLeafOrder = 32;

// A column-major block: element (i, j) at a[i + j·ld].
struct Block {
  double* a;
  int ld;
  double* at(Index i, Index j) const { return a + i + j * static_cast<Index>(ld); }
};

struct Threaded {
  LapackKernels k;
  int threads;

  int chunks() const { return threads > 1 ? kChunksPerThread * threads : 1; }
  void parts(const std::function<void(long)>& f) const { parallel_for(chunks(), threads, f); }
  // Column c_j = m (1 − √(1 − j/chunks)) of a lower triangle of order m
  // leaves j/chunks of its area before it.
  Index area_edge(Index m, long j) const {
    const long n = chunks();
    const double rest = std::sqrt(1.0 - static_cast<double>(j) / static_cast<double>(n));
    return j >= n ? m : static_cast<Index>(static_cast<double>(m) * (1.0 - rest));
  }

  // C (m × m, lower) += alpha · P Pᵀ (trans 'N', P m × kk) or alpha · PᵀP
  // (trans 'T', P kk × m): column blocks of C with equal areas of its lower
  // triangle, each a syrk on its diagonal block and a gemm below it.
  void syrk(char trans, Index m, Index kk, double alpha, Block P, Block C) const {
    parts([&](long i) { syrk_columns(trans, m, kk, alpha, P, C, area_edge(m, i), area_edge(m, i + 1)); });
  }
  // The same on columns [c0, c1) of C alone, on this thread.
  void syrk_columns(char trans, Index m, Index kk, double alpha, Block P, Block C, Index c0, Index c1) const {
    if (c1 <= c0) return;
    char lo = 'L', nt = 'N', tr = 'T';
    int w = static_cast<int>(c1 - c0), below = static_cast<int>(m - c1), kd = static_cast<int>(kk);
    double one = 1.0;
    if (trans == 'N') {
      k.syrk(&lo, &nt, &w, &kd, &alpha, P.at(c0, 0), &P.ld, &one, C.at(c0, c0), &C.ld);
      if (below > 0)
        k.gemm(&nt, &tr, &below, &w, &kd, &alpha, P.at(c1, 0), &P.ld, P.at(c0, 0), &P.ld, &one, C.at(c1, c0), &C.ld);
    } else {
      k.syrk(&lo, &tr, &w, &kd, &alpha, P.at(0, c0), &P.ld, &one, C.at(c0, c0), &C.ld);
      if (below > 0)
        k.gemm(&tr, &nt, &below, &w, &kd, &alpha, P.at(0, c1), &P.ld, P.at(0, c0), &P.ld, &one, C.at(c1, c0), &C.ld);
    }
  }
  // B (m × nb) ← alpha · op(L)⁻¹ B (side 'L') or alpha · B op(L)⁻¹ (side 'R'),
  // L lower triangular; the columns (side 'L') or rows (side 'R') of B split.
  void trsm(char side, char trans, Index m, Index nb, double alpha, Block L, Block B) const {
    product(k.trsm, side, trans, m, nb, alpha, L, B);
  }
  // The same with op(L) B or B op(L) (trmm).
  void trmm(char side, char trans, Index m, Index nb, double alpha, Block L, Block B) const {
    product(k.trmm, side, trans, m, nb, alpha, L, B);
  }
  // Rows (side 'R') are divided once per thread: a trmm of 95 rows by 572
  // columns runs at 41 GF/s against 49 for 286 rows (InstEval's gradient
  // 25.3 -> 24.3 ms with 2 parts instead of 6, sim_crossed's 661 -> 641 ms).
  void product(LapackKernels::Trsm f, char side, char trans, Index m, Index nb, double alpha, Block L, Block B) const {
    const long n = side == 'L' ? chunks() : threads;
    parallel_for(n, threads, [&](long i) {
      char s = side, lo = 'L', t = trans, nd = 'N';
      double a = alpha;
      const Index len = side == 'L' ? nb : m, e0 = len * i / n, e1 = len * (i + 1) / n;
      if (side == 'L') {
        int rows = static_cast<int>(m), cols = static_cast<int>(e1 - e0);
        if (cols > 0) f(&s, &lo, &t, &nd, &rows, &cols, &a, L.a, &L.ld, B.at(0, e0), &B.ld);
      } else {
        int rows = static_cast<int>(e1 - e0), cols = static_cast<int>(nb);
        if (rows > 0) f(&s, &lo, &t, &nd, &rows, &cols, &a, L.a, &L.ld, B.at(e0, 0), &B.ld);
      }
    });
  }

  // Right-looking by panels of kPanelWidth columns with a look-ahead of one:
  // while panel k's update of the columns after panel k + 1 is divided among
  // the threads, the first chunk updates panel k + 1 alone and factors it
  // (potrf of its diagonal block, trsm of the rows below), so the panels'
  // serial work overlaps the updates instead of waiting for them (the
  // recursive split ran the leaves' potrf and each step's trsm between joins:
  // 1,145 columns on two threads 8.9 → 7.4 ms, against 12.6 on one; 3,708
  // columns 275 → 255 ms with the rest of an evaluation). The first panel's
  // trsm, which nothing overlaps, is divided among the threads (0.8 of
  // InstEval's 7.5 ms on one thread); the later ones run inside the loop's
  // first chunk, on its thread. Dividing every panel's trsm and its update
  // among the loop's chunks as well was no faster: the smaller products ran slower.
  bool cholesky(Block A, Index n) const {
    auto factor_panel = [&](Index c0, Index c1) {
      char lo = 'L';
      int w = static_cast<int>(c1 - c0), info = 0;
      k.potrf(&lo, &w, A.at(c0, c0), &A.ld, &info);
      if (info != 0) return false;
      if (c1 < n) trsm('R', 'T', n - c1, w, 1.0, {A.at(c0, c0), A.ld}, {A.at(c1, c0), A.ld});
      return true;
    };
    // Columns [c0, c1) (rows c0 on) less the products of panel [p0, p1)'s rows.
    auto update = [&](Index p0, Index p1, Index c0, Index c1) {
      syrk_columns('N', n, p1 - p0, -1.0, {A.at(0, p0), A.ld}, A, c0, c1);
    };
    if (!factor_panel(0, std::min(kPanelWidth, n))) return false;
    std::atomic<bool> ok{true};
    for (Index p0 = 0; p0 + kPanelWidth < n; p0 += kPanelWidth) {
      const Index p1 = p0 + kPanelWidth, p2 = std::min(p1 + kPanelWidth, n), m = n - p2;
      const long rest = m > 0 ? chunks() : 0;
      parallel_for(1 + rest, threads, [&](long i) {
        if (i == 0) {
          update(p0, p1, p1, p2);
          if (!factor_panel(p1, p2)) ok = false;
          return;
        }
        const Index c0 = p2 + area_edge(m, i - 1), c1 = p2 + area_edge(m, i);
        if (c1 > c0) update(p0, p1, c0, c1);
      });
      if (!ok) return false;
    }
    return true;
  }
  void invert(Block L, Index n, Index leaf = kInverseLeafOrder) const {
    if (n <= leaf) {
      char lo = 'L', nd = 'N';
      int nn = static_cast<int>(n), info = 0;
      k.trtri(&lo, &nd, &nn, L.a, &L.ld, &info);
      if (info != 0) throw std::runtime_error("triangular inverse failed (a zero pivot)");
      return;
    }
    // (L⁻¹)21 = −L22⁻¹ L21 L11⁻¹, by triangular products once the diagonal
    // blocks are inverted: trmm runs at gemm's rate, trsm (and LAPACK's own
    // trtri, which mixes both with level-2 leaves) well below it (1,145
    // columns on one thread: 12.7 ms against trtri's 17.2 and 20 by solves).
    // The two diagonal blocks are independent: one per thread (their own
    // products then run on that thread), so the small leaves' level-2 LAPACK
    // work overlaps too.
    const Index h = n / 2, r = n - h;
    const Block L21{L.at(h, 0), L.ld}, L22{L.at(h, h), L.ld};
    parallel_for(2, std::min(threads, 2), [&](long i) { i == 0 ? invert(L, h, leaf) : invert(L22, r, leaf); });
    trmm('L', 'N', r, h, 1.0, L22, L21);
    trmm('R', 'N', r, h, -1.0, L, L21);
  }
  void lauum(Block L, Index n) const {
    if (n <= kLeafOrder) {
      char lo = 'L';
      int nn = static_cast<int>(n), info = 0;
      k.lauum(&lo, &nn, L.a, &L.ld, &info);
      if (info != 0) throw std::runtime_error("LAPACK lauum failed");
      return;
    }
    // L'L = [[L11'L11 + L21'L21, ·], [L22'L21, L22'L22]].
    const Index h = n / 2, r = n - h;
    const Block L21{L.at(h, 0), L.ld}, L22{L.at(h, h), L.ld};
    lauum(L, h);
    syrk('T', h, r, 1.0, L21, L);
    trmm('L', 'T', r, h, 1.0, L22, L21);
    lauum(L22, r);
  }
};

// The threaded kernels for a block of order n, when they apply.
bool threaded_kernels(Index n, Threaded& t) {
  t.threads = g_threads.load();
  if (t.threads < 2 || n < kThreadedOrder || parallel_paused()) return false;
  t.k = {g_potrf.load(), g_trtri.load(), g_lauum.load(), g_gemm.load(), g_syrk.load(), g_trsm.load(), g_trmm.load()};
  return t.k.potrf && t.k.trtri && t.k.lauum && t.k.gemm && t.k.syrk && t.k.trsm && t.k.trmm;
}

}  // namespace

#ifdef LMM_HAVE_MMAP
namespace {

// Physical memory not in use now (free pages; 0 when unknown).
std::size_t available_memory_bytes() {
  const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(size) : 0;
}

// Fault in the lower triangle of an n × n column-major block (madvise's
// MADV_POPULATE_WRITE: an error instead of a signal when memory runs out).
bool populate_lower(double* a, Index n) {
#ifdef MADV_POPULATE_WRITE
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  for (Index j = 0; j < n; ++j) {
    const auto begin = reinterpret_cast<std::uintptr_t>(a + j * n + j) & ~(page - 1);
    const auto end = reinterpret_cast<std::uintptr_t>(a + (j + 1) * n);
    if (madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE) != 0) return false;
  }
  return true;
#else
  (void)a;
  (void)n;
  return false;  // no way to learn of a failure but a signal: refuse the block
#endif
}

}  // namespace
#endif

void release_pages(const void* begin, std::size_t bytes) {
#if defined(LMM_HAVE_MMAP) && (defined(MADV_DONTNEED) || defined(MADV_FREE))
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<std::uintptr_t>(begin);
  const std::uintptr_t first = (start / page + 1) * page, last = ((start + bytes) / page - 1) * page;
  if (first >= last) return;
#ifdef MADV_DONTNEED
  madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
#else
  madvise(reinterpret_cast<void*>(first), last - first, MADV_FREE);
#endif
#else
  (void)begin;
  (void)bytes;
#endif
}

void trim_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

void DenseBlock::resize(Index n) {
  if (n == n_) return;
  release();
  if (n == 0) return;
  const std::size_t bytes = block_bytes(n);
#ifdef LMM_HAVE_MMAP
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  // Only the lower triangle is ever touched: a block the kernel's overcommit
  // heuristic refuses (more than RAM + swap) is mapped without reserving it
  // when its lower half fits in the memory available now, and that half is
  // faulted in at once (a failure is then bad_alloc here, not SIGSEGV later).
  if (p == MAP_FAILED && bytes / 2 < available_memory_bytes()) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED && !populate_lower(static_cast<double*>(p), n)) {
      munmap(p, bytes);
      p = MAP_FAILED;
    }
  }
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  // In huge pages where the system gives them on request: a 4 KiB page
  // faulted in at a time cost InstEval's 1,145 columns 4 ms in their first
  // factorization and its translations 2-5 % of every evaluation on two
  // threads. A huge page also maps the upper triangle beside the lower one,
  // so only blocks of kHugePageBytes at most (then it costs a few MiB).
  if (bytes >= kHugePageMinBytes && bytes <= kHugePageBytes) madvise(p, bytes, MADV_HUGEPAGE);
#endif
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
  g_gemm.store(kernels.gemm);
  g_syrk.store(kernels.syrk);
  g_trsm.store(kernels.trsm);
  g_trmm.store(kernels.trmm);
}

void set_dense_threads(int threads) {
  if (threads < 1) throw std::invalid_argument("dense threads must be at least 1, got " + std::to_string(threads));
  g_threads.store(threads);
}

int dense_threads() { return g_threads.load(); }

bool using_lapack() { return g_potrf.load() != nullptr; }

bool cholesky_lower(Eigen::Ref<Matrix> A) {
  const auto potrf = g_potrf.load();
  Threaded t;
  if (threaded_kernels(A.rows(), t)) return t.cholesky({A.data(), LapackSizes(A).lda}, A.rows());
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
  Threaded t;
  if (threaded_kernels(L.rows(), t)) return t.invert({L.data(), LapackSizes(L).lda}, L.rows());
  // On one thread the same recursion by products beats LAPACK's trtri from a few leaves on.
  const auto trmm = g_trmm.load();
  if (trtri && trmm && L.rows() > kLeafOrder) {
    t.threads = 1;
    t.k.trtri = trtri;
    t.k.trmm = trmm;
    return t.invert({L.data(), LapackSizes(L).lda}, L.rows(), kSerialLeafOrder);
  }
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
  Threaded t;
  if (threaded_kernels(L.rows(), t)) return t.lauum({L.data(), LapackSizes(L).lda}, L.rows());
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

void rank_update_lower(Eigen::Ref<Matrix> C, Eigen::Ref<Matrix> P, double alpha) {
  const Index m = C.rows(), k = P.cols();
  if (m == 0 || k == 0) return;
  Threaded t;
  if (threaded_kernels(m, t))
    return t.syrk('N', m, k, alpha, {P.data(), LapackSizes(P).lda}, {C.data(), LapackSizes(C).lda});
  const auto syrk = g_syrk.load();
  if (syrk && m > kSmallOrder) {
    char lo = 'L', nt = 'N';
    int n = static_cast<int>(m), kk = static_cast<int>(k), ldp = LapackSizes(P).lda, ldc = LapackSizes(C).lda;
    double one = 1.0;
    syrk(&lo, &nt, &n, &kk, &alpha, P.data(), &ldp, &one, C.data(), &ldc);
    return;
  }
  C.selfadjointView<Eigen::Lower>().rankUpdate(P, alpha);
}

void lower_times(Eigen::Ref<Matrix> L, Eigen::Ref<Matrix> B) {
  const Index m = B.rows(), k = B.cols();
  if (m == 0 || k == 0) return;
  Threaded t;
  if (threaded_kernels(m, t))
    return t.trmm('L', 'N', m, k, 1.0, {L.data(), LapackSizes(L).lda}, {B.data(), LapackSizes(B).lda});
  const auto trmm = g_trmm.load();
  if (trmm && m > kSmallOrder) {
    char side = 'L', lo = 'L', nt = 'N', nd = 'N';
    int mm = static_cast<int>(m), kk = static_cast<int>(k), ldl = LapackSizes(L).lda, ldb = LapackSizes(B).lda;
    double one = 1.0;
    trmm(&side, &lo, &nt, &nd, &mm, &kk, &one, L.data(), &ldl, B.data(), &ldb);
    return;
  }
  B = L.triangularView<Eigen::Lower>() * B;
}

}  // namespace lmm
