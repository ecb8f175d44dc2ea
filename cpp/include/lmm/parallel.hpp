// Splitting a loop over a few threads: the dense kernels' products and the
// factor's sweeps (dense_threads() says how many threads).
#pragma once
#include <functional>

namespace lmm {

/// Runs f(chunk) for every chunk in [0, chunks) on the calling thread and up
/// to threads − 1 workers of a pool kept for the process, each taking the
/// next chunk not yet taken; returns when all are done. The calling thread
/// never waits for a worker that has not started: on a machine busy with other
/// work it runs the chunks nobody took itself (it still waits for a chunk a
/// descheduled worker holds). While another thread's loop holds the pool,
/// inside a chunk of a pooled loop (a loop nested in one), or with threads < 2,
/// every chunk runs on the calling thread; so do the loops
/// of the next milliseconds after a loop the workers made no faster than the
/// calling thread alone would have been (a back-off doubling up to a second
/// while it lasts, see parallel.cpp).
/// f must not throw.
void parallel_for(long chunks, int threads, const std::function<void(long)>& f);

/// parallel_for for chunks that may throw: every chunk runs, and the first
/// exception (in chunk order) is rethrown once all are done.
void parallel_for_rethrow(long chunks, int threads, const std::function<void(long)>& f);

/// Whether parallel_for runs every loop on the calling thread for now (its
/// back-off): a caller whose loops exist only to be split (the dense kernels'
/// recursions) takes its unsplit algorithm instead.
bool parallel_paused();

}  // namespace lmm
