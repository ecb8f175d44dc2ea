## Reference values for lmm's inference (tests/test_inference.py) from lme4,
## lmerTest and pbkrtest.
##
## Run from the repository root:   Rscript tests/reference/make_inference_reference.R
## Writes tests/reference/inference_reference.json.
##
## The data are read through python/lmm/datasets/data/schema.json exactly as
## make_reference.R (and lmm.datasets.load()) read them; the loading code, the
## JSON writer and the optimizer settings are shared with make_reference.R in
## common.R. Every model is fitted with the tightened nloptwrap settings, so that the
## quantities that depend on the optimum (df, intervals) are not blurred by lme4's
## default tolerances.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(broom.mixed)
  library(jsonlite)
})

## Shared code (data loader, optimizer settings, JSON writer) lives in common.R, next
## to this script; it is sourced after the packages are attached.
script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
out_path <- file.path("tests", "reference", "inference_reference.json")

data <- lapply(setNames(nm = c("sleepstudy", "dyestuff", "penicillin", "machines", "pastes")), load_dataset)

## ---------------------------------------------------------------- fits

ctrl <- optimizers$nloptwrap  # common.R

fit <- function(formula, dataset, REML = TRUE) {
  df <- data[[dataset]]
  m <- lmerTest::lmer(as.formula(formula), data = df, REML = REML, control = ctrl)
  stopifnot(inherits(m, "lmerModLmerTest"))
  m
}

coefs <- function(m, ddf) {
  tab <- as.data.frame(coef(summary(m, ddf = ddf)))
  frame(tab)
}

ftable <- function(tab) frame(as.data.frame(tab))

record_fit <- function(id, formula, dataset, REML = TRUE, kr = TRUE, contrasts = list(), type3 = FALSE) {
  m <- fit(formula, dataset, REML)
  rec <- list(
    id = id, formula = formula, dataset = dataset, REML = REML,
    theta = arr(getME(m, "theta")),
    objective = if (REML) REMLcrit(m) else deviance(m),
    satterthwaite = coefs(m, "Satterthwaite"),
    vcov_varpar = lapply(seq_len(nrow(m@vcov_varpar)), function(i) arr(m@vcov_varpar[i, ]))
  )
  if (kr) {
    rec$kenward_roger <- coefs(m, "Kenward-Roger")
    V <- as.matrix(pbkrtest::vcovAdj(m))
    rec$vcov_kr <- lapply(seq_len(nrow(V)), function(i) arr(V[i, ]))
  }
  if (length(contrasts)) {
    rec$contrasts <- lapply(contrasts, function(L) {
      L <- matrix(unlist(L), nrow = length(L), byrow = TRUE)
      out <- list(L = lapply(seq_len(nrow(L)), function(i) arr(L[i, ])),
                  satterthwaite = ftable(contestMD(m, L, ddf = "Satterthwaite")))
      if (kr) out$kenward_roger <- ftable(contestMD(m, L, ddf = "Kenward-Roger"))
      out
    })
  }
  if (type3) {
    rec$anova_satterthwaite <- ftable(anova(m, type = 3, ddf = "Satterthwaite"))
    if (kr) rec$anova_kenward_roger <- ftable(anova(m, type = 3, ddf = "Kenward-Roger"))
  }
  cat(sprintf("%-26s done\n", id))
  rec
}

tests <- list(
  record_fit("sleepstudy_slope", "Reaction ~ Days + (Days | Subject)", "sleepstudy",
             contrasts = list(list(c(1, 0), c(0, 1)), list(c(1, 5)))),
  record_fit("sleepstudy_slope_ML", "Reaction ~ Days + (Days | Subject)", "sleepstudy", REML = FALSE, kr = FALSE),
  record_fit("sleepstudy_uncorr", "Reaction ~ Days + (Days || Subject)", "sleepstudy"),
  record_fit("sleepstudy_quadratic", "Reaction ~ Days + I(Days^2) + (Days | Subject)", "sleepstudy",
             contrasts = list(list(c(0, 1, 0), c(0, 0, 1)))),
  record_fit("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin"),
  record_fit("pastes_nested", "strength ~ 1 + (1 | batch/cask)", "pastes"),
  record_fit("machines", "score ~ Machine + (1 | Worker)", "machines", type3 = TRUE,
             contrasts = list(list(c(0, 1, -1)))),
  record_fit("machines_nested", "score ~ Machine + (1 | Worker/Machine)", "machines", type3 = TRUE)
)

## ---------------------------------------------------------------- profile and Wald intervals

intervals <- function(id, formula, dataset, REML = TRUE) {
  m <- fit(formula, dataset, REML)
  ## the inner optimizations hit nloptwrap's roundoff limit at these tolerances: harmless
  quiet <- function(expr) withCallingHandlers(expr, warning = function(w) {
    if (grepl("NLOPT_ROUNDOFF_LIMITED", conditionMessage(w))) invokeRestart("muffleWarning")
  })
  prof <- quiet(confint(m, method = "profile", oldNames = TRUE, quiet = TRUE))
  wald <- confint(m, method = "Wald", oldNames = TRUE)
  pr <- quiet(profile(m, signames = TRUE))
  ## lme4 interpolates the profile with a spline through points ~cutoff/8 apart in zeta;
  ## with 1/100 of that the interval ends converge to the roots of the exact profile
  fine <- quiet(confint(profile(m, signames = TRUE, delta = 0.02, maxpts = 1000)))
  zeta <- lapply(split(pr, pr$.par), function(d) {
    nm <- as.character(d$.par[1])
    list(value = arr(d[[nm]]), zeta = arr(d$.zeta))
  })
  cat(sprintf("%-26s intervals done\n", id))
  list(id = id, formula = formula, dataset = dataset, REML = REML,
       profile = frame(as.data.frame(prof)), profile_fine = frame(as.data.frame(fine)), wald = frame(as.data.frame(wald)), zeta = zeta)
}

cis <- list(
  intervals("sleepstudy_slope", "Reaction ~ Days + (Days | Subject)", "sleepstudy"),
  intervals("dyestuff", "Yield ~ 1 + (1 | Batch)", "dyestuff"),
  intervals("dyestuff_ML", "Yield ~ 1 + (1 | Batch)", "dyestuff", REML = FALSE)
)

## ---------------------------------------------------------------- likelihood-ratio tests

lrt <- function(id, formulas, dataset, REML = TRUE) {
  fits <- lapply(formulas, function(f) lme4::lmer(as.formula(f), data = data[[dataset]], REML = REML,
                                                  control = ctrl))
  names(fits) <- paste0("model", seq_along(fits))
  tab <- suppressMessages(do.call(anova, c(unname(fits), list(model.names = names(fits)))))
  list(id = id, formulas = arr(formulas), dataset = dataset, REML = REML, table = ftable(tab))
}

lrts <- list(
  lrt("sleepstudy_random", c("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"), "sleepstudy"),
  lrt("sleepstudy_fixed", c("Reaction ~ 1 + (Days | Subject)", "Reaction ~ Days + (Days | Subject)",
                            "Reaction ~ Days + I(Days^2) + (Days | Subject)"), "sleepstudy", REML = FALSE),
  lrt("machines", c("score ~ 1 + (1 | Worker)", "score ~ Machine + (1 | Worker)",
                    "score ~ Machine + (1 | Worker/Machine)"), "machines")
)

## ---------------------------------------------------------------- predictions

newdata <- list(
  sleepstudy = data.frame(Days = c(0, 2.5, 9, 4, 12),
                          Subject = factor(c("308", "335", "372", "new1", "new2"))),
  machines = data.frame(Machine = factor(c("B", "B", "C", "A")), Worker = factor(c("1", "6", "new", "3")))
)

predictions <- function(id, formula, dataset, nd, re_forms) {
  m <- fit(formula, dataset)
  old <- nd[nd[[ncol(nd)]] %in% levels(data[[dataset]][[names(nd)[ncol(nd)]]]), , drop = FALSE]
  out <- list(id = id, formula = formula, dataset = dataset,
              newdata = frame(nd), known_rows = arr(which(nd[[ncol(nd)]] %in% old[[ncol(nd)]]) - 1L),
              fitted = arr(fitted(m)[1:10]),
              population = arr(predict(m, newdata = nd, re.form = NA)),
              new_levels = arr(predict(m, newdata = nd, allow.new.levels = TRUE)),
              known = arr(predict(m, newdata = old)))
  for (name in names(re_forms)) {
    out[[paste0("re_form_", name)]] <- arr(predict(m, newdata = old, re.form = as.formula(re_forms[[name]])))
  }
  cat(sprintf("%-26s predictions done\n", id))
  out
}

preds <- list(
  predictions("sleepstudy_slope", "Reaction ~ Days + (Days | Subject)", "sleepstudy", newdata$sleepstudy, list()),
  predictions("sleepstudy_split", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy",
              newdata$sleepstudy, list(intercept = "~(1 | Subject)")),
  predictions("sleepstudy_poly", "Reaction ~ poly(Days, 2) + (scale(Days) | Subject)", "sleepstudy",
              newdata$sleepstudy, list()),
  predictions("machines", "score ~ Machine + (1 | Worker)", "machines", newdata$machines, list())
)

## ---------------------------------------------------------------- random effects

ranefs <- function(id, formula, dataset) {
  m <- fit(formula, dataset)
  re <- as.data.frame(ranef(m, condVar = TRUE))
  cf <- coef(m)
  out <- list(id = id, formula = formula, dataset = dataset,
              ranef = list(grpvar = arr(as.character(re$grpvar)), term = arr(as.character(re$term)),
                           grp = arr(as.character(re$grp)), condval = arr(re$condval), condsd = arr(re$condsd)),
              coef = lapply(cf, function(d) frame(d)))
  out
}

res <- list(
  ranefs("sleepstudy_slope", "Reaction ~ Days + (Days | Subject)", "sleepstudy"),
  ranefs("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin"),
  ranefs("sleepstudy_split", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy")
)

## ---------------------------------------------------------------- broom.mixed

tidies <- lapply(list(c("sleepstudy_slope", "Reaction ~ Days + (Days | Subject)"),
                      c("sleepstudy_uncorr", "Reaction ~ Days + (Days || Subject)")), function(s) {
  m <- fit(s[2], "sleepstudy")
  td <- as.data.frame(broom.mixed::tidy(m))
  td$group[is.na(td$group)] <- ""
  list(id = s[1], formula = s[2], dataset = "sleepstudy", tidy = frame(td))
})

reference <- list(
  generated_by = "tests/reference/make_inference_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")),
  broom.mixed_version = as.character(packageVersion("broom.mixed")),
  numDeriv_version = as.character(packageVersion("numDeriv")),
  notes = arr(c(
    "tests: coef(summary(fit, ddf)) of lmerTest; vcov_varpar is lmerTest's 2 * solve(Hessian); vcov_kr is pbkrtest::vcovAdj",
    "contrasts: lmerTest::contestMD for the rows of L; anova_*: lmerTest's anova(fit, type = 3)",
    "intervals: confint(fit) (profile, REML fits are profiled by ML as lme4 does), profile_fine the same with profile(delta = 0.02), and confint(fit, method = 'Wald'); zeta: profile(fit) points",
    "lrts: lme4's anova(m1, m2, ...) with model.names model1, model2, ... in the order given (REML fits refitted by ML)",
    "predictions: predict(fit, newdata, re.form = NA), allow.new.levels = TRUE, and on the rows with known levels (known_rows, 0-based)",
    "ranefs: as.data.frame(ranef(fit, condVar = TRUE)) and coef(fit)",
    "tidies: broom.mixed::tidy(fit) (group NA written as empty)")),
  tests = tests,
  intervals = cis,
  lrts = lrts,
  predictions = preds,
  ranefs = res,
  tidies = tidies
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
