// fit_csv: fit a linear mixed model to the columns of a CSV file with the
// installed lmm C++ library, and print lme4-style estimates.
//
//   fit_csv sleepstudy.csv --response Reaction --fixed Days --random Subject:Days
//
// fits Reaction ~ 1 + Days + (1 + Days | Subject) by REML. Run with --help for
// the options.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <lmm/fit.hpp>

#include "csv.hpp"

namespace {

const char* const kUsage = R"(usage: fit_csv DATA.csv --response COL [options]

Fits  COL ~ 1 + FIXED... + (1 + SLOPES... | GROUP) + ...  by REML, as lme4's lmer.

  --response COL       response column (numeric)
  --fixed COLS         fixed-effects columns, comma-separated; repeatable. A text
                       column enters as treatment contrasts (levels sorted, the
                       first is the reference), as R's factor().
  --no-intercept       no intercept in the fixed effects
  --random SPEC        a random-effects term with unstructured covariance:
                         GROUP                (1 | GROUP)
                         GROUP:COL1,COL2      (1 + COL1 + COL2 | GROUP)
                         GROUP:0,COL1         (0 + COL1 | GROUP)
                       repeatable; GROUP may be a numeric or a text column
  --random-diag SPEC   the same with a diagonal covariance, lme4's (... || GROUP)
  --structure NAME SPEC  the same with a structured covariance: us, diag, diag_hom, cs,
                       cs_hom, ar1, ar1_het, toep, toep_hom (lme4 2.x's cs(... | GROUP), ...)
  --ml                 maximum likelihood instead of REML
  --ranef              also print the conditional modes of the random effects
  --max-iter N         largest number of optimizer iterations (default 1000)
  -h, --help           this text

Rows with a missing value (empty, NA, NaN) in a used column are dropped.
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RandomSpec {
  std::string group;
  bool intercept = true;
  std::vector<std::string> columns;
  lmm::Covariance covariance = lmm::Covariance::Unstructured;
};

struct Options {
  std::string path, response;
  std::vector<std::string> fixed;
  std::vector<RandomSpec> random;
  bool intercept = true;
  bool reml = true;
  bool ranef = false;
  bool help = false;
  lmm::Index max_iterations = 1000;
};

std::vector<std::string> split_list(const std::string& s, const std::string& what) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) throw UsageError("empty column name in " + what + " '" + s + "'");
    out.push_back(item);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

RandomSpec parse_random(const std::string& spec, lmm::Covariance covariance) {
  RandomSpec r;
  r.covariance = covariance;
  const auto colon = spec.find(':');
  r.group = spec.substr(0, colon);
  if (r.group.empty()) throw UsageError("--random '" + spec + "': no grouping column before ':'");
  if (colon != std::string::npos) {
    for (const auto& c : split_list(spec.substr(colon + 1), "--random")) {
      if (c == "0" || c == "-1") {
        r.intercept = false;
      } else if (c == "1") {
        r.intercept = true;
      } else {
        r.columns.push_back(c);
      }
    }
  }
  if (!r.intercept && r.columns.empty()) throw UsageError("--random '" + spec + "': a term with no columns");
  return r;
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], value;
    const bool has_value = a.rfind("--", 0) == 0 && a.find('=') != std::string::npos;
    if (has_value) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
    }
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      o.help = true;
      return o;
    } else if (a == "--response") {
      o.response = next();
    } else if (a == "--fixed") {
      for (const auto& c : split_list(next(), "--fixed")) o.fixed.push_back(c);
    } else if (a == "--random") {
      o.random.push_back(parse_random(next(), lmm::Covariance::Unstructured));
    } else if (a == "--random-diag") {
      o.random.push_back(parse_random(next(), lmm::Covariance::Diagonal));
    } else if (a == "--structure") {
      const lmm::Covariance c = lmm::covariance_from_name(next());
      o.random.push_back(parse_random(next(), c));
    } else if (a == "--no-intercept") {
      o.intercept = false;
    } else if (a == "--ml") {
      o.reml = false;
    } else if (a == "--ranef") {
      o.ranef = true;
    } else if (a == "--max-iter") {
      const std::string v = next();
      char* end = nullptr;
      o.max_iterations = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || o.max_iterations < 1)
        throw UsageError("--max-iter needs a positive integer, got '" + v + "'");
    } else if (a.rfind("-", 0) == 0 && a.size() > 1) {
      throw UsageError("unknown option " + a);
    } else if (o.path.empty()) {
      o.path = a;
    } else {
      throw UsageError("more than one data file ('" + o.path + "', '" + a + "')");
    }
  }
  if (o.path.empty()) throw UsageError("no data file given");
  if (o.response.empty()) throw UsageError("--response is required");
  if (o.random.empty()) throw UsageError("at least one --random term is required");
  return o;
}

// Columns of a model matrix (fixed effects or one term's z) over the used rows.
struct Columns {
  std::vector<std::string> names;
  std::vector<std::vector<double>> values;
  bool full_rank_part = false;  // an intercept or a factor with all its levels is already in

  void add(const csv::Column& c, const std::vector<std::size_t>& rows) {
    if (c.numeric) {
      std::vector<double> v;
      for (auto r : rows) v.push_back(c.values[r]);
      names.push_back(c.name);
      values.push_back(std::move(v));
      full_rank_part = true;
      return;
    }
    // A factor: treatment contrasts after an intercept, all levels otherwise (R's rule).
    std::vector<std::string> levels;
    for (auto r : rows) levels.push_back(c.text[r]);
    std::sort(levels.begin(), levels.end());
    levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
    for (std::size_t l = full_rank_part ? 1 : 0; l < levels.size(); ++l) {
      std::vector<double> v;
      for (auto r : rows) v.push_back(c.text[r] == levels[l] ? 1.0 : 0.0);
      names.push_back(c.name + levels[l]);
      values.push_back(std::move(v));
    }
    full_rank_part = true;
  }

  void add_intercept(std::size_t n) {
    names.push_back("(Intercept)");
    values.emplace_back(n, 1.0);
    full_rank_part = true;
  }

  lmm::Matrix matrix(std::size_t n) const {
    lmm::Matrix M(static_cast<lmm::Index>(n), static_cast<lmm::Index>(values.size()));
    for (std::size_t j = 0; j < values.size(); ++j)
      for (std::size_t i = 0; i < n; ++i) M(static_cast<lmm::Index>(i), static_cast<lmm::Index>(j)) = values[j][i];
    return M;
  }
};

// A term's data as the library needs it, owned here.
struct Term {
  RandomSpec spec;
  std::vector<std::string> levels;  // level labels, level code order
  lmm::IntVector codes;
  lmm::Matrix z;
  std::vector<std::string> cnames;
};

struct Design {
  lmm::Vector y;
  lmm::Matrix X;
  std::vector<std::string> xnames;
  std::vector<Term> terms;
  std::size_t ndropped = 0;
};

// Level codes of a grouping column over the used rows; levels sorted as R's
// factor() sorts them (numerically for numbers).
void group_codes(const csv::Column& c, const std::vector<std::size_t>& rows, Term& t) {
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) order[i] = i;
  auto less = [&](std::size_t a, std::size_t b) {
    return c.numeric ? c.values[rows[a]] < c.values[rows[b]] : c.text[rows[a]] < c.text[rows[b]];
  };
  std::stable_sort(order.begin(), order.end(), less);
  t.codes.resize(static_cast<lmm::Index>(rows.size()));
  std::int32_t code = -1;
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (k == 0 || less(order[k - 1], order[k])) {
      ++code;
      t.levels.push_back(c.text[rows[order[k]]]);
    }
    t.codes[static_cast<lmm::Index>(order[k])] = code;
  }
}

Design build_design(const csv::Table& table, const Options& o) {
  std::vector<const csv::Column*> used{&table.column(o.response)};
  for (const auto& f : o.fixed) used.push_back(&table.column(f));
  for (const auto& r : o.random) {
    used.push_back(&table.column(r.group));
    for (const auto& c : r.columns) used.push_back(&table.column(c));
  }
  if (!used[0]->numeric) throw std::runtime_error("the response column '" + o.response + "' is not numeric");

  Design d;
  std::vector<std::size_t> rows;
  for (std::size_t r = 0; r < table.nrows; ++r) {
    bool complete = true;
    for (const auto* c : used) complete = complete && !c->missing[r];
    if (complete) rows.push_back(r);
  }
  d.ndropped = table.nrows - rows.size();
  const std::size_t n = rows.size();
  if (n == 0) throw std::runtime_error("no rows without missing values in the used columns");

  d.y.resize(static_cast<lmm::Index>(n));
  for (std::size_t i = 0; i < n; ++i) d.y[static_cast<lmm::Index>(i)] = used[0]->values[rows[i]];

  Columns x;
  if (o.intercept) x.add_intercept(n);
  for (const auto& f : o.fixed) x.add(table.column(f), rows);
  if (x.values.empty()) throw std::runtime_error("the fixed effects have no columns");
  d.X = x.matrix(n);
  d.xnames = x.names;

  for (const auto& spec : o.random) {
    Term t;
    t.spec = spec;
    group_codes(table.column(spec.group), rows, t);
    if (t.levels.size() < 2 || t.levels.size() >= n)
      throw std::runtime_error("grouping column '" + spec.group + "' has " + std::to_string(t.levels.size()) +
                               " levels for " + std::to_string(n) +
                               " observations: a random-effects term needs at least 2 and fewer than the "
                               "observations");
    Columns z;
    if (spec.intercept) z.add_intercept(n);
    for (const auto& c : spec.columns) z.add(table.column(c), rows);
    t.z = z.matrix(n);
    t.cnames = z.names;
    d.terms.push_back(std::move(t));
  }
  return d;
}

std::string formula(const Options& o, const Design& d) {
  std::string f = o.response + " ~ " + (o.intercept ? "1" : "0");
  for (const auto& c : o.fixed) f += " + " + c;
  for (const auto& t : d.terms) {
    std::string lhs = t.spec.intercept ? "1" : "0";
    for (const auto& c : t.spec.columns) lhs += " + " + c;
    const std::string name = lmm::parameterization(t.spec.covariance).name();
    if (t.spec.covariance == lmm::Covariance::Unstructured || t.spec.covariance == lmm::Covariance::Diagonal) {
      f += " + (" + lhs + (t.spec.covariance == lmm::Covariance::Diagonal ? " || " : " | ") + t.spec.group + ")";
    } else {
      const auto cut = name.find('_');
      const std::string variant = cut == std::string::npos ? "" : name.substr(cut + 1);
      f += " + " + name.substr(0, cut) + "(" + lhs + " | " + t.spec.group +
           (variant == "hom" ? ", hom = TRUE" : variant == "het" ? ", hom = FALSE" : "") + ")";
    }
  }
  return f;
}

void print_result(const Options& o, const Design& d, const lmm::FitResult& r) {
  std::printf("Linear mixed model fit by %s (lmm C++ library)\n", r.reml ? "REML" : "maximum likelihood");
  std::printf("Formula: %s\n", formula(o, d).c_str());
  std::printf("   Data: %s (%ld rows used", o.path.c_str(), static_cast<long>(r.nobs));
  if (d.ndropped) std::printf(", %zu with missing values dropped", d.ndropped);
  std::printf(")\n\n");

  std::printf("%s: %.10f\n", r.reml ? "REML criterion at convergence" : "Deviance", r.criterion);
  std::printf("logLik: %.10f   AIC: %.10f   BIC: %.10f   parameters: %ld\n\n", r.loglik, r.aic, r.bic,
              static_cast<long>(r.npar));

  std::printf("theta (lme4's order):\n");
  lmm::Index t = 0;
  for (std::size_t k = 0; k < r.shapes.size(); ++k) {
    const Term& term = d.terms[static_cast<std::size_t>(r.order[k])];
    for (const auto& [row, col] : lmm::theta_positions(r.shapes[k])) {
      std::string name = term.spec.group + "." + term.cnames[static_cast<std::size_t>(row)];
      if (row != col) name += "." + term.cnames[static_cast<std::size_t>(col)];
      std::printf("  %-36s %.10f\n", name.c_str(), r.theta[t++]);
    }
  }

  std::printf("\nRandom effects:\n %-12s %-14s %16s %14s  %s\n", "Groups", "Name", "Variance", "Std.Dev.", "Corr");
  for (std::size_t k = 0; k < r.shapes.size(); ++k) {
    const Term& term = d.terms[static_cast<std::size_t>(r.order[k])];
    const lmm::Matrix& V = r.covariance[k];
    for (lmm::Index i = 0; i < V.rows(); ++i) {
      std::printf(" %-12s %-14s %16.10g %14.10g ", i == 0 ? term.spec.group.c_str() : "",
                  term.cnames[static_cast<std::size_t>(i)].c_str(), V(i, i), std::sqrt(V(i, i)));
      if (term.spec.covariance != lmm::Covariance::Diagonal && term.spec.covariance != lmm::Covariance::DiagonalHomogeneous)
        for (lmm::Index j = 0; j < i; ++j) {
          const double denominator = std::sqrt(V(i, i) * V(j, j));
          std::printf(" %7.4f", denominator > 0 ? V(i, j) / denominator : 0.0);
        }
      std::printf("\n");
    }
  }
  std::printf(" %-12s %-14s %16.10g %14.10g\n", "Residual", "", r.sigma * r.sigma, r.sigma);
  std::printf("Number of obs: %ld, groups:", static_cast<long>(r.nobs));
  std::map<std::string, std::size_t> groups;
  for (const auto& term : d.terms) groups[term.spec.group] = term.levels.size();
  const char* sep = " ";
  for (const auto& [g, nl] : groups) {
    std::printf("%s%s, %zu", sep, g.c_str(), nl);
    sep = "; ";
  }

  std::printf("\n\nFixed effects:\n %-16s %18s %18s %10s\n", "", "Estimate", "Std. Error", "t value");
  for (lmm::Index j = 0; j < r.beta.size(); ++j)
    std::printf(" %-16s %18.10f %18.10f %10.3f\n", d.xnames[static_cast<std::size_t>(j)].c_str(), r.beta[j],
                r.se_beta[j], r.beta[j] / r.se_beta[j]);
  std::printf("\nsigma: %.10f\n", r.sigma);

  if (o.ranef) {
    for (std::size_t k = 0; k < r.shapes.size(); ++k) {
      const Term& term = d.terms[static_cast<std::size_t>(r.order[k])];
      std::printf("\nConditional modes, %s:\n %-12s", term.spec.group.c_str(), "");
      for (const auto& c : term.cnames) std::printf(" %16s", c.c_str());
      std::printf("\n");
      for (lmm::Index j = 0; j < r.b[k].rows(); ++j) {
        std::printf(" %-12s", term.levels[static_cast<std::size_t>(j)].c_str());
        for (lmm::Index c = 0; c < r.b[k].cols(); ++c) std::printf(" %16.10f", r.b[k](j, c));
        std::printf("\n");
      }
    }
  }

  std::printf("\nOptimizer: %s\n", r.message.c_str());
  std::printf("  %ld iterations, %ld evaluations, %ld gradients, %.3g s%s\n", static_cast<long>(r.iterations),
              static_cast<long>(r.evaluations), static_cast<long>(r.gradient_evaluations), r.seconds,
              r.singular ? "; singular fit (a variance at its boundary)" : "");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_args(argc, argv);
    if (o.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    const csv::Table table = csv::read(o.path);
    const Design d = build_design(table, o);
    if (d.ndropped) std::fprintf(stderr, "fit_csv: dropped %zu rows with missing values\n", d.ndropped);

    std::vector<lmm::TermData> terms;
    for (const auto& t : d.terms)
      terms.push_back({Eigen::Map<const lmm::IntVector>(t.codes.data(), t.codes.size()),
                       Eigen::Map<const lmm::Matrix>(t.z.data(), t.z.rows(), t.z.cols()),
                       static_cast<lmm::Index>(t.levels.size()), t.spec.covariance});
    lmm::FitOptions options;
    options.reml = o.reml;
    options.max_iterations = o.max_iterations;
    const lmm::FitResult r = lmm::fit(terms, d.X, d.y, options);
    print_result(o, d, r);
    return r.converged ? 0 : 3;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "fit_csv: %s\n\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fit_csv: error: %s\n", e.what());
    return 1;
  }
}
