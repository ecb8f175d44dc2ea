## Reference values from lme4 for the lmm test suite.
##
## Run from the repository root:   Rscript tests/reference/make_reference.R
## Writes tests/reference/lme4_reference.json (see tests/reference/README.md).
##
## The data are read from python/lmm/datasets/data/ through schema.json, exactly as
## lmm.datasets.load() reads them (same values, same factor levels in the same
## order), so the Python tests and this script fit identical data.
##
## Every model is fitted twice with tightened optimizer tolerances, once with
## nloptwrap (NLopt BOBYQA, lme4's default optimizer) and once with minqa's bobyqa;
## the fit with the lower objective is recorded, and the other's objective is kept
## as `objective_other` so the precision of the optimum can be judged.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

## Shared code (data loader, optimizer settings, JSON writer) lives in common.R, next
## to this script; it is sourced after the packages are attached.
script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))

out_path <- file.path("tests", "reference", "lme4_reference.json")

## ---------------------------------------------------------------- data

## The exported real data must be identical to the R package objects.
check_same <- function(df, orig) {
  orig <- as.data.frame(orig)[, names(df)]
  for (nm in names(df)) {
    stopifnot(identical(class(df[[nm]]), class(orig[[nm]])))
    if (is.factor(df[[nm]])) {
      stopifnot(identical(levels(df[[nm]]), levels(orig[[nm]])),
                identical(as.character(df[[nm]]), as.character(orig[[nm]])))
    } else stopifnot(identical(df[[nm]], orig[[nm]]))
  }
}

data <- lapply(setNames(nm = names(schema)), load_dataset)
check_same(data$sleepstudy, lme4::sleepstudy)
check_same(data$dyestuff, lme4::Dyestuff)
check_same(data$dyestuff2, lme4::Dyestuff2)
check_same(data$penicillin, lme4::Penicillin)
check_same(data$pastes, lme4::Pastes)
check_same(data$insteval, lme4::InstEval)
check_same(data$machines, nlme::Machines)

## ---------------------------------------------------------------- models

models <- list(
  list("sleepstudy_slope",      "sleepstudy",    "Reaction ~ Days + (Days | Subject)"),
  list("sleepstudy_uncorr",     "sleepstudy",    "Reaction ~ Days + (Days || Subject)"),
  list("sleepstudy_intercept",  "sleepstudy",    "Reaction ~ Days + (1 | Subject)"),
  list("sleepstudy_quadratic",  "sleepstudy",    "Reaction ~ Days + I(Days^2) + (Days | Subject)"),
  list("sleepstudy_log_split",  "sleepstudy",    "log(Reaction) ~ Days + (1 | Subject) + (0 + Days | Subject)"),
  list("dyestuff",              "dyestuff",      "Yield ~ 1 + (1 | Batch)"),
  list("dyestuff2",             "dyestuff2",     "Yield ~ 1 + (1 | Batch)"),
  list("penicillin",            "penicillin",    "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list("pastes_nested",         "pastes",        "strength ~ 1 + (1 | batch/cask)"),
  list("pastes_sample",         "pastes",        "strength ~ 1 + (1 | batch) + (1 | sample)"),
  list("machines_nested",       "machines",      "score ~ Machine + (1 | Worker/Machine)"),
  list("machines_vector",       "machines",      "score ~ Machine + (0 + Machine | Worker)"),
  list("bloodpressure",         "bloodpressure", "sbp ~ age + (1 + age | subject)"),
  list("geography",             "geography",     "bmi ~ 1 + (1 | state/city/neighborhood)"),
  list("emails",                "emails",        "emails ~ 1 + (1 | sender) + (1 | receiver)"),
  list("insteval",              "insteval",      "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", slow = TRUE)
)

## optimizers, optimizer_text: see common.R

RANEF_MAX_LEVELS <- 20  # for slow (large) models only the first levels are stored

## ---------------------------------------------------------------- one fit

fit_model <- function(formula, df, REML, control) {
  warns <- character(0)
  fit <- withCallingHandlers(
    lmer(as.formula(formula), data = df, REML = REML, control = control),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {  # e.g. "boundary (singular) fit: see help('isSingular')"
      warns <<- c(warns, trimws(conditionMessage(m)))
      invokeRestart("muffleMessage")
    })
  list(fit = fit, warnings = warns)
}

ranef_record <- function(fit, max_levels) {
  re <- ranef(fit, condVar = FALSE)
  lapply(re, function(tab) {
    n <- nrow(tab)
    keep <- if (is.finite(max_levels)) seq_len(min(n, max_levels)) else seq_len(n)
    list(nlevels = n,
         truncated = length(keep) < n,
         levels = arr(rownames(tab)[keep]),
         columns = lapply(as.list(tab), function(col) arr(col[keep])))
  })
}

varcorr_record <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  lapply(seq_len(nrow(vc)), function(i) list(
    grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i],
    vcov = vc$vcov[i], sdcor = vc$sdcor[i]))
}

reference_fit <- function(spec, REML) {
  id <- spec[[1]]; dataset <- spec[[2]]; formula <- spec[[3]]
  slow <- isTRUE(spec$slow)
  df <- data[[dataset]]
  fits <- lapply(optimizers, function(ctrl) fit_model(formula, df, REML, ctrl))
  objective_of <- function(f) if (REML) REMLcrit(f$fit) else deviance(f$fit)
  objs <- vapply(fits, objective_of, 1)
  best <- names(which.min(objs))
  other <- setdiff(names(objs), best)
  fit <- fits[[best]]$fit

  theta <- getME(fit, "theta")
  lower <- getME(fit, "lower")
  devfun <- lmer(as.formula(formula), data = df, REML = REML, devFunOnly = TRUE)
  ## Fixed-theta points: lme4's start (1 on the diagonal, 0 off it), the optimum,
  ## and two deterministic perturbations of the optimum kept within the bounds.
  start <- ifelse(lower == 0, 1, 0)
  points <- list(start, unname(theta),
                 pmax(lower, unname(theta) * 1.3 + 0.05),
                 pmax(lower, unname(theta) * 0.7))
  evals <- lapply(points, function(th) list(theta = arr(th), value = devfun(th)))
  stopifnot(abs(evals[[2]]$value - objs[[best]]) < 1e-8 * abs(objs[[best]]))

  cmp <- getME(fit, "devcomp")$cmp
  vc <- as.matrix(vcov(fit))
  ll <- logLik(fit)
  rec <- list(
    id = paste0(id, if (REML) "_REML" else "_ML"),
    model = id,
    dataset = dataset,
    formula = formula,
    REML = REML,
    slow = slow,
    optimizer = optimizer_text[[best]],
    objective_other = objs[[other]],
    optimizer_other = optimizer_text[[other]],
    feval = fit@optinfo$feval,
    warnings = arr(unique(trimws(c(fits[[best]]$warnings, fit@optinfo$conv$lme4$messages)))),
    theta = obj(theta),
    lower = arr(ifelse(is.finite(lower), lower, NA)),
    beta = obj(fixef(fit)),
    se = obj(sqrt(diag(vc))),
    vcov = lapply(seq_len(nrow(vc)), function(i) arr(vc[i, ])),
    sigma = sigma(fit),
    objective = objs[[best]],
    logLik = as.numeric(ll),
    df = attr(ll, "df"),
    AIC = AIC(fit),
    BIC = BIC(fit),
    nobs = nobs(fit),
    ngrps = obj(ngrps(fit)),
    singular = isSingular(fit),
    devcomp = obj(cmp[c("ldL2", "ldRX2", "wrss", "ussq", "pwrss", "drsum",
                        "dev", "REML", "sigmaML", "sigmaREML")]),
    varcorr = varcorr_record(fit),
    ranef = ranef_record(fit, if (slow) RANEF_MAX_LEVELS else Inf),
    devfun = evals
  )
  rec$devcomp <- rec$devcomp[!is.na(unlist(rec$devcomp))]
  cat(sprintf("%-28s %s obj=%.10f (other %+.1e) theta=%s %s\n", rec$id, best,
              rec$objective, objs[[other]] - objs[[best]],
              paste(sprintf("%.6g", theta), collapse = ","),
              if (rec$singular) "SINGULAR" else ""))
  if (length(rec$warnings)) cat("   warnings:", unlist(rec$warnings), sep = "\n   ")
  rec
}

## ---------------------------------------------------------------- run

results <- list()
for (spec in models) for (REML in c(TRUE, FALSE)) {
  results[[length(results) + 1]] <- reference_fit(spec, REML)
}

## Known values (lme4 documentation and the design notes).
byid <- setNames(results, vapply(results, `[[`, "", "id"))
known <- function(id, value, expected, tol) {
  if (abs(value - expected) > tol) stop(sprintf("%s: %.10f, expected %.10f", id, value, expected))
}
known("sleepstudy start", byid$sleepstudy_slope_REML$devfun[[1]]$value, 1773.6803306160, 1e-9)
known("sleepstudy opt", byid$sleepstudy_slope_REML$objective, 1743.6282720, 1e-6)
known("dyestuff ML", byid$dyestuff_ML$objective, 327.32706, 1e-5)
known("dyestuff start", byid$dyestuff_REML$devfun[[1]]$value, 319.7923890420, 1e-9)
known("insteval REML", byid$insteval_REML$objective, 237733.8341, 1e-3)

reference <- list(
  generated_by = "tests/reference/make_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  nloptr_version = as.character(packageVersion("nloptr")),
  minqa_version = as.character(packageVersion("minqa")),
  optimizers = obj(optimizer_text),
  notes = arr(c(
    "objective is REMLcrit(fit) for REML fits and deviance(fit) for ML fits",
    "lower: getME(fit, 'lower'); null means -Inf",
    "devfun: values of lmer(..., devFunOnly = TRUE) at lme4's start theta, the optimum, optimum*1.3+0.05 and optimum*0.7 (clamped to lower)",
    "ranef of slow fits holds only the first 20 levels of each grouping factor")),
  fits = results
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
