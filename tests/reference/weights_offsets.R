## Prior weights and offsets: the models and what is recorded of them, shared by
## make_structured_reference.R, which runs it twice: under lme4 2.x (the recorded
## values) and, in a child Rscript without R_LIBS, under Debian's lme4 1.1.x (the
## cross-check). Everything here must therefore work with both lme4 versions: only
## unstructured terms, and θ (for unstructured terms lme4 2.x's par is θ).
##
## Needs common.R sourced first (load_dataset, optimizers, arr, obj). Defines
## wo_data(), wo_specs, wo_newdata(), wo_lmer(), wo_record().

## The data: sleepstudy with a weight w = 1 + (Days mod 3)/2 and an offset column
## o = 20 * sqrt(Days); penicillin with w = 0.5 + ((7 i) mod 5)/4 for rows i = 1..n.
wo_data <- function() {
  sleep <- load_dataset("sleepstudy")
  sleep$w <- 1 + (sleep$Days %% 3) / 2
  sleep$o <- 20 * sqrt(sleep$Days)
  pen <- load_dataset("penicillin")
  pen$w <- 0.5 + ((7 * seq_len(nrow(pen))) %% 5) / 4
  list(sleepstudy = sleep, penicillin = pen)
}

## New data for predict(): two known subjects and one new one, Days off the grid.
wo_newdata <- function(sleep) {
  nd <- expand.grid(Days = c(0, 2.5, 7, 10), Subject = c("308", "350", "new"),
                    stringsAsFactors = FALSE)
  nd$Subject <- factor(nd$Subject, levels = c(levels(sleep$Subject), "new"))
  nd$w <- 1
  nd$o <- 20 * sqrt(nd$Days)
  nd[, c("Subject", "Days", "w", "o")]
}

## weights / offset name a column of the data (NULL: none). offset_arg is lmer's
## offset = argument (as opposed to offset() in the formula).
wo_specs <- list(
  list(model = "sleepstudy_weighted", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days | Subject)", weights = "w", offset_arg = NULL),
  list(model = "sleepstudy_offset_formula", dataset = "sleepstudy",
       formula = "Reaction ~ Days + offset(log(Days + 1)) + (Days | Subject)",
       weights = NULL, offset_arg = NULL),
  list(model = "sleepstudy_weighted_offset_formula", dataset = "sleepstudy",
       formula = "Reaction ~ Days + offset(o) + (Days | Subject)", weights = "w", offset_arg = NULL),
  list(model = "sleepstudy_weighted_offset_argument", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days | Subject)", weights = "w", offset_arg = "o"),
  list(model = "penicillin_weighted", dataset = "penicillin",
       formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", weights = "w", offset_arg = NULL)
)

## lmer with the data's weight/offset columns passed by value (so the call does not
## depend on the name of the data frame).
wo_lmer <- function(spec, d, REML, control, devFunOnly = FALSE) {
  args <- list(formula = as.formula(spec$formula), data = d, REML = REML, control = control,
               devFunOnly = devFunOnly)
  if (!is.null(spec$weights)) args$weights <- d[[spec$weights]]
  if (!is.null(spec$offset_arg)) args$offset <- d[[spec$offset_arg]]
  do.call(lme4::lmer, args)
}

## points: optional list of theta vectors (label -> theta) at which to evaluate the
## devfun instead of this fit's own (the cross-check evaluates lme4 1.1.x at lme4 2.x's).
wo_record <- function(spec, data, REML, points = NULL) {
  d <- data[[spec$dataset]]
  fits <- lapply(names(optimizers), function(o) wo_lmer(spec, d, REML, optimizers[[o]]))
  names(fits) <- names(optimizers)
  crit <- vapply(fits, function(f) if (REML) lme4::REMLcrit(f) else deviance(f), 0)
  best <- names(which.min(crit))
  fit <- fits[[best]]
  theta <- lme4::getME(fit, "theta")
  lower <- lme4::getME(fit, "lower")
  if (is.null(points)) points <- list(start = ifelse(lower == 0, 1, 0), optimum = theta,
                 perturbed_up = pmax(lower, theta * 1.3 + 0.05),
                 perturbed_down = pmax(lower, theta * 0.7))
  devfun <- lapply(names(points), function(k) {
    df <- wo_lmer(spec, d, REML, optimizers$nloptwrap, devFunOnly = TRUE)
    list(label = k, theta = arr(unname(points[[k]])), value = df(unname(points[[k]])))
  })
  vc <- as.data.frame(lme4::VarCorr(fit))
  pred <- list(training = arr(predict(fit)),
               training_fixed = arr(predict(fit, re.form = NA)))
  if (spec$dataset == "sleepstudy") {
    nd <- wo_newdata(d)
    pred$newdata_fixed <- arr(predict(fit, newdata = nd, re.form = NA))
    pred$newdata_full <- arr(predict(fit, newdata = nd, allow.new.levels = TRUE))
  }
  list(id = paste0(spec$model, if (REML) "_REML" else "_ML"),
       model = spec$model, dataset = spec$dataset, formula = spec$formula,
       weights = spec$weights, offset_argument = spec$offset_arg, REML = REML,
       optimizer = best, objective_other = unname(crit[names(crit) != best]),
       theta = obj(theta), lower = obj(replace(lower, is.infinite(lower), NA)),
       beta = obj(lme4::fixef(fit)), se = obj(sqrt(diag(as.matrix(vcov(fit))))),
       sigma = sigma(fit),
       objective = unname(crit[best]),
       logLik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"),
       varcorr = lapply(seq_len(nrow(vc)), function(i)
         list(grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i],
              vcov = vc$vcov[i], sdcor = vc$sdcor[i])),
       ranef = lapply(lme4::ranef(fit), function(r)
         c(list(levels = arr(rownames(r))), lapply(as.list(r), arr))),
       devfun = devfun,
       predict = pred)
}
