# Fit one model with lme4 and print a JSON line (used by bench_fit.py).
#   Rscript benchmarks/fit_lme4.R DATA.csv FORMULA REML(TRUE|FALSE) CALC_DERIVS(TRUE|FALSE) GROUPS [intervals]
# GROUPS: comma-separated grouping columns, made factors whatever their type in the CSV.
# With "intervals" a second line gives the time of the profile intervals (confint(fit)) and their bounds.
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], stringsAsFactors = TRUE)
form <- as.formula(args[2])
reml <- as.logical(args[3])
ctrl <- lmerControl(calc.derivs = as.logical(args[4]))
for (v in strsplit(args[5], ",")[[1]]) data[[v]] <- factor(data[[v]])
# One small fit first (as fit_lmm.py does): the session's one-time costs are not the fit's.
invisible(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))
elapsed <- system.time(fit <- lmer(form, data, REML = reml, control = ctrl))[["elapsed"]]
# The summary a user prints after the fit (lme4's: no df).
shown <- system.time(print(summary(fit)))[["elapsed"]]
crit <- if (reml) REMLcrit(fit) else deviance(fit)
cat(sprintf('{"time": %.6f, "summary": %.6f, "theta": [%s], "objective": %.10f, "nfev": %d, "converged": %s}\n',
            elapsed, shown, paste(sprintf("%.12g", getME(fit, "theta")), collapse = ", "), crit,
            as.integer(fit@optinfo$feval), if (length(fit@optinfo$conv$lme4$messages)) "false" else "true"))
flush(stdout())
if (length(args) >= 6 && args[6] == "intervals") {
  took <- system.time(ci <- confint(fit, method = "profile"))[["elapsed"]]
  cat(sprintf('{"intervals": %.6f, "bounds": [%s]}\n', took,
              paste(sprintf("%.12g", as.vector(t(ci))), collapse = ", ")))
}
