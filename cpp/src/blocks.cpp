#include "lmm/blocks.hpp"

#include <algorithm>

namespace lmm {

Index SparseBlocks::find(Index row, Index col) const {
  const auto first = rowidx.begin() + colptr[col];
  const auto last = rowidx.begin() + colptr[col + 1];
  const auto it = std::lower_bound(first, last, static_cast<std::int32_t>(row));
  return (it != last && *it == row) ? static_cast<Index>(it - rowidx.begin()) : -1;
}

void SparseBlocks::set_pattern(Index nrows_, Index pr_, Index pc_,
                               const std::vector<std::vector<Index>>& rows_by_col) {
  std::vector<Index> cp(rows_by_col.size() + 1, 0);
  std::vector<std::int32_t> rows;
  std::size_t total = 0;
  for (const auto& col : rows_by_col) total += col.size();
  rows.reserve(total);
  for (std::size_t c = 0; c < rows_by_col.size(); ++c) {
    for (const Index r : rows_by_col[c]) rows.push_back(static_cast<std::int32_t>(r));
    cp[c + 1] = static_cast<Index>(rows.size());
  }
  set_pattern(nrows_, pr_, pc_, std::move(cp), std::move(rows));
}

void SparseBlocks::set_pattern(Index nrows_, Index pr_, Index pc_, std::vector<Index> colptr_,
                               std::vector<std::int32_t> rows) {
  nrows = nrows_;
  ncols = static_cast<Index>(colptr_.size()) - 1;
  pr = pr_;
  pc = pc_;
  colptr = std::move(colptr_);
  rowidx.assign(std::move(rows));
  data.setZero(pr, nnz() * pc);
}

}  // namespace lmm
