#include "lmm/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <time.h>
#include <unistd.h>
#define LMM_HAVE_GETPID 1
#endif
#if defined(CLOCK_THREAD_CPUTIME_ID)
#define LMM_HAVE_THREAD_CLOCK 1
#endif

namespace lmm {

namespace {

// Whether this thread is running a chunk of a pooled loop: a loop inside it
// (the recursive kernels' halves) runs on this thread, as the pool is taken.
thread_local bool t_in_chunk = false;

// Seconds of CPU this thread has run (0 where the clock is missing).
double thread_seconds() {
#ifdef LMM_HAVE_THREAD_CLOCK
  timespec t{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0) return static_cast<double>(t.tv_sec) + 1e-9 * t.tv_nsec;
#endif
  return 0.0;
}

long process_id() {
#ifdef LMM_HAVE_GETPID
  return static_cast<long>(getpid());
#else
  return 0;
#endif
}

// A loop whose threads did not pay makes the loops of the next kFirstBackoff
// seconds run on the calling thread alone, twice as long after each such loop
// in a row, up to kMaxBackoff; a loop that pays ends the back-off. A loop did
// not pay when it took at least kNoGain of the CPU time its chunks took on all
// threads (what one thread would have taken: a worker sharing a core with
// another process held a chunk while descheduled), or when the calling thread
// ran less than kOwnCore of the time it ran chunks (the machine has fewer
// free cores than the loop's threads: a worker or another process on the
// caller's core). With one other busy process on this project's 2-core
// machine, a back-off counted in loops (up to 512) still lost 10-15 % against
// one thread to its probes; in time, a probe costs a descheduled chunk (a few
// ms) per second at most. (The caller's own rate times all chunks, an earlier
// measure of one thread's time, misjudged loops of uneven chunks on an idle
// machine.)
constexpr double kNoGain = 0.9;
constexpr double kOwnCore = 0.8;
constexpr double kFirstBackoff = 2e-3;
constexpr double kMaxBackoff = 1.0;
constexpr double kMinTimedLoop = 50e-6;

// Workers sleep on `wake` between loops. A loop is published as a new
// generation; each worker that sees it while it runs enters it (`inside`),
// takes chunks until none is left, adds the chunks it ran to `done` and
// leaves. The loop ends when all chunks are done and no worker is inside, so
// that no worker still holds it when the next one starts. Workers are never joined: the pool lives
// as long as the process (it is never destroyed, so no exit-time destructor
// waits on a sleeping thread).
class Pool {
 public:
  using Clock = std::chrono::steady_clock;

  static Pool& shared() {
    static std::mutex guard;
    static Pool* pool = nullptr;
    std::lock_guard<std::mutex> lock(guard);
    // A forked child has none of its parent's threads: it starts a pool of its own.
    if (pool == nullptr || pool->pid_ != process_id()) pool = new Pool();
    return *pool;
  }

  bool paused() const { return paused_at(Clock::now()); }

  void run(long chunks, int threads, const std::function<void(long)>& f) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    const Clock::time_point start = Clock::now();
    if (!busy.owns_lock() || paused_at(start)) {
      for (long c = 0; c < chunks; ++c) f(c);
      return;
    }
    grow(threads - 1);
    const double cpu_start = thread_seconds();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      f_ = &f;
      chunks_ = chunks;
      next_.store(0);
      done_ = 0;
      worker_cpu_ = 0.0;
      active_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    const long ran = take(f);
    const Clock::time_point own = Clock::now();
    const double cpu = thread_seconds() - cpu_start;
    double worker_cpu = 0.0;
    {
      // Wait only for chunks a worker has taken; the rest this thread ran.
      std::unique_lock<std::mutex> lock(mutex_);
      finished_.wait(lock, [&] { return done_ + ran == chunks_ && inside_ == 0; });
      f_ = nullptr;
      active_ = 0;
      worker_cpu = worker_cpu_;
    }
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    // Judged: loops long enough to time. When no worker came in time, the
    // threads cost only their wake-up, unless the caller lost its core.
    if (took < kMinTimedLoop || ran == 0) return;
    const double own_seconds = std::chrono::duration<double>(own - start).count();
    const bool shared_core = cpu > 0.0 && cpu < kOwnCore * own_seconds;
    const bool no_gain = ran < chunks && cpu > 0.0 && took >= kNoGain * (cpu + worker_cpu);
    if (no_gain || shared_core) {
      backoff_ = backoff_ == 0.0 ? kFirstBackoff : std::min(kMaxBackoff, 2.0 * backoff_);
      const Clock::time_point until =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_));
      serial_until_.store(until.time_since_epoch().count());
    } else {
      backoff_ = 0.0;
    }
  }

 private:
  Pool() : pid_(process_id()) {}

  bool paused_at(Clock::time_point t) const { return t.time_since_epoch().count() < serial_until_.load(); }

  long take(const std::function<void(long)>& f) {
    long ran = 0;
    t_in_chunk = true;
    for (long c = next_.fetch_add(1); c < chunks_; c = next_.fetch_add(1)) {
      f(c);
      ++ran;
    }
    t_in_chunk = false;
    return ran;
  }

  void grow(int workers) {
    while (static_cast<int>(started_) < workers) {
      try {
        std::thread(&Pool::work, this, started_).detach();
      } catch (const std::system_error&) {
        return;  // fewer workers: the calling thread takes their chunks
      }
      ++started_;
    }
  }

  void work(int index) {
    unsigned long seen = 0;
    for (;;) {
      const std::function<void(long)>* f;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= active_ || f_ == nullptr) continue;
        f = f_;
        ++inside_;
      }
      const double cpu_start = thread_seconds();
      const long ran = take(*f);
      const double cpu = thread_seconds() - cpu_start;
      std::lock_guard<std::mutex> lock(mutex_);
      done_ += ran;
      worker_cpu_ += cpu;
      --inside_;
      finished_.notify_all();
    }
  }

  const long pid_;
  std::mutex busy_;   // one loop at a time; it guards the back-off below
  std::atomic<Clock::rep> serial_until_{0};  // the back-off's end (read by paused())
  double backoff_ = 0.0;                     // seconds
  std::mutex mutex_;  // the loop's fields below and the workers' sleep
  std::condition_variable wake_, finished_;
  const std::function<void(long)>* f_ = nullptr;
  long chunks_ = 0;
  std::atomic<long> next_{0};
  long done_ = 0;
  double worker_cpu_ = 0.0;  // the workers' CPU seconds in the loop's chunks
  int active_ = 0, inside_ = 0;
  unsigned long generation_ = 0;
  int started_ = 0;
};

}  // namespace

bool parallel_paused() { return Pool::shared().paused(); }

void parallel_for(long chunks, int threads, const std::function<void(long)>& f) {
  if (chunks <= 0) return;
  if (threads < 2 || chunks == 1 || t_in_chunk) {
    for (long c = 0; c < chunks; ++c) f(c);
    return;
  }
  Pool::shared().run(chunks, threads, f);
}

void parallel_for_rethrow(long chunks, int threads, const std::function<void(long)>& f) {
  std::vector<std::exception_ptr> failed(static_cast<std::size_t>(std::max(chunks, 0L)));
  parallel_for(chunks, threads, [&](long chunk) {
    try {
      f(chunk);
    } catch (...) {
      failed[static_cast<std::size_t>(chunk)] = std::current_exception();
    }
  });
  for (const auto& e : failed)
    if (e) std::rethrow_exception(e);
}

}  // namespace lmm
