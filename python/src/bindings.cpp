// pybind11 layer of lmm._core: converts arrays and documents; no logic.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <optional>

#include <lmm/lmm.hpp>

namespace py = pybind11;

namespace {

using Codes = py::array_t<std::int32_t, py::array::f_style | py::array::forcecast>;
using Columns = py::array_t<double, py::array::f_style | py::array::forcecast>;

// Codes outside [0, nlevels) raise ValueError.
template <typename T>
void check_codes(const T* c, py::ssize_t n, lmm::Index nlevels) {
  for (py::ssize_t i = 0; i < n; ++i)
    if (c[i] < 0 || c[i] >= nlevels)
      throw std::invalid_argument("level code " + std::to_string(c[i]) + " at row " + std::to_string(i) +
                                  " is outside [0, " + std::to_string(nlevels) + ")");
}

// Level codes as int32, refusing non-integer arrays and values that int32
// cannot hold (a silent cast would wrap them into valid-looking codes).
// int32 codes (the design's own) are checked in place, not copied.
Codes level_codes(const py::handle& obj, lmm::Index nlevels) {
  const auto arr = py::array::ensure(obj);
  if (!arr) throw py::type_error("term codes must be an integer array");
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u' && kind != 'b') throw py::type_error("term codes must be an integer array");
  if (arr.ndim() != 1) throw std::invalid_argument("term codes must be one-dimensional");
  if (arr.dtype().is(py::dtype::of<std::int32_t>())) {
    const auto codes = Codes::ensure(arr);
    check_codes(codes.data(), codes.shape(0), nlevels);
    return codes;
  }
  const auto wide = py::array_t<std::int64_t, py::array::f_style | py::array::forcecast>::ensure(arr);
  if (!wide) throw py::type_error("term codes must be an integer array");
  check_codes(wide.data(), wide.shape(0), nlevels);
  return Codes(wide);
}

// The model's data as converted arrays (owned here) and Eigen views of them.
struct ModelData {
  std::vector<Codes> codes;
  std::vector<Columns> zs;
  Columns X, y;
  std::vector<lmm::TermData> terms;

  // terms: (codes, z, nlevels, structure) tuples; X (n × p); y (n).
  ModelData(const std::vector<py::tuple>& term_tuples, Columns X_, Columns y_) : X(std::move(X_)), y(std::move(y_)) {
    codes.reserve(term_tuples.size());
    zs.reserve(term_tuples.size());
    for (const auto& t : term_tuples) {
      if (t.size() != 4) throw std::invalid_argument("a term is a tuple (codes, z, nlevels, structure)");
      codes.push_back(level_codes(t[0], t[2].cast<lmm::Index>()));
      zs.push_back(t[1].cast<Columns>());
      const auto& c = codes.back();
      const auto& z = zs.back();
      if (c.ndim() != 1) throw std::invalid_argument("term codes must be one-dimensional");
      if (z.ndim() != 2) throw std::invalid_argument("term z must be two-dimensional (n x p)");
      terms.push_back({Eigen::Map<const lmm::IntVector>(c.data(), c.shape(0)),
                       Eigen::Map<const lmm::Matrix>(z.data(), z.shape(0), z.shape(1)), t[2].cast<lmm::Index>(),
                       lmm::covariance_from_name(t[3].cast<std::string>())});
    }
    if (X.ndim() != 2) throw std::invalid_argument("X must be two-dimensional (n x p)");
    if (y.ndim() != 1) throw std::invalid_argument("y must be one-dimensional");
  }
  Eigen::Map<const lmm::Matrix> Xmap() const { return {X.data(), X.shape(0), X.shape(1)}; }
  Eigen::Map<const lmm::Vector> ymap() const { return {y.data(), y.shape(0)}; }
};

lmm::Model make_model(const std::vector<py::tuple>& terms, const Columns& X, const Columns& y,
                      double max_dense_bytes, const std::optional<lmm::Vector>& x_center,
                      const std::optional<lmm::Vector>& y_coef, const std::optional<lmm::Vector>& weights,
                      double sigma) {
  const ModelData d(terms, X, y);
  lmm::Shift shift;
  if (x_center) shift.center = *x_center;
  if (y_coef) shift.gamma = *y_coef;
  lmm::ModelOptions options;
  options.max_dense_bytes = max_dense_bytes;
  if (weights) options.weights = *weights;
  options.sigma = sigma;
  py::gil_scoped_release release;
  return lmm::Model(d.terms, d.Xmap(), d.ymap(), options, shift);
}

void set_response(lmm::Model& m, const std::vector<py::tuple>& terms, const Columns& X, const Columns& y) {
  const ModelData d(terms, X, y);
  py::gil_scoped_release release;
  m.set_response(d.terms, d.Xmap(), d.ymap());
}

// The crossproducts of one chunk of rows: the global shift and per-term
// transforms (model order), the chunk's weights.
lmm::Crossprod chunk_crossprod(const std::vector<py::tuple>& terms, const Columns& X, const Columns& y,
                               const std::optional<lmm::Vector>& x_center, const std::optional<lmm::Vector>& y_coef,
                               const std::optional<lmm::Vector>& weights,
                               const std::vector<lmm::TermTransform>& transforms) {
  const ModelData d(terms, X, y);
  lmm::Shift shift;
  if (x_center) shift.center = *x_center;
  if (y_coef) shift.gamma = *y_coef;
  const lmm::Vector w = weights ? *weights : lmm::Vector();
  py::gil_scoped_release release;
  return lmm::form_crossprod(d.terms, d.Xmap(), d.ymap(), shift, w, transforms);
}

lmm::Model model_from_crossprod(const lmm::Crossprod& A, const std::vector<lmm::Index>& order,
                                double max_dense_bytes, double sigma) {
  lmm::ModelOptions options;
  options.max_dense_bytes = max_dense_bytes;
  options.sigma = sigma;
  py::gil_scoped_release release;
  return lmm::Model(A, order, options);
}

// Crossprod as a tuple of plain values (pickling: chunks' crossproducts travel
// between processes), and back.
py::tuple crossprod_state(const lmm::Crossprod& A) {
  py::list shapes, zz, zz_off, xyz, transforms;
  for (std::size_t k = 0; k < A.shapes.size(); ++k) {
    const lmm::TermShape& s = A.shapes[k];
    shapes.append(py::make_tuple(s.nlevels, s.p, s.parameterization().name()));
    zz.append(py::make_tuple(A.ZZ[k].nblocks, A.ZZ[k].p, A.ZZ[k].data));
    xyz.append(A.XyZ[k]);
    py::list row;
    for (const lmm::SparseBlocks& b : A.ZZ_off[k]) {
      // (Index arrays as NumPy arrays, not lists of ints: a crossed term's pattern has a
      // row index per pair of levels, and the parts of partitions travel between processes.)
      py::array_t<std::int32_t> rows(static_cast<py::ssize_t>(b.rowidx.size()));
      std::copy(b.rowidx.begin(), b.rowidx.end(), rows.mutable_data());
      py::array_t<lmm::Index> colptr(static_cast<py::ssize_t>(b.colptr.size()), b.colptr.data());
      row.append(py::make_tuple(b.nrows, b.ncols, b.pr, b.pc, colptr, rows, b.data));
    }
    zz_off.append(row);
  }
  for (const lmm::TermTransform& t : A.transforms) transforms.append(py::make_tuple(t.center, t.scale, t.offset));
  return py::make_tuple(A.n, A.p, shapes, zz, zz_off, xyz, A.XyXy, A.shift.center, A.shift.gamma, transforms,
                        A.weights, A.sum_log_weights, A.weighted);
}

lmm::Crossprod crossprod_from_state(const py::tuple& t) {
  if (t.size() != 13) throw std::invalid_argument("not the state of a Crossprod");
  lmm::Crossprod A;
  A.n = t[0].cast<lmm::Index>();
  A.p = t[1].cast<lmm::Index>();
  for (const auto& s : t[2].cast<py::list>()) {
    const auto st = s.cast<py::tuple>();
    A.shapes.push_back({st[0].cast<lmm::Index>(), st[1].cast<lmm::Index>(),
                        lmm::covariance_from_name(st[2].cast<std::string>())});
  }
  for (const auto& z : t[3].cast<py::list>()) {
    const auto zt = z.cast<py::tuple>();
    lmm::BlockDiag D;
    D.nblocks = zt[0].cast<lmm::Index>();
    D.p = zt[1].cast<lmm::Index>();
    D.data = zt[2].cast<lmm::Matrix>();
    A.ZZ.push_back(std::move(D));
  }
  for (const auto& row : t[4].cast<py::list>()) {
    std::vector<lmm::SparseBlocks> blocks;
    for (const auto& b : row.cast<py::list>()) {
      const auto bt = b.cast<py::tuple>();
      lmm::SparseBlocks S;
      S.nrows = bt[0].cast<lmm::Index>();
      S.ncols = bt[1].cast<lmm::Index>();
      S.pr = bt[2].cast<lmm::Index>();
      S.pc = bt[3].cast<lmm::Index>();
      const auto colptr = bt[4].cast<py::array_t<lmm::Index, py::array::c_style | py::array::forcecast>>();
      S.colptr.assign(colptr.data(), colptr.data() + colptr.size());
      const auto rows = bt[5].cast<py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>>();
      S.rowidx.assign(std::vector<std::int32_t>(rows.data(), rows.data() + rows.size()));
      S.data = bt[6].cast<lmm::Matrix>();
      blocks.push_back(std::move(S));
    }
    A.ZZ_off.push_back(std::move(blocks));
  }
  for (const auto& m : t[5].cast<py::list>()) A.XyZ.push_back(m.cast<lmm::Matrix>());
  A.XyXy = t[6].cast<lmm::Matrix>();
  A.shift.center = t[7].cast<lmm::Vector>();
  A.shift.gamma = t[8].cast<lmm::Vector>();
  for (const auto& tr : t[9].cast<py::list>()) {
    const auto tt = tr.cast<py::tuple>();
    A.transforms.push_back({tt[0].cast<lmm::Vector>(), tt[1].cast<lmm::Vector>(), tt[2].cast<lmm::Vector>()});
  }
  A.weights = t[10].cast<lmm::Vector>();
  A.sum_log_weights = t[11].cast<double>();
  A.weighted = t[12].cast<bool>();
  return A;
}

// FitOptions from the keyword arguments of Model.fit and Model.fit_many.
lmm::FitOptions fit_options(bool reml, const std::optional<lmm::Vector>& theta_scale, lmm::Index max_evaluations,
                            lmm::Index max_iterations, double gradient_tolerance, double gradient_tolerance_rel,
                            double relative_decrease_tolerance, lmm::Index memory) {
  lmm::FitOptions o;
  o.gradient_tolerance = gradient_tolerance;
  o.gradient_tolerance_rel = gradient_tolerance_rel;
  o.relative_decrease_tolerance = relative_decrease_tolerance;
  o.memory = memory;
  o.reml = reml;
  if (theta_scale) o.theta_scale = *theta_scale;
  o.max_evaluations = max_evaluations;
  o.max_iterations = max_iterations;
  return o;
}

// lmm::fit on a built model. The GIL is released while the optimizer runs and
// taken again only to call trace.
lmm::FitResult fit_model(lmm::Model& m, bool reml, const std::optional<lmm::Vector>& theta_start,
                         const std::optional<lmm::Vector>& theta_scale, lmm::Index max_evaluations,
                         lmm::Index max_iterations, double gradient_tolerance, double gradient_tolerance_rel,
                         double relative_decrease_tolerance, lmm::Index memory,
                         const std::optional<py::function>& trace, double trace_interval) {
  lmm::FitOptions o = fit_options(reml, theta_scale, max_evaluations, max_iterations, gradient_tolerance,
                                  gradient_tolerance_rel, relative_decrease_tolerance, memory);
  if (theta_start) o.theta_start = *theta_start;
  if (trace) {
    // By reference: the function outlives the fit, and is not copied (or
    // released) without the GIL.
    // With trace_interval > 0, at most one call per interval: the clock is read
    // without the GIL, so a status line costs a long fit nothing.
    const py::function& f = *trace;
    using Clock = std::chrono::steady_clock;
    o.trace = [&f, trace_interval, last = Clock::time_point{}](lmm::Index k, double value) mutable {
      if (trace_interval > 0.0) {
        const Clock::time_point now = Clock::now();
        if (now - last < std::chrono::duration<double>(trace_interval)) return;
        last = now;
      }
      py::gil_scoped_acquire gil;
      f(k, value);
    };
  }
  py::gil_scoped_release release;
  return lmm::fit(m, o);
}

// ManyOptions for fit_many and fit_scan: progress(done) is called with the GIL
// (by reference: the function outlives the run).
lmm::ManyOptions many_options(const lmm::FitOptions& fit, lmm::Index threads, lmm::Index block,
                              const std::optional<py::function>& progress, double progress_interval) {
  lmm::ManyOptions o;
  o.fit = fit;
  o.threads = threads;
  o.block = block;
  o.progress_interval = progress_interval;
  if (progress) {
    const py::function& f = *progress;
    o.progress = [&f](lmm::Index done) {
      py::gil_scoped_acquire gil;
      f(done);
    };
  }
  return o;
}

// A ManyResult as a dict of arrays (flags as booleans).
py::dict many_result_dict(const lmm::ManyResult& r) {
  auto flags = [](const std::vector<std::uint8_t>& v) {
    py::array_t<bool> a(static_cast<py::ssize_t>(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) a.mutable_data()[i] = v[i] != 0;
    return a;
  };
  return py::dict(py::arg("theta") = r.theta, py::arg("beta") = r.beta, py::arg("se") = r.se,
                  py::arg("sigma") = r.sigma, py::arg("criterion") = r.criterion,
                  py::arg("max_projected_gradient") = r.max_projected_gradient,
                  py::arg("residual_ratio") = r.residual_ratio, py::arg("residual_ss") = r.residual_ss,
                  py::arg("converged") = flags(r.converged),
                  py::arg("singular") = flags(r.singular), py::arg("evaluations") = py::cast(r.evaluations),
                  py::arg("iterations") = py::cast(r.iterations), py::arg("restarts") = py::cast(r.restarts),
                  py::arg("error") = r.error, py::arg("seconds") = r.seconds);
}

// lmm::fit_many on a built model: the columns of Y fitted in threads without
// the GIL, taken again only to call progress; the results as a dict of arrays.
py::dict fit_many(const lmm::Model& m, const std::vector<py::tuple>& terms, const Columns& X, const Columns& Y,
                  const Columns& R, bool reml, lmm::Index threads, lmm::Index block, bool warm_start,
                  const std::optional<lmm::Vector>& theta_start, const std::optional<lmm::Vector>& theta_scale, lmm::Index max_evaluations,
                  lmm::Index max_iterations, double gradient_tolerance, double gradient_tolerance_rel,
                  double relative_decrease_tolerance, lmm::Index memory,
                  const std::optional<py::function>& progress, double progress_interval) {
  const ModelData d(terms, X, Columns(0));
  if (Y.ndim() != 2) throw std::invalid_argument("Y must be two-dimensional (n x m)");
  if (R.ndim() != 2) throw std::invalid_argument("R must be two-dimensional (p x p)");
  lmm::ManyOptions o = many_options(fit_options(reml, theta_scale, max_evaluations, max_iterations,
                                                gradient_tolerance, gradient_tolerance_rel,
                                                relative_decrease_tolerance, memory),
                                    threads, block, progress, progress_interval);
  if (theta_start) o.fit.theta_start = *theta_start;
  o.warm_start = warm_start;
  const Eigen::Map<const lmm::Matrix> Ymap(Y.data(), Y.shape(0), Y.shape(1));
  const Eigen::Map<const lmm::Matrix> Rmap(R.data(), R.shape(0), R.shape(1));
  lmm::ManyResult r;
  {
    py::gil_scoped_release release;
    r = lmm::fit_many(m, d.terms, d.Xmap(), Ymap, Rmap, o);
  }
  return many_result_dict(r);
}

// lmm::fit_scan: a fit per candidate column of G added to X, in threads without the GIL.
py::dict fit_scan(const std::vector<py::tuple>& terms, const Columns& X, const Columns& y, const Columns& G,
                  double max_dense_bytes, const std::optional<lmm::Vector>& weights, double sigma, bool reml,
                  lmm::Index threads, lmm::Index block, lmm::Index max_evaluations, lmm::Index max_iterations,
                  double gradient_tolerance, double gradient_tolerance_rel, double relative_decrease_tolerance,
                  lmm::Index memory, const std::optional<py::function>& progress, double progress_interval) {
  const ModelData d(terms, X, y);
  if (G.ndim() != 2) throw std::invalid_argument("G must be two-dimensional (n x candidates)");
  lmm::ModelOptions mo;
  mo.max_dense_bytes = max_dense_bytes;
  if (weights) mo.weights = *weights;
  mo.sigma = sigma;
  const lmm::ManyOptions o = many_options(fit_options(reml, std::nullopt, max_evaluations, max_iterations,
                                                      gradient_tolerance, gradient_tolerance_rel,
                                                      relative_decrease_tolerance, memory),
                                          threads, block, progress, progress_interval);
  const Eigen::Map<const lmm::Matrix> Gmap(G.data(), G.shape(0), G.shape(1));
  lmm::ManyResult r;
  {
    py::gil_scoped_release release;
    r = lmm::fit_scan(d.terms, d.Xmap(), d.ymap(), Gmap, mo, o);
  }
  return many_result_dict(r);
}

// A routine of scipy.linalg.cython_lapack or cython_blas, from the capsule SciPy exports for it.
template <typename Fn>
Fn scipy_lapack(const py::module_& cython_lapack, const char* name) {
  const py::capsule cap = cython_lapack.attr("__pyx_capi__")[name].cast<py::capsule>();
  return reinterpret_cast<Fn>(cap.get_pointer());
}

// "lapack": the dense kernels go to the LAPACK SciPy carries (OpenBLAS in
// SciPy's wheels; its thread count follows OPENBLAS_NUM_THREADS or
// threadpoolctl); "eigen": Eigen's own kernels.
void set_dense_backend(const std::string& name) {
  if (name == "eigen") {
    lmm::set_lapack({});
    return;
  }
  if (name != "lapack") throw std::invalid_argument("dense backend must be 'lapack' or 'eigen', not '" + name + "'");
  const py::module_ lapack = py::module_::import("scipy.linalg.cython_lapack");
  lmm::LapackKernels k;
  k.potrf = scipy_lapack<lmm::LapackKernels::Potrf>(lapack, "dpotrf");
  k.trtri = scipy_lapack<lmm::LapackKernels::Trtri>(lapack, "dtrtri");
  k.lauum = scipy_lapack<lmm::LapackKernels::Lauum>(lapack, "dlauum");
  const py::module_ blas = py::module_::import("scipy.linalg.cython_blas");
  k.gemm = scipy_lapack<lmm::LapackKernels::Gemm>(blas, "dgemm");
  k.syrk = scipy_lapack<lmm::LapackKernels::Syrk>(blas, "dsyrk");
  k.trsm = scipy_lapack<lmm::LapackKernels::Trsm>(blas, "dtrsm");
  k.trmm = scipy_lapack<lmm::LapackKernels::Trmm>(blas, "dtrmm");
  lmm::set_lapack(k);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  py::register_exception<lmm::DenseLimitError>(m, "DenseLimitError", PyExc_ValueError);
  m.doc() = "lmm's compiled core: crossproducts, blocked Cholesky, profiled objective.";

  m.def("set_dense_backend", &set_dense_backend, py::arg("name"),
        "dense kernels of the crossed block: 'lapack' (SciPy's LAPACK) or 'eigen'");
  m.def("dense_backend", []() { return lmm::using_lapack() ? "lapack" : "eigen"; }, "the current dense backend");
  m.def("set_dense_threads", &lmm::set_dense_threads, py::arg("threads"),
        "threads of the dense kernels for blocks of order kThreadedOrder and above (BLAS on one thread inside)");
  m.def("dense_threads", &lmm::dense_threads, "the dense kernels' threads");
  m.attr("THREADED_ORDER") = lmm::kThreadedOrder;
  m.attr("THREADED_ROWS") = lmm::kThreadedRows;
  m.def("trim_heap", &lmm::trim_heap, py::call_guard<py::gil_scoped_release>(),
        "give the heap's free memory back to the system (after a pass over chunks; a no-op off glibc)");

  auto shape_of = [](lmm::Index p, const std::string& structure) {
    if (p < 1) throw std::invalid_argument("a term has at least one column");
    return lmm::TermShape{1, p, lmm::covariance_from_name(structure)};
  };
  m.def(
      "theta_positions",
      [shape_of](lmm::Index p, const std::string& structure) { return lmm::theta_positions(shape_of(p, structure)); },
      py::arg("p"), py::arg("structure"),
      "(row, col) of λ for each θ entry of a term with p columns (empty for structures whose θ are not λ's entries)");
  m.def(
      "parameterization",
      [shape_of](lmm::Index p, const std::string& structure) {
        const lmm::TermShape s = shape_of(p, structure);
        return py::dict(py::arg("name") = s.parameterization().name(), py::arg("ntheta") = s.ntheta(),
                        py::arg("lower") = lmm::theta_lower(s), py::arg("upper") = lmm::theta_upper(s),
                        py::arg("start") = lmm::theta_start(s));
      },
      py::arg("p"), py::arg("structure"),
      "name, ntheta, lower, upper and start of the θ of a term with p columns and this structure");
  m.def(
      "theta_to_lambda",
      [shape_of](lmm::Index p, const std::string& structure, const Eigen::Ref<const lmm::Vector>& theta) {
        const lmm::TermShape s = shape_of(p, structure);
        if (theta.size() != s.ntheta())
          throw std::invalid_argument("theta has length " + std::to_string(theta.size()) + ", a " + structure +
                                      " term with " + std::to_string(p) + " columns needs " +
                                      std::to_string(s.ntheta()));
        lmm::Matrix lambda;
        lmm::theta_to_lambda(s, theta.data(), lambda);
        return lambda;
      },
      py::arg("p"), py::arg("structure"), py::arg("theta"), "λ (p × p, lower triangular) of a term at its θ");
  m.attr("STRUCTURES") = py::tuple(py::cast(lmm::covariance_names()));
  m.def("fit_scan", &fit_scan, py::arg("terms"), py::arg("X"), py::arg("y"), py::arg("G"), py::arg("max_dense_bytes"),
        py::arg("weights") = py::none(), py::arg("sigma") = 0.0, py::arg("reml") = true, py::arg("threads") = 1,
        py::arg("block") = lmm::ManyOptions{}.block, py::arg("max_evaluations") = lmm::FitOptions{}.max_evaluations,
        py::arg("max_iterations") = lmm::FitOptions{}.max_iterations,
        py::arg("gradient_tolerance") = lmm::FitOptions{}.gradient_tolerance,
        py::arg("gradient_tolerance_rel") = lmm::FitOptions{}.gradient_tolerance_rel,
        py::arg("relative_decrease_tolerance") = lmm::FitOptions{}.relative_decrease_tolerance,
        py::arg("memory") = lmm::FitOptions{}.memory, py::arg("progress") = py::none(),
        py::arg("progress_interval") = lmm::ManyOptions{}.progress_interval,
        "a fit per candidate column of G (n x c) added to X last, with the response y, in threads\n"
        "(lmm::fit_scan); the same dict as Model.fit_many, beta and se of [X g]");
  m.def(
      "code_strings",
      [](const py::list& chunks) {
        // All chunks in one call: the coder keeps views of their bytes.
        lmm::StringCoder coder;
        std::vector<std::pair<py::array, py::ssize_t>> parts;
        py::ssize_t n = 0;
        for (const py::handle& item : chunks) {
          const auto chunk = item.cast<py::tuple>();
          if (chunk.size() != 5) throw std::invalid_argument("a chunk is (offsets, data, valid, bit_offset, length)");
          n += chunk[4].cast<py::ssize_t>();
        }
        py::array_t<std::int32_t> codes(n);
        py::ssize_t at = 0;
        for (const py::handle& item : chunks) {
          const auto chunk = item.cast<py::tuple>();
          const auto data = chunk[1].cast<py::array_t<std::uint8_t, py::array::c_style>>();
          const auto length = chunk[4].cast<py::ssize_t>();
          const auto bit_offset = chunk[3].cast<py::ssize_t>();
          const std::uint8_t* valid = nullptr;
          py::array_t<std::uint8_t, py::array::c_style> valid_array;
          if (!chunk[2].is_none()) {
            valid_array = chunk[2].cast<py::array_t<std::uint8_t, py::array::c_style>>();
            if (bit_offset < 0 || valid_array.size() * 8 < bit_offset + length)
              throw std::invalid_argument("the validity bitmap is shorter than the chunk");
            valid = valid_array.data();
          }
          auto code_with = [&](auto offsets_array) {
            const auto* off = offsets_array.data();
            if (offsets_array.size() != length + 1) throw std::invalid_argument("a chunk needs length + 1 offsets");
            for (py::ssize_t i = 0; i < length; ++i)
              if (off[i] < 0 || off[i + 1] < off[i]) throw std::invalid_argument("string offsets must not decrease");
            if (length > 0 && off[length] > data.size()) throw std::invalid_argument("string offsets past the data");
            py::gil_scoped_release release;
            coder.add(off, data.data(), valid, bit_offset, length, codes.mutable_data() + at);
          };
          const py::array offsets = chunk[0].cast<py::array>();
          if (offsets.dtype().is(py::dtype::of<std::int64_t>())) {
            code_with(offsets.cast<py::array_t<std::int64_t, py::array::c_style>>());
          } else if (offsets.dtype().is(py::dtype::of<std::int32_t>())) {
            code_with(offsets.cast<py::array_t<std::int32_t, py::array::c_style>>());
          } else {
            throw std::invalid_argument("string offsets must be int32 or int64");
          }
          at += length;
        }
        const auto& first = coder.first_rows();
        py::array_t<std::int64_t> rows(static_cast<py::ssize_t>(first.size()));
        std::copy(first.begin(), first.end(), rows.mutable_data());
        return py::make_tuple(codes, rows);
      },
      py::arg("chunks"),
      "codes (int32, -1 where missing) of strings in Arrow's layout, chunk by chunk, numbered in order of\n"
      "first appearance, and the row of each code's first appearance (lmm::StringCoder); a chunk is\n"
      "(offsets, data, valid, bit_offset, length): int32 or int64 offsets, uint8 bytes, uint8 validity\n"
      "bitmap or None");
  m.def(
      "within_level_residual",
      [](const py::handle& codes_obj, const Columns& z, lmm::Index nlevels,
         py::array_t<double, py::array::f_style> V) {
        const Codes codes = level_codes(codes_obj, nlevels);
        if (z.ndim() != 2 || V.ndim() != 2) throw std::invalid_argument("z and V must be two-dimensional");
        if (!V.writeable()) throw std::invalid_argument("V must be writeable (it is overwritten)");
        const lmm::TermData term{Eigen::Map<const lmm::IntVector>(codes.data(), codes.shape(0)),
                                 Eigen::Map<const lmm::Matrix>(z.data(), z.shape(0), z.shape(1)), nlevels,
                                 lmm::Covariance::Unstructured};
        Eigen::Map<lmm::Matrix> v(V.mutable_data(), V.shape(0), V.shape(1));
        py::gil_scoped_release release;
        return lmm::within_level_residual(term, v);
      },
      py::arg("codes"), py::arg("z"), py::arg("nlevels"), py::arg("V").noconvert(),
      "norm of the residual of V[:, 0] on V[:, 1:] and on z within each level (V, float64 Fortran order, "
      "is overwritten with its columns' within-level residuals)");

  const lmm::FitOptions defaults;
  m.attr("FIT_DEFAULTS") = py::dict(
      py::arg("gradient_tolerance") = defaults.gradient_tolerance,
      py::arg("gradient_tolerance_rel") = defaults.gradient_tolerance_rel,
      py::arg("convergence_tolerance") = defaults.convergence_tolerance,
      py::arg("convergence_tolerance_rel") = defaults.convergence_tolerance_rel,
      py::arg("relative_decrease_tolerance") = defaults.relative_decrease_tolerance,
      py::arg("floor_rel") = defaults.floor_rel, py::arg("floor_gradient_rel") = defaults.floor_gradient_rel,
      py::arg("floor_stalls") = defaults.floor_stalls, py::arg("floor_stalls_per_theta") = defaults.floor_stalls_per_variable,
      py::arg("memory") = defaults.memory, py::arg("max_restarts") = defaults.max_restarts,
      py::arg("singular_tolerance") = lmm::singular_tolerance);

  py::class_<lmm::FitResult>(m, "FitResult", "Outcome of Model.fit (see lmm::FitResult).")
      .def_readonly("theta", &lmm::FitResult::theta)
      .def_readonly("working_theta", &lmm::FitResult::working_theta)
      .def_readonly("criterion", &lmm::FitResult::criterion)
      .def_readonly("beta", &lmm::FitResult::beta, "β̂ of the core's (shifted) X")
      .def_readonly("vcov_beta", &lmm::FitResult::vcov_beta, "Var(β̂) of the core's X")
      .def_readonly("u", &lmm::FitResult::u, "û (q), as Model.solve gives it")
      .def_readonly("gradient", &lmm::FitResult::gradient)
      .def_readonly("max_projected_gradient", &lmm::FitResult::max_projected_gradient)
      .def_readonly("converged", &lmm::FitResult::converged)
      .def_readonly("singular", &lmm::FitResult::singular)
      .def_readonly("iterations", &lmm::FitResult::iterations)
      .def_readonly("evaluations", &lmm::FitResult::evaluations)
      .def_readonly("gradient_evaluations", &lmm::FitResult::gradient_evaluations)
      .def_readonly("restarts", &lmm::FitResult::restarts)
      .def_readonly("seconds", &lmm::FitResult::seconds)
      .def_readonly("message", &lmm::FitResult::message)
      .def_readonly("stop_reason", &lmm::FitResult::stop_reason);

  py::class_<lmm::TermColumnStats>(m, "TermColumnStats",
                                   "Mergeable statistics of a term's columns (rows, weighted means, centred\n"
                                   "and plain sums of squares, whether column 0 is all ones).")
      .def(py::init<>(), "no rows")
      .def_static(
          "of",
          [](const Columns& z, const std::optional<lmm::Vector>& weights) {
            if (z.ndim() != 2) throw std::invalid_argument("z must be two-dimensional (n x p)");
            const Eigen::Map<const lmm::Matrix> zm(z.data(), z.shape(0), z.shape(1));
            py::gil_scoped_release release;
            return lmm::TermColumnStats::of(zm, weights ? *weights : lmm::Vector());
          },
          py::arg("z"), py::arg("weights") = py::none(), "the statistics of the rows z (n, p), weights (n,) or None")
      .def("merge", &lmm::TermColumnStats::merge, py::arg("other"), "merge another chunk's statistics into these")
      .def("append_columns", &lmm::TermColumnStats::append_columns, py::arg("other"),
           "append the statistics of other columns of the same rows")
      .def_readonly("n", &lmm::TermColumnStats::n)
      .def_readonly("total", &lmm::TermColumnStats::total, "sum of the weights")
      .def_readonly("mean", &lmm::TermColumnStats::mean)
      .def_readonly("centred2", &lmm::TermColumnStats::centred2, "weighted sums of squares about the means")
      .def_readonly("squares", &lmm::TermColumnStats::squares, "weighted sums of squares")
      .def_readonly("first_ones", &lmm::TermColumnStats::first_ones)
      // (Pickled: partitions' statistics travel from workers to the client.)
      .def(py::pickle(
          [](const lmm::TermColumnStats& s) {
            return py::make_tuple(s.n, s.total, s.mean, s.centred2, s.squares, s.first_ones);
          },
          [](const py::tuple& t) {
            if (t.size() != 6) throw std::invalid_argument("not the state of a TermColumnStats");
            lmm::TermColumnStats s;
            s.n = t[0].cast<lmm::Index>();
            s.total = t[1].cast<double>();
            s.mean = t[2].cast<lmm::Vector>();
            s.centred2 = t[3].cast<lmm::Vector>();
            s.squares = t[4].cast<lmm::Vector>();
            s.first_ones = t[5].cast<bool>();
            return s;
          }));

  py::class_<lmm::TermTransform>(m, "TermTransform", "A term's working coordinates z~ = z T (see Model.transform).")
      .def_property_readonly("center", [](const lmm::TermTransform& t) { return t.center; })
      .def_property_readonly("scale", [](const lmm::TermTransform& t) { return t.scale; })
      .def_property_readonly("offset", [](const lmm::TermTransform& t) { return t.offset; })
      // (Pickled: the transforms travel from the client to the workers forming crossproducts.)
      .def(py::pickle([](const lmm::TermTransform& t) { return py::make_tuple(t.center, t.scale, t.offset); },
                      [](const py::tuple& t) {
                        if (t.size() != 3) throw std::invalid_argument("not the state of a TermTransform");
                        lmm::TermTransform out;
                        out.center = t[0].cast<lmm::Vector>();
                        out.scale = t[1].cast<lmm::Vector>();
                        out.offset = t[2].cast<lmm::Vector>();
                        return out;
                      }));
  m.def(
      "term_transform",
      [](const lmm::TermColumnStats& stats, const std::string& structure) {
        return lmm::term_transform(stats, lmm::covariance_from_name(structure));
      },
      py::arg("stats"), py::arg("structure"),
      "the working coordinates of a term from the statistics of all its rows (as from the rows)");

  py::class_<lmm::Crossprod>(m, "Crossprod", "The crossproduct blocks A of some rows (a sum over rows).")
      .def(py::init<>(), "no rows (add() makes it a copy of the first part)")
      .def_readonly("n", &lmm::Crossprod::n)
      .def_readonly("p", &lmm::Crossprod::p)
      .def_readonly("sum_log_weights", &lmm::Crossprod::sum_log_weights)
      .def_property_readonly("nterms", [](const lmm::Crossprod& A) { return A.shapes.size(); })
      .def(py::pickle(&crossprod_state, &crossprod_from_state))
      .def(
          "add", [](lmm::Crossprod& total, const lmm::Crossprod& part) { lmm::add(total, part); }, py::arg("part"),
          py::call_guard<py::gil_scoped_release>(),
          "add another chunk's crossproducts (same terms, levels, shift and transforms)");
  m.def(
      "term_order",
      [](const std::vector<lmm::Index>& nlevels) {
        std::vector<lmm::TermShape> shapes;
        for (const lmm::Index l : nlevels) shapes.push_back({l, 1, lmm::Covariance::Unstructured});
        return lmm::Model::term_order(shapes);
      },
      py::arg("nlevels"), "lme4's order of terms with these numbers of levels: order[k] is the input index of term k");
  m.def("chunk_crossprod", &chunk_crossprod, py::arg("terms"), py::arg("X"), py::arg("y"), py::arg("x_center"),
        py::arg("y_coef"), py::arg("weights"), py::arg("transforms"),
        "the crossproducts of one chunk of rows: terms (codes against the global levels, z, nlevels, structure)\n"
        "in model order, X (m, p), y (m,), the global shift, the chunk's weights (m,) or None, the global\n"
        "transforms per term (model order)");

  py::class_<lmm::MatrixFreeFit>(m, "MatrixFreeFit", "Outcome of fit_matrix_free (see lmm::MatrixFreeFit).")
      .def_readonly("theta", &lmm::MatrixFreeFit::theta)
      .def_readonly("theta_se", &lmm::MatrixFreeFit::theta_se, "Monte Carlo SE of θ (0 with exact traces)")
      .def_readonly("beta", &lmm::MatrixFreeFit::beta, "β̂ of the crossproducts' (shifted) X")
      .def_readonly("vcov_beta", &lmm::MatrixFreeFit::vcov_beta)
      .def_readonly("u", &lmm::MatrixFreeFit::u)
      .def_readonly("b", &lmm::MatrixFreeFit::b)
      .def_readonly("sigma", &lmm::MatrixFreeFit::sigma)
      .def_readonly("pwrss", &lmm::MatrixFreeFit::pwrss)
      .def_readonly("ldRX2", &lmm::MatrixFreeFit::ldRX2)
      .def_readonly("ldL2", &lmm::MatrixFreeFit::ldL2, "log|M| (estimated unless exact_traces)")
      .def_readonly("ldL2_se", &lmm::MatrixFreeFit::ldL2_se)
      .def_readonly("criterion", &lmm::MatrixFreeFit::criterion)
      .def_readonly("criterion_se", &lmm::MatrixFreeFit::criterion_se)
      .def_readonly("last_step", &lmm::MatrixFreeFit::last_step)
      .def_readonly("converged", &lmm::MatrixFreeFit::converged)
      .def_readonly("exact_traces", &lmm::MatrixFreeFit::exact_traces)
      .def_readonly("evaluations", &lmm::MatrixFreeFit::evaluations)
      .def_readonly("newton_iterations", &lmm::MatrixFreeFit::newton_iterations)
      .def_readonly("cg_iterations", &lmm::MatrixFreeFit::cg_iterations)
      .def_readonly("products", &lmm::MatrixFreeFit::products)
      .def_readonly("seconds_iterations", &lmm::MatrixFreeFit::seconds_iterations)
      .def_readonly("seconds_final", &lmm::MatrixFreeFit::seconds_final)
      .def_readonly("seconds_logdet", &lmm::MatrixFreeFit::seconds_logdet)
      .def_readonly("message", &lmm::MatrixFreeFit::message);
  m.def("matrix_free_unsupported", &lmm::matrix_free_unsupported, py::arg("A"),
        "why the matrix-free method cannot fit the model of A ('' when it can)");
  m.def(
      "fit_matrix_free",
      [](const lmm::Crossprod& A, bool reml, int probes, int final_probes, int logdet_probes, int lanczos_steps,
         double cg_tolerance, double step_tolerance, int max_iterations, lmm::Index exact_levels, std::uint64_t seed,
         const std::optional<lmm::Vector>& theta_start) {
        lmm::MatrixFreeOptions o;
        o.reml = reml;
        o.probes = probes;
        o.final_probes = final_probes;
        o.logdet_probes = logdet_probes;
        o.lanczos_steps = lanczos_steps;
        o.cg_tolerance = cg_tolerance;
        o.step_tolerance = step_tolerance;
        o.max_iterations = max_iterations;
        o.exact_levels = exact_levels;
        o.seed = seed;
        if (theta_start) o.theta_start = *theta_start;
        py::gil_scoped_release release;
        return lmm::fit_matrix_free(A, o);
      },
      py::arg("A"), py::arg("reml") = true, py::arg("probes") = lmm::MatrixFreeOptions{}.probes,
      py::arg("final_probes") = lmm::MatrixFreeOptions{}.final_probes,
      py::arg("logdet_probes") = lmm::MatrixFreeOptions{}.logdet_probes,
      py::arg("lanczos_steps") = lmm::MatrixFreeOptions{}.lanczos_steps,
      py::arg("cg_tolerance") = lmm::MatrixFreeOptions{}.cg_tolerance,
      py::arg("step_tolerance") = lmm::MatrixFreeOptions{}.step_tolerance,
      py::arg("max_iterations") = lmm::MatrixFreeOptions{}.max_iterations,
      py::arg("exact_levels") = lmm::MatrixFreeOptions{}.exact_levels, py::arg("seed") = 0,
      py::arg("theta_start") = py::none(), "matrix-free REML/ML of two crossed scalar terms (see lmm::fit_matrix_free)");
  m.def(
      "matrix_free_score",
      [](const lmm::Crossprod& A, const lmm::Vector& theta, int probes, bool reml, std::uint64_t seed,
         std::uint64_t stream, lmm::Index exact_levels) {
        lmm::MatrixFreeOptions o;
        o.reml = reml;
        o.seed = seed;
        o.exact_levels = exact_levels;
        lmm::MatrixFreeScore s;
        {
          py::gil_scoped_release release;
          s = lmm::matrix_free_score(A, theta, probes, o, stream);
        }
        return py::make_tuple(s.gradient, s.gradient_se, s.pwrss, s.ldRX2);
      },
      py::arg("A"), py::arg("theta"), py::arg("probes"), py::arg("reml") = true, py::arg("seed") = 0,
      py::arg("stream") = 0, py::arg("exact_levels") = lmm::MatrixFreeOptions{}.exact_levels,
      "(gradient, its SE, r², log|R_X|²) of the criterion at θ by the matrix-free method's estimator");

  py::class_<lmm::Model>(m, "Model", "A linear mixed model on its crossproduct blocks.")
      .def(py::init(&make_model), py::arg("terms"), py::arg("X"), py::arg("y"),
           py::arg("max_dense_bytes") = lmm::ModelOptions{}.max_dense_bytes, py::arg("x_center") = py::none(),
           py::arg("y_coef") = py::none(), py::arg("weights") = py::none(), py::arg("sigma") = 0.0,
           "terms: list of (codes int32 (n,), z float64 (n, p_k), nlevels, structure); X (n, p); y (n,).\n"
           "structure: 'us', 'diag', 'diag_hom', 'cs', 'cs_hom', 'ar1', 'ar1_het', 'toep', 'toep_hom'.\n"
           "Terms are reordered by decreasing number of levels; see `order`.\n"
           "x_center, y_coef (p,): the core works on X_c = X - x_center and y_c = y - X_c y_coef, formed\n"
           "row by row (never in full); beta and vcov_beta are then those of X_c.\n"
           "weights (n,): prior weights (residual variance sigma^2 / w_i, lme4's criterion); None: all 1.\n"
           "sigma: a known residual SD (> 0; the criterion is not profiled); 0: estimated.")
      .def_static("from_crossprod", &model_from_crossprod, py::arg("A"), py::arg("order"),
                  py::arg("max_dense_bytes") = lmm::ModelOptions{}.max_dense_bytes, py::arg("sigma") = 0.0,
                  "the model on finished crossproducts A (terms in model order; order[k]: the caller's index of\n"
                  "model term k): L analysed as by the constructor")
      .def("set_response", &set_response, py::arg("terms"), py::arg("X"), py::arg("y"),
           "replace y (same terms, in the constructor's order, and X); θ must be set again")
      .def("crossprod", [](const lmm::Model& m) { return m.crossprod(); },
           "a copy of the model's crossproducts (its terms in model order)")
      .def_property_readonly("order", &lmm::Model::order, "order[k]: input index of model term k")
      .def_property_readonly("sigma_fixed", &lmm::Model::sigma_fixed, "whether the residual SD is known")
      .def_property_readonly("nobs", &lmm::Model::nobs)
      .def_property_readonly("nfixed", &lmm::Model::nfixed)
      .def_property_readonly("nterms", &lmm::Model::nterms)
      .def_property_readonly("ntheta", &lmm::Model::ntheta)
      .def_property_readonly("theta_lower", &lmm::Model::theta_lower)
      .def_property_readonly("theta_start", &lmm::Model::theta_start)
      .def_property_readonly("theta_upper", &lmm::Model::theta_upper)
      .def(
          "theta_positions",
          [](const lmm::Model& m, lmm::Index k) {
            if (k < 0 || k >= m.nterms()) throw py::index_error("term index out of range");
            return lmm::theta_positions(m.shapes()[k]);
          },
          py::arg("k"), "(row, col) of λ for each θ entry of model term k, in θ order")
      .def(
          "structure",
          [](const lmm::Model& m, lmm::Index k) {
            if (k < 0 || k >= m.nterms()) throw py::index_error("term index out of range");
            return m.shapes()[k].parameterization().name();
          },
          py::arg("k"), "covariance structure of model term k (one of STRUCTURES)")
      .def(
          "transform",
          [](const lmm::Model& m, lmm::Index k) {
            if (k < 0 || k >= m.nterms()) throw py::index_error("term index out of range");
            const lmm::TermTransform& t = m.transform(k);
            const lmm::Index p = m.shapes()[k].p;
            return py::dict(py::arg("center") = t.centred() ? t.center : lmm::Vector::Zero(p),
                            py::arg("scale") = t.scale.size() ? t.scale : lmm::Vector::Ones(p),
                            py::arg("offset") = t.offset.size() ? t.offset : lmm::Vector::Zero(p),
                            py::arg("matrix") = t.matrix(p));
          },
          py::arg("k"),
          "working coordinates of model term k's columns, z~ = z T: center, scale, T (matrix) and, per\n"
          "column left uncentred although the term has an intercept, |mean| / SD (offset)")
      .def("to_working", &lmm::Model::to_working, py::arg("theta"), "the working theta of the caller's theta")
      .def("to_user", &lmm::Model::to_user, py::arg("working"), "the caller's theta of a working theta")
      .def(
          "evaluate_working",
          [](lmm::Model& m, const Eigen::Ref<const lmm::Vector>& working, bool reml) {
            m.set_working_theta(working);
            return m.objective(reml);
          },
          py::arg("working"), py::arg("reml"), py::call_guard<py::gil_scoped_release>(),
          "set the working theta and return the ML deviance or REML criterion")
      .def(
          "evaluate_working_with_gradient",
          [](lmm::Model& m, const Eigen::Ref<const lmm::Vector>& working, bool reml) {
            m.set_working_theta(working);
            return std::make_pair(m.objective(reml), m.working_gradient(reml));
          },
          py::arg("working"), py::arg("reml"), py::call_guard<py::gil_scoped_release>(),
          "set the working theta and return (objective, gradient in the working theta)")
      .def_property_readonly("working_theta", &lmm::Model::working_theta)
      .def_property_readonly("working_start", &lmm::Model::working_start,
                             "the working theta optimizers start from (lme4's start unless a column's scale or\n"
                             "offset is extreme)")
      .def_property_readonly("moment_start", &lmm::Model::moment_start,
                             "a working theta from moments of the crossproducts (the core's fit tries it too)")
      .def_property_readonly("nprefix", [](const lmm::Model& m) { return m.cholesky().nprefix(); },
                             "number of leading terms whose diagonal blocks of L stay block diagonal")
      .def_property_readonly("tail_size", [](const lmm::Model& m) { return m.cholesky().tail_size(); },
                             "order of the dense trailing block of L")
      .def_property_readonly("factor_bytes", [](const lmm::Model& m) { return m.cholesky().factor_bytes(); },
                             "bytes of the blocked factor L (dense tail, prefix blocks and patterns)")
      .def("set_theta", &lmm::Model::set_theta, py::arg("theta"), py::call_guard<py::gil_scoped_release>())
      .def("objective", &lmm::Model::objective, py::arg("reml"))
      .def(
          "evaluate",
          [](lmm::Model& m, const Eigen::Ref<const lmm::Vector>& theta, bool reml) {
            m.set_theta(theta);
            return m.objective(reml);
          },
          py::arg("theta"), py::arg("reml"), py::call_guard<py::gil_scoped_release>(),
          "set θ and return the ML deviance or REML criterion")
      .def("gradient", &lmm::Model::gradient, py::arg("reml"), py::call_guard<py::gil_scoped_release>(),
           "exact gradient of the objective in θ at the current θ")
      .def(
          "gradient_parts",
          [](const lmm::Model& m, bool reml, bool working) {
            lmm::Model::GradientParts parts = m.gradient_parts(reml, working);
            return std::make_pair(std::move(parts.logdet), std::move(parts.pwrss));
          },
          py::arg("reml"), py::arg("working") = false, py::call_guard<py::gil_scoped_release>(),
          "(∂ log-determinants / ∂θ, ∂ r² / ∂θ) at the current θ (θ̃ when working): "
          "gradient = logdet + dof / r² · pwrss")
      .def(
          "evaluate_with_gradient",
          [](lmm::Model& m, const Eigen::Ref<const lmm::Vector>& theta, bool reml) {
            m.set_theta(theta);
            return std::make_pair(m.objective(reml), m.gradient(reml));
          },
          py::arg("theta"), py::arg("reml"), py::call_guard<py::gil_scoped_release>(),
          "set θ and return (objective, gradient)")
      .def_property_readonly("theta", &lmm::Model::theta)
      .def(
          "lambda_",
          [](const lmm::Model& m, lmm::Index k) {
            if (k < 0 || k >= m.nterms()) throw py::index_error("term index out of range");
            return m.lambda(k);
          },
          py::arg("k"), "λ of model term k at the current θ")
      .def_property_readonly("pwrss", &lmm::Model::pwrss)
      .def_property_readonly("ldL2", &lmm::Model::ldL2)
      .def_property_readonly("ldRX2", &lmm::Model::ldRX2)
      .def(
          "solve",
          [](const lmm::Model& m) {
            lmm::Vector u, beta;
            m.solve(u, beta);
            return py::make_tuple(u, beta);
          },
          "(u, beta): spherical random effects (model term order) and fixed effects")
      .def(
          "b",
          [](const lmm::Model& m, const lmm::Vector& u) {
            lmm::Index q = 0;
            for (const auto& s : m.shapes()) q += s.q();
            if (u.size() != q) throw std::invalid_argument("u has the wrong length");
            return m.b(u);
          },
          py::arg("u"), "conditional modes Λu")
      .def("sigma", &lmm::Model::sigma, py::arg("reml"))
      .def("vcov_beta", &lmm::Model::vcov_beta, py::arg("reml"))
      .def("conditional_variances", &lmm::Model::conditional_variances, py::call_guard<py::gil_scoped_release>(),
           "per model term, p × (p·ℓ): block j is λ W_jj λ' (W = (Λ'Z'ZΛ + I)⁻¹), condVar / σ²")
      .def("fit", &fit_model, py::arg("reml"), py::arg("theta_start") = py::none(),
           py::arg("theta_scale") = py::none(), py::arg("max_evaluations") = lmm::FitOptions{}.max_evaluations,
           py::arg("max_iterations") = lmm::FitOptions{}.max_iterations,
           py::arg("gradient_tolerance") = lmm::FitOptions{}.gradient_tolerance,
           py::arg("gradient_tolerance_rel") = lmm::FitOptions{}.gradient_tolerance_rel,
           py::arg("relative_decrease_tolerance") = lmm::FitOptions{}.relative_decrease_tolerance,
           py::arg("memory") = lmm::FitOptions{}.memory, py::arg("trace") = py::none(),
           py::arg("trace_interval") = 0.0,
           "minimize the criterion over θ (L-BFGS-B, exact gradient, restarts off the boundary);\n"
           "leaves θ at the optimum. trace(evaluation, value) is called after each evaluation\n"
           "(at most once per trace_interval seconds when that is positive).")
      .def("fit_many", &fit_many, py::arg("terms"), py::arg("X"), py::arg("Y"), py::arg("R"), py::arg("reml"),
           py::arg("threads") = 1, py::arg("block") = lmm::ManyOptions{}.block, py::arg("warm_start") = false,
           py::arg("theta_start") = py::none(), py::arg("theta_scale") = py::none(), py::arg("max_evaluations") = lmm::FitOptions{}.max_evaluations,
           py::arg("max_iterations") = lmm::FitOptions{}.max_iterations,
           py::arg("gradient_tolerance") = lmm::FitOptions{}.gradient_tolerance,
           py::arg("gradient_tolerance_rel") = lmm::FitOptions{}.gradient_tolerance_rel,
           py::arg("relative_decrease_tolerance") = lmm::FitOptions{}.relative_decrease_tolerance,
           py::arg("memory") = lmm::FitOptions{}.memory, py::arg("progress") = py::none(),
           py::arg("progress_interval") = lmm::ManyOptions{}.progress_interval,
           "fit each column of Y (n x m) as the response of this design (terms and X as at construction;\n"
           "R: X_c = QR), in threads, from theta_start (default: fit's start); the model itself is not\n"
           "changed. A dict of per-response arrays (theta: ntheta x m, beta and se: p x m for X as given,\n"
           "sigma, criterion, converged, ...,\n"
           "error: '' where fitted). progress(done) is called about every progress_interval seconds.");
}
