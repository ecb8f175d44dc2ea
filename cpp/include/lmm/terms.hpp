// Random-effects terms: level codes, the columns z of the term's model matrix,
// and each term's covariance structure (its θ → λ map is in parameterization.hpp).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "parameterization.hpp"
#include "types.hpp"

namespace lmm {

/// Shape of one term: number of levels ℓ, number of columns p, structure.
struct TermShape {
  Index nlevels = 0;
  Index p = 0;
  Covariance covariance = Covariance::Unstructured;

  /// The structure's parameterization (θ count, bounds, start, θ → λ, chain rule).
  const Parameterization& parameterization() const { return lmm::parameterization(covariance); }
  /// Number of θ entries of this term.
  Index ntheta() const { return parameterization().ntheta(p); }
  /// Number of random effects of this term, ℓ·p.
  Index q() const { return nlevels * p; }
};

/// Non-owning view of one term's per-row data, valid during model construction.
///   codes: n level codes in [0, nlevels)
///   z:     n × p columns of the term's model matrix (column-major)
struct TermData {
  Eigen::Map<const IntVector> codes;
  Eigen::Map<const Matrix> z;
  Index nlevels;
  Covariance covariance;

  TermShape shape() const { return {nlevels, z.cols(), covariance}; }
};

/// λ (p × p lower triangular) of a term from its θ segment.
void theta_to_lambda(const TermShape& shape, const double* theta, Matrix& lambda);

/// Lower bounds of a term's θ (0 for diagonal entries of λ, -inf for free entries).
Vector theta_lower(const TermShape& shape);

/// Upper bounds of a term's θ (+inf where unbounded).
Vector theta_upper(const TermShape& shape);

/// Starting θ of a term (lme4's: λ = I).
Vector theta_start(const TermShape& shape);

/// (row, col) of λ for each θ entry of the term, in θ order; empty for
/// structures whose θ entries are not entries of λ.
std::vector<std::pair<Index, Index>> theta_positions(const TermShape& shape);

/// Level codes of strings in order of first appearance, by a hash table over
/// their bytes, fed chunk by chunk in Arrow's layout (string i of a chunk is
/// data[offsets[i], offsets[i + 1])). A grouping column of string ids is
/// coded once, with no string object per row.
class StringCoder {
 public:
  /// Codes the n strings of a chunk into codes (n entries): each distinct
  /// string's rank of first appearance over all chunks so far, or −1 where
  /// the validity bitmap valid (bit bit_offset + i for string i, least
  /// significant first; null: all valid) marks it missing. The chunk's bytes
  /// must stay valid while the coder is used. Throws std::length_error past
  /// 2³¹ − 1 distinct strings.
  template <typename Offset>
  void add(const Offset* offsets, const std::uint8_t* data, const std::uint8_t* valid, Index bit_offset, Index n,
           std::int32_t* codes);
  /// The number of distinct strings seen.
  Index size() const { return static_cast<Index>(first_.size()); }
  /// Row of each distinct string's first appearance, counted over all chunks in order.
  const std::vector<std::int64_t>& first_rows() const { return first_; }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::int32_t code = -1;  // −1: empty
  };
  std::int32_t insert(std::string_view s, std::int64_t row);
  void grow();

  std::vector<Slot> table_ = std::vector<Slot>(1024);
  std::vector<std::string_view> strings_;
  std::vector<std::int64_t> first_;
  std::int64_t rows_ = 0;
};

}  // namespace lmm
