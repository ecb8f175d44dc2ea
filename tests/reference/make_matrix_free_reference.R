## Reference values for the tests of lmm's matrix-free REML method: InstEval with two
## crossed scalar terms, y ~ 1 + service + (1 | s) + (1 | d) (2972 students, 1128
## lecturers, 73421 ratings), large enough that the method uses its stochastic traces.
##
## Run from the repository root:   Rscript tests/reference/make_matrix_free_reference.R
## Writes tests/reference/matrix_free_reference.json (~1 minute).
##
## Fields as in lme4_reference.json (see README.md, "Per-fit fields"): the lower
## criterion of common.R's tightened nloptwrap and bobyqa fits, ranef's first 20 levels
## per group, and devfun: lmer(..., devFunOnly = TRUE) at the optimum θ̂, θ̂·0.5 and θ̂·2.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
out_path <- file.path("tests", "reference", "matrix_free_reference.json")

## Read through schema.json as lmm.datasets.load() does (s, d, service are factors,
## service with levels 0, 1), and check it is lme4's InstEval.
insteval <- load_dataset("insteval")
ref <- as.data.frame(lme4::InstEval)[, names(insteval)]
for (nm in names(insteval)) stopifnot(identical(levels(insteval[[nm]]), levels(ref[[nm]])),
                                      identical(as.character(insteval[[nm]]), as.character(ref[[nm]])))

RANEF_MAX_LEVELS <- 20

record <- function(id, formula, reml) {
  fits <- lapply(optimizers, function(ctrl) lmer(as.formula(formula), data = insteval, REML = reml, control = ctrl))
  objs <- vapply(fits, function(m) if (reml) REMLcrit(m) else deviance(m), 0)
  best <- names(which.min(objs)); other <- setdiff(names(objs), best)
  fit <- fits[[best]]
  theta <- getME(fit, "theta")
  devfun <- lmer(as.formula(formula), data = insteval, REML = reml, devFunOnly = TRUE)
  points <- list(unname(theta), unname(theta) * 0.5, unname(theta) * 2)
  evals <- lapply(points, function(th) list(theta = arr(th), value = devfun(th)))
  stopifnot(abs(evals[[1]]$value - objs[[best]]) < 1e-8 * abs(objs[[best]]))
  ll <- logLik(fit)
  re <- ranef(fit, condVar = FALSE)
  cat(sprintf("%-18s %s obj=%.10f (other %+.1e) theta=%s\n", id, best, objs[[best]],
              objs[[other]] - objs[[best]], paste(sprintf("%.8g", theta), collapse = ",")))
  list(id = id, model = "insteval_sd", dataset = "insteval", formula = formula, REML = reml,
       slow = TRUE,
       optimizer = optimizer_text[[best]], objective_other = objs[[other]],
       optimizer_other = optimizer_text[[other]], feval = fit@optinfo$feval,
       warnings = arr(unique(trimws(fit@optinfo$conv$lme4$messages))),
       theta = obj(theta), lower = arr(getME(fit, "lower")),
       beta = obj(fixef(fit)), se = obj(sqrt(diag(as.matrix(vcov(fit))))),
       sigma = sigma(fit), objective = objs[[best]],
       logLik = as.numeric(ll), df = attr(ll, "df"),
       nobs = nobs(fit), ngrps = obj(ngrps(fit)), singular = isSingular(fit),
       ranef = lapply(re, function(tab) {
         keep <- seq_len(min(nrow(tab), RANEF_MAX_LEVELS))
         list(nlevels = nrow(tab), truncated = length(keep) < nrow(tab),
              levels = arr(rownames(tab)[keep]),
              columns = lapply(as.list(tab), function(col) arr(col[keep])))
       }),
       devfun = evals)
}

formula <- "y ~ 1 + service + (1 | s) + (1 | d)"
fits <- list(record("insteval_sd_REML", formula, TRUE),
             record("insteval_sd_ML", formula, FALSE))

reference <- list(
  generated_by = "tests/reference/make_matrix_free_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  nloptr_version = as.character(packageVersion("nloptr")),
  minqa_version = as.character(packageVersion("minqa")),
  optimizers = obj(optimizer_text),
  notes = arr(c(
    "each fit: the lower criterion of common.R's tightened nloptwrap and bobyqa fits",
    "objective is REMLcrit(fit) for REML fits and deviance(fit) for ML fits",
    "devfun: values of lmer(..., devFunOnly = TRUE) at the optimum, optimum*0.5 and optimum*2",
    "ranef holds only the first 20 levels of each grouping factor")),
  fits = fits
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
