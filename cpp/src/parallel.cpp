#include "lmm/parallel.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define LMM_HAVE_GETPID 1
#endif

namespace lmm {

namespace {

long process_id() {
#ifdef LMM_HAVE_GETPID
  return static_cast<long>(getpid());
#else
  return 0;
#endif
}

// Workers sleep on `wake` between loops. A loop is published as a new
// generation; each worker that sees it while it runs enters it (`inside`),
// takes chunks until none is left, adds the chunks it ran to `done` and
// leaves. The loop ends when all chunks are done and no worker is inside, so
// that no worker still holds it when the next one starts. Workers are never joined: the pool lives
// as long as the process (it is never destroyed, so no exit-time destructor
// waits on a sleeping thread).
class Pool {
 public:
  static Pool& shared() {
    static std::mutex guard;
    static Pool* pool = nullptr;
    std::lock_guard<std::mutex> lock(guard);
    // A forked child has none of its parent's threads: it starts a pool of its own.
    if (pool == nullptr || pool->pid_ != process_id()) pool = new Pool();
    return *pool;
  }

  void run(long chunks, int threads, const std::function<void(long)>& f) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {
      for (long c = 0; c < chunks; ++c) f(c);
      return;
    }
    grow(threads - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      f_ = &f;
      chunks_ = chunks;
      next_.store(0);
      done_ = 0;
      active_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    const long ran = take(f);
    // Wait only for chunks a worker has taken; the rest this thread ran.
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [&] { return done_ + ran == chunks_ && inside_ == 0; });
    f_ = nullptr;
    active_ = 0;
  }

 private:
  Pool() : pid_(process_id()) {}

  long take(const std::function<void(long)>& f) {
    long ran = 0;
    for (long c = next_.fetch_add(1); c < chunks_; c = next_.fetch_add(1)) {
      f(c);
      ++ran;
    }
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
      const long ran = take(*f);
      std::lock_guard<std::mutex> lock(mutex_);
      done_ += ran;
      --inside_;
      finished_.notify_all();
    }
  }

  const long pid_;
  std::mutex busy_;   // one loop at a time
  std::mutex mutex_;  // the loop's fields below and the workers' sleep
  std::condition_variable wake_, finished_;
  const std::function<void(long)>* f_ = nullptr;
  long chunks_ = 0;
  std::atomic<long> next_{0};
  long done_ = 0;
  int active_ = 0, inside_ = 0;
  unsigned long generation_ = 0;
  int started_ = 0;
};

}  // namespace

void parallel_for(long chunks, int threads, const std::function<void(long)>& f) {
  if (chunks <= 0) return;
  if (threads < 2 || chunks == 1) {
    for (long c = 0; c < chunks; ++c) f(c);
    return;
  }
  Pool::shared().run(chunks, threads, f);
}

}  // namespace lmm
