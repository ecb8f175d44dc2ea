## Reference values for lme4 2.x's structured random-effect covariances (us, diag,
## cs, ar1, homogeneous or not), and for prior weights and offsets.
##
## Needs lme4 >= 2.0, built into a private library (README.md, "lme4 2.x"). Run from
## the repository root:
##   R_LIBS=/work/rlib Rscript tests/reference/make_structured_reference.R
## Writes tests/reference/structured_reference.json. The weights/offsets models are
## also fitted, in a child Rscript without R_LIBS, by Debian's lme4 1.1.x, and the two
## versions' answers are compared (field "weights_offsets_crosscheck").
## The two simulated data sets are written into the JSON.

## reformulas prints with `%||%`, which base R has only from 4.4.
if (!exists("%||%", baseenv())) `%||%` <- function(x, y) if (is.null(x)) y else x

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
if (packageVersion("lme4") < "2.0")
  stop("lme4 ", packageVersion("lme4"), " found; this script needs lme4 >= 2.0. ",
       "Run it with R_LIBS pointing at the library built as README.md ('lme4 2.x') says.")

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
source(file.path(here, "weights_offsets.R"))
out_path <- file.path("tests", "reference", "structured_reference.json")

## ---------------------------------------------------------------- data
same_as_r <- function(df, ref) {
  ref <- as.data.frame(ref)[, names(df)]
  all(vapply(names(df), function(n) {
    a <- df[[n]]; b <- ref[[n]]
    if (is.factor(b)) is.factor(a) && identical(levels(a), levels(b)) &&
      identical(is.ordered(a), is.ordered(b)) && identical(as.character(a), as.character(b))
    else identical(as.numeric(a), as.numeric(b))
  }, TRUE))
}
sleep <- load_dataset("sleepstudy")
orthodont <- load_dataset("orthodont")
machines <- load_dataset("machines")
stopifnot(same_as_r(sleep, lme4::sleepstudy), same_as_r(orthodont, nlme::Orthodont),
          same_as_r(machines, nlme::Machines))
machines$w <- 1 + (seq_len(nrow(machines)) %% 3) / 2   # weights for machines_cs_weighted

## Longitudinal: 60 subjects at times 0..5, one observation each;
## y = 10 + 0.5 time + b[subject, time] + e, b AR(1) over time (sd 1.5, rho 0.6), e sd 1.
set.seed(20260611)
times <- 0:5
n_subj <- 60
S_b <- 1.5^2 * 0.6^abs(outer(times, times, "-"))
b <- matrix(rnorm(n_subj * length(times)), n_subj) %*% chol(S_b)
ar1sim <- expand.grid(time = times, subject = sprintf("s%02d", seq_len(n_subj)),
                      stringsAsFactors = FALSE)[, c("subject", "time")]
ar1sim$y <- round(10 + 0.5 * ar1sim$time +
                  b[cbind(match(ar1sim$subject, sprintf("s%02d", seq_len(n_subj))), ar1sim$time + 1)] +
                  rnorm(nrow(ar1sim)), 4)
ar1sim_frame <- ar1sim
ar1sim$subject <- factor(ar1sim$subject)

## Crossed: 36 subjects x 24 items, each pair once; cond (a, b, c) = ((s + i) mod 3);
## y = 5 + (0, 0.6, -0.4)[cond] + b[subj, cond] + c[item] + e, b compound symmetric
## (sds 1, 1.4, 0.8; rho 0.5), item sd 0.7, e sd 1.
n_s <- 36; n_i <- 24
crossed <- expand.grid(item = seq_len(n_i), subj = seq_len(n_s))
crossed$cond <- c("a", "b", "c")[(crossed$subj + crossed$item) %% 3 + 1]
sd_b <- c(1, 1.4, 0.8)
S_cs <- diag(sd_b) %*% (0.5 + 0.5 * diag(3)) %*% diag(sd_b)
bs <- matrix(rnorm(n_s * 3), n_s) %*% chol(S_cs)
ci <- rnorm(n_i, sd = 0.7)
ic <- match(crossed$cond, c("a", "b", "c"))
crossed$y <- round(5 + c(0, 0.6, -0.4)[ic] + bs[cbind(crossed$subj, ic)] + ci[crossed$item] +
                   rnorm(nrow(crossed)), 4)
crossed$subj <- sprintf("p%02d", crossed$subj)
crossed$item <- sprintf("i%02d", crossed$item)
crossed <- crossed[, c("subj", "item", "cond", "y")]
crossed_frame <- crossed
for (v in c("subj", "item", "cond")) crossed[[v]] <- factor(crossed[[v]])

data <- list(sleepstudy = sleep, orthodont = orthodont, machines = machines,
             ar1sim = ar1sim, crossed = crossed)

## ---------------------------------------------------------------- helpers
## JSON has no NaN: lme4's NaN answers are written as the string "NaN".
nan_ok <- function(x) {
  if (is.list(x)) return(lapply(x, nan_ok))
  if (is.numeric(x) && any(is.nan(x))) {
    out <- as.list(x); out[is.nan(x)] <- "NaN"
    return(if (length(x) == 1 && is.null(names(x))) out[[1]] else out)
  }
  x
}
inf_null <- function(x) { x[is.infinite(x)] <- NA; x }   # bounds: null = unbounded
rows <- function(m) lapply(seq_len(nrow(m)), function(i) arr(unname(m[i, ])))

ctrl_for <- function(optimizer, ignore_nobs) {
  ctrl <- optimizers[[optimizer]]  # common.R
  if (ignore_nobs) ctrl$checkControl$check.nobs.vs.nRE <- "ignore"
  ctrl
}

## The same formula with every structured term written as us(...): its devfun takes
## the lower triangle of each term's Lambda (column-major), so it evaluates the
## structured model at par through a route that does not go through lme4's par -> theta.
as_us_formula <- function(f) {
  f <- gsub("\\b(cs|ar1|diag)\\(", "us(", f, perl = TRUE)
  gsub(",\\s*hom\\s*=\\s*(TRUE|FALSE)", "", f, perl = TRUE)
}

## Lambda of one term at par, also where lme4's getTheta() is not finite (cs with 3+
## columns at rho = 1): then from Sigma = D C D by a semidefinite Cholesky.
term_lambda <- function(cv, p) {
  L <- as.matrix(getLambda(setPar(cv, p)))
  if (all(is.finite(L))) return(L)
  nc <- cv@nc
  sd <- if (cv@hom) rep(p[1], nc) else p[seq_len(nc)]
  rho <- p[length(p)]
  C <- if (is(cv, "Covariance.cs")) (1 - rho) * diag(nc) + rho else rho^abs(outer(1:nc, 1:nc, "-"))
  S <- diag(sd, nc) %*% C %*% diag(sd, nc)
  L <- matrix(0, nc, nc)
  for (j in seq_len(nc)) {
    d <- S[j, j] - sum(L[j, seq_len(j - 1)]^2)
    if (d <= 1e-14 * max(diag(S))) next      # rank deficient: this column is zero
    L[j, j] <- sqrt(d)
    for (i in seq_len(nc)[-seq_len(j)])
      L[i, j] <- (S[i, j] - sum(L[i, seq_len(j - 1)] * L[j, seq_len(j - 1)])) / L[j, j]
  }
  L
}
par_to_us_theta <- function(reCovs, par) {
  np <- vapply(reCovs, getParLength, 0L)
  ends <- cumsum(np)
  unlist(lapply(seq_along(reCovs), function(k) {
    L <- term_lambda(reCovs[[k]], par[seq.int(ends[k] - np[k] + 1, length.out = np[k])])
    L[lower.tri(L, diag = TRUE)]
  }))
}

## theta (lme4's getTheta order) of every term at par; where getTheta() is not finite,
## from the semidefinite Lambda (cs only: cs is the one structure that can fail).
struct_theta <- function(reCovs, par) {
  np <- vapply(reCovs, getParLength, 0L)
  ends <- cumsum(np)
  unlist(lapply(seq_along(reCovs), function(k) {
    cv <- reCovs[[k]]
    p <- par[seq.int(ends[k] - np[k] + 1, length.out = np[k])]
    th <- getTheta(setPar(cv, p))
    if (all(is.finite(th))) return(th)
    stopifnot(is(cv, "Covariance.cs"))
    L <- term_lambda(cv, p)
    nc <- cv@nc
    if (!cv@hom) return(L[lower.tri(L, diag = TRUE)])
    ## hom cs: per column j its diagonal entry, then its (common) entry below it
    c(rbind(diag(L), c(L[cbind(2:nc, 1:(nc - 1))], NA)))[seq_len(2 * nc - 1)]
  }))
}

## lmer through a call that names its arguments (data = d, control = ctrl, weights = w),
## so that print(summary(fit)) shows names rather than deparsed values.
run_lmer <- function(formula, d, REML, ctrl, start = NULL, devFunOnly = FALSE, weights = NULL) {
  cl <- call("lmer", as.formula(formula), data = quote(d), REML = REML, control = quote(ctrl))
  if (devFunOnly) cl$devFunOnly <- TRUE
  if (!is.null(start)) cl$start <- quote(list(par = start))
  if (!is.null(weights)) {
    w <- d[[weights]]
    cl$weights <- quote(w)
  }
  eval(cl)
}
quiet_fit <- function(...) {
  msgs <- character(0)
  fit <- withCallingHandlers(run_lmer(...),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  list(fit = fit, messages = unique(msgs))
}
crit <- function(fit, REML) if (REML) REMLcrit(fit) else deviance(fit)

## ---------------------------------------------------------------- one fit
record <- function(model, dataset, formula, REML, ignore_nobs = FALSE, weights = NULL) {
  d <- data[[dataset]]
  id <- paste0(model, if (REML) "_REML" else "_ML")
  ## lme4's own fits with both tightened optimizers
  lme4_fits <- lapply(c("nloptwrap", "bobyqa"), function(o)
    quiet_fit(formula, d, REML, ctrl_for(o, ignore_nobs), weights = weights))
  names(lme4_fits) <- c("nloptwrap", "bobyqa")
  lme4_obj <- vapply(lme4_fits, function(f) crit(f$fit, REML), 0)
  reCovs <- getReCovs(lme4_fits[[1]]$fit)
  lower <- getME(lme4_fits[[1]]$fit, "lower")
  upper <- setNames(getUpper(lme4_fits[[1]]$fit), names(lower))
  df0 <- run_lmer(formula, d, REML, ctrl_for("nloptwrap", ignore_nobs), devFunOnly = TRUE,
                  weights = weights)
  start <- setNames(environment(df0)$mkPar(environment(df0)$pp$theta), names(lower))
  ## the objective through the us() devfun (immune to lme4's NaN at rho = 1)
  dfus <- run_lmer(as_us_formula(formula), d, REML, ctrl_for("nloptwrap", ignore_nobs),
                   devFunOnly = TRUE, weights = weights)
  f_us <- function(p) dfus(par_to_us_theta(reCovs, p))
  ## polish: BOBYQA on that objective from lme4's best finite answer (or its start)
  finite <- is.finite(lme4_obj)
  p0 <- if (any(finite)) getME(lme4_fits[[names(which.min(lme4_obj[finite]))]]$fit, "par") else start
  pol <- minqa::bobyqa(unname(p0), f_us, lower = unname(lower), upper = unname(upper),
                       control = list(rhobeg = 0.02, rhoend = 1e-12, maxfun = 1e5))
  cand <- c(lme4_obj, polished = pol$fval)
  best <- names(which.min(cand))
  opt_par <- if (best == "polished") setNames(pol$par, names(lower)) else getME(lme4_fits[[best]]$fit, "par")
  ## the recorded fit: lme4 evaluated (no optimization) at the best par
  ## If lme4 cannot evaluate its own model there (cs, 3+ columns, rho = 1), the fit
  ## quantities come from the us() form of the model at the same Lambda.
  ctrl_none <- ctrl_for("nloptwrap", ignore_nobs)
  ctrl_none$optimizer <- NULL
  fit <- quiet_fit(formula, d, REML, ctrl_none, start = unname(opt_par), weights = weights)$fit
  stopifnot(identical(as.numeric(getME(fit, "par")), as.numeric(opt_par)))
  via_us <- !is.finite(crit(fit, REML))
  theta_names <- names(getME(lme4_fits[[1]]$fit, "theta"))
  if (via_us)
    fit <- quiet_fit(as_us_formula(formula), d, REML, ctrl_none,
                     start = par_to_us_theta(reCovs, unname(opt_par)), weights = weights)$fit

  ## devfun at fixed par, each in a fresh devfun (lme4's devfun state can stick at NaN)
  is_rho <- grepl("\\.rho$", names(lower))
  pts <- list(start = start, optimum = opt_par)
  up <- opt_par; up[!is_rho] <- opt_par[!is_rho] * 1.3 + 0.05; up[is_rho] <- opt_par[is_rho] * 0.7
  dn <- opt_par; dn[!is_rho] <- opt_par[!is_rho] * 0.7
  dn[is_rho] <- opt_par[is_rho] + (upper[is_rho] - opt_par[is_rho]) / 2
  pts$perturbed_up <- pmax(lower, up)
  pts$perturbed_down <- pmax(lower, dn)
  if (any(is_rho)) {
    p <- opt_par; p[is_rho] <- 0.999; pts$rho_0.999 <- p
    p <- opt_par; p[is_rho] <- upper[is_rho]; pts$rho_upper <- p
    p <- opt_par; p[is_rho] <- lower[is_rho] + 0.001; pts$rho_lower_plus_0.001 <- p
  }
  p <- opt_par; p[which(!is_rho & lower == 0)[1]] <- 0; pts$first_sd_zero <- p
  devfun <- lapply(names(pts), function(k) {
    p <- unname(pts[[k]])
    dfk <- run_lmer(formula, d, REML, ctrl_for("nloptwrap", ignore_nobs), devFunOnly = TRUE,
                    weights = weights)
    list(label = k, par = arr(p), theta = arr(environment(dfk)$mkTheta(p)),
         value = dfk(p), value_us = f_us(p))
  })

  vc <- VarCorr(fit)
  vcdf <- as.data.frame(vc)
  cat(sprintf("%-34s %-9s %.10f  (%s)\n", id, best, cand[best],
              paste(sprintf("%s %.10g", names(cand), cand), collapse = ", ")))
  list(
    id = id, model = model, dataset = dataset, formula = formula, REML = REML,
    weights = weights,
    check_nobs_vs_nRE_ignored = ignore_nobs,
    optimizer = best,
    objectives_by_optimizer = as.list(cand),
    lme4_messages = lapply(lme4_fits, function(f)
      arr(c(f$messages, unlist(f$fit@optinfo$conv$lme4$messages)))),
    fit_quantities_from_us_form = via_us,
    par = obj(opt_par),
    theta = obj(setNames(struct_theta(reCovs, unname(opt_par)), theta_names)),
    lower = obj(inf_null(lower)), upper = obj(inf_null(upper)),
    start = obj(start),
    beta = obj(fixef(fit)), se = obj(sqrt(diag(as.matrix(vcov(fit))))),
    sigma = sigma(fit),
    objective = crit(fit, REML),
    logLik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"),
    nobs = nobs(fit), ngrps = as.list(ngrps(fit)),
    covariance_class = setNames(lapply(reCovs, function(cv) class(cv)[1]), names(fit@cnms)),
    Lambda = setNames(lapply(getME(fit, "Tlist"), function(L) rows(as.matrix(L))), names(fit@cnms)),
    varcorr = lapply(setNames(names(vc), names(vc)), function(g) list(
      class = class(vc[[g]])[1],
      stddev = obj(attr(vc[[g]], "stddev")),
      correlation = rows(attr(vc[[g]], "correlation")),
      covariance = rows(unclass(vc[[g]])[, , drop = FALSE]))),
    varcorr_df = lapply(seq_len(nrow(vcdf)), function(i)
      list(grp = vcdf$grp[i], var1 = vcdf$var1[i], var2 = vcdf$var2[i],
           vcov = vcdf$vcov[i], sdcor = vcdf$sdcor[i])),
    printed_varcorr = arr(capture.output(print(vc))),
    printed_summary = arr(capture.output(print(summary(fit)))),
    ranef = lapply(ranef(fit), function(r)
      c(list(levels = arr(rownames(r))), lapply(as.list(r), arr))),
    devfun = nan_ok(devfun)
  )
}

## ---------------------------------------------------------------- models
ss <- "Reaction ~ Days + "
od <- "distance ~ age + "
specs <- list(
  list("sleepstudy_cs", "sleepstudy", paste0(ss, "cs(Days | Subject)")),
  list("sleepstudy_cs_hom", "sleepstudy", paste0(ss, "cs(Days | Subject, hom = TRUE)")),
  list("sleepstudy_diag", "sleepstudy", paste0(ss, "diag(Days | Subject)")),
  list("sleepstudy_diag_hom", "sleepstudy", paste0(ss, "diag(Days | Subject, hom = TRUE)")),
  list("sleepstudy_us", "sleepstudy", paste0(ss, "us(Days | Subject)")),
  list("sleepstudy_ar1", "sleepstudy", paste0(ss, "ar1(Days | Subject)")),
  list("orthodont_ar1", "orthodont", paste0(od, "ar1(0 + factor(age) | Subject)"), TRUE),
  list("orthodont_ar1_het", "orthodont", paste0(od, "ar1(0 + factor(age) | Subject, hom = FALSE)"), TRUE),
  list("orthodont_cs", "orthodont", paste0(od, "cs(0 + factor(age) | Subject)"), TRUE),
  list("orthodont_cs_hom", "orthodont", paste0(od, "cs(0 + factor(age) | Subject, hom = TRUE)"), TRUE),
  list("machines_cs", "machines", "score ~ Machine + cs(0 + Machine | Worker)"),
  list("machines_cs_hom", "machines", "score ~ Machine + cs(0 + Machine | Worker, hom = TRUE)"),
  list("machines_cs_weighted", "machines", "score ~ Machine + cs(0 + Machine | Worker)", FALSE, "w"),
  list("ar1sim_ar1", "ar1sim", "y ~ time + ar1(0 + factor(time) | subject)", TRUE),
  list("ar1sim_ar1_het", "ar1sim", "y ~ time + ar1(0 + factor(time) | subject, hom = FALSE)", TRUE),
  list("crossed_cs", "crossed", "y ~ cond + cs(0 + cond | subj) + (1 | item)"),
  list("crossed_cs_hom", "crossed", "y ~ cond + cs(0 + cond | subj, hom = TRUE) + (1 | item)"),
  list("crossed_diag", "crossed", "y ~ cond + diag(0 + cond | subj) + (1 | item)")
)
fits <- list()
for (s in specs) for (REML in c(TRUE, FALSE))
  fits[[length(fits) + 1]] <- record(s[[1]], s[[2]], s[[3]], REML,
                                     ignore_nobs = isTRUE(s[4][[1]]),
                                     weights = if (length(s) >= 5) s[[5]] else NULL)

## ---------------------------------------------------------------- lme4's NaN at rho = 1
## cs() with 3+ columns: getTheta() divides 0 by 0 at rho = 1, the devfun returns NaN,
## and the NaN sticks: every later evaluation of that devfun is NaN too. Recorded for
## Orthodont's 4-column cs terms: the devfun at the optimum, then at rho = 1, then at
## the optimum again; and what lmer reports when its optimizer meets rho = 1.
nan_case <- function(model, formula, REML) {
  rec <- Filter(function(f) f$id == paste0(model, if (REML) "_REML" else "_ML"), fits)[[1]]
  pts <- setNames(rec$devfun, vapply(rec$devfun, `[[`, "", "label"))
  p <- setNames(unlist(pts$perturbed_up$par), names(rec$par))   # a point lme4 can evaluate
  p1 <- p; p1[grepl("\\.rho$", names(p))] <- 1
  ctrl <- ctrl_for("nloptwrap", TRUE)
  df <- run_lmer(formula, orthodont, REML, ctrl, devFunOnly = TRUE)
  ctrl_none <- ctrl; ctrl_none$optimizer <- NULL
  reCovs <- getReCovs(run_lmer(formula, orthodont, REML, ctrl_none, start = unname(p)))
  dfus <- run_lmer(as_us_formula(formula), orthodont, REML, ctrl, devFunOnly = TRUE)
  seq_vals <- c(at_par = df(unname(p)), at_par_rho_1 = df(unname(p1)), at_par_again = df(unname(p)))
  lme4_report <- lapply(list(default = lmerControl(check.nobs.vs.nRE = "ignore"),
                             nloptwrap_tight = ctrl, bobyqa_tight = ctrl_for("bobyqa", TRUE)),
    function(cc) {
      q <- quiet_fit(formula, orthodont, REML, cc)
      m <- q$fit
      list(par = obj(getME(m, "par")), objective = crit(m, REML), sigma = sigma(m),
           beta = obj(fixef(m)),
           conv_message = m@optinfo$message %||% "",
           lme4_conv = arr(unlist(m@optinfo$conv$lme4$messages) %||% character(0)),
           messages = arr(q$messages))
    })
  nan_ok(list(id = rec$id, formula = formula, REML = REML,
              par = obj(p), par_rho_1 = obj(p1),
              devfun_sequence = as.list(seq_vals),
              value_at_par_rho_1_via_us = dfus(par_to_us_theta(reCovs, unname(p1))),
              reference_objective = rec$objective, reference_par = rec$par,
              lme4_fit = lme4_report))
}
lme4_nan <- list(
  nan_case("orthodont_cs", paste0(od, "cs(0 + factor(age) | Subject)"), TRUE),
  nan_case("orthodont_cs", paste0(od, "cs(0 + factor(age) | Subject)"), FALSE),
  nan_case("orthodont_cs_hom", paste0(od, "cs(0 + factor(age) | Subject, hom = TRUE)"), TRUE),
  nan_case("orthodont_cs_hom", paste0(od, "cs(0 + factor(age) | Subject, hom = TRUE)"), FALSE)
)

## ---------------------------------------------------------------- weights and offsets
wdata <- wo_data()
wo_fits <- list()
for (s in wo_specs) for (REML in c(TRUE, FALSE)) wo_fits[[length(wo_fits) + 1]] <- wo_record(s, wdata, REML)

## the same under Debian's lme4 1.1.x (a child R without R_LIBS)
## at lme4 2.x's devfun points (the optima of the two versions may differ by optimizer noise)
tmp <- tempfile(fileext = ".rds")
tmp_points <- tempfile(fileext = ".rds")
saveRDS(lapply(wo_fits, function(f) setNames(lapply(f$devfun, function(p) unlist(p$theta)),
                                            vapply(f$devfun, `[[`, "", "label"))), tmp_points)
child <- sprintf(paste0("suppressPackageStartupMessages({library(lme4); library(jsonlite)}); ",
                        "source('%s'); source('%s'); d <- wo_data(); pts <- readRDS('%s'); ",
                        "r <- list(); for (s in wo_specs) for (REML in c(TRUE, FALSE)) ",
                        "r[[length(r) + 1]] <- wo_record(s, d, REML, pts[[length(r) + 1]]); ",
                        "saveRDS(list(lme4 = as.character(packageVersion('lme4')), ",
                        "Matrix = as.character(packageVersion('Matrix')), fits = r), '%s')"),
                 file.path(here, "common.R"), file.path(here, "weights_offsets.R"), tmp_points, tmp)
status <- system2("Rscript", c("-e", shQuote(child)), env = c("R_LIBS=", "R_LIBS_USER=NULL"))
cross <- if (status == 0 && file.exists(tmp)) readRDS(tmp) else NULL
reldiff <- function(a, b) max(abs(a - b) / pmax(abs(a), 1e-300))
crosscheck <- if (is.null(cross)) list(available = FALSE) else {
  per_fit <- lapply(seq_along(wo_fits), function(i) {
    a <- wo_fits[[i]]; b <- cross$fits[[i]]
    stopifnot(a$id == b$id)
    dv <- function(r) vapply(r$devfun, `[[`, 0, "value")
    list(id = a$id,
         devfun_values_lme4_1 = arr(dv(b)),
         max_rel_diff = list(devfun = reldiff(dv(a), dv(b)),
                             objective = reldiff(a$objective, b$objective),
                             beta = reldiff(unlist(a$beta), unlist(b$beta)),
                             se = reldiff(unlist(a$se), unlist(b$se)),
                             sigma = reldiff(a$sigma, b$sigma),
                             theta = reldiff(unlist(a$theta), unlist(b$theta)),
                             predict = reldiff(unlist(a$predict), unlist(b$predict))))
  })
  worst <- max(vapply(per_fit, function(f) f$max_rel_diff$devfun, 0))
  list(available = TRUE, lme4_version = cross$lme4, Matrix_version = cross$Matrix,
       devfun_agree_1e_8 = worst < 1e-8, fits = per_fit)
}
cat("weights/offsets cross-check:", if (is.null(cross)) "unavailable" else
    sprintf("lme4 %s, worst devfun rel diff %.2g", cross$lme4,
            max(vapply(crosscheck$fits, function(f) f$max_rel_diff$devfun, 0))), "\n")

## ---------------------------------------------------------------- write
dv_check <- unlist(lapply(fits, function(f) lapply(f$devfun, function(p)
  if (is.numeric(p$value)) abs(p$value - p$value_us) / abs(p$value_us))))
reference <- list(
  generated_by = "tests/reference/make_structured_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  reformulas_version = as.character(packageVersion("reformulas")),
  Rcpp_version = as.character(packageVersion("Rcpp")),
  RcppEigen_version = as.character(packageVersion("RcppEigen")),
  nloptr_version = as.character(packageVersion("nloptr")),
  minqa_version = as.character(packageVersion("minqa")),
  optimizers = as.list(c(optimizer_text,
    polished = "minqa::bobyqa on the us()-devfun objective from lme4's best finite par, rhobeg=0.02, rhoend=1e-12")),
  notes = arr(c(
    "par is getME(fit, 'par'): what lme4 2.x optimizes. Per term: us: the lower triangle of Lambda (= theta); diag: the relative sds (hom: one); cs/ar1: the relative sds (hom: one, named <grp>.*) then rho (named <grp>.rho). Relative = divided by sigma. Terms in lme4's order (decreasing number of levels).",
    "theta is getME(fit, 'theta'): the distinct nonzero entries of each term's Lambda (row-major within the lower triangle for hom cs/ar1: see lme4 R/covariance.R getTheta); Lambda gives each term's relative Cholesky factor in full.",
    "The devfun of lmer(..., devFunOnly = TRUE) in lme4 2.x takes par, not theta (function(par) lmer_Deviance(pp, resp, mkTheta(par))); for us/unstructured terms par = theta.",
    "devfun: the REML criterion (REML fits) or deviance (ML fits) at fixed par, each point in a freshly made devfun. value is lme4's; value_us is the same model with every term written us(...) evaluated at the lower triangle of each term's Lambda(par) - an independent route; the two agree to max_rel_diff_value_vs_value_us wherever value is finite. At rho = 1 with a cs term of 3+ columns lme4 gives NaN (written \"NaN\") and value_us is the correct limit (Lambda from a semidefinite Cholesky of Sigma).",
    "Points: start (lme4's start par: sds 1, rho 0), optimum, perturbed_up (sds*1.3+0.05, rho*0.7), perturbed_down (sds*0.7, rho halfway to its upper bound), rho_0.999, rho_upper (rho = 1), rho_lower_plus_0.001 (cs: -1/(nc-1)+0.001, ar1: -0.999), first_sd_zero; each clipped to the bounds.",
    "The recorded fit is the lowest objective among lme4's nloptwrap and bobyqa fits and a polish (objectives_by_optimizer); fit quantities come from lmer with optimizer = NULL started at that par. lme4_messages are the warnings/messages of lme4's two fits.",
    "lower/upper: bounds of par; null means unbounded (-Inf in lower, Inf in upper). cs rho is bounded by [-1/(nc-1), 1], ar1 rho by [-1, 1].",
    "check_nobs_vs_nRE_ignored: the Orthodont and ar1sim models have as many random effects as observations, so lmer needs control check.nobs.vs.nRE = 'ignore'.",
    "varcorr: per grouping term, VarCorr's stddev and correlation attributes and the covariance matrix (class vcmat_us / vcmat_diag / vcmat_cs / vcmat_homcs / vcmat_ar1); varcorr_df is as.data.frame(VarCorr(fit)). printed_varcorr and printed_summary are print() output, one string per line (hom terms print one sd row).",
    "lme4_nan: lme4 2.x's failure for cs with 3+ columns: devfun_sequence evaluates one devfun at the optimum, at rho = 1, then at the optimum again (the NaN sticks); lme4_fit is what lmer returns (objective, beta, sigma NaN when the optimizer touched rho = 1).",
    "machines_cs_weighted: prior weights w = 1 + (i mod 3)/2 for rows i = 1..n of machines.",
    "ar1sim and crossed: the simulated data, columns as stored (factors built with levels in sorted order).",
    "weights_offsets: lme4 2.x fits with prior weights and offsets (data columns in weights_offsets.R: sleepstudy w = 1 + (Days mod 3)/2, o = 20 sqrt(Days); penicillin w = 0.5 + ((7 i) mod 5)/4); devfun here is at fixed theta (start, optimum, pmax(lower, theta*1.3+0.05), pmax(lower, theta*0.7)); predict: training (full and re.form = NA) and, for sleepstudy, predict_newdata rows (new level 'new' with allow.new.levels = TRUE). lme4 ignores an offset given as lmer's offset = argument when predicting on new data (sleepstudy_weighted_offset_argument), but evaluates offset() terms of the formula on the new data.",
    "weights_offsets_crosscheck: the same fits by lme4 1.1.x (Debian) in a child R without R_LIBS, its devfun evaluated at lme4 2.x's points; max relative differences per quantity (devfun: at the same theta; the others at each version's own optimum, so they differ by optimizer precision only)."
  )),
  max_rel_diff_value_vs_value_us = max(dv_check),
  ar1sim = frame(ar1sim_frame),
  crossed = frame(crossed_frame),
  fits = fits,
  lme4_nan = lme4_nan,
  weights_offsets_data = list(
    sleepstudy_w = arr(wdata$sleepstudy$w), sleepstudy_o = arr(wdata$sleepstudy$o),
    penicillin_w = arr(wdata$penicillin$w), machines_w = arr(machines$w),
    predict_newdata = frame(wo_newdata(wdata$sleepstudy))),
  weights_offsets = wo_fits,
  weights_offsets_crosscheck = crosscheck
)
writeLines(to_json(nan_ok(reference)), out_path)
cat("wrote", out_path, "\n")
