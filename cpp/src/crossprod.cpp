#include "lmm/crossprod.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

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
SparseBlocks cross_block(const TermData& ti, const TermData& tj) {
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
  std::vector<std::vector<Index>> rows_by_col(static_cast<std::size_t>(lj));
  std::vector<Index> seen(static_cast<std::size_t>(li), -1);
  for (Index c = 0; c < lj; ++c) {
    auto& rows = rows_by_col[c];
    for (Index k = start[c]; k < start[c + 1]; ++k) {
      const Index level = ti.codes[rows_sorted[k]];
      if (seen[level] != c) {
        seen[level] = c;
        rows.push_back(level);
      }
    }
    std::sort(rows.begin(), rows.end());
  }
  SparseBlocks A;
  A.set_pattern(li, pi, pj, rows_by_col);
  std::vector<Index> slot(static_cast<std::size_t>(li), 0);
  for (Index c = 0; c < lj; ++c) {
    for (Index k = A.colptr[c]; k < A.colptr[c + 1]; ++k) slot[A.rowidx[k]] = k;
    for (Index k = start[c]; k < start[c + 1]; ++k) {
      const Index r = rows_sorted[k];
      auto blk = A.block(slot[ti.codes[r]]);
      if (pi == 1 && pj == 1) {
        blk(0, 0) += ti.z(r, 0) * tj.z(r, 0);
      } else {
        blk.noalias() += ti.z.row(r).transpose() * tj.z.row(r);
      }
    }
  }
  return A;
}

}  // namespace

Crossprod form_crossprod(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                         Eigen::Ref<const Vector> y) {
  const Index n = y.size();
  if (X.rows() != n)
    throw std::invalid_argument("X has " + std::to_string(X.rows()) + " rows but y has " + std::to_string(n));
  if (terms.empty()) throw std::invalid_argument("at least one random-effects term is required");
  if (!X.allFinite()) throw std::invalid_argument("X has non-finite values");
  if (!y.allFinite()) throw std::invalid_argument("y has non-finite values");
  const Index K = static_cast<Index>(terms.size());
  for (Index k = 0; k < K; ++k) check_term(terms[k], k, n);

  Crossprod A;
  A.n = n;
  A.p = X.cols();
  const Index p = A.p;
  for (const auto& t : terms) A.shapes.push_back(t.shape());

  for (const auto& t : terms) {
    const Index pk = t.z.cols();
    BlockDiag D(t.nlevels, pk);
    if (pk == 1) {
      for (Index r = 0; r < n; ++r) D.data(0, t.codes[r]) += t.z(r, 0) * t.z(r, 0);
    } else {
      for (Index r = 0; r < n; ++r) D.block(t.codes[r]).noalias() += t.z.row(r).transpose() * t.z.row(r);
    }
    A.ZZ.push_back(std::move(D));

    Matrix XyZ = Matrix::Zero(p + 1, t.nlevels * pk);
    for (Index a = 0; a <= p; ++a) {
      const double* w = a < p ? X.col(a).data() : y.data();
      for (Index b = 0; b < pk; ++b) {
        const double* zb = t.z.col(b).data();
        for (Index r = 0; r < n; ++r) XyZ(a, t.codes[r] * pk + b) += w[r] * zb[r];
      }
    }
    A.XyZ.push_back(std::move(XyZ));
  }

  A.ZZ_off.resize(static_cast<std::size_t>(K));
  for (Index i = 1; i < K; ++i)
    for (Index j = 0; j < i; ++j) A.ZZ_off[i].push_back(cross_block(terms[i], terms[j]));

  A.XyXy.resize(p + 1, p + 1);
  A.XyXy.topLeftCorner(p, p).noalias() = X.transpose() * X;
  A.XyXy.bottomLeftCorner(1, p).noalias() = y.transpose() * X;
  A.XyXy.topRightCorner(p, 1) = A.XyXy.bottomLeftCorner(1, p).transpose();
  A.XyXy(p, p) = y.squaredNorm();
  return A;
}

void update_response(Crossprod& A, const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                     Eigen::Ref<const Vector> y) {
  const Index n = A.n, p = A.p;
  if (y.size() != n || X.rows() != n || X.cols() != p || terms.size() != A.shapes.size())
    throw std::invalid_argument("update_response: the data do not match the model's dimensions");
  if (!y.allFinite()) throw std::invalid_argument("y has non-finite values");
  for (std::size_t k = 0; k < terms.size(); ++k) {
    const TermData& t = terms[k];
    check_term(t, static_cast<Index>(k), n);
    const Index pk = t.z.cols();
    if (pk != A.shapes[k].p || t.nlevels != A.shapes[k].nlevels)
      throw std::invalid_argument("update_response: term " + std::to_string(k) + " does not match the model");
    auto row = A.XyZ[k].row(p);
    row.setZero();
    for (Index b = 0; b < pk; ++b) {
      const double* zb = t.z.col(b).data();
      for (Index r = 0; r < n; ++r) row[t.codes[r] * pk + b] += y[r] * zb[r];
    }
  }
  A.XyXy.bottomLeftCorner(1, p).noalias() = y.transpose() * X;
  A.XyXy.topRightCorner(p, 1) = A.XyXy.bottomLeftCorner(1, p).transpose();
  A.XyXy(p, p) = y.squaredNorm();
}

}  // namespace lmm
