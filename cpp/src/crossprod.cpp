#include "lmm/crossprod.hpp"

#include "lmm/dense.hpp"
#include "lmm/parallel.hpp"
#include "small_blocks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lmm {

namespace {

void check_term(const TermData& term, Index k, Index n) {
  const std::string which = "random-effects term " + std::to_string(k);
  if (term.codes.size() != n)
    throw std::invalid_argument(which + ": " + std::to_string(term.codes.size()) + " level codes for " +
                                std::to_string(n) + " observations");
  if (term.z.rows() != n)
    throw std::invalid_argument(which + ": z has " + std::to_string(term.z.rows()) + " rows for " +
                                std::to_string(n) + " observations");
  if (term.z.cols() < 1) throw std::invalid_argument(which + ": z has no columns");
  if (term.nlevels < 1) throw std::invalid_argument(which + ": the grouping factor has no levels");
  if (!term.z.allFinite()) throw std::invalid_argument(which + ": z has non-finite values");
  for (Index r = 0; r < n; ++r) {
    const auto c = term.codes[r];
    if (c < 0 || c >= term.nlevels)
      throw std::invalid_argument(which + ": level code " + std::to_string(c) + " at row " + std::to_string(r) +
                                  " is outside [0, " + std::to_string(term.nlevels) + ")");
  }
}

// A_ij for j < i: blocks z_i(r,:)' z_j(r,:) summed over rows r with the same
// (level of i, level of j). Rows are bucketed by the level of j (counting
// sort), so the pattern is built column by column without a hash map.
SparseBlocks cross_block(const TermData& ti, const TermData& tj, const Vector& w, const TermTransform* tri,
                         const TermTransform* trj) {
  const Index n = ti.codes.size();
  const Index li = ti.nlevels, lj = tj.nlevels, pi = ti.z.cols(), pj = tj.z.cols();
  std::vector<Index> start(static_cast<std::size_t>(lj) + 1, 0);
  for (Index r = 0; r < n; ++r) ++start[static_cast<std::size_t>(tj.codes[r]) + 1];
  for (Index c = 0; c < lj; ++c) start[c + 1] += start[c];
  std::vector<Index> rows_sorted(static_cast<std::size_t>(n));
  {
    std::vector<Index> next(start.begin(), start.end() - 1);
    for (Index r = 0; r < n; ++r) rows_sorted[next[tj.codes[r]]++] = r;
  }
  // Column c's distinct levels of i, sorted, written over the rows of the
  // columns before it (at most as many as its rows: no list per column).
  std::vector<Index> colptr(static_cast<std::size_t>(lj) + 1, 0);
  std::vector<std::int32_t> pattern(static_cast<std::size_t>(n));
  std::vector<Index> seen(static_cast<std::size_t>(li), -1);
  Index stored = 0;
  for (Index c = 0; c < lj; ++c) {
    for (Index k = start[c]; k < start[c + 1]; ++k) {
      const Index level = ti.codes[rows_sorted[k]];
      if (seen[level] != c) {
        seen[level] = c;
        pattern[static_cast<std::size_t>(stored++)] = static_cast<std::int32_t>(level);
      }
    }
    std::sort(pattern.begin() + colptr[c], pattern.begin() + stored);
    colptr[c + 1] = stored;
  }
  pattern.resize(static_cast<std::size_t>(stored));
  pattern.shrink_to_fit();
  SparseBlocks A;
  A.set_pattern(li, pi, pj, std::move(colptr), std::move(pattern));
  std::vector<Index> slot(static_cast<std::size_t>(li), 0);
  // Crossed intercepts (or one-column terms): an entry per block, set without
  // a block expression (which cost InstEval's largest pair 1.8 -> 0.9 ms).
  const bool scalar = !tri && !trj && pi == 1 && pj == 1;
  Eigen::RowVectorXd zi(pi), zj(pj);  // row r of the terms' columns in A's basis
  for (Index c = 0; c < lj; ++c) {
    for (Index k = A.colptr[c]; k < A.colptr[c + 1]; ++k) slot[A.rowidx[k]] = k;
    for (Index k = start[c]; k < start[c + 1]; ++k) {
      const Index r = rows_sorted[k];
      const double wr = w.size() ? w[r] : 1.0;
      if (scalar) {
        A.data.data()[slot[ti.codes[r]]] += wr * ti.z(r, 0) * tj.z(r, 0);
        continue;
      }
      auto blk = A.block(slot[ti.codes[r]]);
      if (tri) tri->apply_row(ti.z, r, zi.data()); else zi = ti.z.row(r);
      if (trj) trj->apply_row(tj.z, r, zj.data()); else zj = tj.z.row(r);
      blk.noalias() += (wr * zi.transpose()) * zj;
    }
  }
  return A;
}

// Rows are read in chunks of this many: [X_c y_c] of a chunk is formed in a
// small buffer, never for all n rows.
constexpr Index kChunk = 4096;

// Rows [r0, r0 + m) of [X_c y_c] (see Shift) into W, m × (p + 1).
void shifted_rows(const Eigen::Ref<const Matrix>& X, const Eigen::Ref<const Vector>& y, const Shift& shift, Index r0,
                  Index m, Matrix& W) {
  const Index p = X.cols();
  W.resize(m, p + 1);
  W.leftCols(p) = X.middleRows(r0, m);
  if (shift.center.size() > 0) W.leftCols(p).rowwise() -= shift.center.transpose();
  W.col(p) = y.segment(r0, m);
  if (shift.gamma.size() > 0) W.col(p).noalias() -= W.leftCols(p) * shift.gamma;
}

// The rows [r0, r0 + m) of a term's columns in A's basis: z itself (no copy),
// or z̃ = z T formed in buf.
Eigen::Ref<const Matrix> term_rows(const TermData& t, const TermTransform* tr, Index r0, Index m, Matrix& buf) {
  if (!tr) return t.z.middleRows(r0, m);
  tr->apply(t.z.middleRows(r0, m), buf);
  return buf;
}

// Calls f(g, r, e) for each run [r, e) of equal codes g in codes[0, m):
// rows of one level usually come together (long data: a subject's rows),
// and a run's sums are then formed in registers and added to the level's
// block once, instead of a chain of adds through memory, one per row.
template <typename F>
void for_each_run(const std::int32_t* codes, Index m, F&& f) {
  for (Index r = 0; r < m;) {
    const std::int32_t g = codes[r];
    Index e = r + 1;
    while (e < m && codes[e] == g) ++e;
    f(g, r, e);
    r = e;
  }
}

// A_[Xy],k += the rows [r0, r0 + m) of [X_c y_c]' Z_k, for the columns
// [a0, p] of [X_c y_c] (W holds those rows, zc those of Z_k's columns).
void add_xyz(Matrix& XyZ, const Matrix& W, Index a0, const TermData& t, Index r0, const Eigen::Ref<const Matrix>& zc) {
  const Index m = W.rows(), pk = zc.cols(), rows = XyZ.rows(), ldz = zc.outerStride();
  if (pk == 1) {
    // One column: row by row (runs of one row, crossed factors' usual case,
    // cost a loop set-up per column of W: InstEval's 73,421 rows 0.45 -> 0.2 ms per term).
    const std::int32_t* codes = t.codes.data() + r0;
    const double* z = zc.data();
    for (Index i = 0; i < m; ++i) {
      double* blk = XyZ.data() + codes[i] * rows;
      for (Index a = a0; a < W.cols(); ++a) blk[a] += W.data()[a * m + i] * z[i];
    }
    return;
  }
  for_each_run(t.codes.data() + r0, m, [&](std::int32_t g, Index r, Index e) {
    double* blk = XyZ.data() + g * pk * rows;  // the level's block, column b at blk + b·rows
    for (Index b = 0; b < pk; ++b) {
      const double* zb = zc.data() + b * ldz;
      for (Index a = a0; a < W.cols(); ++a) {
        const double* wa = W.data() + a * m;
        double sum = 0.0;
        for (Index i = r; i < e; ++i) sum += wa[i] * zb[i];
        blk[b * rows + a] += sum;
      }
    }
  });
}

// Z_k'Z_k's level blocks += the rows [r0, r0 + m) of w z z' (zc those rows of
// the term's columns; w the chunk's weights, or null).
void add_zz(BlockDiag& D, const std::int32_t* codes, const Eigen::Ref<const Matrix>& zc, const double* w) {
  const Index m = zc.rows(), pk = zc.cols(), ldz = zc.outerStride();
  if (pk == 1) {
    // One column: row by row, as add_xyz (0.5 -> 0.1 ms per crossed term of InstEval's).
    const double* z = zc.data();
    double* d = D.data.data();
    for (Index i = 0; i < m; ++i) d[codes[i]] += (w ? w[i] : 1.0) * z[i] * z[i];
    return;
  }
  for_each_run(codes, m, [&](std::int32_t g, Index r, Index e) {
    double* blk = D.data.data() + g * pk * pk;
    for (Index b = 0; b < pk; ++b) {
      const double* zb = zc.data() + b * ldz;
      for (Index a = b; a < pk; ++a) {
        const double* za = zc.data() + a * ldz;
        double sum = 0.0;
        if (w) {
          for (Index i = r; i < e; ++i) sum += w[i] * za[i] * zb[i];
        } else {
          for (Index i = r; i < e; ++i) sum += za[i] * zb[i];
        }
        blk[b * pk + a] += sum;
        if (a != b) blk[a * pk + b] += sum;
      }
    }
  });
}

// G += W'W on the lower triangle: for the few columns of most [X y], as dot
// products of W's columns (Eigen's rank update pads them to its panel width).
void add_gram_lower(Matrix& G, const Matrix& W) {
  constexpr Index kDotColumns = 8;
  if (W.cols() > kDotColumns) {
    G.selfadjointView<Eigen::Lower>().rankUpdate(W.transpose());
    return;
  }
  const Index m = W.rows();
  for (Index j = 0; j < W.cols(); ++j)
    for (Index i = j; i < W.cols(); ++i) {
      const double *a = W.col(i).data(), *b = W.col(j).data();
      G(i, j) += lane_sum(m, [&](Index r) { return a[r] * b[r]; });
    }
}

// The transform of term k that changes its columns, or null.
const TermTransform* transform_of(const std::vector<TermTransform>& transforms, std::size_t k) {
  return k < transforms.size() && !transforms[k].identity() ? &transforms[k] : nullptr;
}

// The rows of W scaled by w (a chunk of the weights), in place.
void scale_rows(Matrix& W, const Vector& weights, Index r0, bool square_root) {
  if (weights.size() == 0) return;
  for (Index r = 0; r < W.rows(); ++r) W.row(r) *= square_root ? std::sqrt(weights[r0 + r]) : weights[r0 + r];
}

void check_weights(const Vector& w, Index n) {
  if (w.size() == 0) return;
  if (w.size() != n)
    throw std::invalid_argument(std::to_string(w.size()) + " weights for " + std::to_string(n) + " observations");
  for (Index i = 0; i < n; ++i)
    if (!(std::isfinite(w[i]) && w[i] > 0.0))
      throw std::invalid_argument("weight " + std::to_string(w[i]) + " at row " + std::to_string(i) +
                                  " is not positive and finite (drop rows with zero weight)");
}

void check_shift(const Shift& shift, Index p) {
  for (const Vector* v : {&shift.center, &shift.gamma}) {
    if (v->size() != 0 && v->size() != p)
      throw std::invalid_argument("the shift of X has " + std::to_string(v->size()) + " entries for " +
                                  std::to_string(p) + " columns");
    if (!v->allFinite()) throw std::invalid_argument("the shift of X has non-finite values");
  }
}

}  // namespace

Crossprod form_crossprod(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                         Eigen::Ref<const Vector> y, const Shift& shift, const Vector& weights,
                         const std::vector<TermTransform>& transforms) {
  const Index n = y.size();
  if (X.rows() != n)
    throw std::invalid_argument("X has " + std::to_string(X.rows()) + " rows but y has " + std::to_string(n));
  if (terms.empty()) throw std::invalid_argument("at least one random-effects term is required");
  if (!X.allFinite()) throw std::invalid_argument("X has non-finite values");
  if (!y.allFinite()) throw std::invalid_argument("y has non-finite values");
  check_shift(shift, X.cols());
  check_weights(weights, n);
  const Index K = static_cast<Index>(terms.size());
  for (Index k = 0; k < K; ++k) check_term(terms[k], k, n);
  if (!transforms.empty() && static_cast<Index>(transforms.size()) != K)
    throw std::invalid_argument(std::to_string(transforms.size()) + " column transforms for " + std::to_string(K) +
                                " random-effects terms");
  for (Index k = 0; k < static_cast<Index>(transforms.size()); ++k) {
    const TermTransform& t = transforms[k];
    const Index pk = terms[k].z.cols();
    if ((t.centred() && t.center.size() != pk) || (t.scale.size() && t.scale.size() != pk))
      throw std::invalid_argument("the column transform of random-effects term " + std::to_string(k) +
                                  " does not match its " + std::to_string(pk) + " columns");
  }

  Crossprod A;
  A.n = n;
  A.p = X.cols();
  A.shift = shift;
  A.weights = weights;
  A.transforms = transforms;
  A.weighted = weights.size() > 0;
  for (Index i = 0; i < weights.size(); ++i) A.sum_log_weights += std::log(weights[i]);
  const Vector& w = A.weights;
  const Index p = A.p;
  for (const auto& t : terms) A.shapes.push_back(t.shape());

  // The blocks are independent: each task forms one (the [X y] pass, a pair
  // of terms' sparse block, a term's diagonal blocks), the longest first; with
  // threads they take them as they come free.
  A.ZZ.resize(static_cast<std::size_t>(K));
  A.XyZ.resize(static_cast<std::size_t>(K));
  A.ZZ_off.resize(static_cast<std::size_t>(K));
  std::vector<std::pair<Index, Index>> pairs;
  for (Index i = 1; i < K; ++i) {
    A.ZZ_off[i].resize(static_cast<std::size_t>(i));
    for (Index j = 0; j < i; ++j) pairs.emplace_back(i, j);
  }
  auto xy_pass = [&] {
    // With weights: W^{1/2}[X_c y_c] for A_[Xy],[Xy], then W[X_c y_c] for A_[Xy],k.
    A.XyXy.setZero(p + 1, p + 1);
    for (Index k = 0; k < K; ++k) A.XyZ[k].setZero(p + 1, terms[k].nlevels * terms[k].z.cols());
    Matrix W, buf;
    for (Index r0 = 0; r0 < n; r0 += kChunk) {
      shifted_rows(X, y, shift, r0, std::min(kChunk, n - r0), W);
      scale_rows(W, w, r0, true);
      add_gram_lower(A.XyXy, W);
      scale_rows(W, w, r0, true);
      for (Index k = 0; k < K; ++k)
        add_xyz(A.XyZ[k], W, 0, terms[k], r0, term_rows(terms[k], transform_of(transforms, k), r0, W.rows(), buf));
    }
    A.XyXy.triangularView<Eigen::StrictlyUpper>() = A.XyXy.transpose();
  };
  auto diagonal_blocks = [&](Index k) {
    const TermData& t = terms[k];
    const TermTransform* tr = transform_of(transforms, k);
    BlockDiag D(t.nlevels, t.z.cols());
    Matrix buf;
    for (Index r0 = 0; r0 < n; r0 += kChunk) {
      const Index m = std::min(kChunk, n - r0);
      add_zz(D, t.codes.data() + r0, term_rows(t, tr, r0, m, buf), w.size() ? w.data() + r0 : nullptr);
    }
    A.ZZ[k] = std::move(D);
  };
  const long tasks = 1 + static_cast<long>(pairs.size()) + K;
  // Only with crossed or nested terms: one term's two tasks (the [X y] pass and
  // its diagonal) gained nothing on sim_long's 200,000 rows, and with another
  // process busy lost 15 % whenever the worker holding one lost its core.
  const int threads = n >= kThreadedRows && !pairs.empty() ? dense_threads() : 1;
  parallel_for_rethrow(tasks, threads, [&](long task) {
    if (task == 0) return xy_pass();
    if (task <= static_cast<long>(pairs.size())) {
      const auto [i, j] = pairs[static_cast<std::size_t>(task - 1)];
      A.ZZ_off[i][j] = cross_block(terms[i], terms[j], w, transform_of(transforms, i), transform_of(transforms, j));
      return;
    }
    diagonal_blocks(task - 1 - static_cast<long>(pairs.size()));
  });
  return A;
}

namespace {

bool same_transform(const TermTransform& a, const TermTransform& b) {
  return a.center.size() == b.center.size() && a.scale.size() == b.scale.size() && a.center == b.center &&
         a.scale == b.scale;
}

// a + b on the union of their patterns (same shape), a consumed: its pages go
// back to the system as the merge reads past them (a is left empty), so the
// largest sums of a reduction need little more than the result's memory.
SparseBlocks add_sparse(SparseBlocks&& a, const SparseBlocks& b) {
  // The union of the two sorted patterns, merged column by column straight into
  // the result's arrays: a first pass counts, a second fills rows and sums
  // (no per-column lists: the sums of the largest chunks are the memory peak).
  const Index ncols = a.ncols, pc = a.pc;
  SparseBlocks s;
  s.nrows = a.nrows;
  s.ncols = ncols;
  s.pr = a.pr;
  s.pc = pc;
  s.colptr.assign(static_cast<std::size_t>(ncols) + 1, 0);
  auto merge = [&](Index c, auto&& emit) {
    Index i = a.colptr[c], j = b.colptr[c];
    const Index ie = a.colptr[c + 1], je = b.colptr[c + 1];
    while (i < ie || j < je) {
      const Index ra = i < ie ? a.rowidx[i] : a.nrows, rb = j < je ? b.rowidx[j] : b.nrows;
      emit(std::min(ra, rb), ra <= rb ? i : -1, rb <= ra ? j : -1);
      if (ra <= rb) ++i;
      if (rb <= ra) ++j;
    }
  };
  for (Index c = 0; c < ncols; ++c) {
    Index count = 0;
    merge(c, [&](Index, Index, Index) { ++count; });
    s.colptr[c + 1] = s.colptr[c] + count;
  }
  std::vector<std::int32_t> rows(static_cast<std::size_t>(s.colptr[ncols]));
  s.data.resize(a.pr, s.colptr[ncols] * pc);
  // a's rows may be shared (a copy of another sum's): then only its values go.
  const bool own_rows = a.rowidx.unique();
  const auto value_bytes = static_cast<std::size_t>(a.pr * pc) * sizeof(double);
  constexpr Index kReleaseEvery = Index(1) << 18;  // blocks read between releases
  Index released = 0;
  for (Index c = 0; c < ncols; ++c) {
    Index k = s.colptr[c];
    merge(c, [&](Index row, Index ia, Index ib) {
      rows[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(row);
      auto out = s.data.middleCols(k * pc, pc);
      if (ia >= 0 && ib >= 0)
        out = std::as_const(a).block(ia) + b.block(ib);
      else
        out = ia >= 0 ? std::as_const(a).block(ia) : b.block(ib);
      ++k;
    });
    const Index read = a.colptr[c + 1];
    if (read - released >= kReleaseEvery || c + 1 == ncols) {
      release_pages(a.data.data() + released * a.pr * pc, static_cast<std::size_t>(read - released) * value_bytes);
      if (own_rows)
        release_pages(a.rowidx.data() + released, static_cast<std::size_t>(read - released) * sizeof(std::int32_t));
      released = read;
    }
  }
  a = SparseBlocks();
  s.rowidx.assign(std::move(rows));
  return s;
}

}  // namespace

void add(Crossprod& total, const Crossprod& part) {
  if (&total == &part) {  // (the merge below consumes total's blocks as it reads them)
    const Crossprod copy = part;
    add(total, copy);
    return;
  }
  if (total.shapes.empty()) {
    total = part;
    total.weights.resize(0);
    return;
  }
  const std::size_t K = total.shapes.size();
  auto equal = [](const Vector& a, const Vector& b) { return a.size() == b.size() && a == b; };
  bool same = part.shapes.size() == K && part.p == total.p && part.weighted == total.weighted &&
              equal(part.shift.center, total.shift.center) && equal(part.shift.gamma, total.shift.gamma) &&
              part.transforms.size() == total.transforms.size();
  for (std::size_t k = 0; same && k < K; ++k)
    same = part.shapes[k].nlevels == total.shapes[k].nlevels && part.shapes[k].p == total.shapes[k].p &&
           part.shapes[k].covariance == total.shapes[k].covariance;
  for (std::size_t k = 0; same && k < total.transforms.size(); ++k)
    same = same_transform(part.transforms[k], total.transforms[k]);
  if (!same)
    throw std::invalid_argument("add: the crossproducts are not of the same model (terms, their levels, the "
                                "fixed effects, weights, shift and column transforms must be the same)");
  for (std::size_t k = 0; k < K; ++k) {
    total.ZZ[k].data += part.ZZ[k].data;
    total.XyZ[k] += part.XyZ[k];
  }
  total.XyXy += part.XyXy;
  for (std::size_t i = 1; i < K; ++i)
    for (std::size_t j = 0; j < i; ++j)
      total.ZZ_off[i][j] = add_sparse(std::move(total.ZZ_off[i][j]), part.ZZ_off[i][j]);
  total.n += part.n;
  total.sum_log_weights += part.sum_log_weights;
  total.weights.resize(0);
}

void update_response(Crossprod& A, const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                     Eigen::Ref<const Vector> y) {
  const Index n = A.n, p = A.p;
  if (!A.has_rows())
    throw std::invalid_argument("update_response: the crossproducts are a sum over chunks of rows, whose "
                                "weights are not kept; form the chunks' crossproducts again");
  if (y.size() != n || X.rows() != n || X.cols() != p || terms.size() != A.shapes.size())
    throw std::invalid_argument("update_response: the data do not match the model's dimensions");
  if (!y.allFinite()) throw std::invalid_argument("y has non-finite values");
  for (std::size_t k = 0; k < terms.size(); ++k) {
    const TermData& t = terms[k];
    check_term(t, static_cast<Index>(k), n);
    if (t.z.cols() != A.shapes[k].p || t.nlevels != A.shapes[k].nlevels)
      throw std::invalid_argument("update_response: term " + std::to_string(k) + " does not match the model");
    A.XyZ[k].row(p).setZero();
  }
  Vector last = Vector::Zero(p + 1);  // the y row of A_[Xy],[Xy]
  Matrix W, buf;
  for (Index r0 = 0; r0 < n; r0 += kChunk) {
    shifted_rows(X, y, A.shift, r0, std::min(kChunk, n - r0), W);
    scale_rows(W, A.weights, r0, true);
    last.noalias() += W.transpose() * W.col(p);
    scale_rows(W, A.weights, r0, true);
    for (std::size_t k = 0; k < terms.size(); ++k)
      add_xyz(A.XyZ[k], W, p, terms[k], r0, term_rows(terms[k], transform_of(A.transforms, k), r0, W.rows(), buf));
  }
  A.XyXy.row(p) = last.transpose();
  A.XyXy.col(p) = last;
}

namespace {

// Rows [r0, r0 + m) of X_c = X − 1 center' into Xc.
void centred_rows(const Eigen::Ref<const Matrix>& X, const Vector& center, Index r0, Index m, Matrix& Xc) {
  Xc = X.middleRows(r0, m);
  if (center.size() > 0) Xc.rowwise() -= center.transpose();
}

// X_c'(Y − X_c Γ) over all rows (Γ empty: X_c'Y).
Matrix centred_t_residual(const Eigen::Ref<const Matrix>& X, const Vector& center, const Eigen::Ref<const Matrix>& Y,
                          const Matrix& gamma) {
  const Index n = Y.rows();
  Matrix G = Matrix::Zero(X.cols(), Y.cols()), Xc, E;
  for (Index r0 = 0; r0 < n; r0 += kChunk) {
    const Index m = std::min(kChunk, n - r0);
    centred_rows(X, center, r0, m, Xc);
    E = Y.middleRows(r0, m);
    if (gamma.size()) E.noalias() -= Xc * gamma;
    G.noalias() += Xc.transpose() * E;
  }
  return G;
}

}  // namespace

ResponseCrossprods response_crossprods(const Crossprod& A, const std::vector<TermData>& terms,
                                       Eigen::Ref<const Matrix> X, Eigen::Ref<const Matrix> Y,
                                       Eigen::Ref<const Matrix> R) {
  const Index n = A.n, p = A.p, b = Y.cols();
  if (!A.has_rows())
    throw std::invalid_argument("response_crossprods: the crossproducts are a sum over chunks of rows, whose "
                                "weights are not kept");
  if (Y.rows() != n || X.rows() != n || X.cols() != p || terms.size() != A.shapes.size())
    throw std::invalid_argument("response_crossprods: the data do not match the model's dimensions");
  if (R.rows() != p || R.cols() != p)
    throw std::invalid_argument("response_crossprods: R must be " + std::to_string(p) + " x " + std::to_string(p));
  const Vector& center = A.shift.center;
  ResponseCrossprods out;
  out.gamma.setZero(p, b);
  if (p > 0) {
    // γ from R'R γ = X_c'y, refined once with the residual (as the design's shift).
    for (int step = 0; step < 2; ++step) {
      Matrix G = centred_t_residual(X, center, Y, step ? out.gamma : Matrix());
      R.transpose().triangularView<Eigen::Lower>().solveInPlace(G);
      R.triangularView<Eigen::Upper>().solveInPlace(G);
      out.gamma += G;
    }
  }
  const Index K = static_cast<Index>(terms.size());
  out.Zy.resize(static_cast<std::size_t>(K));
  for (Index k = 0; k < K; ++k) out.Zy[k].setZero(b, A.shapes[k].q());
  out.Xy.setZero(p, b);
  out.yy.setZero(b);
  out.norm2.setZero(b);
  out.residual2.setZero(b);
  Matrix Xc, Yc, Ywt, buf;
  for (Index r0 = 0; r0 < n; r0 += kChunk) {
    const Index m = std::min(kChunk, n - r0);
    centred_rows(X, center, r0, m, Xc);
    out.norm2 += Y.middleRows(r0, m).colwise().squaredNorm().transpose();
    Yc = Y.middleRows(r0, m);
    if (p > 0) Yc.noalias() -= Xc * out.gamma;
    out.residual2 += Yc.colwise().squaredNorm().transpose();
    // Ywt: W y_c transposed (b × m), so that a row's b values are contiguous.
    Ywt = Yc.transpose();
    if (A.weights.size())
      for (Index r = 0; r < m; ++r) Ywt.col(r) *= A.weights[r0 + r];
    out.yy.noalias() += (Ywt.transpose().cwiseProduct(Yc)).colwise().sum().transpose();
    out.Xy.noalias() += Xc.transpose() * Ywt.transpose();
    for (Index k = 0; k < K; ++k) {
      const TermData& t = terms[k];
      const auto zc = term_rows(t, transform_of(A.transforms, k), r0, m, buf);
      const Index pk = zc.cols();
      const std::int32_t* codes = t.codes.data() + r0;
      Matrix& Zy = out.Zy[k];
      for (Index r = 0; r < m; ++r)
        for (Index a = 0; a < pk; ++a) Zy.col(codes[r] * pk + a).noalias() += zc(r, a) * Ywt.col(r);
    }
  }
  return out;
}

void set_response(Crossprod& A, const ResponseCrossprods& R, Index j) {
  const Index p = A.p;
  if (j < 0 || j >= R.yy.size()) throw std::out_of_range("set_response: no response " + std::to_string(j));
  for (std::size_t k = 0; k < A.XyZ.size(); ++k) A.XyZ[k].row(p) = R.Zy[k].row(j);
  A.XyXy.row(p).head(p) = R.Xy.col(j).transpose();
  A.XyXy.col(p).head(p) = R.Xy.col(j);
  A.XyXy(p, p) = R.yy[j];
  A.shift.gamma = R.gamma.col(j);
}

}  // namespace lmm
