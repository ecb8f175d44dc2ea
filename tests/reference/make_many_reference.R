## Reference values for many responses on one design (lmm.lmer_many, issue 17;
## tests/test_many_lme4.py): lme4's fits of simulated responses on sleepstudy's
## design (Days + (Days | Subject), REML and ML) and on Penicillin's crossed design
## with prior weights (1 + (1 | plate) + (1 | sample)).
##
## Run from the repository root:   Rscript tests/reference/make_many_reference.R
## Writes tests/reference/many_reference.json. Needs lme4 and jsonlite.
##
## The simulated responses are written into the JSON, so the tests need no R RNG.
## Per design, the first response (the data set's own, complete) is fitted with
## lmer and every other complete one with refit() of that fit, lme4's way of fitting
## many responses on one design (refit starts at the first fit's θ). refit() cannot
## drop rows, so responses with missing values get their own lmer call (na.omit);
## nor, in lme4 1.1.31, refit a REML fit with more than one fixed effect (it uses
## n - 1 residual df instead of n - p, see fit_design), so those designs' responses
## get their own lmer calls too (refit_keeps_REML = false in the JSON).
## Each fit is made twice, with common.R's tightened nloptwrap and bobyqa settings
## (passed to refit() too: without control = it falls back to lme4's default
## tolerances), and the lower criterion is recorded; the other's is objective_other.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
out_path <- file.path("tests", "reference", "many_reference.json")

SEED <- 20261205L
set.seed(SEED)

## ---------------------------------------------------------------- responses
## Responses are rounded to 4 decimals (as the other simulated references are).

sleep <- load_dataset("sleepstudy")
subj <- as.integer(sleep$Subject)
days <- sleep$Days
nsub <- nlevels(sleep$Subject)
n_sleep <- nrow(sleep)

## One response of Days + (Days | Subject): intercept and slope SDs, their correlation,
## the residual SD.
sim_sleep <- function(sd_int, sd_slope, rho, sigma, mean = 250, slope = 10) {
  a <- rnorm(nsub)
  b <- rho * a + sqrt(1 - rho^2) * rnorm(nsub)
  round(mean + slope * days + sd_int * a[subj] + sd_slope * b[subj] * days + rnorm(n_sleep, sd = sigma), 4)
}

Y_sleep <- list(Reaction = sleep$Reaction)
for (j in 1:20) {   # variance components spread over two orders of magnitude
  Y_sleep[[sprintf("sim%02d", j)]] <- sim_sleep(exp(runif(1, log(2), log(60))), exp(runif(1, log(1), log(15))),
                                                runif(1, -0.8, 0.8), exp(runif(1, log(5), log(40))))
}
Y_sleep$no_subject <- round(300 + 5 * days + rnorm(n_sleep, sd = 30), 4)      # no subject effects: singular
Y_sleep$no_slope <- sim_sleep(25, 0, 0, 20)                                     # no slope variation
Y_sleep$tiny_slope_var <- sim_sleep(30, 0.2, 0.5, 25)
Y_sleep$small_sigma <- sim_sleep(30, 8, 0.3, 1)                                 # residual SD ≪ random effects
Y_sleep$offset_1e6 <- round(Y_sleep$sim01 + 1e6, 4)                             # a large offset
Y_sleep$scaled_1e_3 <- round(Y_sleep$sim02 * 1e-3, 7)                           # a small scale
na_rows <- list(na1 = 17L, na2 = c(3L, 95L), na5 = c(1L, 2L, 60L, 121L, 180L))
for (nm in names(na_rows)) {                                                    # a few missing values
  y <- sim_sleep(exp(runif(1, log(5), log(40))), exp(runif(1, log(1), log(10))), runif(1, -0.5, 0.5), 25)
  y[na_rows[[nm]]] <- NA
  Y_sleep[[nm]] <- y
}

pen <- load_dataset("penicillin")
n_pen <- nrow(pen)
pen_w <- 0.5 + ((7 * seq_len(n_pen)) %% 5) / 4          # as weights_offsets.R
plate <- as.integer(pen$plate)
sample_ <- as.integer(pen$sample)

## One response of 1 + (1 | plate) + (1 | sample) with prior weights pen_w.
sim_pen <- function(sd_plate, sd_sample, sigma) {
  round(23 + sd_plate * rnorm(nlevels(pen$plate))[plate] + sd_sample * rnorm(nlevels(pen$sample))[sample_] +
        rnorm(n_pen, sd = sigma) / sqrt(pen_w), 4)
}
Y_pen <- list(diameter = pen$diameter)
for (j in 1:8) {
  Y_pen[[sprintf("sim%02d", j)]] <- sim_pen(exp(runif(1, log(0.2), log(3))), exp(runif(1, log(0.5), log(5))),
                                            exp(runif(1, log(0.2), log(2))))
}
Y_pen$no_sample <- sim_pen(1, 0, 0.6)                    # no sample effects
Y_pen$no_plate <- sim_pen(0, 2, 0.6)                     # no plate effects
Y_pen$offset_1e6 <- round(Y_pen$sim01 + 1e6, 4)
y <- sim_pen(0.8, 2, 0.5)
y[c(5L, 77L, 140L)] <- NA
Y_pen$na3 <- y

## Responses that are another plus a constant (the same fit but for the intercept;
## lme4 loses digits to the constant, lmm should not).
SHIFTS <- list(list(name = "offset_1e6", of = "sim01", by = 1e6))

## ---------------------------------------------------------------- fits

## lmer (or refit) capturing warnings and messages.
quietly <- function(expr) {
  warns <- character(0)
  value <- withCallingHandlers(expr,
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      warns <<- c(warns, trimws(conditionMessage(m)))
      invokeRestart("muffleMessage")
    })
  list(fit = value, warnings = warns)
}

criterion <- function(fit) if (isREML(fit)) REMLcrit(fit) else deviance(fit)

fit_lmer <- function(formula, d, REML, control, weights) {
  args <- list(formula = as.formula(paste("y", formula)), data = d, REML = REML, control = control)
  if (!is.null(weights)) args$weights <- weights
  quietly(do.call(lme4::lmer, args))
}

record <- function(name, method, fits) {
  crit <- vapply(fits, function(f) criterion(f$fit), 0)
  best <- names(which.min(crit))
  fit <- fits[[best]]$fit
  vc <- as.matrix(vcov(fit))
  theta <- getME(fit, "theta")
  rec <- list(
    name = name,
    method = method,
    optimizer = optimizer_text[[best]],
    objective_other = unname(crit[names(crit) != best]),
    feval = fit@optinfo$feval,
    warnings = arr(unique(trimws(c(fits[[best]]$warnings, fit@optinfo$conv$lme4$messages)))),
    theta = obj(theta),
    beta = obj(fixef(fit)),
    se = obj(sqrt(diag(vc))),
    sigma = sigma(fit),
    criterion = unname(crit[best]),
    nobs = nobs(fit),
    singular = isSingular(fit)
  )
  cat(sprintf("  %-16s %-6s %-9s crit=%.10f (other %+.1e) theta=%s %s\n", name, method, best, rec$criterion,
              rec$objective_other - rec$criterion, paste(sprintf("%.5g", theta), collapse = ","),
              if (rec$singular) "SINGULAR" else ""))
  rec
}

## The design's fits: lmer for the first response, refit() for the other complete
## ones, lmer for those with missing values.
fit_design <- function(id, dataset, formula, d, Y, REML, weights = NULL) {
  cat(id, "\n")
  stopifnot(!anyNA(Y[[1]]))
  d$y <- Y[[1]]
  first <- lapply(optimizers, function(ctrl) fit_lmer(formula, d, REML, ctrl, weights))
  recs <- list(record(names(Y)[1], "lmer", first))
  ## lme4 1.1.31's refit() rebuilds the response module with REML = isREML(object),
  ## i.e. REML = 1 instead of the number of fixed effects p: a REML refit with p > 1
  ## optimizes the wrong criterion (n - 1 for n - p). Where it does, lmer is used.
  probe <- refit(first$nloptwrap$fit, Y[[1]], control = optimizers$nloptwrap)
  refit_ok <- identical(probe@resp$REML, first$nloptwrap$fit@resp$REML)
  for (nm in names(Y)[-1]) {
    y <- Y[[nm]]
    if (anyNA(y) || !refit_ok) {
      d$y <- y
      fits <- lapply(optimizers, function(ctrl) fit_lmer(formula, d, REML, ctrl, weights))
      recs[[length(recs) + 1]] <- record(nm, "lmer", fits)
    } else {
      fits <- lapply(names(optimizers), function(o) quietly(refit(first[[o]]$fit, y, control = optimizers[[o]])))
      names(fits) <- names(optimizers)
      recs[[length(recs) + 1]] <- record(nm, "refit", fits)
    }
  }
  list(id = id, dataset = dataset, formula = formula, REML = REML, refit_keeps_REML = refit_ok,
       weights = if (is.null(weights)) NULL else arr(weights),
       shifted = Filter(function(s) all(c(s$name, s$of) %in% names(Y)), SHIFTS),
       responses = lapply(Y, arr), fits = recs)
}

ml_names <- c("Reaction", "sim01", "sim02", "sim03", "no_subject", "no_slope", "offset_1e6", "na2")
designs <- list(
  fit_design("sleepstudy_REML", "sleepstudy", "~ Days + (Days | Subject)", sleep, Y_sleep, TRUE),
  fit_design("sleepstudy_ML", "sleepstudy", "~ Days + (Days | Subject)", sleep, Y_sleep[ml_names], FALSE),
  fit_design("penicillin_weighted_REML", "penicillin", "~ 1 + (1 | plate) + (1 | sample)", pen, Y_pen, TRUE,
             weights = pen_w),
  fit_design("penicillin_weighted_ML", "penicillin", "~ 1 + (1 | plate) + (1 | sample)", pen,
             Y_pen[c("diameter", "sim01", "no_sample", "na3")], FALSE, weights = pen_w)
)

## Known values: sleepstudy's REML optimum (make_reference.R checks the same).
stopifnot(abs(designs[[1]]$fits[[1]]$criterion - 1743.6282720) < 1e-6)
## The designed singular responses are singular in lme4's fit.
sing <- function(design, nm) Filter(function(r) r$name == nm, design$fits)[[1]]$singular
stopifnot(sing(designs[[1]], "no_subject"), sing(designs[[3]], "no_sample"))

reference <- list(
  generated_by = "tests/reference/make_many_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  nloptr_version = as.character(packageVersion("nloptr")),
  minqa_version = as.character(packageVersion("minqa")),
  optimizers = obj(optimizer_text),
  seed = SEED,
  notes = arr(c(
    "designs: one model structure each; formula is the right-hand side (lme4 fitted 'y <formula>')",
    "responses: {name: values} (null = missing), one value per row of the data set, in its row order",
    "shifted: responses equal to another (of) plus a constant (by), up to the 4-decimal rounding",
    "weights: prior weights 0.5 + ((7 i) mod 5) / 4 for rows i = 1..n (penicillin), or null",
    "fits, in the order of responses: method 'lmer' (the first response, those with missing values (na.omit), and all of a design whose refit_keeps_REML is false) or 'refit' (refit() of the first response's fit)",
    "refit_keeps_REML: false where lme4's refit() rebuilds the REML criterion with 1 fixed effect instead of p (lme4 1.1.31's refit uses REML = isREML(object)); such refits optimize the wrong criterion, so lmer is used",
    "each fit: the lower criterion of common.R's tightened nloptwrap and bobyqa settings; objective_other is the other's",
    "criterion: REMLcrit(fit) for REML fits, deviance(fit) for ML fits; se: sqrt(diag(vcov(fit))); singular: isSingular(fit)")),
  designs = designs
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
