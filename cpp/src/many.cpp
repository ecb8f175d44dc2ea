#include "lmm/many.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace lmm {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Fits the blocks of responses it takes from a shared counter on its own copy of the model.
class Worker {
 public:
  Worker(const Model& model, const std::vector<TermData>& terms, Eigen::Ref<const Matrix> X,
         Eigen::Ref<const Matrix> Y, Eigen::Ref<const Matrix> R, const ManyOptions& options, ManyResult& out)
      : model_(model), terms_(terms), X_(X), Y_(Y), R_(R), options_(options), out_(out) {}

  void run(std::atomic<Index>& next_block, std::atomic<Index>& done) {
    const Index m = Y_.cols(), b = std::max<Index>(options_.block, 1);
    FitOptions fo = options_.fit;
    fo.trace = {};
    Vector previous;
    while (true) {
      const Index j0 = next_block.fetch_add(1) * b;
      if (j0 >= m) return;
      const Index nb = std::min(b, m - j0);
      const ResponseCrossprods rc = model_.response_crossprods(terms_, X_, Y_.middleCols(j0, nb), R_);
      previous.resize(0);
      for (Index j = 0; j < nb; ++j) {
        fo.theta_start = options_.warm_start ? previous : Vector();
        if (fit_one(rc, j, j0 + j, fo)) previous = out_.theta.col(j0 + j);
        done.fetch_add(1);
      }
    }
  }

 private:
  // Fit response j of the block (column c of Y); false when it could not be fitted.
  bool fit_one(const ResponseCrossprods& rc, Index j, Index c, const FitOptions& fo) {
    out_.residual_ratio[c] = rc.norm2[j] > 0 ? std::sqrt(rc.residual2[j] / rc.norm2[j]) : 0.0;
    if (!Y_.col(c).allFinite()) {
      out_.error[c] = "the response has non-finite values";
      return false;
    }
    try {
      model_.set_response(rc, j);
      const FitResult r = fit(model_, fo);
      record(r, rc.gamma.col(j), c);
      return true;
    } catch (const std::exception& e) {
      out_.error[c] = e.what();
      return false;
    }
  }

  // The result of column c, β and Var(β) mapped back to X's columns:
  // X_c = X S with S = I − e₀ center', so β = S (β_c + γ) and Var(β) = S Var(β_c) S'.
  void record(const FitResult& r, const Vector& gamma, Index c) {
    const Vector& center = model_.crossprod().shift.center;
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
    out_.theta.col(c) = r.theta;
    out_.beta.col(c) = beta;
    out_.se.col(c) = V.diagonal().cwiseMax(0.0).cwiseSqrt();
    out_.sigma[c] = r.sigma;
    out_.criterion[c] = r.criterion;
    out_.max_projected_gradient[c] = r.max_projected_gradient;
    out_.converged[c] = r.converged;
    out_.singular[c] = r.singular;
    out_.evaluations[c] = r.evaluations;
    out_.iterations[c] = r.iterations;
    out_.restarts[c] = r.restarts;
  }

  Model model_;
  const std::vector<TermData>& terms_;
  Eigen::Ref<const Matrix> X_, Y_, R_;
  const ManyOptions& options_;
  ManyResult& out_;
};

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
  if (options.threads < 1) throw std::invalid_argument("fit_many: threads must be at least 1");
  if (options.block < 1) throw std::invalid_argument("fit_many: block must be at least 1");
  ManyResult out;
  out.theta.setConstant(model.ntheta(), m, kNaN);
  out.beta.setConstant(p, m, kNaN);
  out.se.setConstant(p, m, kNaN);
  for (Vector* v : {&out.sigma, &out.criterion, &out.max_projected_gradient, &out.residual_ratio})
    v->setConstant(m, kNaN);
  out.converged.assign(static_cast<std::size_t>(m), 0);
  out.singular.assign(static_cast<std::size_t>(m), 0);
  for (auto* v : {&out.evaluations, &out.iterations, &out.restarts}) v->assign(static_cast<std::size_t>(m), 0);
  out.error.assign(static_cast<std::size_t>(m), std::string());

  std::atomic<Index> next_block{0}, done{0};
  const Index b = options.block;
  const Index threads = std::min(options.threads, std::max<Index>((m + b - 1) / b, 1));
  std::exception_ptr failure;
  std::mutex mutex;  // guards failure and finished
  std::condition_variable finished_cv;
  Index finished = 0;
  auto work = [&]() {
    try {
      Worker(model, terms, X, Y, R, options, out).run(next_block, done);
    } catch (...) {
      // (Data that do not match the model, or out of memory.)
      std::lock_guard<std::mutex> lock(mutex);
      if (!failure) failure = std::current_exception();
      next_block = m;  // the others stop after their block
    }
    std::lock_guard<std::mutex> lock(mutex);
    ++finished;
    finished_cv.notify_all();
  };
  const bool reporter = static_cast<bool>(options.progress);
  std::vector<std::thread> pool;
  for (Index t = reporter ? 0 : 1; t < threads; ++t) pool.emplace_back(work);
  if (reporter) {
    // The calling thread reports while the workers fit.
    const auto interval = std::chrono::duration<double>(options.progress_interval);
    std::unique_lock<std::mutex> lock(mutex);
    while (!finished_cv.wait_for(lock, interval, [&] { return finished == threads; })) {
      lock.unlock();
      try {
        options.progress(done.load());
      } catch (...) {
        lock.lock();
        if (!failure) failure = std::current_exception();
        next_block = m;
        continue;
      }
      lock.lock();
    }
  } else {
    work();
  }
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
  if (reporter) options.progress(done.load());
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace lmm
