#include "lmm/terms.hpp"

#include <functional>
#include <limits>
#include <stdexcept>

namespace lmm {

std::vector<std::pair<Index, Index>> theta_positions(const TermShape& shape) {
  return shape.parameterization().positions(shape.p);
}

void theta_to_lambda(const TermShape& shape, const double* theta, Matrix& lambda) {
  shape.parameterization().lambda(shape.p, theta, lambda);
}

Vector theta_lower(const TermShape& shape) {
  Vector lower(shape.ntheta()), upper(shape.ntheta());
  shape.parameterization().bounds(shape.p, lower.data(), upper.data());
  return lower;
}

Vector theta_upper(const TermShape& shape) {
  Vector lower(shape.ntheta()), upper(shape.ntheta());
  shape.parameterization().bounds(shape.p, lower.data(), upper.data());
  return upper;
}

Vector theta_start(const TermShape& shape) {
  Vector start(shape.ntheta());
  shape.parameterization().start(shape.p, start.data());
  return start;
}

std::int32_t StringCoder::insert(std::string_view s, std::int64_t row) {
  const std::uint64_t h = std::hash<std::string_view>{}(s);
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& slot = table_[i];
    if (slot.code < 0) {
      if (strings_.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw std::length_error("more than 2^31 - 1 distinct strings in a grouping column");
      slot = {h, static_cast<std::int32_t>(strings_.size())};
      strings_.push_back(s);
      first_.push_back(row);
      const std::int32_t code = slot.code;
      if (2 * strings_.size() > table_.size()) grow();  // load at most 1/2: short probes
      return code;
    }
    if (slot.hash == h && strings_[static_cast<std::size_t>(slot.code)] == s) return slot.code;
  }
}

void StringCoder::grow() {
  std::vector<Slot> old(table_.size() * 2);
  old.swap(table_);
  const std::size_t mask = table_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.code < 0) continue;
    std::size_t i = slot.hash & mask;
    while (table_[i].code >= 0) i = (i + 1) & mask;
    table_[i] = slot;
  }
}

template <typename Offset>
void StringCoder::add(const Offset* offsets, const std::uint8_t* data, const std::uint8_t* valid, Index bit_offset,
                      Index n, std::int32_t* codes) {
  // Rows of one id often come together (long data): such a row is coded as
  // the one before it without hashing.
  std::string_view last;
  std::int32_t last_code = -1;
  for (Index i = 0; i < n; ++i) {
    const Index bit = bit_offset + i;
    if (valid && !((valid[bit >> 3] >> (bit & 7)) & 1)) {
      codes[i] = -1;
      continue;
    }
    const std::string_view s(reinterpret_cast<const char*>(data) + offsets[i],
                             static_cast<std::size_t>(offsets[i + 1] - offsets[i]));
    if (last_code < 0 || s != last) {
      last_code = insert(s, rows_ + i);
      last = s;
    }
    codes[i] = last_code;
  }
  rows_ += n;
}

template void StringCoder::add<std::int32_t>(const std::int32_t*, const std::uint8_t*, const std::uint8_t*, Index,
                                             Index, std::int32_t*);
template void StringCoder::add<std::int64_t>(const std::int64_t*, const std::uint8_t*, const std::uint8_t*, Index,
                                             Index, std::int32_t*);

}  // namespace lmm
