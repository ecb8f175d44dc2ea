## Reference values for lmm's statsmodels-compatible API (tests/compat/test_statsmodels.py):
## lme4 fits of the models of statsmodels' MixedLM documentation, where statsmodels'
## optimizer stops short of the optimum and lmm is compared with lme4 instead.
##
## Run from the repository root:   Rscript tests/reference/make_statsmodels_reference.R
## Writes tests/reference/statsmodels_reference.json.
##
## statsmodels' model ↔ lme4's: groups = Pig with re_formula "~Time" is (Time | Pig); the
## independent random coefficients (free = diagonal) are (1 | Pig) + (0 + Time | Pig); a
## variance component "0 + cask" within groups = batch is (1 | batch:cask).
## statsmodels' scale is sigma(fit)^2, its cov_re the group's VarCorr matrix, its vcomp
## the component's variance, its llf logLik(fit) (the REML log-likelihood for REML fits).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
out_path <- file.path("tests", "reference", "statsmodels_reference.json")

data <- list(dietox = load_dataset("dietox"), pastes = load_dataset("pastes"))

## The lower of the tightened nloptwrap and bobyqa fits (common.R's settings).
best_fit <- function(formula, d, reml) {
  fits <- lapply(optimizers, function(ctrl) lmer(as.formula(formula), data = d, REML = reml, control = ctrl))
  obj <- vapply(fits, function(m) if (reml) REMLcrit(m) else deviance(m), 0)
  fits[[which.min(obj)]]
}

record <- function(id, formula, dataset, reml) {
  m <- best_fit(formula, data[[dataset]], reml)
  vc <- VarCorr(m)
  re <- ranef(m)
  cat(sprintf("%-26s done\n", id))
  list(id = id, formula = formula, dataset = dataset, REML = reml,
       logLik = as.numeric(logLik(m)), objective = if (reml) REMLcrit(m) else deviance(m),
       scale = sigma(m)^2, beta = obj(fixef(m)),
       varcorr = lapply(vc, function(v) lapply(seq_len(nrow(v)), function(i) arr(v[i, ]))),
       varcorr_names = lapply(vc, function(v) arr(colnames(v))),
       ranef = lapply(re, function(r) c(list(levels = arr(rownames(r))),
                                        lapply(as.list(r), arr))))
}

fits <- list(
  record("dietox_intercept_REML", "Weight ~ Time + (1 | Pig)", "dietox", TRUE),
  record("dietox_intercept_ML", "Weight ~ Time + (1 | Pig)", "dietox", FALSE),
  record("dietox_slope_REML", "Weight ~ Time + (Time | Pig)", "dietox", TRUE),
  record("dietox_slope_ML", "Weight ~ Time + (Time | Pig)", "dietox", FALSE),
  record("dietox_independent_REML", "Weight ~ Time + (1 | Pig) + (0 + Time | Pig)", "dietox", TRUE),
  record("pastes_cask_REML", "strength ~ 1 + (1 | batch) + (1 | batch:cask)", "pastes", TRUE),
  record("pastes_cask_ML", "strength ~ 1 + (1 | batch) + (1 | batch:cask)", "pastes", FALSE)
)

reference <- list(
  generated_by = "tests/reference/make_statsmodels_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  optimizers = obj(optimizer_text),
  notes = arr(c(
    "each fit: the lower criterion of common.R's tightened nloptwrap and bobyqa fits",
    "varcorr: per group name, VarCorr(fit)'s covariance matrix as rows (varcorr_names: its columns)",
    "ranef: ranef(fit) per group name: levels, then one array per coefficient")),
  fits = fits
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
