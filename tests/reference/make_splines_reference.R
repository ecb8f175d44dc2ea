## Reference values for splines::ns() and splines::bs() in lmm's formulas and for grouping
## factors given as interaction(a, b): the bases themselves (values, knots, column names,
## predict() on new values including values beyond the boundary knots, R's warnings) and
## lme4 1.1.31 fits that use them (fixed and random parts), with predictions on new data.
##
## Run from the repository root, WITHOUT R_LIBS (Debian's lme4 1.1.31):
##   Rscript tests/reference/make_splines_reference.R
## Writes tests/reference/splines_reference.json; the simulated data set and the vectors
## the bases are evaluated on are written into the JSON.

suppressPackageStartupMessages({
  library(lme4)
  library(splines)
  library(jsonlite)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
out_path <- file.path("tests", "reference", "splines_reference.json")
stopifnot(packageVersion("lme4") < "2.0")

## value of expr and the warnings it raised
capture <- function(expr) {
  warns <- character(0)
  value <- withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w))
    invokeRestart("muffleWarning")
  }, message = function(m) {
    warns <<- c(warns, trimws(conditionMessage(m)))
    invokeRestart("muffleMessage")
  })
  list(value = value, warnings = arr(unique(warns)))
}
rows <- function(m) lapply(seq_len(nrow(m)), function(i) arr(unname(m[i, ])))

## ---------------------------------------------------------------- the bases

set.seed(20261216)
sleep <- load_dataset("sleepstudy")
vectors <- list(
  unif = round(runif(40, 0, 10), 3),
  days = sleep$Days,
  neg = round(rnorm(25, -3, 2), 3),
  ties_left = c(0, 0, 0, 0, 0, 0, 1, 2),
  ties_right = c(0, 1, 2, 2, 2, 2, 2, 2)
)
vectors$na <- replace(vectors$unif, c(3, 11, 30), NA)
## new values: beyond both boundary knots, at them, inside, and a missing value
new_values <- function(x) {
  r <- range(x, na.rm = TRUE)
  w <- diff(r)
  c(r[1] - 0.5 * w, r[1] - 0.1 * w, r[1], r[1] + 0.37 * w, mean(r), r[2] - 0.05 * w, r[2],
    r[2] + 0.2 * w, r[2] + w, NA)
}

basis_cases <- list(
  list("unif", "ns(x)"), list("unif", "ns(x, df = 2)"), list("unif", "ns(x, df = 3)"),
  list("unif", "ns(x, df = 5)"), list("unif", "ns(x, 4)"),
  list("unif", "ns(x, df = 3, intercept = TRUE)"), list("unif", "ns(x, knots = c(2, 5, 7.5))"),
  list("unif", "ns(x, knots = 4, Boundary.knots = c(1, 9))"),
  list("unif", "ns(x, df = 4, Boundary.knots = c(-1, 12))"),
  list("unif", "ns(x, df = 3, Boundary.knots = c(2, 8))"),
  list("unif", "ns(x, df = 0)"),
  list("unif", "bs(x)"), list("unif", "bs(x, df = 4)"), list("unif", "bs(x, df = 6)"),
  list("unif", "bs(x, 5)"), list("unif", "bs(x, df = 5, intercept = TRUE)"),
  list("unif", "bs(x, degree = 1, df = 3)"), list("unif", "bs(x, degree = 2, knots = c(3, 6))"),
  list("unif", "bs(x, knots = c(2, 5, 7.5), degree = 4)"),
  list("unif", "bs(x, df = 5, Boundary.knots = c(-1, 12))"),
  list("unif", "bs(x, df = 4, Boundary.knots = c(2, 8))"),
  list("unif", "bs(x, df = 2)"),
  list("days", "ns(x, df = 3)"), list("days", "ns(x, df = 2)"), list("days", "bs(x, df = 4)"),
  list("days", "bs(x, df = 5, intercept = TRUE)"),
  list("neg", "ns(x, df = 4)"), list("neg", "bs(x, df = 5, degree = 2)"), list("neg", "ns(x)"),
  list("ties_left", "ns(x, df = 3)"), list("ties_left", "bs(x, df = 5)"),
  list("ties_right", "bs(x, df = 5)"),  # (ns(x, df = 3) fails in R: knots at the right boundary)
  list("na", "ns(x, df = 3)"), list("na", "bs(x, df = 4)")
)

basis_record <- function(case) {
  vec <- case[[1]]; call <- case[[2]]
  x <- vectors[[vec]]
  fit <- capture(eval(parse(text = call), list(x = x)))
  B <- fit$value
  newx <- new_values(x)
  pred <- capture(predict(B, newx))
  ## through a model frame, as a fit sees it: model.matrix's names, makepredictcall's state
  mf <- suppressWarnings(model.frame(as.formula(paste("~", call)), data.frame(x = x), na.action = na.pass))
  mm <- model.matrix(attr(mf, "terms"), mf)
  nmf <- suppressWarnings(model.frame(attr(mf, "terms"), data.frame(x = newx), na.action = na.pass))
  stopifnot(isTRUE(all.equal(unname(model.matrix(attr(mf, "terms"), nmf)[, -1, drop = FALSE]),
                             unname(unclass(pred$value)[, , drop = FALSE]), check.attributes = FALSE)))
  list(id = paste(vec, call), vector = vec, call = call,
       columns = arr(colnames(mm)[-1]),
       values = rows(unclass(B)),
       knots = arr(attr(B, "knots")),
       boundary_knots = arr(attr(B, "Boundary.knots")),
       intercept = attr(B, "intercept"),
       degree = attr(B, "degree"),
       warnings = fit$warnings,
       new_x = arr(newx),
       predict = rows(unclass(pred$value)),
       predict_warnings = pred$warnings)
}
bases <- lapply(basis_cases, basis_record)
cat("bases:", length(bases), "\n")

## ---------------------------------------------------------------- simulated data for interaction()

## a (3 levels) x b (4 levels) with the cell a3:b2 empty: 11 combinations; g has 11 levels
## too (a tie with the combinations), h 4; rows in random order.
cells <- expand.grid(a = c("a1", "a2", "a3"), b = c("b1", "b2", "b3", "b4"), stringsAsFactors = FALSE)
cells <- cells[!(cells$a == "a3" & cells$b == "b2"), ]
sim <- cells[rep(seq_len(nrow(cells)), each = 16), ]
n <- nrow(sim)
sim$g <- sprintf("g%02d", rep(1:11, length.out = n))
sim$h <- sprintf("h%d", sample(1:4, n, replace = TRUE))
sim$x <- round(runif(n, -2, 2), 3)
cell <- paste(sim$a, sim$b)
cell_int <- setNames(rnorm(11, sd = 1), unique(cell))
cell_slope <- setNames(rnorm(11, sd = 0.4), unique(cell))
g_eff <- setNames(rnorm(11, sd = 0.8), sprintf("g%02d", 1:11))
h_eff <- setNames(rnorm(4, sd = 0.6), sprintf("h%d", 1:4))
sim$y <- round(10 + 0.8 * sim$x + cell_int[cell] + cell_slope[cell] * sim$x + g_eff[sim$g] +
               h_eff[sim$h] + rnorm(n, sd = 0.7), 4)
sim <- sim[sample(n), c("y", "x", "a", "b", "g", "h")]
rownames(sim) <- NULL

## lme4 1.1.31 evaluates interaction(a, b) in the model frame, which holds only the
## formula's variables (the call itself, not a and b): the columns must also be visible
## where lme4 looks next, the global environment. They are put there while the data
## whose rows they match are used (fit, devfun, predict), then removed.
with_columns <- function(d, expr) {
  for (v in c("a", "b")) assign(v, d[[v]], envir = globalenv())
  on.exit(rm(list = c("a", "b"), envir = globalenv()))
  expr
}

## ---------------------------------------------------------------- lme4 fits

sleep_na <- sleep
na_rows <- c(5, 17, 100, 101, 177)
sleep_na$Days[na_rows] <- NA
## missing responses: R learns the knots from every row with Days (model.frame evaluates
## ns() before na.omit drops the rows)
sleep_na_response <- sleep
na_response_rows <- which(sleep$Days %in% c(0, 1))[1:20]
sleep_na_response$Reaction[na_response_rows] <- NA
data <- list(sleepstudy = sleep, sleepstudy_na = sleep_na, sleepstudy_na_response = sleep_na_response,
             simulated = sim)
uses_columns <- function(formula) grepl("interaction(", formula, fixed = TRUE)

new_sleep <- data.frame(Days = rep(c(-1, 0, 2.5, 4.5, 9, 10, 12), 3),
                        Subject = factor(rep(c("308", "309", "372"), each = 7), levels = levels(sleep$Subject)))
new_sim <- data.frame(x = c(-2.5, -1, 0, 0.7, 1.5, 3, 0.2),
                      a = c("a1", "a2", "a3", "a1", "a2", "a3", "a3"),
                      b = c("b1", "b2", "b3", "b4", "b4", "b1", "b3"),
                      g = c("g01", "g05", "g11", "g02", "g07", "g03", "g04"),
                      h = c("h1", "h2", "h3", "h4", "h1", "h2", "h3"))
new_data <- list(sleepstudy = new_sleep, sleepstudy_na = new_sleep, sleepstudy_na_response = new_sleep,
                 simulated = new_sim)

varcorr_record <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  lapply(seq_len(nrow(vc)), function(i) list(
    grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i], vcov = vc$vcov[i], sdcor = vc$sdcor[i]))
}

record_fit <- function(id, formula, dataset, REML = TRUE) {
  d <- data[[dataset]]
  nd <- new_data[[dataset]]
  run <- function(expr) if (uses_columns(formula)) with_columns(d, expr) else expr
  fits <- lapply(optimizers, function(ctrl)
    run(capture(lmer(as.formula(formula), data = d, REML = REML, control = ctrl))))
  objs <- vapply(fits, function(f) if (REML) REMLcrit(f$value) else deviance(f$value), 1)
  best <- names(which.min(objs))
  fit <- fits[[best]]$value
  theta <- getME(fit, "theta")
  lower <- getME(fit, "lower")
  devfun <- run(lmer(as.formula(formula), data = d, REML = REML, devFunOnly = TRUE))
  points <- list(ifelse(lower == 0, 1, 0), unname(theta), pmax(lower, unname(theta) * 1.3 + 0.05),
                 pmax(lower, unname(theta) * 0.7))
  evals <- lapply(points, function(th) list(theta = arr(th), value = devfun(th)))
  stopifnot(abs(evals[[2]]$value - objs[[best]]) < 1e-8 * abs(objs[[best]]))
  ## (lme4 1.1.31 refuses a new level of interaction(a, b) even with allow.new.levels = TRUE)
  if (uses_columns(formula)) {
    pred <- with_columns(nd, capture(predict(fit, newdata = nd)))
    pred_fixed <- with_columns(nd, capture(predict(fit, newdata = nd, re.form = NA)))
  } else {
    pred <- capture(predict(fit, newdata = nd))
    pred_fixed <- capture(predict(fit, newdata = nd, re.form = NA))
  }
  re <- ranef(fit)
  ll <- logLik(fit)
  cat(sprintf("%-32s %s obj=%.10f (other %+.1e)\n", id, best, objs[[best]],
              objs[[setdiff(names(objs), best)]] - objs[[best]]))
  list(id = id, formula = formula, dataset = dataset, REML = REML,
       optimizer = optimizer_text[[best]], warnings = fits[[best]]$warnings,
       theta = obj(theta), lower = arr(ifelse(is.finite(lower), lower, NA)),
       beta = obj(fixef(fit)), se = obj(sqrt(diag(as.matrix(vcov(fit))))),
       sigma = sigma(fit), objective = objs[[best]], logLik = as.numeric(ll),
       nobs = nobs(fit), ngrps = obj(ngrps(fit)),
       varcorr = varcorr_record(fit),
       ranef = lapply(re, function(tab) list(levels = arr(rownames(tab)),
                                            columns = lapply(as.list(tab), arr))),
       X_columns = arr(colnames(getME(fit, "X"))),
       predvars = deparse1(attr(terms(fit), "predvars")),
       Z_columns = lapply(getME(fit, "cnms"), arr),
       fitted_first = arr(head(fitted(fit), 10)),
       devfun = evals,
       predict = arr(pred$value), predict_warnings = pred$warnings,
       predict_fixed = arr(pred_fixed$value), predict_fixed_warnings = pred_fixed$warnings)
}

fits <- list(
  record_fit("sleepstudy_ns3_REML", "Reaction ~ ns(Days, df = 3) + (1 | Subject)", "sleepstudy"),
  record_fit("sleepstudy_ns3_ML", "Reaction ~ ns(Days, df = 3) + (1 | Subject)", "sleepstudy", REML = FALSE),
  record_fit("sleepstudy_bs4_slope", "Reaction ~ bs(Days, df = 4) + (Days | Subject)", "sleepstudy"),
  record_fit("sleepstudy_bs_knots", "Reaction ~ bs(Days, knots = c(3, 6), degree = 2) + (1 | Subject)",
             "sleepstudy"),
  record_fit("sleepstudy_random_ns2", "Reaction ~ Days + (ns(Days, df = 2) | Subject)", "sleepstudy"),
  record_fit("sleepstudy_na_ns3", "Reaction ~ ns(Days, df = 3) + (1 | Subject)", "sleepstudy_na"),
  record_fit("sleepstudy_na_response_ns3", "Reaction ~ ns(Days, df = 3) + (1 | Subject)",
             "sleepstudy_na_response"),
  record_fit("simulated_interaction", "y ~ x + (1 | interaction(a, b))", "simulated"),
  record_fit("simulated_interaction_slope_sep", "y ~ x + (1 + x | interaction(a, b, sep = \"_\"))", "simulated"),
  record_fit("simulated_interaction_tie",
             "y ~ x + (1 | h) + (1 | interaction(b, a, lex.order = TRUE)) + (1 | g)", "simulated")
)

reference <- list(
  generated_by = "tests/reference/make_splines_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  splines_version = as.character(packageVersion("splines")),
  optimizers = arr(optimizer_text),
  notes = arr(c(
    "vectors: the values the bases are evaluated on (x); bases: one record per (vector, call): the basis (rows), its knots, Boundary.knots, intercept and degree attributes, the warnings of the call, model.matrix's column names of ~ call (without the intercept), and predict(basis, new_x) with its warnings (new_x: beyond both boundary knots, at them, inside, NA)",
    "fits: lme4 1.1.31 lmer with the tightened optimizers of common.R (the lower objective of the two); devfun: the criterion at lme4's start, the optimum and two perturbations; predict: predict(fit, newdata) and predict_fixed: re.form = NA (new data: Days beyond the fitting data's range on both sides; lme4 1.1.31 refuses new levels of interaction(a, b), so the simulated new data have none)",
    "sleepstudy_na: sleepstudy with Days missing in rows na_rows (1-based); lme4 drops those rows",
    "sleepstudy_na_response: sleepstudy with Reaction missing in rows na_response_rows (1-based); the knots of ns(Days, df = 3) come from all 180 rows (knots_learned)",
    "simulated: a (a1..a3) x b (b1..b4) without the cell a3:b2, 16 rows per cell, g: 11 levels cycling over the rows, h: 4 levels at random, rows shuffled; interaction(a, b) was evaluated from copies of a and b in the global environment (lme4 1.1.31 looks for them there)")),
  vectors = lapply(vectors, arr),
  bases = bases,
  na_rows = arr(na_rows),
  na_response_rows = arr(na_response_rows),
  new_sleepstudy = frame(new_sleep),
  simulated = frame(sim),
  new_simulated = frame(new_sim),
  fits = fits
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
