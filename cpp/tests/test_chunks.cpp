// Crossproducts accumulated over row chunks (lmm::add) against those of all
// rows: the column statistics of each term merged chunk by chunk give the
// working transform of all rows, and a model on the summed crossproducts has
// the objective, gradient and fit of the model built from all rows. The data
// have two crossed grouping factors (so the sparse off-diagonal blocks, whose
// patterns differ between chunks, are merged), prior weights, and a slope with
// a large offset (so the slope term is centred). Crossproducts of enough rows
// to be formed on threads equal those formed on one.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <Eigen/QR>

#include "check.hpp"
#include "lmm/dense.hpp"
#include "lmm/fit.hpp"

namespace {

using lmm_test::check;
using lmm_test::check_close;
using lmm_test::check_throws;
using lmm_test::failures;

using lmm::Covariance;
using lmm::Index;
using lmm::IntVector;
using lmm::Matrix;
using lmm::Vector;

// Named tolerances: the chunks' sums differ from the sums over all rows only
// in the order of the additions.
constexpr double kObjectiveTol = 1e-12;
constexpr double kGradientTol = 1e-12;  // each part, relative to its largest entry
constexpr double kSolveTol = 1e-12;     // β and u, relative to their largest entries
constexpr double kFitTol = 1e-9;         // θ, β, σ at the optimum (the optimizer's path may part by rounding)

struct Data {
  Index n;
  IntVector g1, g2;
  Matrix z1, z2, X;  // z1 = [1, x] (slope term), z2 = [1], X = [1, x, u]
  Vector y, w;
};

Data simulate(Index n, Index l1, Index l2, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> N;
  std::uniform_int_distribution<int> U1(0, static_cast<int>(l1) - 1), U2(0, static_cast<int>(l2) - 1);
  std::uniform_real_distribution<double> W(0.5, 2.0);
  Data d;
  d.n = n;
  d.g1.resize(n);
  d.g2.resize(n);
  d.z1.resize(n, 2);
  d.z2 = Matrix::Ones(n, 1);
  d.X.resize(n, 3);
  d.y.resize(n);
  d.w.resize(n);
  Vector b0(l1), b1(l1), c(l2);
  for (Index j = 0; j < l1; ++j) { b0[j] = N(gen); b1[j] = 0.3 * N(gen); }
  for (Index j = 0; j < l2; ++j) c[j] = 0.7 * N(gen);
  for (Index r = 0; r < n; ++r) {
    d.g1[r] = U1(gen);
    d.g2[r] = U2(gen);
    const double x = 1000.0 + N(gen);  // large offset: the slope term is centred
    const double u = N(gen);
    d.z1(r, 0) = 1.0;
    d.z1(r, 1) = x;
    d.X(r, 0) = 1.0;
    d.X(r, 1) = x;
    d.X(r, 2) = u;
    d.w[r] = W(gen);
    d.y[r] = 5.0 + 0.5 * (x - 1000.0) - u + b0[d.g1[r]] + b1[d.g1[r]] * (x - 1000.0) + c[d.g2[r]] +
             N(gen) / std::sqrt(d.w[r]);
  }
  return d;
}

// Rows [r0, r0 + m) of the data (a chunk, with its own arrays).
Data slice(const Data& d, Index r0, Index m) {
  Data c;
  c.n = m;
  c.g1 = d.g1.segment(r0, m);
  c.g2 = d.g2.segment(r0, m);
  c.z1 = d.z1.middleRows(r0, m);
  c.z2 = d.z2.middleRows(r0, m);
  c.X = d.X.middleRows(r0, m);
  c.y = d.y.segment(r0, m);
  c.w = d.w.segment(r0, m);
  return c;
}

// The data's terms, in model order (g1 has more levels): (1 + x | g1), (1 | g2).
std::vector<lmm::TermData> terms(const Data& d, Index l1, Index l2) {
  return {{Eigen::Map<const IntVector>(d.g1.data(), d.n), Eigen::Map<const Matrix>(d.z1.data(), d.n, 2), l1,
           Covariance::Unstructured},
          {Eigen::Map<const IntVector>(d.g2.data(), d.n), Eigen::Map<const Matrix>(d.z2.data(), d.n, 1), l2,
           Covariance::Unstructured}};
}

// A shift from all rows: X's column means, γ by least squares.
lmm::Shift shift_of(const Data& d) {
  lmm::Shift s;
  s.center = d.X.colwise().mean().transpose();
  s.center[0] = 0.0;
  const Matrix Xc = d.X.rowwise() - s.center.transpose();
  s.gamma = Xc.colPivHouseholderQr().solve(d.y);
  return s;
}

void test_chunks(bool weighted) {
  const Index n = 4000, l1 = 60, l2 = 25, nchunks = 7;
  const Data d = simulate(n, l1, l2, weighted ? 11u : 7u);
  const lmm::Shift shift = shift_of(d);
  const Vector w = weighted ? d.w : Vector();
  lmm::ModelOptions options;
  options.weights = w;
  const lmm::Model full(terms(d, l1, l2), d.X, d.y, options, shift);
  const std::string tag = weighted ? " (weighted)" : "";

  // Chunks of unequal sizes, one of a single row.
  std::vector<Index> bounds = {0, 1, 450, 1200, 1201, 2600, 3100, n};
  check("seven chunks", static_cast<Index>(bounds.size()) - 1 == nchunks);
  std::vector<Data> chunks;
  for (Index c = 0; c < nchunks; ++c) chunks.push_back(slice(d, bounds[c], bounds[c + 1] - bounds[c]));

  // Pass 1: the column statistics, merged.
  std::vector<lmm::TermColumnStats> stats(2);
  for (const Data& c : chunks) {
    const Vector cw = weighted ? c.w : Vector();
    stats[0].merge(lmm::TermColumnStats::of(c.z1, cw));
    stats[1].merge(lmm::TermColumnStats::of(c.z2, cw));
  }
  std::vector<lmm::TermTransform> transforms;
  for (Index k = 0; k < 2; ++k) {
    transforms.push_back(lmm::term_transform(stats[k], Covariance::Unstructured));
    const lmm::TermTransform& want = full.transform(k);
    const lmm::TermTransform& got = transforms.back();
    check("transform " + std::to_string(k) + " centred as from all rows" + tag, got.centred() == want.centred());
    check("transform " + std::to_string(k) + " scales as from all rows" + tag, got.scale == want.scale);
    for (Index j = 0; j < got.center.size(); ++j)
      check_close("transform " + std::to_string(k) + " center " + std::to_string(j) + tag, got.center[j],
                  want.center[j], 1e-14);
  }
  check("term 0 (1 + x) is centred", transforms[0].centred());

  // Pass 2: the chunks' crossproducts, summed.
  lmm::Crossprod total;
  for (const Data& c : chunks) {
    const Vector cw = weighted ? c.w : Vector();
    lmm::add(total, lmm::form_crossprod(terms(c, l1, l2), c.X, c.y, shift, cw, transforms));
  }
  check("n summed" + tag, total.n == n);
  check("the sum keeps no per-row weights" + tag, total.has_rows() == !weighted);
  check_close("sum of log weights" + tag, total.sum_log_weights, full.crossprod().sum_log_weights, 1e-12);
  check("ZZ_off pattern is the union" + tag,
        total.ZZ_off[1][0].nnz() == full.crossprod().ZZ_off[1][0].nnz() &&
            total.ZZ_off[1][0].colptr == full.crossprod().ZZ_off[1][0].colptr);
  lmm::Model chunked(total, full.order());

  lmm::Model fitted = full;
  const lmm::FitResult want = lmm::fit(fitted);
  check("the full model converges" + tag, want.converged);
  // (Not lme4's start λ = I of the caller's columns: with the slope's offset of 1000 its
  // λ̃ has entries a million apart, and every quantity loses digits to that condition.)
  // The others: the optimum, and points near it in the working coordinates.
  Vector w2 = want.working_theta, w3 = want.working_theta;
  w2 *= 1.3;
  w3.array() *= Eigen::Array4d(0.5, -1.0, 0.8, 2.0);
  std::vector<Vector> thetas = {full.to_user(full.working_start()), want.theta, full.to_user(w2), full.to_user(w3)};
  lmm::Model reference = full;
  for (std::size_t i = 0; i < thetas.size(); ++i) {
    for (bool reml : {true, false}) {
      const std::string at = " at theta " + std::to_string(i) + (reml ? " REML" : " ML") + tag;
      reference.set_theta(thetas[i]);
      chunked.set_theta(thetas[i]);
      check_close("objective" + at, chunked.objective(reml), reference.objective(reml), kObjectiveTol);
      // The gradient's two parts (of the log-determinants and of r²) each to rounding of
      // their own size: at the optimum they cancel, and their sum is rounding itself.
      const auto pw = reference.gradient_parts(reml), pc = chunked.gradient_parts(reml);
      check("gradient of the log-determinants" + at,
            (pc.logdet - pw.logdet).cwiseAbs().maxCoeff() <= kGradientTol * pw.logdet.cwiseAbs().maxCoeff());
      check("gradient of r2" + at,
            (pc.pwrss - pw.pwrss).cwiseAbs().maxCoeff() <= kGradientTol * pw.pwrss.cwiseAbs().maxCoeff());
      lmm::Vector uw, bw, uc, bc;
      reference.solve(uw, bw);
      chunked.solve(uc, bc);
      // β of the shifted problem is small (y's least-squares fit γ is removed): its
      // error is measured against β of X itself, β_c + γ.
      const double beta_scale = (bw + shift.gamma).cwiseAbs().maxCoeff();
      check("beta" + at, (bc - bw).cwiseAbs().maxCoeff() <= kSolveTol * beta_scale);
      check("u" + at, (uc - uw).cwiseAbs().maxCoeff() <= kSolveTol * uw.cwiseAbs().maxCoeff());
    }
  }
  const lmm::FitResult got = lmm::fit(chunked);
  check("the chunked model converges" + tag, got.converged);
  check_close("criterion at the optimum" + tag, got.criterion, want.criterion, 1e-12);
  check_close("sigma at the optimum" + tag, got.sigma, want.sigma, kFitTol);
  check("nobs of the chunked fit" + tag, got.nobs == n);
  for (Index k = 0; k < want.theta.size(); ++k)
    check_close("theta " + std::to_string(k) + tag, got.theta[k], want.theta[k], kFitTol);
  for (Index k = 0; k < want.beta.size(); ++k) {
    check_close("beta " + std::to_string(k) + tag, got.beta[k], want.beta[k], kFitTol);
    check_close("se " + std::to_string(k) + tag, got.se_beta[k], want.se_beta[k], kFitTol);
  }
  if (weighted)
    check_throws<std::invalid_argument>(
        "set_response refused without the rows' weights",
        [&] { chunked.set_response(terms(d, l1, l2), d.X, d.y); }, "chunks");
}

// add refuses crossproducts of another model; the model on crossproducts
// refuses an order that is not a permutation.
void test_mismatch() {
  const Index l1 = 60, l2 = 25;
  const Data d = simulate(500, l1, l2, 3u);
  const Data a = slice(d, 0, 200), b = slice(d, 200, 300);
  lmm::Crossprod total = lmm::form_crossprod(terms(a, l1, l2), a.X, a.y);
  lmm::Shift other;
  other.center = Vector::Ones(3);
  const lmm::Crossprod shifted = lmm::form_crossprod(terms(b, l1, l2), b.X, b.y, other);
  check_throws<std::invalid_argument>("add with another shift", [&] { lmm::add(total, shifted); }, "same model");
  const lmm::Crossprod weighted = lmm::form_crossprod(terms(b, l1, l2), b.X, b.y, {}, b.w);
  check_throws<std::invalid_argument>("add weighted to unweighted", [&] { lmm::add(total, weighted); },
                                      "same model");
  check_throws<std::invalid_argument>("a bad order", [&] { lmm::Model m(total, {0, 0}); }, "permutation");
  lmm::ModelOptions o;
  o.weights = Vector::Ones(500);
  check_throws<std::invalid_argument>("weights beside crossproducts", [&] { lmm::Model m(total, {}, o); },
                                      "no weights");
  check("term order of shapes", lmm::Model::term_order({{3, 1}, {5, 1}, {5, 2}}) == std::vector<Index>({2, 1, 0}));
  // Column statistics: merging with an empty chunk changes nothing.
  lmm::TermColumnStats s = lmm::TermColumnStats::of(a.z1, Vector());
  const Vector mean = s.mean;
  s.merge(lmm::TermColumnStats::of(Matrix(0, 2), Vector()));
  check("merge with no rows", s.mean == mean && s.n == 200);
  check("column 0 all ones", s.first_ones);
  s.merge(lmm::TermColumnStats::of(a.X.rightCols(2), Vector()));
  check("column 0 not all ones after merging", !s.first_ones);
  // Appended columns: the statistics of [z1 X] are those of z1's followed by X's.
  lmm::TermColumnStats wide = lmm::TermColumnStats::of(a.z1, Vector());
  wide.append_columns(lmm::TermColumnStats::of(a.X, Vector()));
  Matrix both(a.n, 5);
  both << a.z1, a.X;
  const lmm::TermColumnStats direct = lmm::TermColumnStats::of(both, Vector());
  check("appended columns", wide.mean == direct.mean && wide.centred2 == direct.centred2 &&
                                wide.squares == direct.squares && wide.first_ones);
  check_throws<std::invalid_argument>(
      "append columns of other rows", [&] { wide.append_columns(lmm::TermColumnStats::of(b.X, Vector())); },
      "same rows");
}

}  // namespace

// add consumes the sum's sparse blocks as it merges them (their pages go back to the
// system): a tree of sums equals the running sum, the blocks of a crossproduct that the
// sum was copied from stay intact, and a sum added to itself is twice it.
void test_consuming_add() {
  // Parts with blocks over many pages (the pages released are the whole ones inside).
  const Index l1 = 800, l2 = 300, n = 80000, m = 10000;
  const Data d = simulate(n, l1, l2, 5u);
  std::vector<lmm::Crossprod> parts;
  for (Index r = 0; r < n; r += m) {
    const Data c = slice(d, r, m);
    parts.push_back(lmm::form_crossprod(terms(c, l1, l2), c.X, c.y));
  }
  check("parts' blocks span pages", parts[0].ZZ_off[1][0].nnz() > 8000);
  lmm::Crossprod running;
  for (const lmm::Crossprod& p : parts) lmm::add(running, p);
  // The pairwise tree (as the chunked fit's): each partial sum is consumed once.
  std::vector<lmm::Crossprod> level = parts;
  while (level.size() > 1) {
    std::vector<lmm::Crossprod> next;
    for (std::size_t i = 0; i < level.size(); i += 2) {
      next.push_back(std::move(level[i]));
      if (i + 1 < level.size()) lmm::add(next.back(), level[i + 1]);
    }
    level = std::move(next);
  }
  const lmm::SparseBlocks &tree = level[0].ZZ_off[1][0], &run = running.ZZ_off[1][0];
  const bool same_rows = std::equal(tree.rowidx.begin(), tree.rowidx.end(), run.rowidx.begin());
  check("tree and running sums: one pattern", tree.colptr == run.colptr && same_rows);
  check("tree and running sums: the values to rounding",
        (tree.data - run.data).cwiseAbs().maxCoeff() <= 1e-12 * run.data.cwiseAbs().maxCoeff());
  // A sum that starts as a copy of a part shares its rows: the part keeps them.
  const lmm::Crossprod kept = parts[0];
  const std::vector<std::int32_t> kept_rows(kept.ZZ_off[1][0].rowidx.begin(), kept.ZZ_off[1][0].rowidx.end());
  const Matrix kept_values = kept.ZZ_off[1][0].data;
  lmm::Crossprod copy;
  lmm::add(copy, kept);
  lmm::add(copy, parts[1]);
  check("the copied part's rows intact",
        std::equal(kept_rows.begin(), kept_rows.end(), kept.ZZ_off[1][0].rowidx.begin()) &&
            kept.ZZ_off[1][0].nnz() == static_cast<Index>(kept_rows.size()));
  check("the copied part's values intact", kept.ZZ_off[1][0].data == kept_values);
  lmm::Crossprod twice = running;
  lmm::add(twice, twice);
  check("a sum added to itself: its pattern", twice.ZZ_off[1][0].colptr == run.colptr);
  check("a sum added to itself: twice its values", twice.ZZ_off[1][0].data == 2.0 * run.data);
  check("a sum added to itself: twice its rows", twice.n == 2 * running.n);
}

// Blocks formed in parallel (kThreadedRows rows and more) are the blocks one
// thread forms, entry for entry: each is a task of its own.
void test_threaded_forming() {
  const Index n = lmm::kThreadedRows + 123, l1 = 300, l2 = 40;
  const Data d = simulate(n, l1, l2, 5u);
  const lmm::Shift shift = shift_of(d);
  std::vector<lmm::TermTransform> transforms;
  transforms.push_back(lmm::term_transform(lmm::TermColumnStats::of(d.z1, d.w), Covariance::Unstructured));
  transforms.push_back(lmm::term_transform(lmm::TermColumnStats::of(d.z2, d.w), Covariance::Unstructured));
  const int before = lmm::dense_threads();
  lmm::set_dense_threads(1);
  const lmm::Crossprod one = lmm::form_crossprod(terms(d, l1, l2), d.X, d.y, shift, d.w, transforms);
  for (int threads : {2, 3}) {
    lmm::set_dense_threads(threads);
    const lmm::Crossprod A = lmm::form_crossprod(terms(d, l1, l2), d.X, d.y, shift, d.w, transforms);
    const std::string at = " on " + std::to_string(threads) + " threads";
    check("XyXy" + at, A.XyXy == one.XyXy);
    for (std::size_t k = 0; k < 2; ++k) {
      check("ZZ " + std::to_string(k) + at, A.ZZ[k].data == one.ZZ[k].data);
      check("XyZ " + std::to_string(k) + at, A.XyZ[k] == one.XyZ[k]);
    }
    const lmm::SparseBlocks &got = A.ZZ_off[1][0], &want = one.ZZ_off[1][0];
    check("ZZ_off pattern" + at, got.colptr == want.colptr && got.nnz() == want.nnz() &&
                                     std::equal(got.rowidx.begin(), got.rowidx.end(), want.rowidx.begin()));
    check("ZZ_off values" + at, got.data == want.data);
  }
  lmm::set_dense_threads(before);
}

int main() {
  test_threaded_forming();
  test_chunks(false);
  test_chunks(true);
  test_mismatch();
  test_consuming_add();
  std::printf("%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
