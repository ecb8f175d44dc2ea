// The checks the C++ test programs share: each failed check prints one FAIL
// line and counts in `failures`, which main() turns into the exit status.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>

namespace lmm_test {

inline int failures = 0;

inline void check(const std::string& what, bool ok) {
  if (!ok) {
    std::printf("FAIL %s\n", what.c_str());
    ++failures;
  }
}

/// |got − want| ≤ tol · |want|.
inline void check_close(const std::string& what, double got, double want, double tol) {
  const double err = std::abs(got - want) / std::max(std::abs(want), 1e-300);
  if (!(err <= tol)) {
    std::printf("FAIL %s: got %.15g want %.15g (rel err %.3g)\n", what.c_str(), got, want, err);
    ++failures;
  }
}

/// |got − want| ≤ tol.
inline void check_abs(const std::string& what, double got, double want, double tol) {
  if (!(std::abs(got - want) <= tol)) {
    std::printf("FAIL %s: got %.15g want %.15g (abs err %.3g)\n", what.c_str(), got, want, std::abs(got - want));
    ++failures;
  }
}

/// f throws an E whose message contains `needle`.
template <class E>
void check_throws(const std::string& what, const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const E& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      std::printf("FAIL %s: message \"%s\" does not mention \"%s\"\n", what.c_str(), e.what(), needle.c_str());
      ++failures;
    }
    return;
  } catch (const std::exception& e) {
    std::printf("FAIL %s: wrong exception type (%s)\n", what.c_str(), e.what());
    ++failures;
    return;
  }
  std::printf("FAIL %s: nothing thrown\n", what.c_str());
  ++failures;
}

}  // namespace lmm_test
