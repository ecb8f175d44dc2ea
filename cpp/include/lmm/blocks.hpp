// Block storage types of A and L: block-diagonal and sparse-block matrices.
// Dense blocks are plain Eigen matrices.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "types.hpp"

namespace lmm {

/// Block-diagonal matrix of `nblocks` square p × p blocks, stored side by side
/// in a p × (nblocks·p) matrix: block j is data.middleCols(j·p, p).
struct BlockDiag {
  Index nblocks = 0;
  Index p = 0;
  Matrix data;

  BlockDiag() = default;
  BlockDiag(Index nblocks_, Index p_) : nblocks(nblocks_), p(p_), data(Matrix::Zero(p_, nblocks_ * p_)) {}

  ColBlock block(Index j) { return data.middleCols(j * p, p); }
  ConstColBlock block(Index j) const { return data.middleCols(j * p, p); }
};

/// Read-only row indices of a sparse pattern, which matrices of the same
/// pattern share (A's block and L's block where no fill enters).
class PatternRows {
 public:
  std::int32_t operator[](Index e) const { return data_[e]; }
  Index size() const { return size_; }
  const std::int32_t* begin() const { return data_; }
  const std::int32_t* end() const { return data_ + size_; }
  const std::int32_t* data() const { return data_; }
  /// Own these indices.
  void assign(std::vector<std::int32_t> rows) {
    auto owner = std::make_shared<const std::vector<std::int32_t>>(std::move(rows));
    data_ = owner->data();
    size_ = static_cast<Index>(owner->size());
    owner_ = std::move(owner);
  }
  /// Use other's indices (equal to these) instead of a copy.
  void share(const PatternRows& other) { *this = other; }
  /// Whether no other pattern shares these indices.
  bool unique() const { return owner_ && owner_.use_count() == 1; }

 private:
  std::shared_ptr<const std::vector<std::int32_t>> owner_;
  const std::int32_t* data_ = nullptr;
  Index size_ = 0;
};

/// Sparse matrix of blocks, compressed by block column.
/// Rows are the levels of one term (blocks of pr rows), columns the levels of
/// another (blocks of pc columns). Stored blocks of column c are
/// k = colptr[c] .. colptr[c+1]-1, with block row rowidx[k] (sorted ascending;
/// 32-bit, as level codes are) and values data.middleCols(k·pc, pc), a pr × pc matrix.
struct SparseBlocks {
  Index nrows = 0;
  Index ncols = 0;
  Index pr = 0;
  Index pc = 0;
  std::vector<Index> colptr;
  PatternRows rowidx;
  Matrix data;

  Index nnz() const { return rowidx.size(); }
  ColBlock block(Index k) { return data.middleCols(k * pc, pc); }
  ConstColBlock block(Index k) const { return data.middleCols(k * pc, pc); }

  /// Index k of the stored block at (row, col), or -1 when it is not stored.
  Index find(Index row, Index col) const;

  /// Set the pattern from sorted row lists per column and zero the values.
  void set_pattern(Index nrows_, Index pr_, Index pc_, const std::vector<std::vector<Index>>& rows_by_col);
  /// The same from the pattern's arrays: column c's sorted rows are
  /// rows[colptr[c], colptr[c + 1]).
  void set_pattern(Index nrows_, Index pr_, Index pc_, std::vector<Index> colptr_, std::vector<std::int32_t> rows);
};

}  // namespace lmm
