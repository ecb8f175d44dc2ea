#include "lmm/many.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <Eigen/QR>

namespace lmm {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// lmm::fit's rank test: a column whose residual on those before it is below this fraction of its norm.
constexpr double kRankTol = 1e-7;

// m outcomes of a model with ntheta θ and p fixed effects, all "not fitted".
ManyResult empty_result(Index ntheta, Index p, Index m) {
  ManyResult out;
  out.theta.setConstant(ntheta, m, kNaN);
  out.beta.setConstant(p, m, kNaN);
  out.se.setConstant(p, m, kNaN);
  for (Vector* v : {&out.sigma, &out.criterion, &out.max_projected_gradient, &out.residual_ratio, &out.residual_ss})
    v->setConstant(m, kNaN);
  out.converged.assign(static_cast<std::size_t>(m), 0);
  out.singular.assign(static_cast<std::size_t>(m), 0);
  for (auto* v : {&out.evaluations, &out.iterations, &out.restarts}) v->assign(static_cast<std::size_t>(m), 0);
  out.error.assign(static_cast<std::size_t>(m), std::string());
  return out;
}

// The fit r of column c into out, β and Var(β) mapped back to X's columns:
// X_c = X S with S = I − e₀ center', so β = S (β_c + γ) and Var(β) = S Var(β_c) S'.
void record(ManyResult& out, const FitResult& r, const Vector& center, const Vector& gamma, Index c) {
  const Index p = r.beta.size();
  Vector beta = r.beta + gamma;
  Matrix V = r.vcov_beta;
  if (center.size() && p) {
    const double shift = center.dot(beta);
    beta[0] -= shift;
    const Vector Vc = V * center;
    V.row(0) -= Vc.transpose();
    V.col(0) -= Vc;
    V(0, 0) += center.dot(Vc);
  }
  out.theta.col(c) = r.theta;
  out.beta.col(c) = beta;
  out.se.col(c) = V.diagonal().cwiseMax(0.0).cwiseSqrt();
  out.sigma[c] = r.sigma;
  out.criterion[c] = r.criterion;
  out.max_projected_gradient[c] = r.max_projected_gradient;
  out.converged[c] = r.converged;
  out.singular[c] = r.singular;
  out.evaluations[c] = r.evaluations;
  out.iterations[c] = r.iterations;
  out.restarts[c] = r.restarts;
}

// Runs `threads` workers, each calling work(next_block, done) until the blocks
// are taken (work takes blocks from next_block and counts the fits it ends in
// done), while the calling thread reports progress; rethrows the first
// failure of a worker or of the progress callback.
void run_workers(Index threads, Index m, const ManyOptions& options,
                 const std::function<void(std::atomic<Index>&, std::atomic<Index>&)>& work) {
  std::atomic<Index> next_block{0}, done{0};
  std::exception_ptr failure;
  std::mutex mutex;  // guards failure and finished
  std::condition_variable finished_cv;
  Index finished = 0;
  auto stop = [&](std::exception_ptr e) {  // (with the mutex held)
    if (!failure) failure = e;
    next_block = m;  // the others stop after their block
  };
  auto worker = [&]() {
    try {
      work(next_block, done);
    } catch (...) {
      // (Data that do not match the model, or out of memory.)
      std::lock_guard<std::mutex> lock(mutex);
      stop(std::current_exception());
    }
    std::lock_guard<std::mutex> lock(mutex);
    ++finished;
    finished_cv.notify_all();
  };
  const bool reporter = static_cast<bool>(options.progress);
  std::vector<std::thread> pool;
  for (Index t = reporter ? 0 : 1; t < threads; ++t) pool.emplace_back(worker);
  if (reporter) {
    const auto interval = std::chrono::duration<double>(options.progress_interval);
    std::unique_lock<std::mutex> lock(mutex);
    while (!finished_cv.wait_for(lock, interval, [&] { return finished == threads; })) {
      lock.unlock();
      std::exception_ptr e;
      try {
        options.progress(done.load());
      } catch (...) {
        e = std::current_exception();
      }
      lock.lock();
      if (e) stop(e);
    }
  } else {
    worker();
  }
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
  if (reporter) options.progress(done.load());
}

void check_options(const ManyOptions& options) {
  if (options.threads < 1) throw std::invalid_argument("fit_many: threads must be at least 1");
  if (options.block < 1) throw std::invalid_argument("fit_many: block must be at least 1");
}

// The threads worth starting for m fits in blocks of b.
Index thread_count(const ManyOptions& options, Index m) {
  return std::min(options.threads, std::max<Index>((m + options.block - 1) / options.block, 1));
}

}  // namespace

ManyResult fit_many(const Model& model, const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
                    Eigen::Ref<const Matrix> Y, Eigen::Ref<const Matrix> R, const ManyOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const Index n = model.nobs(), p = model.nfixed(), m = Y.cols();
  if (Y.rows() != n)
    throw std::invalid_argument("fit_many: Y has " + std::to_string(Y.rows()) + " rows for a model of " +
                                std::to_string(n) + " observations");
  if (X.rows() != n || X.cols() != p)
    throw std::invalid_argument("fit_many: X does not match the model's " + std::to_string(n) + " x " +
                                std::to_string(p));
  check_options(options);
  ManyResult out = empty_result(model.ntheta(), p, m);
  const Vector& center = model.crossprod().shift.center;
  // Each worker fits on its own copy of the model, a block of responses at a time.
  run_workers(thread_count(options, m), m, options, [&](std::atomic<Index>& next_block, std::atomic<Index>& done) {
    Model local = model;
    FitOptions fo = options.fit;
    fo.trace = {};
    const Index b = options.block;
    Vector previous;
    for (Index j0 = next_block.fetch_add(1) * b; j0 < m; j0 = next_block.fetch_add(1) * b) {
      const Index nb = std::min(b, m - j0);
      const ResponseCrossprods rc = local.response_crossprods(terms, X, Y.middleCols(j0, nb), R);
      previous.resize(0);
      for (Index j = 0; j < nb; ++j, done.fetch_add(1)) {
        const Index c = j0 + j;
        out.residual_ratio[c] = rc.norm2[j] > 0 ? std::sqrt(rc.residual2[j] / rc.norm2[j]) : 0.0;
        out.residual_ss[c] = rc.residual2[j];
        if (!Y.col(c).allFinite()) {
          out.error[c] = "the response has non-finite values";
          continue;
        }
        fo.theta_start = options.warm_start && previous.size() ? previous : options.fit.theta_start;
        try {
          local.set_response(rc, j);
          record(out, fit(local, fo), center, rc.gamma.col(j), c);
          // (A singular optimum is no start: on the boundary the next fit could stop at once.)
          if (out.singular[c])
            previous.resize(0);
          else
            previous = out.theta.col(c);
        } catch (const std::exception& e) {
          out.error[c] = e.what();
        }
      }
    }
  });
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

ManyResult fit_scan(const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X, Eigen::Ref<const Vector> y,
                    Eigen::Ref<const Matrix> G, const ModelOptions& model_options, const ManyOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const Index n = y.size(), p = X.cols(), m = G.cols();
  if (X.rows() != n || G.rows() != n)
    throw std::invalid_argument("fit_scan: X has " + std::to_string(X.rows()) + " rows and G " +
                                std::to_string(G.rows()) + " for " + std::to_string(n) + " observations");
  check_options(options);
  Index ntheta = 0;
  for (const auto& t : terms) ntheta += t.shape().ntheta();
  ManyResult out = empty_result(ntheta, p + 1, m);
  // The shift of X with a candidate: column means when X's first column is an intercept.
  const bool intercept = p > 0 && (X.col(0).array() == 1.0).all();
  Vector x_center = Vector::Zero(p);
  if (intercept) x_center.tail(p - 1) = X.rightCols(p - 1).colwise().mean().transpose();
  run_workers(thread_count(options, m), m, options, [&](std::atomic<Index>& next_block, std::atomic<Index>& done) {
    FitOptions fo = options.fit;
    fo.trace = {};
    Matrix Xa(n, p + 1), Xc(n, p + 1);
    Xa.leftCols(p) = X;
    Xc.leftCols(p) = X.rowwise() - x_center.transpose();
    Shift shift{Vector::Zero(p + 1), Vector()};
    shift.center.head(p) = x_center;
    const Index b = options.block;
    for (Index j0 = next_block.fetch_add(1) * b; j0 < m; j0 = next_block.fetch_add(1) * b) {
      for (Index c = j0; c < std::min(j0 + b, m); ++c, done.fetch_add(1)) {
        const auto g = G.col(c);
        if (!g.allFinite()) {
          out.error[c] = "the candidate has non-finite values";
          continue;
        }
        Xa.col(p) = g;
        shift.center[p] = intercept ? g.mean() : 0.0;
        Xc.col(p) = g.array() - shift.center[p];
        // y's least-squares fit on [X_c g_c], refined once (as the design's shift).
        const Eigen::HouseholderQR<Matrix> qr(Xc);
        const double norm = Xc.col(p).norm();
        if (!(std::abs(qr.matrixQR()(p, p)) > kRankTol * norm)) {
          out.error[c] = "X with the candidate is not of full column rank: the candidate is (close to) a linear "
                         "combination of X's columns";
          continue;
        }
        shift.gamma = qr.solve(y);
        shift.gamma += qr.solve(y - Xc * shift.gamma);
        try {
          Model model(terms, Xa, y, model_options, shift);
          record(out, fit(model, fo), shift.center, shift.gamma, c);
        } catch (const std::exception& e) {
          out.error[c] = e.what();
        }
      }
    }
  });
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace lmm
