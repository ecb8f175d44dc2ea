// Splitting a loop over a few threads (the dense kernels' and the factor's
// sweeps; dense_threads() says how many).
#pragma once
#include <system_error>
#include <thread>
#include <vector>

namespace lmm {

/// Runs f(part) for every part in [0, parts): part 0 on the calling thread,
/// each other on a thread of its own (on the calling thread too when no thread
/// can be started). Returns when all are done. f must not throw.
template <typename F>
void run_parts(int parts, const F& f) {
  std::vector<std::thread> pool;
  int next = 1;
  try {
    for (; next < parts; ++next) pool.emplace_back(f, next);
  } catch (const std::system_error&) {
  }
  for (int i = next; i < parts; ++i) f(i);
  f(0);
  for (auto& t : pool) t.join();
}

}  // namespace lmm
